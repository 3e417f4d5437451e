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
