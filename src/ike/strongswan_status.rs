//! What charon says about a conn, read from its VICI answers (never from swanctl's text):
//! the `list-sa` events of `list-sas` (IKE SAs with their Child SAs) and the `list-conn`
//! events of `list-conns`. Each event is a section per IKE SA (or conn), named after
//! the conn it belongs to.

use std::net::IpAddr;

use super::vici::Message;
use super::{EstablishedSa, PeerIdentity, SaKind};

/// Whether charon has the conn loaded. (`list-conns` in 5.9 lists every conn whatever
/// its filter says: the name is looked for here.)
pub fn conn_loaded(list_conn_events: &[Message], conn: &str) -> bool {
    list_conn_events.iter().any(|e| e.section(conn).is_some())
}

/// The conn's local addresses as loaded (what decides whether this node can serve it).
pub fn conn_local_addrs(list_conn_events: &[Message], conn: &str) -> Vec<IpAddr> {
    conn_addrs(list_conn_events, conn, "local_addrs")
}

/// The addresses a loaded conn negotiates with (its `remote_addrs`; `%any` and names are
/// left out).
pub fn conn_remote_addrs(list_conn_events: &[Message], conn: &str) -> Vec<IpAddr> {
    conn_addrs(list_conn_events, conn, "remote_addrs")
}

fn conn_addrs(list_conn_events: &[Message], conn: &str, key: &str) -> Vec<IpAddr> {
    list_conn_events
        .iter()
        .filter_map(|e| e.section(conn))
        .flat_map(|c| c.list(key))
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The IKE SAs of `conn` that are up, and their Child SAs that are installed.
pub fn established(list_sa_events: &[Message], conn: &str) -> Vec<EstablishedSa> {
    let mut out = Vec::new();
    for sa in list_sa_events.iter().filter_map(|e| e.section(conn)) {
        if sa.str("state") != Some("ESTABLISHED") {
            continue;
        }
        let (Some(serial), Some(peer)) = (
            sa.str("uniqueid").and_then(|u| u.parse().ok()),
            sa.str("remote-host").and_then(|h| h.parse().ok()),
        ) else {
            continue;
        };
        out.push(EstablishedSa {
            kind: SaKind::Ike,
            serial,
            peer,
        });
        let children = sa
            .section("child-sas")
            .into_iter()
            .flat_map(|c| c.sections());
        for (_, child) in children {
            if child.str("state") != Some("INSTALLED") {
                continue;
            }
            if let Some(serial) = child.str("uniqueid").and_then(|u| u.parse().ok()) {
                out.push(EstablishedSa {
                    kind: SaKind::Child,
                    serial,
                    peer,
                });
            }
        }
    }
    out
}

/// The identities the peers of established IKE SAs authenticated with (Child SA or not),
/// per conn (charon's conns are never instances: the conn is the
/// section's name).
pub fn peer_identities(list_sa_events: &[Message]) -> Vec<PeerIdentity> {
    let mut out = Vec::new();
    for event in list_sa_events {
        for (conn, sa) in event.sections() {
            if sa.str("state") != Some("ESTABLISHED") {
                continue;
            }
            // An established IKE SA counts, Child SA or not: its peer has authenticated
            // and can ask for Child SAs at any moment, so its name is judged now.
            let (Some(ike_serial), Some(shown)) = (
                sa.str("uniqueid").and_then(|u| u.parse().ok()),
                sa.str("remote-id"),
            ) else {
                continue;
            };
            let read = read_identity(shown);
            out.push(PeerIdentity {
                conn: conn.to_string(),
                ike_serial,
                address: sa.str("remote-host").and_then(|h| h.parse().ok()),
                shown: shown.to_string(),
                claimed_name: read.name,
                ambiguous: read.ambiguous,
            });
        }
    }
    out
}

/// What a printed identity of charon's says about a host name.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadIdentity {
    pub name: Option<String>,
    /// Some reading of the text names a host and another does not (or names another).
    pub ambiguous: bool,
}

/// Reads an identity as charon prints it (`%Y`; list-sas' `remote-id`), which is not
/// how pluto prints it (`Identity::from_printed`): an FQDN without `@` (`c.example.com`),
/// an e-mail name (`user@example.com`), an address, a key id (`#hex`), and a DN whose
/// values are printed raw, joined by `, ` — seen on 5.9 and 6.0: a certificate whose only
/// attribute is `O=x, CN=victim.example` prints exactly as one whose O is `x` and whose
/// CN is `victim.example`. No escaping tells them apart, so a DN claims a name only when
/// the text has one reading: a lone `CN=host`. Any other DN that mentions a CN could name
/// a host or not: ambiguous ("cannot tell", never a name).
pub fn read_identity(printed: &str) -> ReadIdentity {
    let none = ReadIdentity {
        name: None,
        ambiguous: false,
    };
    let host = |candidate: &str| -> Option<String> {
        if candidate.contains('@') || !candidate.contains('.') {
            return None;
        }
        crate::config::parse_dns_name("identity", candidate).ok()
    };
    let text = printed;
    if text.is_empty() || text == "%any" || text.starts_with('#') || text.parse::<IpAddr>().is_ok()
    {
        return none;
    }
    if text.contains('=') {
        let upper = text.to_ascii_uppercase();
        let mentions_cn = upper.contains("CN=") || upper.contains("2.5.4.3=");
        if !mentions_cn {
            return none;
        }
        // One attribute, and it is the CN: no `, ` another attribute could hide behind.
        if !text.contains(", ") && text.matches('=').count() == 1 {
            if let Some((attr, value)) = text.split_once('=') {
                if attr.eq_ignore_ascii_case("CN") || attr == "2.5.4.3" {
                    return ReadIdentity {
                        name: host(value),
                        ambiguous: false,
                    };
                }
            }
        }
        return ReadIdentity {
            name: None,
            ambiguous: true,
        };
    }
    // No `=`: an FQDN (charon drops the `@`), or an e-mail name (which names no host).
    ReadIdentity {
        name: host(text),
        ambiguous: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list-sa event as charon sends it (the keys and their spelling as 5.9 and 6.0
    /// write them): an IKE SA of conn `rw` from a client, with one installed Child SA.
    fn list_sa(conn: &str, state: &str, child_state: &str, remote_id: &str) -> Message {
        Message::new().with_section(
            conn,
            Message::new()
                .with("uniqueid", "7")
                .with("version", "2")
                .with("state", state)
                .with("local-host", "192.0.2.100")
                .with("local-id", "192.0.2.100")
                .with("remote-host", "192.0.2.3")
                .with("remote-id", remote_id)
                .with_section(
                    "child-sas",
                    Message::new().with_section(
                        &format!("{conn}-12"),
                        Message::new()
                            .with("name", conn)
                            .with("uniqueid", "12")
                            .with("state", child_state)
                            .with("mode", "TRANSPORT")
                            .with_list("local-ts", ["192.0.2.100/32"])
                            .with_list("remote-ts", ["192.0.2.3/32"]),
                    ),
                ),
        )
    }

    #[test]
    fn established_sas_of_one_conn() {
        let events = [
            list_sa("rw", "ESTABLISHED", "INSTALLED", "@c.example.com"),
            list_sa("other", "ESTABLISHED", "INSTALLED", "192.0.2.9"),
        ];
        let sas = established(&events, "rw");
        let peer: IpAddr = "192.0.2.3".parse().unwrap();
        assert_eq!(
            sas,
            [
                EstablishedSa {
                    kind: SaKind::Ike,
                    serial: 7,
                    peer
                },
                EstablishedSa {
                    kind: SaKind::Child,
                    serial: 12,
                    peer
                },
            ]
        );
        assert!(established(&events, "nosuch").is_empty());
    }

    #[test]
    fn sas_not_up_count_for_nothing() {
        let events = [
            list_sa("rw", "CONNECTING", "INSTALLED", "x"),
            list_sa("rw", "ESTABLISHED", "REKEYING", "x"),
        ];
        let sas = established(&events, "rw");
        assert_eq!(sas.len(), 1, "{sas:?}");
        assert_eq!(sas[0].kind, SaKind::Ike);
        // Only the established IKE SA's peer is judged (its Child SA is rekeying).
        let ids = peer_identities(&events);
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(ids[0].ike_serial, 7);
    }

    #[test]
    fn peers_claim_the_names_their_identities_carry() {
        // remote-id as charon 5.9 and 6.0 print them (tests/strongswan_agents.rs
        // `charon_prints_identities_as_these_tests_read_them` checks these against both).
        let events = [
            list_sa("rw", "ESTABLISHED", "INSTALLED", "c.example.com"),
            list_sa("dn", "ESTABLISHED", "INSTALLED", "CN=d.example.com"),
            list_sa(
                "amb",
                "ESTABLISHED",
                "INSTALLED",
                "O=vipsec lab, CN=d.example.com",
            ),
            list_sa("ip", "ESTABLISHED", "INSTALLED", "192.0.2.3"),
        ];
        let ids = peer_identities(&events);
        let claimed: Vec<(&str, Option<&str>, bool)> = ids
            .iter()
            .map(|p| (p.conn.as_str(), p.claimed_name.as_deref(), p.ambiguous))
            .collect();
        assert_eq!(
            claimed,
            [
                ("rw", Some("c.example.com"), false),
                ("dn", Some("d.example.com"), false),
                ("amb", None, true),
                ("ip", None, false)
            ]
        );
        assert_eq!(ids[0].ike_serial, 7);
        assert_eq!(ids[0].address, Some("192.0.2.3".parse().unwrap()));
    }

    /// Identities as charon 5.9 and 6.0 print them, read: an FQDN has no `@`, a DN's
    /// values are raw. The attack: a certificate with no CN whose O is
    /// `x, CN=victim.example` prints as `O=x, CN=victim.example`, exactly as a certificate
    /// with O `x` and CN `victim.example` does: neither claims victim.example.
    #[test]
    fn charons_prints_are_read_as_charon_writes_them() {
        let read = |s: &str| {
            let r = read_identity(s);
            (r.name, r.ambiguous)
        };
        let name = |n: &str| (Some(n.to_string()), false);
        let none = (None, false);
        let cannot_tell = (None, true);
        assert_eq!(read("c.example.com"), name("c.example.com"));
        assert_eq!(read("C.Example.COM"), name("c.example.com"));
        assert_eq!(read("CN=victim.example"), name("victim.example"));
        assert_eq!(read("cn=victim.example"), name("victim.example"));
        assert_eq!(read("O=x, CN=victim.example"), cannot_tell);
        assert_eq!(read("C=US, O=x, CN=victim.example"), cannot_tell);
        assert_eq!(read("O=vipsec test, CN=client.example.com"), cannot_tell);
        assert_eq!(read("CN=victim.example, O=x"), cannot_tell);
        // A backslash is a character of the value to charon, not an escape.
        assert_eq!(read(r"O=x\, CN=victim.example"), cannot_tell);
        assert_eq!(read("O=a+CN=b.example"), cannot_tell);
        assert_eq!(read("CN=a=b.example"), cannot_tell);
        for s in [
            "192.0.2.3",
            "2001:db8::3",
            "user@example.com",
            "client@c.example.com",
            "O=vipsec test",
            "O=vipsec test, OU=lab",
            "CN=client",
            "#0102",
            "%any",
            "",
            "client",
            "bad name.example",
        ] {
            assert_eq!(read(s), none, "{s:?}");
        }
    }

    #[test]
    fn loaded_conns_and_their_addresses() {
        let events = [Message::new().with_section(
            "rw",
            Message::new().with_list("local_addrs", ["192.0.2.100", "%any"]),
        )];
        assert!(conn_loaded(&events, "rw") && !conn_loaded(&events, "rw2"));
        assert_eq!(
            conn_local_addrs(&events, "rw"),
            ["192.0.2.100".parse::<IpAddr>().unwrap()]
        );
    }
}
