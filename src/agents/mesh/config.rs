//! Validation of the mesh parameters: raw strings in, `MeshConfig` out.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{
    list_items, parse_bool, parse_dns_name, parse_host_address, Port, RawParams, Subnet,
};
use crate::dns::DnssecMode;
use crate::error::{Error, Result};
use crate::params::{
    DEFAULT_CONFDIR, DEFAULT_COROSYNC_AUTHKEY, DEFAULT_COROSYNC_CONF, MESH_PEERS_MAX,
};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerSpec {
    Address(IpAddr),
    /// A DNS name; it stands for all its addresses.
    Name(String),
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSpec::Address(a) => write!(f, "{a}"),
            PeerSpec::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshAuth {
    /// No secret_file: the master secret is derived from the Corosync cluster key.
    Psk {
        secret_file: Option<PathBuf>,
    },
    Cert {
        nickname: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Require,
    Use,
    Disable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// `None`: the peers are Corosync's nodes.
    pub peers: Option<Vec<PeerSpec>>,
    pub local_addresses: Vec<IpAddr>,
    pub auth: MeshAuth,
    pub policy: Policy,
    pub exclude_ssh: bool,
    pub exclude_icmp: bool,
    pub secure_ports: Vec<Port>,
    /// Subnets whose traffic a node forwards (containers, VMs), by node address.
    pub forward_subnets: Vec<(IpAddr, Subnet)>,
    /// Sources still allowed to send clear text to a `require` node.
    pub clear_from: Vec<Subnet>,
    pub confdir: PathBuf,
    pub ike: crate::config::IkeDaemon,
    pub corosync_conf: PathBuf,
    pub corosync_authkey: PathBuf,
    /// `None`: require whenever a peer is given by name or authenticates by certificate.
    pub dnssec: Option<DnssecMode>,
    pub dnssec_anchor: PathBuf,
    /// Empty: every nameserver of /etc/resolv.conf.
    pub resolver: Vec<std::net::SocketAddr>,
}

fn parse_port(param: &str, token: &str) -> Result<Port> {
    let (proto, port) = match token.split_once('/') {
        Some((p, n)) => (p.to_ascii_lowercase(), n),
        None => ("tcp".to_string(), token),
    };
    let proto = match proto.as_str() {
        "tcp" => "tcp",
        "udp" => "udp",
        "sctp" => "sctp",
        _ => {
            return Err(Error::configured(
                param,
                format!("{token:?}: protocol must be tcp, udp or sctp"),
            ))
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(Port { proto, port: p }),
        _ => Err(Error::configured(
            param,
            format!("{token:?} is not a port (1-65535)"),
        )),
    }
}

/// `ADDRESS` or `NETWORK/LEN`, space- or comma-separated.
fn parse_clear_from(text: &str) -> Result<Vec<Subnet>> {
    let param = "clear_from";
    let mut out = Vec::new();
    for token in list_items(text) {
        let bad = |why: &str| Error::configured(param, format!("{token:?} {why}"));
        let (addr, len) = match token.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (token, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("is not an address or ADDRESS/PREFIX"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| bad(&format!("has a prefix length that is not 0-{max}")))?,
        };
        if len == 0 {
            return Err(bad(
                "would let everyone send clear text; use policy=use instead",
            ));
        }
        out.push(Subnet { addr, len });
    }
    Ok(out)
}

/// `NODE=SUBNET …`: the same list on every node, so each end can mirror the other's.
fn parse_forward_subnets(text: &str) -> Result<Vec<(IpAddr, Subnet)>> {
    let param = "forward_subnets";
    let mut out = Vec::new();
    for token in list_items(text) {
        let bad = || {
            Error::configured(
                param,
                format!("{token:?} is not NODE=SUBNET (e.g. 192.0.2.1=10.88.1.0/24)"),
            )
        };
        let (node, subnet) = token.split_once('=').ok_or_else(bad)?;
        let node = parse_host_address(param, node)?;
        let (addr, len) = subnet.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max || addr.is_ipv4() != node.is_ipv4() {
            return Err(Error::configured(
                param,
                format!(
                    "{token:?}: the subnet must be a valid prefix of the node's address family"
                ),
            ));
        }
        out.push((node, Subnet { addr, len }));
    }
    Ok(out)
}

/// One peer: an address, or a DNS name.
pub fn parse_peer(param: &str, token: &str) -> Result<PeerSpec> {
    if token.contains('/') || token.parse::<IpAddr>().is_ok() || token.contains(':') {
        Ok(PeerSpec::Address(parse_host_address(param, token)?))
    } else {
        Ok(PeerSpec::Name(parse_dns_name(param, token)?))
    }
}

/// A list of peers (addresses and DNS names); `param` names where it came from.
pub fn parse_peer_list(param: &str, text: &str) -> Result<Vec<PeerSpec>> {
    let mut peers = Vec::new();
    let mut seen = BTreeSet::new();
    for token in list_items(text) {
        let peer = parse_peer(param, token)?;
        if !seen.insert(peer.clone()) {
            return Err(Error::configured(param, format!("{peer} is listed twice")));
        }
        peers.push(peer);
    }
    if peers.is_empty() {
        return Err(Error::configured(
            param,
            "the list is empty; list the mesh's nodes",
        ));
    }
    if peers.len() > MESH_PEERS_MAX {
        return Err(Error::configured(
            param,
            format!(
                "lists {} peers; at most {MESH_PEERS_MAX} are supported",
                peers.len()
            ),
        ));
    }
    Ok(peers)
}

impl MeshConfig {
    pub fn parse(raw: &RawParams) -> Result<MeshConfig> {
        // No peers: the zero-configuration mesh takes Corosync's nodelist.
        let peers = match raw.get("peers") {
            None => None,
            Some(list_text) => Some(parse_peer_list("peers", list_text)?),
        };
        let mut local_addresses = Vec::new();
        for token in list_items(raw.get("local_address").unwrap_or("")) {
            let ip = parse_host_address("local_address", token)?;
            if local_addresses
                .iter()
                .any(|l: &IpAddr| l.is_ipv4() == ip.is_ipv4())
            {
                return Err(Error::configured(
                    "local_address",
                    "give at most one IPv4 and one IPv6 address",
                ));
            }
            local_addresses.push(ip);
        }
        let ike = crate::config::IkeDaemon::parse(raw)?;
        let auth = match raw.get("auth").unwrap_or("psk") {
            "psk" => {
                if raw.get("cert").is_some() {
                    return Err(Error::configured(
                        "cert",
                        "is only used with auth=cert; unset one of them",
                    ));
                }
                let secret_file = match raw.get("secret_file") {
                    None => None,
                    Some(file) => {
                        let path = PathBuf::from(file);
                        if !path.is_absolute() {
                            return Err(Error::configured(
                                "secret_file",
                                format!("{file:?} is not an absolute path"),
                            ));
                        }
                        Some(path)
                    }
                };
                MeshAuth::Psk { secret_file }
            }
            "cert" => {
                if raw.get("secret_file").is_some() {
                    return Err(Error::configured(
                        "secret_file",
                        "is only used with auth=psk; unset one of them",
                    ));
                }
                MeshAuth::Cert {
                    nickname: ike.required_cert(raw)?,
                }
            }
            other => {
                return Err(Error::configured(
                    "auth",
                    format!("{other:?} is not psk or cert"),
                ))
            }
        };
        let policy = match raw.get("policy").unwrap_or("use") {
            "require" => Policy::Require,
            "use" => Policy::Use,
            "disable" => Policy::Disable,
            other => {
                return Err(Error::configured(
                    "policy",
                    format!("{other:?} is not require, use or disable"),
                ))
            }
        };
        let exclude_ssh = parse_bool("exclude_ssh", raw.get("exclude_ssh").unwrap_or("true"))?;
        let exclude_icmp = parse_bool("exclude_icmp", raw.get("exclude_icmp").unwrap_or("true"))?;
        let mut secure_ports = Vec::new();
        for token in list_items(raw.get("secure_ports").unwrap_or("")) {
            let port = parse_port("secure_ports", token)?;
            if exclude_ssh && port.proto == "tcp" && port.port == 22 {
                return Err(Error::configured(
                    "secure_ports",
                    "tcp/22 cannot be both excluded (exclude_ssh=true) and always encrypted",
                ));
            }
            if !secure_ports.contains(&port) {
                secure_ports.push(port);
            }
        }
        let path = |name: &str, default: &str| -> Result<PathBuf> {
            let v = raw.get(name).unwrap_or(default);
            let p = PathBuf::from(v);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(Error::configured(
                    name,
                    format!("{v:?} is not an absolute path"),
                ))
            }
        };
        let dnssec = raw
            .get("dnssec")
            .map(|v| DnssecMode::parse("dnssec", v))
            .transpose()?;
        // Peers listed only by address, authenticated by a shared key: no name anywhere
        // for DNSSEC to confirm. `require` would be silently empty: refused, not ignored.
        let only_addresses = peers
            .as_ref()
            .is_some_and(|p| p.iter().all(|p| matches!(p, PeerSpec::Address(_))));
        if dnssec == Some(DnssecMode::Require)
            && only_addresses
            && matches!(auth, MeshAuth::Psk { .. })
        {
            return Err(Error::configured(
                "dnssec",
                "require has nothing to check: every peer is listed by address and auth=psk names none (list peers by name, use auth=cert, or unset dnssec)",
            ));
        }
        Ok(MeshConfig {
            peers,
            local_addresses,
            auth,
            policy,
            exclude_ssh,
            exclude_icmp,
            secure_ports,
            forward_subnets: parse_forward_subnets(raw.get("forward_subnets").unwrap_or(""))?,
            clear_from: parse_clear_from(raw.get("clear_from").unwrap_or(""))?,
            confdir: path("confdir", DEFAULT_CONFDIR)?,
            ike,
            corosync_conf: path("corosync_conf", DEFAULT_COROSYNC_CONF)?,
            corosync_authkey: path("corosync_authkey", DEFAULT_COROSYNC_AUTHKEY)?,
            dnssec,
            dnssec_anchor: path("dnssec_anchor", crate::dns::DEFAULT_ANCHOR)?,
            resolver: raw
                .get("resolver")
                .map(|v| crate::dns::parse_resolvers("resolver", v))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<MeshConfig> {
        let mut raw = RawParams::default();
        raw.set("secret_file", "/etc/vipsec/mesh.key");
        for (k, v) in pairs {
            raw.set(k, *v);
        }
        MeshConfig::parse(&raw)
    }

    #[test]
    fn peers_addresses_and_names() {
        let c = parse(&[(
            "peers",
            "192.0.2.1, 2001:db8::2 node3.example.test\tNode4.Example.Test.",
        )])
        .unwrap();
        assert_eq!(
            c.peers.unwrap(),
            vec![
                PeerSpec::Address("192.0.2.1".parse().unwrap()),
                PeerSpec::Address("2001:db8::2".parse().unwrap()),
                PeerSpec::Name("node3.example.test".into()),
                PeerSpec::Name("node4.example.test".into()),
            ]
        );
        assert_eq!(c.policy, Policy::Use);
        assert!(c.exclude_ssh && c.exclude_icmp);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("peers", " , ")], "peers:"),
            (&[("peers", "192.0.2.1 192.0.2.1")], "peers:"),
            (
                &[("peers", "192.0.2.1 a.example n.example a.example")],
                "peers:",
            ),
            (&[("peers", "192.0.2.1/24")], "peers:"),
            (&[("peers", "bad_name")], "peers:"),
            (&[("peers", "192.0.2.300")], "peers:"),
            (&[("peers", "192.0.2.1"), ("policy", "maybe")], "policy:"),
            (
                &[("peers", "192.0.2.1"), ("exclude_ssh", "perhaps")],
                "exclude_ssh:",
            ),
            (
                &[("peers", "192.0.2.1"), ("secure_ports", "tcp/0")],
                "secure_ports:",
            ),
            (
                &[("peers", "192.0.2.1"), ("secure_ports", "icmp/8")],
                "secure_ports:",
            ),
            (
                &[("peers", "192.0.2.1"), ("secure_ports", "22")],
                "secure_ports:",
            ),
            (
                &[("peers", "192.0.2.1"), ("auth", "cert"), ("cert", "n")],
                "secret_file:",
            ),
            (&[("peers", "192.0.2.1"), ("cert", "n")], "cert:"),
            (
                &[
                    ("peers", "192.0.2.1"),
                    ("local_address", "192.0.2.9 192.0.2.8"),
                ],
                "local_address:",
            ),
        ];
        for (pairs, prefix) in cases {
            let e = parse(pairs).unwrap_err();
            assert_eq!(e.code(), 6, "{pairs:?}");
            assert!(e.reason().starts_with(prefix), "{pairs:?}: {}", e.reason());
        }
        let many: Vec<String> = (0..=MESH_PEERS_MAX)
            .map(|i| format!("2001:db8::{:x}", i + 1))
            .collect();
        assert!(parse(&[("peers", &many.join(" "))])
            .unwrap_err()
            .reason()
            .contains("at most 4096"));
    }
}
