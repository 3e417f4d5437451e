//! Rendering libreswan configuration for a conn vipsec generates: ipsec.conf syntax that
//! fits the libreswan version found (5.x dropped dpdaction= and dpdtimeout=, and spells
//! IKEv2-only as keyexchange=ikev2), and the PSK line of a secrets file.

use std::fmt::Write;

use super::libreswan_status::CertKey;
use super::spec::{
    ConnAuth, ConnDef, ConnMode, DeadPeer, Identity, Install, ProtoPort, PskEntry, Remote, Shunt,
};
use crate::config::Secret;

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

/// Renders conns in ipsec.conf syntax for `version`, all in one file (loaded in one
/// batch). `cert_key`: the key type of this end's certificate (with certificate
/// authentication): libreswan 4 needs leftauth= and rightauth= together, so peers must
/// present the same key type.
pub fn render_conns(conns: &[ConnDef], version: Version, cert_key: Option<CertKey>) -> String {
    let mut c =
        String::from("# Written by vipsec; regenerated at start and reload. Do not edit.\n");
    for conn in conns {
        render_conn(&mut c, conn, version, cert_key);
    }
    c
}

fn identity(id: &Identity) -> String {
    match id {
        Identity::Address(a) => a.to_string(),
        Identity::Fqdn(n) => format!("@{n}"),
        Identity::Dn(dn) => quoted(dn),
    }
}

fn protoport(p: &ProtoPort) -> String {
    match p.port {
        Some(port) => format!("{}/{port}", p.proto),
        None => p.proto.clone(),
    }
}

fn render_conn(c: &mut String, conn: &ConnDef, version: Version, cert_key: Option<CertKey>) {
    let v5 = version.major >= 5;
    let _ = writeln!(c, "conn {}", conn.name);
    let mut line = |text: String| {
        c.push('\t');
        c.push_str(&text);
        c.push('\n');
    };
    line(format!("left={}", conn.local));
    line(match conn.remote {
        Remote::Host(a) => format!("right={a}"),
        // A rule for every address of the family (with a subnet), else a template that
        // any peer instantiates.
        Remote::Any if conn.remote_subnet.is_some() => format!(
            "right={}",
            if conn.local.is_ipv4() {
                "0.0.0.0"
            } else {
                "::"
            }
        ),
        Remote::Any => "right=%any".to_string(),
    });
    if let Some(s) = conn.local_subnet {
        line(format!("leftsubnet={s}"));
    }
    if let Some(s) = conn.remote_subnet {
        line(format!("rightsubnet={s}"));
    }
    if let Some(p) = &conn.local_port {
        line(format!("leftprotoport={}", protoport(p)));
    }
    if let Some(p) = &conn.remote_port {
        line(format!("rightprotoport={}", protoport(p)));
    }
    match &conn.auth {
        ConnAuth::Psk { local, remote } => {
            line("authby=secret".into());
            line(format!("leftid={}", identity(local)));
            if let Some(r) = remote {
                line(format!("rightid={}", identity(r)));
            }
        }
        ConnAuth::Cert { nickname, remote } => {
            line(format!("leftcert={}", quoted(nickname)));
            line("leftid=%fromcert".into());
            line(format!(
                "rightid={}",
                remote.as_ref().map_or("%fromcert".to_string(), identity)
            ));
            line("leftsendcert=always".into());
            if let Some(k) = cert_key {
                line(format!("leftauth={}", k.auth()));
                line(format!("rightauth={}", k.auth()));
            }
        }
        ConnAuth::None => line("authby=never".into()),
    }
    line(format!(
        "type={}",
        match conn.mode {
            ConnMode::Transport => "transport",
            ConnMode::Tunnel => "tunnel",
            ConnMode::Bypass => "passthrough",
        }
    ));
    if conn.mode != ConnMode::Bypass {
        line(
            if v5 {
                "keyexchange=ikev2"
            } else {
                "ikev2=insist"
            }
            .into(),
        );
        line(format!("ike={IKE_PROPOSALS}"));
        line(format!("esp={ESP_PROPOSALS}"));
        line("dpddelay=10s".into());
        // Said either way: 4.10 does not send it unless told, whatever its manual says.
        line(format!(
            "initial-contact={}",
            if conn.initial_contact { "yes" } else { "no" }
        ));
        // 5.x dropped both: IKEv2 liveness gives up after retransmit-timeout and the
        // conn's failure handling applies.
        if !v5 {
            line("dpdtimeout=30s".into());
            line(format!(
                "dpdaction={}",
                match conn.dead_peer {
                    DeadPeer::Forget => "clear",
                    DeadPeer::Restart => "restart",
                }
            ));
        }
        if conn.retry_forever {
            line("keyingtries=%forever".into());
        }
        let shunt = |s: Shunt| match s {
            Shunt::Pass => "passthrough",
            Shunt::Hold => "hold",
            Shunt::Drop => "drop",
        };
        line(format!("failureshunt={}", shunt(conn.on_failure)));
        line(format!(
            "negotiationshunt={}",
            shunt(conn.while_negotiating)
        ));
    }
    if let Some(p) = conn.priority {
        line(format!("priority={p}"));
    }
    if !conn.updown {
        line("leftupdown=%disabled".into());
    }
    line(format!(
        "auto={}",
        match conn.install {
            Install::Listen => "add",
            Install::OnDemand => "ondemand",
        }
    ));
    c.push('\n');
}

/// One line per key: `LOCAL REMOTE : PSK 0x<key>` (REMOTE `%any` for any peer) — hex,
/// so no byte of a key needs quoting. Returned as a `Secret` (wiped when dropped), built
/// in one buffer sized up front so that no copy of a key is left in freed memory.
pub fn render_secrets(keys: &[PskEntry]) -> Secret {
    const HEADER: &str = "# Written by vipsec; removed at stop.\n";
    let lines: Vec<(String, String)> = keys
        .iter()
        .map(|k| {
            (
                identity(&k.local),
                k.remote.as_ref().map_or("%any".to_string(), identity),
            )
        })
        .collect();
    let size = HEADER.len()
        + keys
            .iter()
            .zip(&lines)
            .map(|(k, (l, r))| l.len() + r.len() + 12 + 2 * k.key.expose().len())
            .sum::<usize>();
    let mut s: Vec<u8> = Vec::with_capacity(size);
    s.extend_from_slice(HEADER.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (k, (local, remote)) in keys.iter().zip(&lines) {
        s.extend_from_slice(format!("{local} {remote} : PSK 0x").as_bytes());
        for b in k.key.expose() {
            s.push(HEX[usize::from(b >> 4)]);
            s.push(HEX[usize::from(b & 0xf)]);
        }
        s.push(b'\n');
    }
    debug_assert!(s.len() <= size, "the buffer grew: a key was copied");
    Secret::from_bytes(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Version = Version {
        major: 4,
        minor: 10,
    };
    const V5: Version = Version { major: 5, minor: 2 };

    /// The VIP's road-warrior conn as the ipsec agent plans it (psk, a named peer).
    fn road_warrior() -> ConnDef {
        ConnDef {
            name: "rw".into(),
            local: "192.0.2.10".parse().unwrap(),
            remote: Remote::Any,
            local_subnet: None,
            remote_subnet: None,
            local_port: None,
            remote_port: None,
            mode: ConnMode::Transport,
            auth: ConnAuth::Psk {
                local: Identity::Address("192.0.2.10".parse().unwrap()),
                remote: Some(Identity::Fqdn("client.example.test".into())),
            },
            on_failure: Shunt::Drop,
            while_negotiating: Shunt::Drop,
            install: Install::Listen,
            dead_peer: DeadPeer::Forget,
            retry_forever: false,
            updown: true,
            initial_contact: false,
            priority: None,
        }
    }

    fn has_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line:?} in\n{text}"
            );
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
        let v4 = render_conns(&[road_warrior()], V4, None);
        has_lines(
            &v4,
            &[
                "conn rw",
                "\tleft=192.0.2.10",
                "\tright=%any",
                "\tauthby=secret",
                "\tleftid=192.0.2.10",
                "\trightid=@client.example.test",
                "\tikev2=insist",
                "\ttype=transport",
                "\tdpdaction=clear",
                "\tfailureshunt=drop",
                "\tnegotiationshunt=drop",
                "\tike=aes_gcm256-sha2_256-dh19,aes_gcm256-sha2_256-dh31",
                "\tauto=add",
            ],
        );
        assert!(
            !v4.contains("updown") && !v4.contains("keyingtries"),
            "{v4}"
        );
        let v5 = render_conns(&[road_warrior()], V5, None);
        assert!(v5.contains("\tkeyexchange=ikev2\n") && !v5.contains("ikev2=insist"));
        assert!(
            !v5.contains("dpdaction") && !v5.contains("dpdtimeout"),
            "{v5}"
        );
        assert!(v5.contains("\tdpddelay=10s\n") && v5.contains("\tfailureshunt=drop\n"));
    }

    #[test]
    fn cert_conn_and_quoting() {
        let mut conn = road_warrior();
        conn.auth = ConnAuth::Cert {
            nickname: "node a cert".into(),
            remote: Some(Identity::Dn("C=XX, CN=client".into())),
        };
        let c = render_conns(&[conn.clone()], V4, Some(CertKey::Ecdsa));
        has_lines(
            &c,
            &[
                "\tleftcert=\"node a cert\"",
                "\tleftid=%fromcert",
                "\trightid=\"C=XX, CN=client\"",
                // An ECDSA key must be named (libreswan 4 would sign with RSA), on both ends.
                "\tleftauth=ecdsa",
                "\trightauth=ecdsa",
            ],
        );
        assert!(!c.contains("authby=secret"));
        // No identity asked of the peer: its certificate's.
        conn.auth = ConnAuth::Cert {
            nickname: "n".into(),
            remote: None,
        };
        has_lines(&render_conns(&[conn], V5, None), &["\trightid=%fromcert"]);
    }

    #[test]
    fn bypass_rule_for_every_address_of_the_family() {
        let pass = ConnDef {
            name: "vm-pass-2001-db8--1-ssh-in".into(),
            local: "2001:db8::1".parse().unwrap(),
            remote: Remote::Any,
            remote_subnet: Some(crate::config::Subnet {
                addr: "::".parse().unwrap(),
                len: 0,
            }),
            local_port: Some(ProtoPort::new("tcp", Some(22))),
            remote_port: Some(ProtoPort::new("tcp", None)),
            mode: ConnMode::Bypass,
            auth: ConnAuth::None,
            install: Install::OnDemand,
            updown: false,
            initial_contact: false,
            priority: Some(100),
            ..road_warrior()
        };
        let c = render_conns(&[pass], V4, None);
        assert!(
            c.contains("\tright=::\n\trightsubnet=::/0\n\tleftprotoport=tcp/22\n\trightprotoport=tcp\n\tauthby=never\n\ttype=passthrough\n\tpriority=100\n\tleftupdown=%disabled\n\tauto=ondemand\n"),
            "{c}"
        );
        assert!(!c.contains("shunt") && !c.contains("ike="), "{c}");
    }

    #[test]
    fn psk_lines_are_hex() {
        let keys = [
            PskEntry {
                local: Identity::Address("2001:db8::10".parse().unwrap()),
                remote: None,
                key: Secret::from_bytes(b"\"k\ne\"y".to_vec()),
            },
            PskEntry {
                local: Identity::Address("192.0.2.1".parse().unwrap()),
                remote: Some(Identity::Fqdn("c.example".into())),
                key: Secret::from_bytes(vec![0, 255]),
            },
        ];
        let s = String::from_utf8(render_secrets(&keys).expose().to_vec()).unwrap();
        assert!(
            s.contains("\n2001:db8::10 %any : PSK 0x226b0a652279\n"),
            "{s}"
        );
        assert!(s.ends_with("\n192.0.2.1 @c.example : PSK 0x00ff\n"), "{s}");
    }
}
