//! One entry point per family of parsers of input vipsec does not write itself — the IKE
//! daemon's output, Corosync's configuration and cmapctl output, identities and DNS
//! names, parameter values, state files read back from disk, the kernel's /proc/net
//! tables, charon's VICI packets and what vipsec reads from them, DNS answers. Each takes
//! arbitrary bytes and must return: no panic, no hang; where a parser has an encoder
//! beside it, what it accepts must encode back to the same bytes (asserted here, so a
//! fuzzer finds the input that breaks it). `fuzz/` runs them under libFuzzer
//! (`tests/fuzz.sh` runs every one and writes docs/fuzzing.md);
//! `tests/parsers_never_panic.rs` runs them in the stable suite.

use crate::config::RawParams;
use crate::ike::SaKind;

/// Splits the input at the first NUL into a short "name" part and the text (so one
/// input can choose both the conn asked about and the output read).
fn split(data: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(data);
    match text.split_once('\0') {
        Some((a, b)) => (a.chars().take(64).collect(), b.to_string()),
        None => ("rw".to_string(), text.into_owned()),
    }
}

/// pluto's output: `--status` (4.x), `--connectionstatus` (5.x), `--showstates`,
/// `--trafficstatus`, `--listcerts`, `--rereadsecrets`.
pub fn daemon_output(data: &[u8]) {
    use crate::ike::libreswan_status as s;
    let (conn, text) = split(data);
    let _ = s::parse_status(&text, &conn);
    let _ = s::parse_connectionstatus(&text, &conn);
    let _ = s::established_peers(&text, &conn, SaKind::Ike);
    let _ = s::established_peers(&text, &conn, SaKind::Child);
    let half = text.len() / 2;
    let (a, b) = match text.is_char_boundary(half) {
        true => text.split_at(half),
        false => (text.as_str(), ""),
    };
    let _ = s::peer_identities(a, b);
    let _ = s::cert_info(&text, &conn);
    let _ = s::secrets_files_loaded(&text);
    let _ = crate::ike::libreswan_conf::Version::parse(&text);
}

/// Corosync: corosync.conf and `corosync-cmapctl nodelist.node runtime.members` output.
pub fn corosync(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::agents::mesh::corosync::parse_conf(&text);
    let _ = crate::agents::mesh::corosync::parse_cmap(&text);
}

/// Identities as daemons print them (DNs per RFC 4514), DNS names, peer lists.
pub fn identities(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(id) = crate::ike::Identity::from_printed(&text) {
        let _ = id.claimed_name();
    }
    let _ = crate::ike::Identity::Dn(text.to_string()).claimed_name();
    let _ = crate::ike::strongswan_status::read_identity(&text);
    let _ = crate::config::parse_dns_name("peer", &text);
    let _ = crate::agents::mesh::config::parse_peer_list("peers", &text);
}

/// Parameter values: `name=value` lines become the raw parameters of both agents.
pub fn parameters(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut raw = RawParams::default();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            raw.set(k, v);
        }
    }
    let _ = crate::agents::ipsec::config::IpsecConfig::parse(&raw);
    let _ = crate::agents::mesh::config::MeshConfig::parse(&raw);
    let _ = crate::config::parse_duration_ms("timeout", &text);
    let _ = crate::config::parse_check_level(&text);
    let _ = crate::config::parse_host_address("vip", &text);
    let _ = crate::dns::parse_resolvers("resolver", &text);
}

/// State files as read back from disk (a crash, a disk, an older vipsec).
pub fn state_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(state) = serde_json::from_str::<crate::agents::mesh::MeshState>(&text) {
        // What the monitor and stop do with a state they read.
        let _ = state.plan.all_conns();
        let _ = state.plan.locals();
        for p in &state.plan.peers {
            let _ = p.main_conn();
        }
    }
    let _ = serde_json::from_str::<crate::agents::ipsec::state::IpsecState>(&text);
    let _ = serde_json::from_str::<Vec<crate::agents::peer_names::Validated>>(&text);
}

/// The kernel's socket tables: a sock_diag dump of unix sockets, /proc/net/udp{,6}.
pub fn proc_net(data: &[u8]) {
    let _ = crate::kernel::sockets::parse_unix_diag(data, &mut Vec::new());
    let text = String::from_utf8_lossy(data);
    let _ = crate::kernel::sockets::parse_udp_bound(&text).count();
}

/// charon's VICI packets (what its socket sends back), and bare messages. A packet or
/// message that decodes encodes back to the same bytes: VICI has one spelling per tree.
pub fn vici(data: &[u8]) {
    use crate::ike::vici::{Message, Packet, MAX_MESSAGE};
    if let Ok(p) = Packet::decode(data) {
        if data.len() <= MAX_MESSAGE {
            let again = p.encode().expect("a decoded packet encodes");
            assert_eq!(&again[4..], data, "{p:?} encodes differently");
        }
    }
    if let Ok(m) = Message::decode(data) {
        let mut again = Vec::new();
        m.encode(&mut again).expect("a decoded message encodes");
        assert_eq!(again, data, "{m:?} encodes differently");
    }
}

/// The strongSwan backend's conn files (`<instance>.vici`: framed messages, the key ids
/// first) as read back from disk: what reads back writes back to the same bytes.
pub fn vici_state(data: &[u8]) {
    use crate::ike::vici;
    let Ok(messages) = vici::read_framed(data) else {
        return;
    };
    let again = vici::write_framed(&messages).expect("framed messages read back encode");
    assert_eq!(again, data, "{messages:?} encode differently");
    // What the backend takes from them: the key ids, the conns' names.
    for m in &messages {
        let _ = m.list("ids");
        let _ = m.sections().count();
    }
}

/// `(name, rest)`: the bytes before the first NUL (at most 64) name the conn asked
/// about, the rest is the input; without a NUL, conn `rw` and all of it.
fn split_bytes(data: &[u8]) -> (String, &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) if i <= 64 => (String::from_utf8_lossy(&data[..i]).into(), &data[i + 1..]),
        _ => ("rw".to_string(), data),
    }
}

/// charon's status as vipsec interprets it: `list-sa` and `list-conn` events (here one
/// VICI message, each top-level section one event), asked about one conn.
pub fn charon_status(data: &[u8]) {
    use crate::ike::strongswan_status as s;
    use crate::ike::vici::Message;
    let (conn, rest) = split_bytes(data);
    let Ok(m) = Message::decode(rest) else {
        return;
    };
    let events: Vec<Message> = m
        .sections()
        .map(|(name, sa)| Message::new().with_section(name, sa.clone()))
        .collect();
    let _ = s::conn_loaded(&events, &conn);
    let _ = s::conn_local_addrs(&events, &conn);
    let _ = s::conn_remote_addrs(&events, &conn);
    let sas = s::established(&events, &conn);
    let ids = s::peer_identities(&events);
    // Nothing is made up: an SA or identity per established section at most, Child SAs
    // only under an IKE SA.
    assert!(ids.len() <= events.len(), "{ids:?}");
    assert!(
        sas.first()
            .is_none_or(|sa| sa.kind == crate::ike::SaKind::Ike),
        "{sas:?}"
    );
}

/// Owner names for `dns_answers`: the question, case variants, another name of the
/// zone, the zone itself, a name elsewhere.
const DNS_NAMES: [&str; 6] = [
    "a.example.",
    "b.example.",
    "B.Example.",
    "c.example.",
    "example.",
    "a.example.org.",
];

/// The records of a DNS answer as a resolver could send them (any owners, types, CNAME
/// links and DNSSEC proofs, in any order), and the question `dns::bound_addresses` binds
/// them to. Three bytes a record: owner, type and proof, data; at most 128 records (as
/// many as a large UDP answer holds: more only make the input longer, not different).
pub fn dns_answers(data: &[u8]) {
    use hickory_resolver::proto::dnssec::Proof;
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, TXT};
    use hickory_resolver::proto::rr::{Name, RData, Record};
    let names: Vec<Name> = DNS_NAMES
        .iter()
        .filter_map(|n| Name::from_ascii(n).ok())
        .collect();
    let name = |b: u8| names[usize::from(b) % names.len()].clone();
    let Some((&q, rest)) = data.split_first() else {
        return;
    };
    let records: Vec<Record> = rest
        .chunks_exact(3)
        .take(128)
        .map(|r| {
            let rdata = match r[1] & 3 {
                0 => RData::A(A::new(192, 0, 2, r[2])),
                1 => RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(r[2]))),
                2 => RData::CNAME(CNAME(name(r[2]))),
                _ => RData::TXT(TXT::new(vec![r[2].to_string()])),
            };
            let mut record = Record::from_rdata(name(r[0]), 300, rdata);
            record.proof = match (r[1] >> 2) & 3 {
                0 => Proof::Secure,
                1 => Proof::Insecure,
                2 => Proof::Bogus,
                _ => Proof::Indeterminate,
            };
            record
        })
        .collect();
    if let Ok((ips, _secure)) = crate::dns::bound_addresses(&name(q), &records) {
        // Only addresses the answer holds, each once.
        for (i, ip) in ips.iter().enumerate() {
            assert!(!ips[..i].contains(ip), "{ip} twice");
            assert!(
                records.iter().any(|r| match &r.data {
                    RData::A(a) => std::net::IpAddr::V4(a.0) == *ip,
                    RData::AAAA(a) => std::net::IpAddr::V6(a.0) == *ip,
                    _ => false,
                }),
                "{ip} is in no record"
            );
        }
    }
}

/// Every entry point by name (for the fuzz targets and the stable test).
pub type Target = fn(&[u8]);

pub const TARGETS: &[(&str, Target)] = &[
    ("daemon_output", daemon_output),
    ("vici", vici),
    ("corosync", corosync),
    ("identities", identities),
    ("parameters", parameters),
    ("state_files", state_files),
    ("proc_net", proc_net),
    ("vici_state", vici_state),
    ("charon_status", charon_status),
    ("dns_answers", dns_answers),
];
