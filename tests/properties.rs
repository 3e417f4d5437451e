//! Properties, checked on generated inputs (proptest: a failing input is shrunk to the
//! smallest one that still fails, and its seed kept in tests/properties.proptest-regressions
//! so that it runs first from then on):
//!
//! - VICI: decode ∘ encode is the identity on every message and packet vipsec can
//!   encode, and on every list of framed messages (the strongSwan backend's conn files);
//!   what the encoder accepts, the decoder reads back, and the reverse.
//! - DNs (RFC 4514): attributes escaped in any of the RFC's ways parse back to the same
//!   attributes, and the name a DN claims is its one CN's, whatever the other values
//!   hold (`O=x\, CN=victim.example` claims nothing).
//! - Rendered conns: for every parameter set the ipsec agent accepts, and for meshes of
//!   up to four nodes (either policy, exclusions, secure ports, forwarded subnets, either
//!   authentication), the conns generated read back unchanged: from the strongSwan
//!   backend's file, with charon's status interpreted from them; and by libreswan's own
//!   parser (`readwriteconf`), when libreswan is installed. The libreswan text holds no
//!   control character but tabs and line ends, and its `conn` lines name exactly the
//!   generated conns (what stop reads back).
//!
//! Case counts are chosen so that the whole file runs in a few seconds in a debug build
//! (PROPTEST_CASES=N runs N cases of each instead; PROPTEST_RNG_SEED=random other cases).

use std::net::IpAddr;

use proptest::prelude::*;
use vipsec::config::RawParams;
use vipsec::ike::strongswan_conf::load_conn;
use vipsec::ike::vici::{self, Message, Packet, Value};
use vipsec::ike::{ConnAuth, ConnDef, Identity, Remote};

/// The suite's runs are seeded (the same cases every run, so CI never fails on a case no
/// one has seen before); PROPTEST_RNG_SEED=N or =random explores others.
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        rng_seed: match std::env::var("PROPTEST_RNG_SEED").as_deref() {
            Ok("random") => proptest::test_runner::RngSeed::Random,
            Ok(_) => defaults.rng_seed,
            Err(_) => proptest::test_runner::RngSeed::Fixed(0x7669_7073_6563),
        },
        ..defaults
    }
}

// ---------------------------------------------------------------------------------------
// VICI

/// Names as charon and vipsec write them, and any other UTF-8 of at most 255 bytes.
fn vici_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_-]{0,12}", "\\PC{0,8}", Just("x".repeat(255)),]
}

fn vici_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..max),
        1 => Just(vec![0xa5; 65535]),
    ]
}

/// Message trees up to 4 sections deep.
fn vici_message() -> impl Strategy<Value = Message> {
    let leaf = prop_oneof![
        vici_bytes(40).prop_map(Value::Bytes),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..4)
            .prop_map(Value::List),
    ];
    let value = leaf.prop_recursive(4, 48, 6, |inner| {
        prop::collection::vec((vici_name(), inner), 0..6)
            .prop_map(|entries| Value::Section(Message(entries)))
    });
    prop::collection::vec((vici_name(), value), 0..6).prop_map(Message)
}

fn vici_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        (vici_name(), vici_message())
            .prop_map(|(command, message)| Packet::Request { command, message }),
        vici_message().prop_map(Packet::Response),
        Just(Packet::UnknownCommand),
        vici_name().prop_map(Packet::EventRegister),
        vici_name().prop_map(Packet::EventUnregister),
        Just(Packet::EventConfirm),
        Just(Packet::UnknownEvent),
        (vici_name(), vici_message()).prop_map(|(name, message)| Packet::Event { name, message }),
    ]
}

/// `depth` sections, one inside the other.
fn nested(depth: usize) -> Message {
    (0..depth).fold(Message::new().with("k", "v"), |inner, _| {
        Message::new().with_section("s", inner)
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn vici_messages_decode_to_what_was_encoded(m in vici_message()) {
        let mut bytes = Vec::new();
        m.encode(&mut bytes).unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn vici_packets_decode_to_what_was_encoded(p in vici_packet()) {
        let Ok(framed) = p.encode() else {
            // Only a body larger than VICI's limit is refused.
            return Ok(());
        };
        prop_assert_eq!(framed.len() - 4, u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize);
        prop_assert_eq!(Packet::decode(&framed[4..]).unwrap(), p);
    }

    #[test]
    fn vici_conn_files_read_back(ms in prop::collection::vec(vici_message(), 0..4)) {
        let bytes = match vici::write_framed(&ms) {
            Ok(bytes) => bytes,
            // A message larger than VICI allows is refused, not written.
            Err(e) => {
                prop_assert!(e.contains("more than VICI's"), "{}", e);
                return Ok(());
            }
        };
        prop_assert_eq!(&vici::read_framed(&bytes).unwrap(), &ms);
        // A file cut inside a message is an error, never a shorter list.
        let mut ends = vec![0];
        for m in &ms {
            let mut body = Vec::new();
            m.encode(&mut body).unwrap();
            ends.push(ends.last().unwrap() + 4 + body.len());
        }
        let step = (bytes.len() / 256).max(1);
        for cut in (0..bytes.len()).step_by(step).chain(ends.iter().copied().filter(|&e| e < bytes.len())) {
            prop_assert_eq!(vici::read_framed(&bytes[..cut]).is_ok(), ends.contains(&cut), "cut at {}", cut);
        }
    }

    #[test]
    fn what_the_vici_encoder_accepts_the_decoder_reads_back(depth in 0usize..48) {
        let m = nested(depth);
        let mut bytes = Vec::new();
        match m.encode(&mut bytes) {
            Ok(()) => prop_assert_eq!(Message::decode(&bytes).unwrap(), m),
            Err(e) => prop_assert!(e.contains("deeper"), "{}", e),
        }
    }

    #[test]
    fn decoded_vici_bytes_encode_back_to_themselves(
        m in vici_message(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        // A valid encoding with one bit flipped and cut short: near-misses of VICI.
        let mut bytes = Vec::new();
        m.encode(&mut bytes).unwrap();
        if !bytes.is_empty() {
            let i = flip.index(bytes.len());
            bytes[i] ^= 1 << bit;
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(again) = Message::decode(&bytes) {
            let mut out = Vec::new();
            again.encode(&mut out).unwrap();
            prop_assert_eq!(out, bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------
// DNs

/// Attribute types: the usual ones, by name in any case and by OID, and others.
fn dn_attr() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "CN", "cn", "O", "OU", "C", "ST", "L", "E", "DC", "2.5.4.3", "2.5.4.10"
        ])
        .prop_map(str::to_string),
        "[A-Za-z][A-Za-z0-9-]{0,8}",
    ]
}

/// Values with RFC 4514's special characters, spaces at either end, non-ASCII and control
/// characters.
fn dn_value() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec![',', '+', '"', '\\', '<', '>', ';', '=', '#', ' ', '.', '@', '\'']),
        1 => any::<char>(),
    ];
    prop::collection::vec(c, 0..16).prop_map(|v| v.into_iter().collect())
}

/// How one value is written: each special character escaped as `\c` or as hex, or the
/// whole value quoted.
#[derive(Debug, Clone, Copy)]
enum Escaping {
    Backslash,
    Hex,
    Quoted,
}

fn escaping() -> impl Strategy<Value = Escaping> {
    prop_oneof![
        Just(Escaping::Backslash),
        Just(Escaping::Hex),
        Just(Escaping::Quoted)
    ]
}

/// RFC 4514, section 2.4, written independently of the parser under test: `"+,;<>\`
/// everywhere, `#` and a space first, a space last; control and other non-printable
/// characters as hex (every byte of their UTF-8).
fn escape(value: &str, how: Escaping) -> String {
    let hex = |c: char, out: &mut String| {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("\\{b:02X}"));
        }
    };
    if let Escaping::Quoted = how {
        let mut out = String::from("\"");
        for c in value.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => hex(c, &mut out),
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if c.is_control() || c.is_whitespace() && c != ' ' {
            hex(c, &mut out);
        } else if special {
            match how {
                Escaping::Hex => hex(c, &mut out),
                _ => {
                    out.push('\\');
                    out.push(c);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn dn_rdns() -> impl Strategy<Value = Vec<(String, String, Escaping, &'static str)>> {
    prop::collection::vec(
        (
            dn_attr(),
            dn_value(),
            escaping(),
            prop::sample::select(vec![", ", ",", "+", " , "]),
        ),
        1..6,
    )
}

fn written(rdns: &[(String, String, Escaping, &'static str)]) -> String {
    let mut dn = String::new();
    for (i, (attr, value, how, sep)) in rdns.iter().enumerate() {
        if i > 0 {
            dn.push_str(sep);
        }
        dn.push_str(attr);
        dn.push('=');
        dn.push_str(&escape(value, *how));
    }
    dn
}

/// The host name `attrs` claim: the value of their one CN, if it is a host name.
fn claim(attrs: &[(String, String, Escaping, &'static str)]) -> Option<String> {
    let mut cns = attrs
        .iter()
        .filter(|(a, ..)| a.eq_ignore_ascii_case("CN") || a == "2.5.4.3");
    let (_, cn, ..) = cns.next()?;
    if cns.next().is_some() || cn.contains('@') || !cn.contains('.') {
        return None;
    }
    vipsec::config::parse_dns_name("identity", cn).ok()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_dn_parses_back_to_its_attributes(rdns in dn_rdns()) {
        let dn = written(&rdns);
        let want: Vec<(String, String)> =
            rdns.iter().map(|(a, v, ..)| (a.clone(), v.clone())).collect();
        prop_assert_eq!(vipsec::ike::spec::rdns(&dn), Some(want), "{}", dn);
    }

    #[test]
    fn a_dn_claims_only_its_one_cn(
        mut rdns in dn_rdns(),
        host in "[a-z]{1,8}\\.example",
        how in escaping(),
    ) {
        // An attacker's value that spells another CN, in a certificate that has a CN.
        rdns.push(("O".into(), format!("x, CN={host}"), how, ", "));
        let dn = written(&rdns);
        prop_assert_eq!(Identity::Dn(dn.clone()).claimed_name(), claim(&rdns), "{}", dn);
    }
}

// ---------------------------------------------------------------------------------------
// Rendered conns

/// Parameters of `ocf:vipsec:ipsec` with a generated conn: valid ones mostly, with values
/// that test the validation's edges (the renderers trust what it lets through).
fn ipsec_params() -> impl Strategy<Value = RawParams> {
    let vip = prop_oneof![
        (1u8..255).prop_map(|h| format!("192.0.2.{h}")),
        (1u16..0xffff).prop_map(|h| format!("2001:db8::{h:x}")),
    ];
    let text = || {
        let c = prop_oneof![
            4 => prop::char::range('a', 'z'),
            2 => prop::sample::select(vec![' ', ',', '"', '\'', '#', '=', '\\', '\t', '\n', '%', '@', '.', '-']),
            1 => any::<char>(),
        ];
        prop::collection::vec(c, 1..20).prop_map(|v| v.into_iter().collect::<String>())
    };
    let peer_id = prop_oneof![
        "@[a-z]{1,8}(\\.[a-z]{1,8}){1,2}",
        (text(), text()).prop_map(|(o, cn)| format!("O={o}, CN={cn}")),
        (1u8..255).prop_map(|h| format!("198.51.100.{h}")),
        text(),
    ];
    let cert = prop_oneof!["[a-z][a-z0-9 -]{0,16}", text()];
    (
        "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
        vip,
        any::<bool>(),
        cert,
        prop::option::of(peer_id),
        any::<bool>(),
        prop::collection::vec(1u8..255, 0..3),
    )
        .prop_map(|(tunnel, vip, psk, cert, peer_id, tunnel_mode, clients)| {
            let mut raw = RawParams::default();
            raw.set("tunnel", tunnel);
            let v4 = !vip.contains(':');
            raw.set("vip", vip);
            if psk {
                raw.set("auth", "psk");
                raw.set("psk_file", "/etc/vipsec/psk");
            } else {
                raw.set("auth", "cert");
                raw.set("cert", cert);
            }
            if let Some(id) = peer_id {
                raw.set("peer_id", id);
            }
            raw.set("mode", if tunnel_mode { "tunnel" } else { "transport" });
            let clients: Vec<String> = clients
                .iter()
                .map(|h| {
                    if v4 {
                        format!("203.0.113.{h}")
                    } else {
                        format!("2001:db8:1::{h:x}")
                    }
                })
                .collect();
            raw.set("clients", clients.join(" "));
            raw
        })
}

/// The conns the ipsec agent generates from `raw`, if it accepts it.
fn generated(raw: &RawParams) -> Option<Vec<ConnDef>> {
    let cfg = vipsec::agents::ipsec::config::IpsecConfig::parse(raw).ok()?;
    Some(cfg.generated_conns())
}

fn id_text(id: &Identity) -> String {
    id.to_string()
}

/// The conns of the strongSwan backend's file read back unchanged, with the addresses
/// charon's status is read for and the identities asked for.
fn charon_reads_back(conns: &[ConnDef]) -> Result<(), TestCaseError> {
    let messages: Vec<Message> = conns
        .iter()
        .map(|c| load_conn(c, &|file| Ok(file.as_bytes().to_vec())).unwrap())
        .collect();
    // The file the backend keeps reads back to the same messages...
    let file = vici::write_framed(&messages).unwrap();
    let read = vici::read_framed(&file).unwrap();
    prop_assert_eq!(&read, &messages);
    for (c, m) in conns.iter().zip(&read) {
        // ... each naming its conn, and only it ...
        let names: Vec<&str> = m.sections().map(|(n, _)| n).collect();
        prop_assert_eq!(names, [c.name.as_str()]);
        // ... with the addresses charon's status is read for ...
        let events = std::slice::from_ref(m);
        prop_assert_eq!(
            vipsec::ike::strongswan_status::conn_local_addrs(events, &c.name),
            [c.local]
        );
        let remote: Vec<IpAddr> = match c.remote {
            Remote::Host(a) => vec![a],
            Remote::Any => vec![],
        };
        prop_assert_eq!(
            vipsec::ike::strongswan_status::conn_remote_addrs(events, &c.name),
            remote
        );
        // ... and the identities asked for, as given.
        let conn = m.section(&c.name).unwrap();
        let id = |end: &str| {
            conn.section(end)
                .and_then(|e| e.str("id"))
                .map(str::to_string)
        };
        match &c.auth {
            ConnAuth::Psk { local, remote } => {
                prop_assert_eq!(id("local"), Some(id_text(local)));
                if let Some(r) = remote {
                    prop_assert_eq!(id("remote"), Some(id_text(r)));
                }
            }
            ConnAuth::Cert { remote, .. } => {
                let want = remote.as_ref().map_or("%any".to_string(), id_text);
                prop_assert_eq!(id("remote"), Some(want));
            }
            ConnAuth::None => {}
        }
    }
    Ok(())
}

/// The libreswan rendering: no control character but line ends and tabs, the conn
/// headers stop reads back naming exactly these conns, one value a key.
fn libreswan_rendering_is_clean(conns: &[ConnDef], v5: bool) -> Result<(), TestCaseError> {
    let version = vipsec::ike::libreswan_conf::Version {
        major: if v5 { 5 } else { 4 },
        minor: 0,
    };
    let text = vipsec::ike::libreswan_conf::render_conns(conns, version, None);
    prop_assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{}",
        text
    );
    // What stop reads back to know which conns it wrote: exactly these, in order.
    let headers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("conn "))
        .collect();
    let names: Vec<&str> = conns.iter().map(|c| c.name.as_str()).collect();
    prop_assert_eq!(headers, names);
    // Every body line is one key = one value (quoted when it holds a space or comma).
    for line in text.lines().filter(|l| l.starts_with('\t')) {
        let (_, value) = line[1..].split_once('=').unwrap();
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => prop_assert!(!inner.contains('"'), "{}", line),
            None => prop_assert!(
                !value.contains([' ', '"', ','])
                    || line.starts_with("\tike=")
                    || line.starts_with("\tesp="),
                "{}",
                line
            ),
        }
    }
    Ok(())
}

/// libreswan's own reader of ipsec.conf (it parses a file and writes what it read).
fn readwriteconf() -> Option<std::path::PathBuf> {
    [
        "/usr/libexec/ipsec/readwriteconf",
        "/usr/lib/ipsec/readwriteconf",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
}

/// `readwriteconf`'s output: per conn, every `key=value` it read (a key may repeat).
fn read_back(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("conn ") {
            out.push((name.trim().to_string(), Vec::new()));
        } else if let (Some(kv), Some((_, keys))) = (line.strip_prefix('\t'), out.last_mut()) {
            if let Some((k, v)) = kv.split_once('=') {
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                keys.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// libreswan's parser reads the rendered conns back to their names, ends, subnets,
/// protocols and ports, identities and certificate.
fn libreswan_reads_back(conns: &[ConnDef]) -> Result<(), TestCaseError> {
    let Some(tool) = readwriteconf() else {
        // The suite's hosts all have libreswan (tests/deps.sh).
        eprintln!("libreswan's readwriteconf is not installed: the rendering is checked by libreswan_rendering_is_clean only");
        return Ok(());
    };
    let version = vipsec::ike::libreswan_conf::Version {
        major: 4,
        minor: 10,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vipsec.conf");
    let text = vipsec::ike::libreswan_conf::render_conns(conns, version, None);
    std::fs::write(&file, format!("config setup\n\n{text}")).unwrap();
    let out = std::process::Command::new(tool)
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let parsed = String::from_utf8_lossy(&out.stdout);
    prop_assert!(
        out.status.success(),
        "{}\n{}\n{}",
        text,
        parsed,
        String::from_utf8_lossy(&out.stderr)
    );
    let read = read_back(&parsed);
    prop_assert_eq!(read.len(), conns.len(), "{}\n{}", text, parsed);
    for (c, (name, keys)) in conns.iter().zip(&read) {
        let has = |k: &str, v: &str| keys.iter().any(|(a, b)| a == k && b == v);
        let shown = || format!("{text}: {keys:?}");
        prop_assert_eq!(name, &c.name);
        prop_assert!(has("left", &c.local.to_string()), "{}", shown());
        let right = match (c.remote, c.remote_subnet) {
            (Remote::Host(a), _) => a.to_string(),
            (Remote::Any, Some(_)) if c.local.is_ipv4() => "0.0.0.0".into(),
            (Remote::Any, Some(_)) => "::".into(),
            (Remote::Any, None) => "%any".into(),
        };
        prop_assert!(has("right", &right), "{}", shown());
        let ends = [
            ("leftsubnet", c.local_subnet, Some(c.local)),
            (
                "rightsubnet",
                c.remote_subnet,
                match c.remote {
                    Remote::Host(a) => Some(a),
                    Remote::Any => None,
                },
            ),
        ];
        for (key, subnet, host) in ends {
            let Some(s) = subnet else { continue };
            // libreswan drops a subnet that is the end's own address (the same thing).
            let full = if s.addr.is_ipv4() { 32 } else { 128 };
            let just_the_host = Some(s.addr) == host && s.len == full;
            let absent = !keys.iter().any(|(k, _)| k == key);
            prop_assert!(
                has(key, &s.to_string()) || just_the_host && absent,
                "{}",
                shown()
            );
        }
        for (key, pp) in [
            ("leftprotoport", &c.local_port),
            ("rightprotoport", &c.remote_port),
        ] {
            if let Some(pp) = pp {
                // libreswan writes it back as PROTO/PORT, port 0 for any.
                let want = format!("{}/{}", pp.proto, pp.port.unwrap_or(0));
                let read = keys
                    .iter()
                    .any(|(k, v)| k == key && v.eq_ignore_ascii_case(&want));
                prop_assert!(read, "{}", shown());
            }
        }
        match &c.auth {
            ConnAuth::Psk { local, remote } => {
                prop_assert!(has("leftid", &id_text(local)), "{}", shown());
                if let Some(r) = remote {
                    prop_assert!(has("rightid", &id_text(r)), "{}", shown());
                }
            }
            ConnAuth::Cert { nickname, remote } => {
                prop_assert!(has("leftcert", nickname), "{}", shown());
                let want = remote.as_ref().map_or("%fromcert".to_string(), id_text);
                prop_assert!(has("rightid", &want), "{}", shown());
            }
            ConnAuth::None => {}
        }
    }
    Ok(())
}

/// Parameters of `ocf:vipsec:mesh`: this node 192.0.2.1 and up to three peers, either
/// policy, the exclusions on or off, secure ports, forwarded subnets, either
/// authentication.
fn mesh_params() -> impl Strategy<Value = RawParams> {
    (
        prop::collection::btree_set(2u8..250, 1..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::subsequence(
            vec!["5432", "udp/5405", "tcp/2224", "sctp/9", "udp/53"],
            0..3,
        ),
        any::<bool>(),
        prop::option::of("[a-z][a-z0-9 ,-]{0,16}"),
    )
        .prop_map(|(peers, require, ssh, icmp, ports, forward, cert)| {
            let mut raw = RawParams::default();
            let mut list = vec!["192.0.2.1".to_string()];
            list.extend(peers.iter().map(|h| format!("192.0.2.{h}")));
            raw.set("peers", list.join(" "));
            raw.set("policy", if require { "require" } else { "use" });
            raw.set("exclude_ssh", ssh.to_string());
            raw.set("exclude_icmp", icmp.to_string());
            raw.set("secure_ports", ports.join(" "));
            if forward {
                let first = peers.iter().next().copied().unwrap_or(2);
                raw.set(
                    "forward_subnets",
                    format!("192.0.2.1=10.88.1.0/24 192.0.2.{first}=10.88.{first}.0/24"),
                );
            }
            if let Some(nickname) = cert {
                raw.set("auth", "cert");
                raw.set("cert", nickname);
            }
            raw
        })
}

/// The conns the mesh plans on 192.0.2.1 from `raw`, if it accepts it.
fn mesh_generated(raw: &RawParams) -> Option<Vec<ConnDef>> {
    use vipsec::agents::mesh::plan::{self, MeshPlan, PlannedPeer};
    let cfg = vipsec::agents::mesh::config::MeshConfig::parse(raw).ok()?;
    let local: IpAddr = "192.0.2.1".parse().ok()?;
    let peers: Vec<IpAddr> = raw
        .get("peers")?
        .split(' ')
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != local)
        .collect();
    let mesh = MeshPlan {
        peers: peers
            .iter()
            .map(|&address| PlannedPeer {
                address,
                local,
                listed_as: address.to_string(),
                conns: plan::conns_for(&cfg, local, address),
                origin: plan::PeerOrigin::Parameter,
                cert_name: None,
                forwarded: plan::forward_pairs(&cfg, local, address),
            })
            .collect(),
        skipped: Vec::new(),
        pass_conns: plan::pass_conns_for(&cfg, local),
    };
    Some(plan::conn_defs(&cfg, &mesh))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn charon_reads_back_the_conns_vipsec_renders(raw in ipsec_params()) {
        let conns = generated(&raw);
        prop_assume!(conns.is_some(), "the agent refuses these parameters");
        charon_reads_back(&conns.unwrap())?;
    }

    #[test]
    fn libreswan_renderings_hold_no_control_character_and_name_their_conns(
        raw in ipsec_params(),
        v5 in any::<bool>(),
    ) {
        let conns = generated(&raw);
        prop_assume!(conns.is_some(), "the agent refuses these parameters");
        libreswan_rendering_is_clean(&conns.unwrap(), v5)?;
    }

    #[test]
    fn the_meshs_conns_render_cleanly_and_charon_reads_them_back(
        raw in mesh_params(),
        v5 in any::<bool>(),
    ) {
        let conns = mesh_generated(&raw);
        prop_assume!(conns.is_some(), "the agent refuses these parameters");
        let conns = conns.unwrap();
        libreswan_rendering_is_clean(&conns, v5)?;
        charon_reads_back(&conns)?;
    }
}

proptest! {
    // One process per case: fewer cases.
    #![proptest_config(config(48))]

    #[test]
    fn libreswan_parses_the_conns_vipsec_renders_back_to_them(
        raw in ipsec_params(),
    ) {
        let conns = generated(&raw);
        prop_assume!(conns.is_some(), "the agent refuses these parameters");
        libreswan_reads_back(&conns.unwrap())?;
    }

    #[test]
    fn libreswan_parses_the_meshs_conns_back_to_them(raw in mesh_params()) {
        let conns = mesh_generated(&raw);
        prop_assume!(conns.is_some(), "the agent refuses these parameters");
        libreswan_reads_back(&conns.unwrap())?;
    }
}
