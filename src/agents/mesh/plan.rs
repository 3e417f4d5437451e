//! What this node must set up: the peers it tunnels to (names resolved, its own addresses
//! skipped), the local address for each, and the names of the conns that carry them.

use std::collections::BTreeSet;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::{MeshAuth, MeshConfig, PeerSpec, Policy};
use crate::config::{Secret, Subnet};
use crate::error::{Error, Result};
use crate::ike::{
    ConnAuth, ConnDef, ConnMode, DeadPeer, Identity, Install, ProtoPort, PskEntry, Remote, Shunt,
};
use crate::kernel::{addr, route};
use crate::keys::pair_psk;

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
    /// The main conn's name ("" for a peer read back from a damaged state file, which
    /// then fails as an unknown conn instead of panicking).
    pub fn main_conn(&self) -> &str {
        self.conns.first().map_or("", String::as_str)
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

/// The conns a peer needs under `cfg` (the first is the main, host-to-host one).
pub fn conns_for(cfg: &MeshConfig, local: IpAddr, peer: IpAddr) -> Vec<String> {
    peer_conns(cfg, local, peer)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// The conns that keep SSH/ICMP outside the policy for one local address.
pub fn pass_conns_for(cfg: &MeshConfig, local: IpAddr) -> Vec<String> {
    pass_conns(cfg, local).into_iter().map(|c| c.name).collect()
}

/// Every conn of the plan, as the IKE backend renders it. The bypass conns (SSH, ICMP)
/// come first: they are loaded and routed before any pair's policy, so a start under
/// `require` never holds the excluded traffic even for a moment (seen in the lab: one
/// ping reply of the rollout held while the pairs were routed ahead of the bypass).
pub fn conn_defs(cfg: &MeshConfig, plan: &MeshPlan) -> Vec<ConnDef> {
    let mut conns: Vec<ConnDef> = plan
        .locals()
        .into_iter()
        .flat_map(|l| pass_conns(cfg, l))
        .collect();
    conns.extend(plan.peers.iter().flat_map(|p| {
        let mut conns = peer_conns(cfg, p.local, p.address);
        // A peer listed by name (auth=cert) must present a certificate for that name:
        // the IKE daemon refuses any other one during IKE_AUTH, so a valid
        // certificate of the same CA gets no SA from another peer's address, not
        // even until the next monitor. (Peers listed by address are checked by name
        // at monitor time: their certificates need carry no address.)
        if p.listed_as.parse::<IpAddr>().is_err() {
            for c in &mut conns {
                if let ConnAuth::Cert { remote, .. } = &mut c.auth {
                    *remote = Some(Identity::Fqdn(p.listed_as.clone()));
                }
            }
        }
        conns
    }));
    conns
}

/// The pre-shared key of every pair (auth=psk): HKDF of the master secret and the pair.
pub fn pair_keys(plan: &MeshPlan, master: &Secret) -> Vec<PskEntry> {
    plan.peers
        .iter()
        .map(|p| PskEntry {
            local: Identity::Address(p.local),
            remote: Some(Identity::Address(p.address)),
            key: pair_psk(master, &p.local.to_string(), &p.address.to_string()),
        })
        .collect()
}

/// A conn between this node and a peer, as the mesh's policy wants it.
fn mesh_conn(cfg: &MeshConfig, name: String, local: IpAddr, peer: IpAddr) -> ConnDef {
    let (on_failure, while_negotiating) = match cfg.policy {
        Policy::Require | Policy::Disable => (Shunt::Drop, Shunt::Hold),
        Policy::Use => (Shunt::Pass, Shunt::Pass),
    };
    ConnDef {
        name,
        local,
        remote: Remote::Host(peer),
        local_subnet: None,
        remote_subnet: None,
        local_port: None,
        remote_port: None,
        mode: ConnMode::Transport,
        auth: match &cfg.auth {
            MeshAuth::Psk { .. } => ConnAuth::Psk {
                local: Identity::Address(local),
                remote: Some(Identity::Address(peer)),
            },
            MeshAuth::Cert { nickname } => ConnAuth::Cert {
                nickname: nickname.clone(),
                remote: None,
            },
        },
        on_failure,
        while_negotiating,
        // disable: loaded, but no kernel policy at all (the quick off switch).
        install: if cfg.policy == Policy::Disable {
            Install::Listen
        } else {
            Install::OnDemand
        },
        dead_peer: DeadPeer::Restart,
        retry_forever: true,
        // The daemon's updown script per routed conn made loading 100 peers take 2 s.
        updown: false,
        initial_contact: false,
        priority: None,
    }
}

fn peer_conns(cfg: &MeshConfig, local: IpAddr, peer: IpAddr) -> Vec<ConnDef> {
    let main = format!("vm-{}", addr_tag(peer));
    let mut conns = vec![mesh_conn(cfg, main.clone(), local, peer)];
    for p in &cfg.secure_ports {
        let base = format!("{main}-{}{}", p.proto, p.port);
        let port = ProtoPort::new(p.proto, Some(p.port));
        let any = ProtoPort::new(p.proto, None);
        // Always fail-closed, whatever the mesh's policy: toward the peer's port, and
        // from the peer to this node's.
        for (suffix, mine, theirs) in [("out", &any, &port), ("in", &port, &any)] {
            conns.push(ConnDef {
                local_port: Some(mine.clone()),
                remote_port: Some(theirs.clone()),
                on_failure: Shunt::Drop,
                while_negotiating: Shunt::Hold,
                ..mesh_conn(cfg, format!("{base}-{suffix}"), local, peer)
            });
        }
    }
    // Forwarded (container) traffic: tunnel mode between the subnets, so the kernel
    // gets out and fwd policies for it.
    for (i, (mine, theirs)) in forward_pairs(cfg, local, peer).into_iter().enumerate() {
        conns.push(ConnDef {
            local_subnet: Some(mine),
            remote_subnet: Some(theirs),
            mode: ConnMode::Tunnel,
            ..mesh_conn(cfg, format!("{main}-fwd{}", i + 1), local, peer)
        });
    }
    conns
}

/// Priority of the conns that keep SSH/ICMP in clear: before everything else.
pub const PASS_PRIORITY: u32 = 100;

fn pass_conns(cfg: &MeshConfig, local: IpAddr) -> Vec<ConnDef> {
    if cfg.policy == Policy::Disable {
        return Vec::new();
    }
    let tag = addr_tag(local);
    let (everyone, icmp) = if local.is_ipv4() {
        (
            Subnet {
                addr: IpAddr::from([0, 0, 0, 0]),
                len: 0,
            },
            "icmp",
        )
    } else {
        (
            Subnet {
                addr: IpAddr::from([0u16; 8]),
                len: 0,
            },
            "ipv6-icmp",
        )
    };
    let pass = |name: String, mine: ProtoPort, theirs: ProtoPort| ConnDef {
        name,
        local,
        remote: Remote::Any,
        local_subnet: None,
        remote_subnet: Some(everyone),
        local_port: Some(mine),
        remote_port: Some(theirs),
        mode: ConnMode::Bypass,
        auth: ConnAuth::None,
        on_failure: Shunt::Pass,
        while_negotiating: Shunt::Pass,
        install: Install::OnDemand,
        dead_peer: DeadPeer::Forget,
        retry_forever: false,
        updown: false,
        initial_contact: false,
        priority: Some(PASS_PRIORITY),
    };
    let mut conns = Vec::new();
    if cfg.exclude_ssh {
        let (ssh, tcp) = (ProtoPort::new("tcp", Some(22)), ProtoPort::new("tcp", None));
        conns.push(pass(
            format!("vm-pass-{tag}-ssh-in"),
            ssh.clone(),
            tcp.clone(),
        ));
        conns.push(pass(format!("vm-pass-{tag}-ssh-out"), tcp, ssh));
    }
    if cfg.exclude_icmp {
        let any = ProtoPort::new(icmp, None);
        conns.push(pass(format!("vm-pass-{tag}-icmp"), any.clone(), any));
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
    use crate::ike::libreswan_conf::{render_conns, render_secrets, Version};

    fn mesh_plan(policy: &str) -> (MeshPlan, MeshConfig) {
        let mut raw = RawParams::default();
        raw.set("peers", "192.0.2.1 192.0.2.2 2001:db8::2");
        raw.set("secret_file", "/k");
        raw.set("policy", policy);
        raw.set("secure_ports", "5432");
        let cfg = MeshConfig::parse(&raw).unwrap();
        let peer = |a: &str, l: &str| PlannedPeer {
            address: a.parse().unwrap(),
            local: l.parse().unwrap(),
            listed_as: a.into(),
            conns: conns_for(&cfg, l.parse().unwrap(), a.parse().unwrap()),
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

    /// The planned conns, as libreswan gets them: every name the plan lists has its conn,
    /// with the policy's shunts, and secure ports stay fail-closed whatever the policy.
    #[test]
    fn planned_conns_per_policy_as_libreswan_renders_them() {
        let v4 = Version {
            major: 4,
            minor: 10,
        };
        let (plan, cfg) = mesh_plan("require");
        let defs = conn_defs(&cfg, &plan);
        let names: BTreeSet<String> = defs.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, plan.all_conns());
        let c = render_conns(&defs, v4, None);
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
            "\tkeyingtries=%forever",
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
                && ssh.contains("\tauthby=never\n\ttype=passthrough\n\tpriority=100\n"),
            "{ssh}"
        );
        assert!(conn("vm-pass-2001-db8--1-icmp").contains("\tleftprotoport=ipv6-icmp\n"));
        assert!(conn("vm-pass-192.0.2.1-icmp").contains("\tleftprotoport=icmp\n"));

        let (plan, cfg) = mesh_plan("use");
        let c5 = render_conns(
            &conn_defs(&cfg, &plan),
            Version { major: 5, minor: 2 },
            None,
        );
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
        let cd = render_conns(&conn_defs(&cfg, &plan), v4, None);
        assert!(
            !cd.contains("auto=ondemand") && !cd.contains("passthrough"),
            "{cd}"
        );
        let secrets = render_secrets(&pair_keys(
            &plan,
            &Secret::from_bytes(b"vipsec test master secret 0123456789abcdef".to_vec()),
        ));
        let secrets = String::from_utf8(secrets.expose().to_vec()).unwrap();

        assert!(secrets.contains("192.0.2.1 192.0.2.2 : PSK 0x064a0881b4f73b875cf521f161b6649ceadaee3ab933928ed460b687e71a69d9\n"), "{secrets}");
        assert!(secrets.contains("2001:db8::1 2001:db8::2 : PSK 0x"));
    }

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
