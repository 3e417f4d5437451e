//! Rendering libreswan configuration for a conn vipsec generates: ipsec.conf syntax that
//! fits the libreswan version found (5.x dropped dpdaction= and dpdtimeout=, and spells
//! IKEv2-only as keyexchange=ikev2), and the PSK line of a secrets file.

use std::fmt::Write;
use std::net::IpAddr;

use super::libreswan_status::CertKey;
use super::ConnSpec;
use crate::agents::ipsec::config::Auth;
use crate::agents::mesh::config::{MeshAuth, MeshConfig, Policy};
use crate::agents::mesh::plan::{forward_pairs, pass_conns_for, MeshPlan};
use crate::config::Secret;
#[cfg(test)]
use crate::config::{ConnName, Mode};
use crate::keys::pair_psk;

/// Version of the installed libreswan, from `ipsec --version` ("Libreswan 4.10").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let word = text
            .split_whitespace()
            .map(|w| w.trim_start_matches('v'))
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
        let mut parts = word.split(['.', '-', '~']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Some(Version { major, minor })
    }
}

/// Modern defaults: AES-GCM, ECDH (P-256 or Curve25519); dead peers are noticed within
/// about 30 s; a failed negotiation drops traffic instead of letting it pass in clear.
pub const IKE_PROPOSALS: &str = "aes_gcm256-sha2_256-dh19,aes_gcm256-sha2_256-dh31";
pub const ESP_PROPOSALS: &str = "aes_gcm256";

fn quoted(v: &str) -> String {
    if v.contains(char::is_whitespace) || v.contains(',') {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

/// `cert_key`: the key type of this end's certificate (with auth=cert): libreswan 4 needs
/// leftauth= and rightauth= together, so peers must present the same key type.
pub fn render_conn(spec: &ConnSpec, version: Version, cert_key: Option<CertKey>) -> String {
    let mut c = String::new();
    let v5 = version.major >= 5;
    let _ = writeln!(
        c,
        "# Written by vipsec; regenerated at every start. Do not edit."
    );
    let _ = writeln!(c, "conn {}", spec.name);
    let _ = writeln!(c, "\tleft={}", spec.vip);
    let _ = writeln!(c, "\tright=%any");
    match spec.auth {
        Auth::Psk => {
            let _ = writeln!(c, "\tauthby=secret");
            let _ = writeln!(c, "\tleftid={}", spec.vip);
        }
        Auth::Cert(nick) => {
            let _ = writeln!(c, "\tleftcert={}", quoted(nick));
            let _ = writeln!(c, "\tleftid=%fromcert");
            let _ = writeln!(c, "\tleftsendcert=always");
            if let Some(k) = cert_key {
                let _ = writeln!(c, "\tleftauth={}\n\trightauth={}", k.auth(), k.auth());
            }
        }
        // An existing conn is loaded from confdir, never rendered.
        Auth::Existing => {}
    }
    match spec.peer_id {
        Some(id) => {
            let _ = writeln!(c, "\trightid={}", quoted(id));
        }
        None if matches!(spec.auth, Auth::Cert(_)) => {
            let _ = writeln!(c, "\trightid=%fromcert");
        }
        None => {}
    }
    if v5 {
        let _ = writeln!(c, "\tkeyexchange=ikev2");
    } else {
        let _ = writeln!(c, "\tikev2=insist");
    }
    let _ = writeln!(c, "\ttype={}", spec.mode.as_str());
    let _ = writeln!(c, "\tike={IKE_PROPOSALS}");
    let _ = writeln!(c, "\tesp={ESP_PROPOSALS}");
    let _ = writeln!(c, "\tdpddelay=10s");
    if !v5 {
        let _ = writeln!(c, "\tdpdtimeout=30s");
        let _ = writeln!(c, "\tdpdaction=clear");
    }
    let _ = writeln!(c, "\tfailureshunt=drop");
    let _ = writeln!(c, "\tnegotiationshunt=drop");
    let _ = writeln!(c, "\tauto=add");
    c
}

/// Priority of the conns that keep SSH/ICMP in clear: before everything else.
pub const PASS_PRIORITY: u32 = 100;
fn ike_lines(c: &mut String, v5: bool) {
    let _ = writeln!(
        c,
        "\t{}",
        if v5 {
            "keyexchange=ikev2"
        } else {
            "ikev2=insist"
        }
    );
    let _ = writeln!(c, "\tike={IKE_PROPOSALS}");
    let _ = writeln!(c, "\tesp={ESP_PROPOSALS}");
}

/// Every conn of a mesh plan, in one file loaded in one batch (`addconn --autoall`).
pub fn render_mesh(
    plan: &MeshPlan,
    cfg: &MeshConfig,
    version: Version,
    cert_key: Option<CertKey>,
) -> String {
    let v5 = version.major >= 5;
    let mut c = String::from(
        "# Written by vipsec for the mesh; regenerated at start and reload. Do not edit.\n",
    );
    let auto = if cfg.policy == Policy::Disable {
        "add"
    } else {
        "ondemand"
    };
    let (failure, negotiation) = match cfg.policy {
        Policy::Require | Policy::Disable => ("drop", "hold"),
        Policy::Use => ("passthrough", "passthrough"),
    };
    for peer in &plan.peers {
        let (l, r) = (peer.local, peer.address);
        let auth = |c: &mut String| match &cfg.auth {
            MeshAuth::Psk { .. } => {
                let _ = writeln!(c, "\tleftid={l}\n\trightid={r}\n\tauthby=secret");
            }
            MeshAuth::Cert { nickname } => {
                let _ = writeln!(
                    c,
                    "\tleftcert={}\n\tleftid=%fromcert\n\trightid=%fromcert\n\tleftsendcert=always",
                    quoted(nickname)
                );
                if let Some(k) = cert_key {
                    let _ = writeln!(c, "\tleftauth={}\n\trightauth={}", k.auth(), k.auth());
                }
            }
        };
        // One conn between this node and the peer: `selectors` narrow it (ports, subnets).
        let conn = |c: &mut String,
                    name: &str,
                    selectors: String,
                    mode: &str,
                    failure: &str,
                    negotiation: &str| {
            let _ = write!(c, "conn {name}\n\tleft={l}\n\tright={r}\n{selectors}");
            auth(c);
            let _ = writeln!(c, "\ttype={mode}");
            ike_lines(c, v5);
            let _ = writeln!(c, "\tdpddelay=10s");
            if !v5 {
                let _ = writeln!(c, "\tdpdtimeout=30s\n\tdpdaction=restart");
            }
            let _ = writeln!(
                c,
                "\tkeyingtries=%forever\n\tfailureshunt={failure}\n\tnegotiationshunt={negotiation}\n\tleftupdown=%disabled\n\tauto={auto}\n"
            );
        };
        conn(
            &mut c,
            peer.main_conn(),
            String::new(),
            "transport",
            failure,
            negotiation,
        );
        for p in &cfg.secure_ports {
            let base = format!("{}-{}{}", peer.main_conn(), p.proto, p.port);
            // Always fail-closed, whatever the mesh's policy.
            let out = format!("\tleftprotoport={}\n\trightprotoport={p}\n", p.proto);
            let inbound = format!("\tleftprotoport={p}\n\trightprotoport={}\n", p.proto);
            conn(
                &mut c,
                &format!("{base}-out"),
                out,
                "transport",
                "drop",
                "hold",
            );
            conn(
                &mut c,
                &format!("{base}-in"),
                inbound,
                "transport",
                "drop",
                "hold",
            );
        }
        // Forwarded (container) traffic: tunnel mode between the subnets, so the kernel
        // gets out and fwd policies for it.
        for (i, (mine, theirs)) in forward_pairs(cfg, l, r).into_iter().enumerate() {
            let name = format!("{}-fwd{}", peer.main_conn(), i + 1);
            conn(
                &mut c,
                &name,
                format!("\tleftsubnet={mine}\n\trightsubnet={theirs}\n"),
                "tunnel",
                failure,
                negotiation,
            );
        }
    }
    for local in plan.locals() {
        let any = if local.is_ipv4() {
            ("0.0.0.0", "0.0.0.0/0", "icmp")
        } else {
            ("::", "::/0", "ipv6-icmp")
        };
        for name in pass_conns_for(cfg, local) {
            let (lp, rp) = if name.ends_with("-ssh-in") {
                ("tcp/22".to_string(), "tcp".to_string())
            } else if name.ends_with("-ssh-out") {
                ("tcp".to_string(), "tcp/22".to_string())
            } else {
                (any.2.to_string(), any.2.to_string())
            };
            let _ = writeln!(
                c,
                "conn {name}\n\tleft={local}\n\tright={}\n\trightsubnet={}\n\tleftprotoport={lp}\n\trightprotoport={rp}\n\ttype=passthrough\n\tauthby=never\n\tpriority={PASS_PRIORITY}\n\tleftupdown=%disabled\n\tauto=ondemand\n",
                any.0, any.1
            );
        }
    }
    c
}

/// One line per peer: `LOCAL PEER : PSK 0x<HKDF pair key>`.
pub fn render_mesh_secrets(plan: &MeshPlan, master: &Secret) -> String {
    let mut s = String::from("# Written by vipsec for the mesh; removed at stop.\n");
    for peer in &plan.peers {
        let key = pair_psk(master, &peer.local.to_string(), &peer.address.to_string());
        let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(s, "{} {} : PSK 0x{hex}", peer.local, peer.address);
    }
    s
}

/// `VIP PEER : PSK 0x…` — hex, so no byte of the key needs quoting.
pub fn render_psk_secret(vip: IpAddr, peer_id: Option<&str>, psk: &[u8]) -> String {
    let mut hex = String::with_capacity(psk.len() * 2);
    for b in psk {
        let _ = write!(hex, "{b:02x}");
    }
    let peer = peer_id.map(quoted).unwrap_or_else(|| "%any".into());
    format!("# Written by vipsec; removed at stop.\n{vip} {peer} : PSK 0x{hex}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(name: &'a ConnName, auth: &'a Auth) -> ConnSpec<'a> {
        ConnSpec {
            name,
            vip: "192.0.2.10".parse().unwrap(),
            auth,
            peer_id: Some("@client.example.test"),
            mode: Mode::Transport,
        }
    }

    #[test]
    fn versions() {
        assert_eq!(
            Version::parse("Libreswan 4.10"),
            Some(Version {
                major: 4,
                minor: 10
            })
        );
        assert_eq!(
            Version::parse("Libreswan 5.1 (netkey) on 6.1"),
            Some(Version { major: 5, minor: 1 })
        );
        assert_eq!(
            Version::parse("Libreswan v5.2-1.el9"),
            Some(Version { major: 5, minor: 2 })
        );
        assert_eq!(Version::parse("nothing"), None);
    }

    #[test]
    fn conn_for_libreswan_4_and_5() {
        let name = ConnName::parse("tunnel", "rw").unwrap();
        let auth = Auth::Psk;
        let v4 = render_conn(
            &spec(&name, &auth),
            Version {
                major: 4,
                minor: 10,
            },
            None,
        );
        for line in [
            "conn rw",
            "\tleft=192.0.2.10",
            "\tright=%any",
            "\tauthby=secret",
            "\trightid=@client.example.test",
            "\tikev2=insist",
            "\ttype=transport",
            "\tdpdaction=clear",
            "\tfailureshunt=drop",
            "\tike=aes_gcm256-sha2_256-dh19,aes_gcm256-sha2_256-dh31",
        ] {
            assert!(v4.lines().any(|l| l == line), "missing {line:?} in\n{v4}");
        }
        let v5 = render_conn(&spec(&name, &auth), Version { major: 5, minor: 2 }, None);
        assert!(v5.contains("\tkeyexchange=ikev2\n") && !v5.contains("ikev2=insist"));
        assert!(
            !v5.contains("dpdaction") && !v5.contains("dpdtimeout"),
            "{v5}"
        );
        assert!(v5.contains("\tdpddelay=10s\n") && v5.contains("\tfailureshunt=drop\n"));
    }

    #[test]
    fn cert_conn_and_quoting() {
        let name = ConnName::parse("tunnel", "rw").unwrap();
        let auth = Auth::Cert("node a cert".into());
        let mut s = spec(&name, &auth);
        s.peer_id = Some("C=XX, CN=client");
        let c = render_conn(
            &s,
            Version {
                major: 4,
                minor: 10,
            },
            Some(CertKey::Ecdsa),
        );
        assert!(
            c.contains("\tleftcert=\"node a cert\"\n") && c.contains("\tleftid=%fromcert\n"),
            "{c}"
        );
        assert!(c.contains("\trightid=\"C=XX, CN=client\"\n"), "{c}");
        assert!(!c.contains("authby=secret"));
        // An ECDSA key must be named (libreswan 4 would sign with RSA), on both ends.
        assert!(c.contains("\tleftauth=ecdsa\n\trightauth=ecdsa\n"), "{c}");
    }

    fn mesh_plan(policy: &str) -> (MeshPlan, MeshConfig) {
        let mut raw = crate::config::RawParams::default();
        raw.set("peers", "192.0.2.1 192.0.2.2 2001:db8::2");
        raw.set("secret_file", "/k");
        raw.set("policy", policy);
        raw.set("secure_ports", "5432");
        let cfg = MeshConfig::parse(&raw).unwrap();
        let peer = |a: &str, l: &str| crate::agents::mesh::plan::PlannedPeer {
            address: a.parse().unwrap(),
            local: l.parse().unwrap(),
            listed_as: a.into(),
            conns: crate::agents::mesh::plan::conns_for(
                &cfg,
                l.parse().unwrap(),
                a.parse().unwrap(),
            ),
        };
        let mut plan = MeshPlan {
            peers: vec![
                peer("192.0.2.2", "192.0.2.1"),
                peer("2001:db8::2", "2001:db8::1"),
            ],
            ..Default::default()
        };
        plan.pass_conns = plan
            .locals()
            .into_iter()
            .flat_map(|l| pass_conns_for(&cfg, l))
            .collect();
        (plan, cfg)
    }

    #[test]
    fn mesh_rendering_per_policy_and_version() {
        let (plan, cfg) = mesh_plan("require");
        let c = render_mesh(
            &plan,
            &cfg,
            Version {
                major: 4,
                minor: 10,
            },
            None,
        );
        let conn = |name: &str| -> String {
            let start = c
                .find(&format!("conn {name}\n"))
                .unwrap_or_else(|| panic!("no conn {name} in\n{c}"));
            c[start..].split("\n\n").next().unwrap().to_string()
        };
        let main = conn("vm-192.0.2.2");
        for line in [
            "\tleft=192.0.2.1",
            "\tright=192.0.2.2",
            "\tleftid=192.0.2.1",
            "\trightid=192.0.2.2",
            "\tauthby=secret",
            "\ttype=transport",
            "\tikev2=insist",
            "\tdpdaction=restart",
            "\tfailureshunt=drop",
            "\tnegotiationshunt=hold",
            "\tleftupdown=%disabled",
            "\tauto=ondemand",
        ] {
            assert!(
                main.lines().any(|l| l == line),
                "{line:?} missing in\n{main}"
            );
        }
        let sp = conn("vm-192.0.2.2-tcp5432-out");
        assert!(
            sp.contains("\tleftprotoport=tcp\n\trightprotoport=tcp/5432\n")
                && sp.contains("\tfailureshunt=drop\n"),
            "{sp}"
        );
        let ssh = conn("vm-pass-2001-db8--1-ssh-in");
        assert!(
            ssh.contains("\tright=::\n\trightsubnet=::/0\n\tleftprotoport=tcp/22\n")
                && ssh.contains("\ttype=passthrough\n\tauthby=never\n\tpriority=100\n"),
            "{ssh}"
        );
        assert!(conn("vm-pass-2001-db8--1-icmp").contains("\tleftprotoport=ipv6-icmp\n"));
        assert!(conn("vm-pass-192.0.2.1-icmp").contains("\tleftprotoport=icmp\n"));

        let (plan, cfg) = mesh_plan("use");
        let c5 = render_mesh(&plan, &cfg, Version { major: 5, minor: 2 }, None);
        assert!(c5.contains("\tfailureshunt=passthrough\n\tnegotiationshunt=passthrough\n"));
        assert!(
            c5.contains("\tkeyexchange=ikev2\n")
                && !c5.contains("dpdaction")
                && !c5.contains("ikev2=insist")
        );
        // Secure ports stay fail-closed under use.
        assert!(
            c5.contains("conn vm-192.0.2.2-tcp5432-in\n")
                && c5.matches("\tfailureshunt=drop\n").count() == 4
        );

        let (plan, cfg) = mesh_plan("disable");
        let cd = render_mesh(
            &plan,
            &cfg,
            Version {
                major: 4,
                minor: 10,
            },
            None,
        );
        assert!(
            !cd.contains("auto=ondemand") && !cd.contains("passthrough"),
            "{cd}"
        );
        let secrets = render_mesh_secrets(
            &plan,
            &Secret::from_bytes(b"vipsec test master secret 0123456789abcdef".to_vec()),
        );
        assert!(secrets.contains("192.0.2.1 192.0.2.2 : PSK 0x064a0881b4f73b875cf521f161b6649ceadaee3ab933928ed460b687e71a69d9\n"), "{secrets}");
        assert!(secrets.contains("2001:db8::1 2001:db8::2 : PSK 0x"));
    }

    #[test]
    fn psk_line_is_hex() {
        let line = render_psk_secret("2001:db8::10".parse().unwrap(), None, b"\"k\ne\"y");
        assert!(
            line.ends_with("2001:db8::10 %any : PSK 0x226b0a652279\n"),
            "{line}"
        );
    }
}
