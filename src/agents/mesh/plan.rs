//! What this node must set up: the peers it tunnels to (names resolved, its own addresses
//! skipped), the local address for each, and the names of the conns that carry them.

use std::collections::BTreeSet;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::{MeshConfig, PeerSpec, Policy};
use crate::config::Subnet;
use crate::error::{Error, Result};
use crate::kernel::{addr, route};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlannedPeer {
    pub address: IpAddr,
    pub local: IpAddr,
    /// How the peer was listed: its address, or the DNS name it came from.
    pub listed_as: String,
    /// Every conn this peer needs (the first is the main, host-to-host one).
    pub conns: Vec<String>,
}

impl PlannedPeer {
    pub fn main_conn(&self) -> &str {
        &self.conns[0]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub peer: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshPlan {
    pub peers: Vec<PlannedPeer>,
    /// Listed peers that get no conn from this node, and why (not this node's addresses).
    pub skipped: Vec<Skipped>,
    /// Conns that keep SSH/ICMP outside the policy, per local address.
    pub pass_conns: Vec<String>,
}

impl MeshPlan {
    pub fn all_conns(&self) -> BTreeSet<String> {
        self.peers
            .iter()
            .flat_map(|p| p.conns.iter().cloned())
            .chain(self.pass_conns.iter().cloned())
            .collect()
    }

    pub fn locals(&self) -> BTreeSet<IpAddr> {
        self.peers.iter().map(|p| p.local).collect()
    }
}

/// A conn-name-safe spelling of an address ("2001:db8::1" → "2001-db8--1").
pub fn addr_tag(a: IpAddr) -> String {
    a.to_string().replace(':', "-")
}

/// The (local side, peer side) selectors of the tunnel-mode conns that carry forwarded
/// traffic between `local` and `peer`: this node's subnets to the peer, this node to the
/// peer's subnets, subnets to subnets. Each end computes the mirror of the other's.
pub fn forward_pairs(cfg: &MeshConfig, local: IpAddr, peer: IpAddr) -> Vec<(Subnet, Subnet)> {
    let of = |node: IpAddr| -> Vec<Subnet> {
        cfg.forward_subnets
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, s)| *s)
            .collect()
    };
    let (mine, theirs) = (of(local), of(peer));
    let mut pairs = Vec::new();
    for s in &mine {
        pairs.push((*s, Subnet::host(peer)));
    }
    for t in &theirs {
        pairs.push((Subnet::host(local), *t));
    }
    for s in &mine {
        for t in &theirs {
            pairs.push((*s, *t));
        }
    }
    pairs
}

/// The conns a peer needs under `cfg`.
pub fn conns_for(cfg: &MeshConfig, local: IpAddr, peer: IpAddr) -> Vec<String> {
    let tag = addr_tag(peer);
    let mut conns = vec![format!("vm-{tag}")];
    for p in &cfg.secure_ports {
        conns.push(format!("vm-{tag}-{}{}-out", p.proto, p.port));
        conns.push(format!("vm-{tag}-{}{}-in", p.proto, p.port));
    }
    for i in 0..forward_pairs(cfg, local, peer).len() {
        conns.push(format!("vm-{tag}-fwd{}", i + 1));
    }
    conns
}

pub fn pass_conns_for(cfg: &MeshConfig, local: IpAddr) -> Vec<String> {
    if cfg.policy == Policy::Disable {
        return Vec::new();
    }
    let tag = addr_tag(local);
    let mut conns = Vec::new();
    if cfg.exclude_ssh {
        conns.push(format!("vm-pass-{tag}-ssh-in"));
        conns.push(format!("vm-pass-{tag}-ssh-out"));
    }
    if cfg.exclude_icmp {
        conns.push(format!("vm-pass-{tag}-icmp"));
    }
    conns
}

/// Resolves DNS names through the system resolver, all at once, until `deadline`.
/// Names → addresses (or why not), for every name.
pub type Resolved = Vec<(String, std::result::Result<Vec<IpAddr>, String>)>;

/// Resolves names through the system resolver (getaddrinfo), with no DNSSEC check.
pub fn resolve_plain(
    names: &[String],
    deadline: Instant,
) -> Vec<(String, std::result::Result<Vec<IpAddr>, String>)> {
    let (tx, rx) = mpsc::channel();
    for name in names {
        let (tx, name) = (tx.clone(), name.clone());
        // getaddrinfo has no timeout of its own: a thread per name, abandoned at the deadline.
        std::thread::spawn(move || {
            let r = (name.as_str(), 0u16)
                .to_socket_addrs()
                .map(|it| it.map(|sa| sa.ip()).collect::<Vec<_>>())
                .map_err(|e| format!("does not resolve: {e}"));
            let _ = tx.send((name, r));
        });
    }
    drop(tx);
    let mut out = Vec::new();
    while out.len() < names.len() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    for name in names {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((
                name.clone(),
                Err("no answer from the resolver in time".into()),
            ));
        }
    }
    out
}

/// `peers`: the list to plan for; `from_cluster`: it is Corosync's nodelist, where this
/// node being the only one (a one-node cluster) is fine rather than a mistake.
pub fn build(
    cfg: &MeshConfig,
    peers: &[PeerSpec],
    from_cluster: bool,
    resolve: &mut dyn FnMut(&[String]) -> Resolved,
    deadline: Instant,
) -> Result<MeshPlan> {
    let own: BTreeSet<IpAddr> = addr::local_addresses(deadline)?.into_iter().collect();
    let mut plan = MeshPlan::default();
    let names: Vec<String> = peers
        .iter()
        .filter_map(|p| match p {
            PeerSpec::Name(n) => Some(n.clone()),
            PeerSpec::Address(_) => None,
        })
        .collect();
    let resolved = if names.is_empty() {
        Vec::new()
    } else {
        resolve(&names)
    };
    // (address, as listed), each address once, this node's own left out.
    let mut targets: Vec<(IpAddr, String)> = Vec::new();
    let push = |a: IpAddr, listed: &str, targets: &mut Vec<(IpAddr, String)>| {
        if !own.contains(&a) && !targets.iter().any(|(t, _)| *t == a) {
            targets.push((a, listed.to_string()));
        }
    };
    for peer in peers {
        match peer {
            PeerSpec::Address(a) => push(*a, &a.to_string(), &mut targets),
            PeerSpec::Name(n) => match resolved.iter().find(|(name, _)| name == n) {
                Some((_, Ok(addrs))) if !addrs.is_empty() => {
                    for a in addrs {
                        push(*a, n, &mut targets);
                    }
                }
                Some((_, Err(e))) => plan.skipped.push(Skipped {
                    peer: n.clone(),
                    reason: e.clone(),
                }),
                _ => plan.skipped.push(Skipped {
                    peer: n.clone(),
                    reason: "resolves to no address".into(),
                }),
            },
        }
    }
    // The local end: the configured address of the peer's family, else the kernel's choice.
    let lookups: Vec<IpAddr> = targets
        .iter()
        .filter(|(a, _)| {
            !cfg.local_addresses
                .iter()
                .any(|l| l.is_ipv4() == a.is_ipv4())
        })
        .map(|(a, _)| *a)
        .collect();
    let routed = route::source_addresses(&lookups, deadline)?;
    for (address, listed_as) in targets {
        let local = match cfg
            .local_addresses
            .iter()
            .find(|l| l.is_ipv4() == address.is_ipv4())
        {
            Some(l) => Some(*l),
            None => lookups
                .iter()
                .position(|a| *a == address)
                .and_then(|i| routed[i]),
        };
        match local {
            Some(local) => plan.peers.push(PlannedPeer {
                address,
                local,
                listed_as,
                conns: conns_for(cfg, local, address),
            }),
            None => plan.skipped.push(Skipped {
                peer: address.to_string(),
                reason: "no local address of its family has a route to it".into(),
            }),
        }
    }
    if plan.peers.is_empty() && plan.skipped.is_empty() && !from_cluster {
        return Err(Error::configured(
            "peers",
            "lists only this node's own addresses; list the other nodes too",
        ));
    }
    plan.pass_conns = plan
        .locals()
        .into_iter()
        .flat_map(|l| pass_conns_for(cfg, l))
        .collect();
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawParams;

    #[test]
    fn forward_pairs_mirror_between_the_ends() {
        let mut raw = RawParams::default();
        raw.set("peers", "192.0.2.1 192.0.2.2");
        raw.set("secret_file", "/k");
        raw.set(
            "forward_subnets",
            "192.0.2.1=10.88.1.0/24 192.0.2.2=10.88.2.0/24",
        );
        let cfg = MeshConfig::parse(&raw).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let sub = |s: &str| {
            let (addr, len) = s.split_once('/').unwrap();
            Subnet {
                addr: addr.parse().unwrap(),
                len: len.parse().unwrap(),
            }
        };
        let at_a = forward_pairs(&cfg, a, b);
        assert_eq!(
            at_a,
            vec![
                (sub("10.88.1.0/24"), sub("192.0.2.2/32")),
                (sub("192.0.2.1/32"), sub("10.88.2.0/24")),
                (sub("10.88.1.0/24"), sub("10.88.2.0/24")),
            ]
        );
        // B's conns are A's mirrored: every selector pair A has, B has the other way round.
        let at_b: Vec<(Subnet, Subnet)> = forward_pairs(&cfg, b, a)
            .into_iter()
            .map(|(x, y)| (y, x))
            .collect();
        let mut sorted_a = at_a.clone();
        let mut sorted_b = at_b;
        sorted_a.sort();
        sorted_b.sort();
        assert_eq!(sorted_a, sorted_b);
        assert_eq!(
            conns_for(&cfg, a, b)
                .iter()
                .filter(|c| c.contains("-fwd"))
                .count(),
            3
        );
        for bad in [
            "192.0.2.1",
            "192.0.2.1=10.88.1.0",
            "192.0.2.1=10.88.1.0/33",
            "192.0.2.1=2001:db8::/64",
            "x=10.0.0.0/8",
        ] {
            raw.set("forward_subnets", bad);
            let e = MeshConfig::parse(&raw).unwrap_err();
            assert!(e.reason().starts_with("forward_subnets:"), "{bad}: {e}");
        }
    }

    #[test]
    fn conn_names_follow_policy_and_ports() {
        let mut raw = RawParams::default();
        raw.set("peers", "192.0.2.2");
        raw.set("secret_file", "/k");
        raw.set("secure_ports", "5432 udp/5405");
        let use_cfg = MeshConfig::parse(&raw).unwrap();
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(
            conns_for(&use_cfg, "2001:db8::1".parse().unwrap(), v6),
            vec![
                "vm-2001-db8--2",
                "vm-2001-db8--2-tcp5432-out",
                "vm-2001-db8--2-tcp5432-in",
                "vm-2001-db8--2-udp5405-out",
                "vm-2001-db8--2-udp5405-in",
            ]
        );
        raw.set("policy", "require");
        raw.set("secure_ports", "");
        let req = MeshConfig::parse(&raw).unwrap();
        assert_eq!(
            conns_for(&req, "2001:db8::1".parse().unwrap(), v6),
            vec!["vm-2001-db8--2"]
        );
        assert_eq!(
            pass_conns_for(&req, "192.0.2.1".parse().unwrap()),
            vec![
                "vm-pass-192.0.2.1-ssh-in",
                "vm-pass-192.0.2.1-ssh-out",
                "vm-pass-192.0.2.1-icmp"
            ]
        );
        raw.set("policy", "disable");
        assert!(pass_conns_for(&MeshConfig::parse(&raw).unwrap(), v6).is_empty());
    }
}
