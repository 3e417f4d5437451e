//! Conns in strongSwan's words: a `ConnDef` becomes the message VICI's `load-conn` takes
//! (swanctl.conf's `connections` section, as a tree), with the same algorithms, timers
//! and fail-closed behaviour the libreswan rendering gives, so that a libreswan node and a
//! strongSwan node negotiate with each other.

use std::net::IpAddr;

use super::spec::{
    ConnAuth, ConnDef, ConnMode, DeadPeer, Identity, Install, ProtoPort, Remote, Shunt,
};
use super::vici::Message;

/// libreswan's `aes_gcm256-sha2_256-dh19,aes_gcm256-sha2_256-dh31`.
pub const IKE_PROPOSALS: [&str; 2] = [
    "aes256gcm16-prfsha256-ecp256",
    "aes256gcm16-prfsha256-curve25519",
];
/// libreswan's `esp=aes_gcm256`; with a DH group first for rekeys (libreswan rekeys a
/// Child SA with PFS by default), then without (the first Child SA, inside IKE_AUTH,
/// never has one).
pub const ESP_PROPOSALS: [&str; 2] = ["aes256gcm16-ecp256-curve25519", "aes256gcm16"];

fn identity(id: &Identity) -> String {
    match id {
        Identity::Address(a) => a.to_string(),
        // strongSwan's notation for "an FQDN, not resolved": @name.
        Identity::Fqdn(n) => format!("@{n}"),
        Identity::Dn(dn) => dn.clone(),
    }
}

/// A traffic selector: a subnet (or the host), narrowed to a protocol and port.
fn selector(
    host: IpAddr,
    subnet: Option<crate::config::Subnet>,
    port: &Option<ProtoPort>,
) -> String {
    let net = subnet.map_or_else(
        || crate::config::Subnet::host(host).to_string(),
        |s| s.to_string(),
    );
    match port {
        None => net,
        Some(p) => match p.port {
            Some(n) => format!("{net}[{}/{n}]", protocol_number(&p.proto)),
            None => format!("{net}[{}]", protocol_number(&p.proto)),
        },
    }
}

/// By number: charon looks names up in /etc/protocols, which a minimal system may lack
/// (its load-conn then fails with "invalid value for: local_ts").
fn protocol_number(proto: &str) -> String {
    match proto {
        "icmp" => "1".into(),
        "tcp" => "6".into(),
        "udp" => "17".into(),
        "ipv6-icmp" => "58".into(),
        "sctp" => "132".into(),
        other => other.into(),
    }
}

/// The priority of the conn's kernel policies (lower wins). charon's automatic ones
/// rank IPsec below pass policies, so the bypass-lan plugin's pass policies for the
/// node's own subnets (Debian loads it) would let a mesh pair's or a LAN client's traffic
/// go in clear beside its SA. vipsec's conns rank above them, in the order of their
/// selectors' precision: port-narrowed, then host to host, then subnets. A conn that
/// sets its own (the bypass conns for SSH and ICMP) keeps it.
pub fn policy_priority(conn: &ConnDef) -> u32 {
    if let Some(p) = conn.priority {
        return p;
    }
    let narrowed = conn.local_port.is_some() || conn.remote_port.is_some();
    let subnets = conn.local_subnet.is_some() || conn.remote_subnet.is_some();
    // Behind the reload's hold (guard::HOLD_PRIORITY, 1000), which must win while a
    // pair's conns are swapped.
    match (narrowed, subnets) {
        (true, _) => 1500,
        (false, false) => 2000,
        (false, true) => 3000,
    }
}

/// How charon brings the conn's Child SA up. A trap policy holds traffic until the SA
/// exists, and charon has no failure shunt that would let it pass in clear when the
/// negotiation fails (libreswan's failureshunt=passthrough). So a conn whose traffic must
/// pass while it has no SA (a `use` mesh: fail-open) has no trap: it is negotiated at
/// once and again whenever it goes, and its policies exist only with its SA.
pub fn start_action(conn: &ConnDef) -> &'static str {
    match conn.install {
        Install::Listen => "none",
        Install::OnDemand if conn.mode != ConnMode::Bypass && conn.on_failure == Shunt::Pass => {
            "start"
        }
        Install::OnDemand => "trap",
    }
}

/// The `load-conn` message for one conn. `cert_data` gives a certificate file's
/// contents (auth=cert: charon takes the certificate itself, PEM or DER, in the conn;
/// its private key is charon's own credential). `Err` says what could not be rendered.
pub fn load_conn(
    conn: &ConnDef,
    cert_data: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Message, String> {
    let remote_addr = match conn.remote {
        Remote::Host(a) => a.to_string(),
        Remote::Any => "%any".to_string(),
    };
    let (local_end, remote_end) = match &conn.auth {
        ConnAuth::Psk { local, remote } => {
            // charon sends INITIAL_CONTACT only toward a configured remote identity: a
            // known client's conn without one names the client by its address, the
            // identity a client authenticating by key presents unless told otherwise.
            let remote = match (remote, conn.remote, conn.initial_contact) {
                (Some(id), _, _) => identity(id),
                (None, Remote::Host(addr), true) => addr.to_string(),
                (None, _, _) => "%any".to_string(),
            };
            (
                Message::new()
                    .with("auth", "psk")
                    .with("id", identity(local)),
                Message::new().with("auth", "psk").with("id", remote),
            )
        }
        ConnAuth::Cert {
            nickname: file,
            remote,
        } => (
            // The local identity is the certificate's subject (charon's default for a
            // certificate without an explicit id).
            Message::new()
                .with("auth", "pubkey")
                .with_list("certs", [cert_data(file)?]),
            // Any certificate of a CA charon trusts, or one naming `remote`.
            Message::new()
                .with("auth", "pubkey")
                .with("id", remote.as_ref().map_or("%any".to_string(), identity)),
        ),
        // A bypass authenticates nothing; charon still wants both ends named.
        ConnAuth::None => (
            Message::new().with("auth", "psk"),
            Message::new().with("auth", "psk"),
        ),
    };
    let remote_host = match conn.remote {
        Remote::Host(a) => a,
        // Any peer: the selector is the remote subnet, or (template) whoever connects.
        Remote::Any => conn.local,
    };
    let mut child = Message::new().with(
        "mode",
        match conn.mode {
            ConnMode::Transport => "transport",
            ConnMode::Tunnel => "tunnel",
            ConnMode::Bypass => "pass",
        },
    );
    child = child.with_list(
        "local_ts",
        [selector(conn.local, conn.local_subnet, &conn.local_port)],
    );
    let remote_ts = match (conn.remote, conn.remote_subnet) {
        (Remote::Any, None) => "dynamic".to_string(),
        _ => selector(remote_host, conn.remote_subnet, &conn.remote_port),
    };
    child = child.with_list("remote_ts", [remote_ts]);
    if conn.mode != ConnMode::Bypass {
        child = child.with_list("esp_proposals", ESP_PROPOSALS).with(
            "dpd_action",
            match conn.dead_peer {
                DeadPeer::Forget => "clear",
                DeadPeer::Restart => "restart",
            },
        );
    }
    child = child.with("start_action", start_action(conn));
    if start_action(conn) == "start" {
        // Negotiated again whenever it goes: charon holds no policy for it in between.
        child = child.with("close_action", "start");
    }
    child = child.with("priority", policy_priority(conn).to_string());
    // No updown script in any case: charon runs none unless a child names one, and the
    // generated conns need none (see ConnDef::updown).

    let mut c = Message::new()
        .with_list("local_addrs", [conn.local.to_string()])
        .with_list("remote_addrs", [remote_addr])
        .with("version", "2");
    if conn.mode != ConnMode::Bypass {
        c = c
            .with_list("proposals", IKE_PROPOSALS)
            .with("dpd_delay", "10s")
            // 0: keep trying for as long as the conn is loaded; else charon's default.
            .with("keyingtries", if conn.retry_forever { "0" } else { "1" })
            // INITIAL_CONTACT: charon sends it, initiating, only under unique = replace
            // or keep, and only toward a configured (not wildcard) remote identity;
            // under "no" it sends none but honours a peer's; "never" ignores them too.
            // The known clients' conns send it; conns that only listen honour a
            // client's; conns both ends initiate (the mesh) neither send nor act on it
            // (see ConnDef::initial_contact).
            .with(
                "unique",
                if conn.initial_contact {
                    "replace"
                } else if conn.install == Install::Listen {
                    "no"
                } else {
                    "never"
                },
            );
    }
    c = c
        .with_section("local", local_end)
        .with_section("remote", remote_end)
        .with_section("children", Message::new().with_section(&conn.name, child));
    Ok(Message::new().with_section(&conn.name, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Subnet;

    fn no_certs(file: &str) -> Result<Vec<u8>, String> {
        Err(format!("no certificate file in a unit test ({file})"))
    }

    #[test]
    fn a_cert_conn_carries_the_certificate_and_asks_for_one() {
        let conn = ConnDef {
            auth: ConnAuth::Cert {
                nickname: "/etc/swanctl/x509/node.pem".into(),
                remote: Some(Identity::Fqdn("peer.example.com".into())),
            },
            ..vip_conn()
        };
        let read = |f: &str| Ok(format!("PEM of {f}").into_bytes());
        let m = load_conn(&conn, &read).unwrap();
        let c = m.section("rw").unwrap();
        let local = c.section("local").unwrap();
        assert_eq!(local.str("auth"), Some("pubkey"));
        assert_eq!(local.list("certs"), ["PEM of /etc/swanctl/x509/node.pem"]);
        assert_eq!(local.get("id"), None, "the certificate's subject");
        let remote = c.section("remote").unwrap();
        assert_eq!(remote.str("auth"), Some("pubkey"));
        assert_eq!(remote.str("id"), Some("@peer.example.com"));
        // A file that cannot be read is an error, not a conn without its certificate.
        assert!(load_conn(&conn, &no_certs).is_err());
    }

    fn vip_conn() -> ConnDef {
        ConnDef {
            name: "rw".into(),
            local: "192.0.2.100".parse().unwrap(),
            remote: Remote::Any,
            local_subnet: None,
            remote_subnet: None,
            local_port: None,
            remote_port: None,
            mode: ConnMode::Transport,
            auth: ConnAuth::Psk {
                local: Identity::Address("192.0.2.100".parse().unwrap()),
                remote: Some(Identity::Fqdn("client.example.com".into())),
            },
            on_failure: Shunt::Drop,
            while_negotiating: Shunt::Drop,
            install: Install::Listen,
            dead_peer: DeadPeer::Forget,
            retry_forever: false,
            updown: false,
            initial_contact: false,
            priority: None,
        }
    }

    #[test]
    fn a_road_warrior_conn_listens_for_any_peer() {
        let m = load_conn(&vip_conn(), &no_certs).unwrap();
        let c = m.section("rw").unwrap();
        assert_eq!(c.list("local_addrs"), ["192.0.2.100"]);
        assert_eq!(c.list("remote_addrs"), ["%any"]);
        assert_eq!(
            c.section("remote").unwrap().str("id"),
            Some("@client.example.com")
        );
        let child = c.section("children").unwrap().section("rw").unwrap();
        assert_eq!(child.str("mode"), Some("transport"));
        assert_eq!(child.list("local_ts"), ["192.0.2.100/32"]);
        assert_eq!(child.list("remote_ts"), ["dynamic"]);
        assert_eq!(child.str("start_action"), Some("none"));
        assert_eq!(child.get("updown"), None);
        // It only answers: a client's INITIAL_CONTACT still clears that client's old SAs.
        assert_eq!(c.str("unique"), Some("no"));
    }

    #[test]
    fn selectors_carry_subnets_and_ports() {
        let conn = ConnDef {
            name: "ssh".into(),
            remote: Remote::Host("2001:db8::2".parse().unwrap()),
            local: "2001:db8::1".parse().unwrap(),
            remote_subnet: Some(Subnet {
                addr: "2001:db8:1::".parse().unwrap(),
                len: 48,
            }),
            local_port: Some(ProtoPort::new("tcp", Some(22))),
            mode: ConnMode::Bypass,
            auth: ConnAuth::None,
            install: Install::OnDemand,
            priority: Some(100),
            ..vip_conn()
        };
        let m = load_conn(&conn, &no_certs).unwrap();
        let c = m.section("ssh").unwrap();
        let child = c.section("children").unwrap().section("ssh").unwrap();
        assert_eq!(child.str("mode"), Some("pass"));
        assert_eq!(child.list("local_ts"), ["2001:db8::1/128[6/22]"]);
        assert_eq!(child.list("remote_ts"), ["2001:db8:1::/48"]);
        assert_eq!(child.str("start_action"), Some("trap"));
        assert_eq!(child.str("priority"), Some("100"));
        assert_eq!(c.get("unique"), None);
        assert!(c.get("proposals").is_none() && child.get("esp_proposals").is_none());
    }

    #[test]
    fn a_known_clients_conn_tells_the_client_to_drop_stale_sas() {
        let conn = ConnDef {
            remote: Remote::Host("192.0.2.3".parse().unwrap()),
            initial_contact: true,
            retry_forever: true,
            ..vip_conn()
        };
        let m = load_conn(&conn, &no_certs).unwrap();
        let c = m.section("rw").unwrap();
        assert_eq!(c.str("unique"), Some("replace"));
        // ... toward a named identity, or charon sends none.
        assert_eq!(
            c.section("remote").unwrap().str("id"),
            Some("@client.example.com")
        );
        let unnamed = ConnDef {
            auth: ConnAuth::Psk {
                local: Identity::Address("192.0.2.100".parse().unwrap()),
                remote: None,
            },
            ..conn.clone()
        };
        let m = load_conn(&unnamed, &no_certs).unwrap();
        let remote = m.section("rw").unwrap().section("remote").unwrap();
        assert_eq!(remote.str("id"), Some("192.0.2.3"));
        // A mesh pair initiates from both ends: it never sends INITIAL_CONTACT.
        let pair = ConnDef {
            install: Install::OnDemand,
            initial_contact: false,
            ..conn
        };
        let m = load_conn(&pair, &no_certs).unwrap();
        assert_eq!(m.section("rw").unwrap().str("unique"), Some("never"));
        assert_eq!(c.str("keyingtries"), Some("0"));
        assert_eq!(c.list("remote_addrs"), ["192.0.2.3"]);
    }

    #[test]
    fn policies_outrank_bypass_lan_in_the_order_of_their_selectors() {
        let prio = |conn: &ConnDef| {
            let m = load_conn(conn, &no_certs).unwrap();
            let c = m.section(&conn.name).unwrap().section("children").unwrap();
            c.section(&conn.name)
                .unwrap()
                .str("priority")
                .unwrap()
                .parse::<u32>()
                .unwrap()
        };
        let host = ConnDef {
            remote: Remote::Host("192.0.2.3".parse().unwrap()),
            ..vip_conn()
        };
        let port = ConnDef {
            remote_port: Some(ProtoPort::new("tcp", Some(2224))),
            ..host.clone()
        };
        let subnets = ConnDef {
            mode: ConnMode::Tunnel,
            local_subnet: Some(Subnet {
                addr: "198.51.100.0".parse().unwrap(),
                len: 24,
            }),
            ..host.clone()
        };
        let bypass = ConnDef {
            mode: ConnMode::Bypass,
            auth: ConnAuth::None,
            priority: Some(100),
            ..port.clone()
        };
        // bypass-lan's pass policy for a /24, as charon 5.9.8 installed it here.
        const BYPASS_LAN: u32 = 175_423;
        assert!(prio(&bypass) < prio(&port));
        assert!(prio(&port) < prio(&host));
        assert!(prio(&host) < prio(&subnets));
        assert!(prio(&subnets) < BYPASS_LAN);
    }

    #[test]
    fn only_fail_closed_conns_are_trapped() {
        let child = |conn: &ConnDef| {
            let m = load_conn(conn, &no_certs).unwrap();
            let c = m.section("rw").unwrap().section("children").unwrap();
            let ch = c.section("rw").unwrap();
            (
                ch.str("start_action").map(String::from),
                ch.str("close_action").map(String::from),
            )
        };
        let require = ConnDef {
            remote: Remote::Host("192.0.2.3".parse().unwrap()),
            install: Install::OnDemand,
            on_failure: Shunt::Drop,
            while_negotiating: Shunt::Hold,
            ..vip_conn()
        };
        assert_eq!(child(&require), (Some("trap".into()), None));
        // use: a trap would hold the traffic of a peer that does not answer for ever.
        let fail_open = ConnDef {
            on_failure: Shunt::Pass,
            while_negotiating: Shunt::Pass,
            ..require.clone()
        };
        assert_eq!(
            child(&fail_open),
            (Some("start".into()), Some("start".into()))
        );
        let listening = ConnDef {
            install: Install::Listen,
            ..fail_open
        };
        assert_eq!(child(&listening), (Some("none".into()), None));
    }
}
