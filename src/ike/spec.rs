//! What a conn is, in no daemon's words: the agents' planners produce these, a backend
//! only renders them into its own configuration.

use std::fmt;
use std::net::IpAddr;

use crate::config::{Secret, Subnet};

/// An IKE identity, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Address(IpAddr),
    /// A DNS name (`@name` in libreswan's and strongSwan's notation).
    Fqdn(String),
    /// A certificate's distinguished name, as written (e.g. `O=Example, CN=c.example.com`).
    Dn(String),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Address(a) => write!(f, "{a}"),
            Identity::Fqdn(n) => write!(f, "@{n}"),
            Identity::Dn(dn) => write!(f, "{dn}"),
        }
    }
}

/// The far end of a conn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    Host(IpAddr),
    /// Whoever connects (a road-warrior template: the VIP's clients, or a bypass rule).
    Any,
}

/// A protocol, and optionally a port, that narrows one side of a conn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoPort {
    /// tcp, udp, sctp, icmp or ipv6-icmp
    pub proto: String,
    pub port: Option<u16>,
}

impl ProtoPort {
    pub fn new(proto: &str, port: Option<u16>) -> ProtoPort {
        ProtoPort {
            proto: proto.to_string(),
            port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnMode {
    /// ESP between the two hosts.
    Transport,
    /// ESP tunnel between the two subnets.
    Tunnel,
    /// No IPsec: the matching traffic is let through in clear, ahead of other policies.
    Bypass,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnAuth {
    /// A pre-shared key (see `PskEntry`), both ends identified.
    Psk {
        local: Identity,
        /// `None`: any identity that holds the key.
        remote: Option<Identity>,
    },
    /// This node's certificate (the daemon's nickname for it); the peer's certificate
    /// must be issued by a CA the daemon trusts.
    Cert {
        nickname: String,
        /// `None`: whatever identity the peer's certificate carries.
        remote: Option<Identity>,
    },
    /// Bypass conns authenticate nothing.
    None,
}

/// What happens to the conn's traffic while no SA carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shunt {
    Pass,
    /// Held back until the negotiation ends (only while negotiating).
    Hold,
    Drop,
}

/// How the daemon is to bring the conn up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Loaded, waiting for peers to connect; no kernel policy of its own.
    Listen,
    /// A kernel policy traps the first packet, which starts the negotiation.
    OnDemand,
}

/// What a peer that stops answering (dead-peer detection) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadPeer {
    /// Its SAs are deleted; it comes back by connecting again.
    Forget,
    /// Its SAs are deleted and negotiated again at once.
    Restart,
}

/// One conn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnDef {
    pub name: String,
    pub local: IpAddr,
    pub remote: Remote,
    /// Narrower traffic than host to host (tunnel mode's subnets, a bypass's "anything").
    pub local_subnet: Option<Subnet>,
    pub remote_subnet: Option<Subnet>,
    pub local_port: Option<ProtoPort>,
    pub remote_port: Option<ProtoPort>,
    pub mode: ConnMode,
    pub auth: ConnAuth,
    pub on_failure: Shunt,
    pub while_negotiating: Shunt,
    pub install: Install,
    pub dead_peer: DeadPeer,
    /// Keep negotiating after failures, for as long as it is loaded.
    pub retry_forever: bool,
    /// Run the daemon's default up/down script (routes, firewall) for it.
    pub updown: bool,
    /// Tell the peer, when this end initiates, to drop the SAs it still has with this
    /// identity (IKEv2 INITIAL_CONTACT): for the VIP's known clients, whose SAs were with
    /// the VIP's previous node. Not for conns both ends initiate (the mesh): when their
    /// exchanges cross, each end would delete SAs the other still sends on.
    pub initial_contact: bool,
    /// Policy priority, where it must come before others (lower first).
    pub priority: Option<u32>,
}

/// A pre-shared key between two identities (`remote: None`: any peer).
pub struct PskEntry {
    pub local: Identity,
    pub remote: Option<Identity>,
    pub key: Secret,
}

impl serde::Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Identity {
    /// Reads an identity as IKE daemons print it: `@name` (or `@@name`), an address, a
    /// DN; `None` for anything else (an e-mail identity, a key id).
    pub fn from_printed(text: &str) -> Option<Identity> {
        let text = text.trim().trim_matches('\'');
        if let Some(name) = text.strip_prefix('@') {
            let name = name.trim_start_matches('@');
            return (!name.is_empty()).then(|| Identity::Fqdn(name.to_string()));
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Some(Identity::Address(addr));
        }
        (text.contains('=') && rdns(text).is_some()).then(|| Identity::Dn(text.to_string()))
    }

    /// The host name this identity claims, if it claims exactly one: an FQDN identity's
    /// name, or the CN of a DN when the DN has exactly one CN and it is a host name (with
    /// a dot). Addresses, e-mail names, DNs with no or several CNs claim none.
    pub fn claimed_name(&self) -> Option<String> {
        let candidate = match self {
            Identity::Address(_) => return None,
            Identity::Fqdn(name) => name.clone(),
            Identity::Dn(dn) => {
                let rdns = rdns(dn)?;
                let mut cns = rdns
                    .iter()
                    .filter(|(attr, _)| attr.eq_ignore_ascii_case("CN") || attr == "2.5.4.3");
                let (_, cn) = cns.next()?;
                if cns.next().is_some() {
                    return None;
                }
                cn.clone()
            }
        };
        if candidate.contains('@') || !candidate.contains('.') {
            return None;
        }
        crate::config::parse_dns_name("identity", &candidate).ok()
    }
}

/// The attribute-value pairs of a DN string (RFC 4514: `,` or `+` separate them, `\`
/// escapes a special character or two hex digits, a value may be quoted). `None` when it
/// is not well formed, so that a value such as `x\, CN=evil` stays one value.
pub fn rdns(dn: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = dn.chars().peekable();
    loop {
        let mut attr = String::new();
        loop {
            match chars.next()? {
                '=' => break,
                c => attr.push(c),
            }
        }
        let attr = attr.trim().to_string();
        if attr.is_empty() || attr.contains(['\\', '"']) {
            return None;
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut in_quotes = chars.next_if_eq(&'"').is_some();
        // Hex escapes are bytes of UTF-8: gathered, then decoded.
        let (mut value, mut bytes) = (String::new(), Vec::<u8>::new());
        // How much of the value was escaped or quoted: spaces before a separator are
        // dropped, but not those (`CN=a\ `, `CN="a "`, `CN=a\20`).
        let mut kept = 0;
        let mut last = true;
        while let Some(c) = chars.next() {
            if c != '\\' && !bytes.is_empty() {
                value.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
                kept = value.len();
            }
            match c {
                '\\' => {
                    let a = chars.next()?;
                    match chars
                        .peek()
                        .copied()
                        .filter(|b| a.is_ascii_hexdigit() && b.is_ascii_hexdigit())
                    {
                        Some(b) => {
                            chars.next();
                            bytes.push(u8::from_str_radix(&format!("{a}{b}"), 16).ok()?);
                        }
                        None => {
                            value.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
                            value.push(a);
                            kept = value.len();
                        }
                    }
                }
                '"' if in_quotes => in_quotes = false,
                ',' | '+' if !in_quotes => {
                    last = false;
                    break;
                }
                c => {
                    value.push(c);
                    if in_quotes {
                        kept = value.len();
                    }
                }
            }
        }
        if in_quotes {
            return None;
        }
        if !bytes.is_empty() {
            value.push_str(&String::from_utf8_lossy(&bytes));
            kept = value.len();
        }
        let end = kept + value[kept..].trim_end().len();
        value.truncate(end);
        out.push((attr, value));
        if last {
            return Some(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unescaped_spaces_end_a_value() {
        let pairs = |dn: &str| rdns(dn).unwrap();
        let one = |a: &str, v: &str| vec![(a.to_string(), v.to_string())];
        // Found by tests/properties.rs: `CN=\ ` read as an empty CN.
        assert_eq!(pairs(r"CN=a\ "), one("CN", "a "));
        assert_eq!(pairs(r"CN=a\20"), one("CN", "a "));
        assert_eq!(pairs("CN=\"a \""), one("CN", "a "));
        assert_eq!(pairs(r"CN=a\0A"), one("CN", "a\n"));
        // Spaces around separators are not part of the values.
        assert_eq!(
            pairs("O=x , CN=y "),
            [("O".into(), "x".into()), ("CN".into(), "y".into())]
        );
    }

    #[test]
    fn names_claimed_by_printed_identities() {
        let name = |s: &str| Identity::from_printed(s).and_then(|i| i.claimed_name());
        assert_eq!(name("@c.lab.test").as_deref(), Some("c.lab.test"));
        assert_eq!(
            name("O=vipsec lab, CN=C.Lab.Test").as_deref(),
            Some("c.lab.test")
        );
        assert_eq!(
            name("'C=CA, ST=Ontario, CN=east.testing.libreswan.org, E=a@b.c'").as_deref(),
            Some("east.testing.libreswan.org")
        );
        // An escaped comma keeps an attacker's "CN=" inside another value.
        assert_eq!(
            name(r"O=x\, CN=evil.example, CN=b.example.com").as_deref(),
            Some("b.example.com")
        );
        assert_eq!(
            name(r"O=x\2C CN=evil.example, CN=b.example.com").as_deref(),
            Some("b.example.com")
        );
        assert_eq!(
            name("O=\"x, CN=evil.example\", CN=b.example.com").as_deref(),
            Some("b.example.com")
        );
        for none in [
            "192.0.2.3",
            "2001:db8::3",
            "user@example.com",
            "O=x, CN=client",
            "O=x",
            "@east",
            "",
            // Two CNs: which one is meant is not for vipsec to guess.
            "CN=a.example.com, CN=b.example.com",
            "CN=a.example.com+CN=b.example.com",
            // Not a DN at all.
            r"O=x\",
            "O=\"x, CN=b.example.com",
        ] {
            assert_eq!(name(none), None, "{none:?}");
        }
        assert_eq!(
            Identity::from_printed("192.0.2.3"),
            Some(Identity::Address("192.0.2.3".parse().unwrap()))
        );
    }
}
