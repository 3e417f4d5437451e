//! The cluster as Corosync knows it: its nodelist (from the running Corosync's cmap, else
//! from corosync.conf), the members it has joined with and their addresses, and the
//! cluster key that pcs put on every node. What the zero-configuration mesh is built from.
//!
//! A node's name in the nodelist is often one only /etc/hosts knows (`pcs cluster setup`
//! writes what it was given), and a name is only as true as the resolver that answers
//! for it. The addresses Corosync itself uses for a member (`runtime.members.<id>.ip`)
//! are the ones the cluster's traffic already goes to, so they come first; then the
//! addresses written in the nodelist; a name is resolved only when neither gives one
//! (and then under the DNSSEC rules of named peers, see `MeshEnv::plan`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::agents::mesh::config::{parse_peer, PeerSpec};
use crate::agents::mesh::plan::{Listed, PeerOrigin};
use crate::error::{Error, Result};
use crate::exec;
use crate::params::MESH_PEERS_MAX;

/// Where a peer list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerSource {
    Parameter,
    CorosyncRuntime,
    CorosyncConf,
}

/// One `node { }` of the nodelist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub nodeid: Option<u32>,
    pub name: Option<String>,
    /// ring0_addr … ring7_addr as written: addresses or names.
    pub rings: Vec<String>,
}

/// One entry of Corosync's `runtime.members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub nodeid: u32,
    /// The addresses Corosync talks to the member on (one per link).
    pub addresses: Vec<IpAddr>,
    /// `joined`, not `left`.
    pub joined: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Empty when read from corosync.conf (Corosync not running).
    pub members: Vec<Member>,
    pub source: PeerSource,
}

/// How long corosync-cmapctl may take: a hung Corosync must leave the operation time to
/// fall back to corosync.conf.
const CMAPCTL_TIMEOUT: Duration = Duration::from_secs(5);

/// Knet has 8 links (ring0 … ring7).
const RINGS_MAX: u32 = 8;

/// The cluster from the running Corosync, else from corosync.conf.
pub fn read(conf: &Path, path_env: &str, deadline: Instant) -> Result<Cluster> {
    if let Some(cmapctl) = exec::find_in_path("corosync-cmapctl", path_env) {
        let own = deadline.min(Instant::now() + CMAPCTL_TIMEOUT);
        // Fails (CS_ERR_LIBRARY) when Corosync is not running: then corosync.conf.
        if let Ok(out) = exec::run(
            cmapctl.as_os_str(),
            &["nodelist.node", "runtime.members"],
            own,
        ) {
            if out.success() {
                let (nodes, members) = parse_cmap(&out.stdout)?;
                if !nodes.is_empty() || !members.is_empty() {
                    return Ok(Cluster {
                        nodes,
                        members,
                        source: PeerSource::CorosyncRuntime,
                    });
                }
            }
        }
    }
    let text = std::fs::read_to_string(conf).map_err(|e| {
        Error::configured(
            "corosync_conf",
            format!("{}: {e}; Corosync is not running either: set peers, or point corosync_conf at the cluster's corosync.conf", conf.display()),
        )
    })?;
    let nodes = parse_conf(&text);
    if nodes.iter().all(|n| n.rings.is_empty()) {
        return Err(Error::configured(
            "corosync_conf",
            format!(
                "{} has no nodelist with ring addresses; set peers",
                conf.display()
            ),
        ));
    }
    Ok(Cluster {
        nodes,
        members: Vec::new(),
        source: PeerSource::CorosyncConf,
    })
}

impl Cluster {
    /// The peers to plan for, node by node: a joined member's addresses as Corosync
    /// reports them; else the addresses its nodelist entry writes; else its names, to be
    /// resolved. Joined members missing from the nodelist (udpu without one) count too.
    pub fn peers(&self) -> Result<Vec<Listed>> {
        let param = "corosync_conf";
        let joined = |id: Option<u32>| {
            self.members
                .iter()
                .find(|m| Some(m.nodeid) == id && m.joined && !m.addresses.is_empty())
        };
        let mut out = Vec::new();
        for node in &self.nodes {
            let label = node
                .name
                .clone()
                .or_else(|| node.rings.first().cloned())
                .or_else(|| node.nodeid.map(|id| format!("nodeid {id}")))
                .unwrap_or_default();
            let rings = node
                .rings
                .iter()
                .map(|r| parse_peer(param, r))
                .collect::<Result<Vec<_>>>()?;
            // The name the node's certificate is for, under auth=cert: the one Corosync
            // knows it by, however its address is found.
            let cert_name = rings.iter().find_map(|r| match r {
                PeerSpec::Name(n) => Some(n.clone()),
                PeerSpec::Address(_) => None,
            });
            if let Some(m) = joined(node.nodeid) {
                out.extend(m.addresses.iter().map(|a| Listed {
                    spec: PeerSpec::Address(*a),
                    listed_as: label.clone(),
                    origin: PeerOrigin::CorosyncMember,
                    cert_name: cert_name.clone(),
                }));
                continue;
            }
            let addresses: Vec<IpAddr> = rings
                .iter()
                .filter_map(|r| match r {
                    PeerSpec::Address(a) => Some(*a),
                    PeerSpec::Name(_) => None,
                })
                .collect();
            if addresses.is_empty() {
                // Only names: listed as the name, so a DNS outage keeps what it resolved to.
                out.extend(rings.into_iter().map(|r| Listed {
                    listed_as: r.to_string(),
                    cert_name: Some(r.to_string()),
                    spec: r,
                    origin: PeerOrigin::ResolvedName,
                }));
            } else {
                out.extend(addresses.into_iter().map(|a| Listed {
                    spec: PeerSpec::Address(a),
                    listed_as: label.clone(),
                    origin: PeerOrigin::CorosyncConf,
                    cert_name: cert_name.clone(),
                }));
            }
        }
        for m in &self.members {
            if self.nodes.iter().all(|n| n.nodeid != Some(m.nodeid)) && m.joined {
                out.extend(m.addresses.iter().map(|a| Listed {
                    spec: PeerSpec::Address(*a),
                    listed_as: format!("nodeid {}", m.nodeid),
                    origin: PeerOrigin::CorosyncMember,
                    cert_name: None,
                }));
            }
        }
        if out.is_empty() {
            return Err(Error::configured(
                param,
                "Corosync's nodelist gives no node an address or name; set peers",
            ));
        }
        if out.len() > MESH_PEERS_MAX {
            return Err(Error::configured(
                param,
                format!(
                    "the cluster lists {} peer addresses; at most {MESH_PEERS_MAX} are supported",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }
}

/// `corosync-cmapctl nodelist.node runtime.members`, as Corosync 3.1 prints it:
///
/// ```text
/// runtime.members.2.ip (str) = r(0) ip(192.0.2.2) r(1) ip(2001:db8::2)
/// runtime.members.2.status (str) = joined
/// nodelist.node.1.name (str) = node2
/// nodelist.node.1.nodeid (u32) = 2
/// nodelist.node.1.ring0_addr (str) = node2.example.test
/// ```
///
/// Strict: any line not of that shape is refused (with the line), not skipped, so a
/// format change is noticed rather than read as "no peers".
pub fn parse_cmap(text: &str) -> Result<(Vec<Node>, Vec<Member>)> {
    let bad = |line: &str, why: &str| {
        Error::Generic(format!(
            "corosync-cmapctl printed {:?}: {why}",
            line.chars().take(120).collect::<String>()
        ))
    };
    // By position in the nodelist, and by node id.
    let mut nodes: BTreeMap<u32, Node> = BTreeMap::new();
    let mut members: BTreeMap<u32, Member> = BTreeMap::new();
    for line in text.lines() {
        let (key, rest) = line
            .split_once(" (")
            .ok_or_else(|| bad(line, "not KEY (TYPE) = VALUE"))?;
        let (ty, value) = rest
            .split_once(") = ")
            .ok_or_else(|| bad(line, "not KEY (TYPE) = VALUE"))?;
        let value = value.trim_end();
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            ["nodelist", "local_node_pos"] => {}
            ["nodelist", "node", pos, field] => {
                let pos: u32 = pos.parse().map_err(|_| bad(line, "bad node position"))?;
                if nodes.len() >= MESH_PEERS_MAX && !nodes.contains_key(&pos) {
                    return Err(bad(line, "too many nodes"));
                }
                let node = nodes.entry(pos).or_default();
                match (*field, ty) {
                    ("name", "str") => node.name = Some(value.to_string()),
                    ("nodeid", "u32") => {
                        node.nodeid = Some(value.parse().map_err(|_| bad(line, "bad nodeid"))?)
                    }
                    (f, "str") if ring_index(f).is_some() => node.rings.push(value.to_string()),
                    (f, _) if ring_index(f).is_some() || f == "name" || f == "nodeid" => {
                        return Err(bad(line, "unexpected type"))
                    }
                    // quorum_votes and the like: nothing the mesh needs.
                    _ => {}
                }
            }
            ["runtime", "members", id, field] => {
                let id: u32 = id.parse().map_err(|_| bad(line, "bad member id"))?;
                if members.len() >= MESH_PEERS_MAX && !members.contains_key(&id) {
                    return Err(bad(line, "too many members"));
                }
                let member = members.entry(id).or_insert_with(|| Member {
                    nodeid: id,
                    addresses: Vec::new(),
                    joined: false,
                });
                match (*field, ty) {
                    ("ip", "str") => {
                        member.addresses = parse_member_ip(value).map_err(|why| bad(line, why))?
                    }
                    ("status", "str") => {
                        member.joined = match value {
                            "joined" => true,
                            "left" => false,
                            _ => return Err(bad(line, "status is neither joined nor left")),
                        }
                    }
                    ("ip" | "status", _) => return Err(bad(line, "unexpected type")),
                    // config_version, join_count.
                    _ => {}
                }
            }
            _ => return Err(bad(line, "not a nodelist or member key")),
        }
    }
    // Each ring address once, empty ones left out.
    let nodes = nodes
        .into_values()
        .map(|mut n| {
            let mut seen: Vec<String> = Vec::new();
            n.rings.retain(|r| {
                let new = !r.is_empty() && !seen.contains(r);
                seen.push(r.clone());
                new
            });
            n
        })
        .collect();
    Ok((nodes, members.into_values().collect()))
}

/// `ring3_addr` → 3.
fn ring_index(field: &str) -> Option<u32> {
    field
        .strip_prefix("ring")?
        .strip_suffix("_addr")?
        .parse()
        .ok()
        .filter(|i| *i < RINGS_MAX)
}

/// `r(0) ip(192.0.2.2) r(1) ip(2001:db8::2) ` → the addresses, in link order.
fn parse_member_ip(value: &str) -> std::result::Result<Vec<IpAddr>, &'static str> {
    let mut out = Vec::new();
    let mut tokens = value.split_whitespace();
    while let Some(link) = tokens.next() {
        let ok_link = link
            .strip_prefix("r(")
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|l| l.parse::<u32>().ok())
            .is_some_and(|l| l < RINGS_MAX);
        if !ok_link {
            return Err("member address list is not r(N) ip(ADDRESS) …");
        }
        let addr: IpAddr = tokens
            .next()
            .and_then(|t| t.strip_prefix("ip("))
            .and_then(|t| t.strip_suffix(')'))
            .and_then(|t| t.parse().ok())
            .ok_or("member address list is not r(N) ip(ADDRESS) …")?;
        if addr.is_unspecified() || addr.is_multicast() {
            return Err("member address is not a unicast address");
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// The `node { }` entries inside `nodelist { }` of a corosync.conf.
pub fn parse_conf(text: &str) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_suffix('{') {
            stack.push(section.trim().to_string());
            if stack.len() == 2 && stack[0] == "nodelist" && stack[1] == "node" {
                out.push(Node::default());
            }
            continue;
        }
        if line == "}" {
            stack.pop();
            continue;
        }
        let in_node = stack.len() == 2 && stack[0] == "nodelist" && stack[1] == "node";
        let (true, Some((key, value)), Some(node)) =
            (in_node, line.split_once(':'), out.last_mut())
        else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().to_string());
        if value.is_empty() {
            continue;
        }
        match key {
            "name" => node.name = Some(value),
            "nodeid" => node.nodeid = value.parse().ok(),
            k if ring_index(k).is_some() && !node.rings.contains(&value) => node.rings.push(value),
            _ => {}
        }
    }
    out
}

pub const AUTHKEY_MIN_BYTES: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "totem {\n    version: 2\n    cluster_name: vipsec\n    interface {\n        ring0_addr: 203.0.113.1\n    }\n}\n\
nodelist {\n    node {\n        name: alpha\n        nodeid: 1\n        ring0_addr: 192.0.2.1\n        ring1_addr: 2001:db8::1 # second link\n    }\n\
    node {\n        name: beta\n        nodeid: 2\n        ring0_addr: beta.example.test\n    }\n    node {\n        nodeid: 3\n        ring0_addr: 192.0.2.3\n    }\n}\n\
quorum {\n    provider: corosync_votequorum\n}\n";

    fn node(id: u32, name: Option<&str>, rings: &[&str]) -> Node {
        Node {
            nodeid: Some(id),
            name: name.map(String::from),
            rings: rings.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn shown(peers: &[Listed]) -> Vec<String> {
        peers
            .iter()
            .map(|p| format!("{} {} {}", p.listed_as, p.spec, p.origin.as_str()))
            .collect()
    }

    #[test]
    fn conf_nodelist_with_names_addresses_and_two_rings() {
        assert_eq!(
            parse_conf(CONF),
            vec![
                node(1, Some("alpha"), &["192.0.2.1", "2001:db8::1"]),
                node(2, Some("beta"), &["beta.example.test"]),
                node(3, None, &["192.0.2.3"]),
            ]
        );
        assert!(parse_conf("totem {\n version: 2\n}\n").is_empty());
        // Without Corosync: the written addresses; a name only where there is none.
        let cluster = Cluster {
            nodes: parse_conf(CONF),
            members: Vec::new(),
            source: PeerSource::CorosyncConf,
        };
        assert_eq!(
            shown(&cluster.peers().unwrap()),
            vec![
                "alpha 192.0.2.1 corosync-conf",
                "alpha 2001:db8::1 corosync-conf",
                "beta.example.test beta.example.test resolved-name",
                "192.0.2.3 192.0.2.3 corosync-conf",
            ]
        );
    }

    /// Captured from Debian 12's corosync 3.1.7 (`corosync-cmapctl nodelist.node
    /// runtime.members`, two of four nodes up, two links); Debian 13's 3.1.9 printed the
    /// very same bytes. Note the space after the last `ip(…)`.
    const CMAP_31: &str = "runtime.members.1.config_version (u64) = 0
runtime.members.1.ip (str) = r(0) ip(192.0.2.1) r(1) ip(2001:db8::1) 
runtime.members.1.join_count (u32) = 1
runtime.members.1.status (str) = joined
runtime.members.2.config_version (u64) = 0
runtime.members.2.ip (str) = r(0) ip(192.0.2.2) r(1) ip(2001:db8::2) 
runtime.members.2.join_count (u32) = 1
runtime.members.2.status (str) = joined
nodelist.node.0.name (str) = node1
nodelist.node.0.nodeid (u32) = 1
nodelist.node.0.ring0_addr (str) = 192.0.2.1
nodelist.node.0.ring1_addr (str) = 2001:db8::1
nodelist.node.1.name (str) = node2
nodelist.node.1.nodeid (u32) = 2
nodelist.node.1.ring0_addr (str) = nodeb.example.test
nodelist.node.1.ring1_addr (str) = 2001:db8::2
nodelist.node.2.name (str) = node3
nodelist.node.2.nodeid (u32) = 3
nodelist.node.2.ring0_addr (str) = impostor.example.test
nodelist.node.2.ring1_addr (str) = 2001:db8::3
nodelist.node.3.name (str) = node4
nodelist.node.3.nodeid (u32) = 4
nodelist.node.3.ring0_addr (str) = good.example.test
nodelist.node.3.ring1_addr (str) = 2001:db8::10
";

    /// The members after node2 stopped (captured, 3.1.7 and 3.1.9 alike), with two
    /// nodelist entries.
    const CMAP_31_LEFT: &str = "runtime.members.1.config_version (u64) = 0
runtime.members.1.ip (str) = r(0) ip(192.0.2.1) r(1) ip(2001:db8::1) 
runtime.members.1.join_count (u32) = 1
runtime.members.1.status (str) = joined
runtime.members.2.config_version (u64) = 0
runtime.members.2.ip (str) = r(0) ip(192.0.2.2) r(1) ip(2001:db8::2) 
runtime.members.2.join_count (u32) = 1
runtime.members.2.status (str) = left
nodelist.local_node_pos (u32) = 0
nodelist.node.0.name (str) = node1
nodelist.node.0.nodeid (u32) = 1
nodelist.node.0.ring0_addr (str) = 192.0.2.1
nodelist.node.1.name (str) = node2
nodelist.node.1.nodeid (u32) = 2
nodelist.node.1.ring0_addr (str) = nodeb.example.test
";

    #[test]
    fn cmap_members_first_then_written_addresses_then_names() {
        let (nodes, members) = parse_cmap(CMAP_31).unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(
            nodes[1],
            node(2, Some("node2"), &["nodeb.example.test", "2001:db8::2"])
        );
        assert_eq!(
            members[1],
            Member {
                nodeid: 2,
                addresses: vec!["192.0.2.2".parse().unwrap(), "2001:db8::2".parse().unwrap()],
                joined: true
            }
        );
        let cluster = Cluster {
            nodes,
            members,
            source: PeerSource::CorosyncRuntime,
        };
        assert_eq!(
            shown(&cluster.peers().unwrap()),
            vec![
                "node1 192.0.2.1 corosync-member",
                "node1 2001:db8::1 corosync-member",
                // The member's addresses, not what its name would resolve to.
                "node2 192.0.2.2 corosync-member",
                "node2 2001:db8::2 corosync-member",
                // Not members: the address their entries write, their names left alone.
                "node3 2001:db8::3 corosync-conf",
                "node4 2001:db8::10 corosync-conf",
            ]
        );
        // Under auth=cert a node must present the certificate of the name its entry
        // writes, whichever address it is reached by.
        let peers = cluster.peers().unwrap();
        assert_eq!(peers[2].cert_name.as_deref(), Some("nodeb.example.test"));
        assert_eq!(peers[0].cert_name, None);
        // A member that left: back to its nodelist entry (here only a name).
        let (nodes, members) = parse_cmap(CMAP_31_LEFT).unwrap();
        assert!(!members[1].joined);
        let cluster = Cluster {
            nodes,
            members,
            source: PeerSource::CorosyncRuntime,
        };
        assert_eq!(
            shown(&cluster.peers().unwrap()),
            vec![
                "node1 192.0.2.1 corosync-member",
                "node1 2001:db8::1 corosync-member",
                "nodeb.example.test nodeb.example.test resolved-name"
            ]
        );
        // A joined member the nodelist does not name (udpu without one) is a peer too.
        let (_, members) = parse_cmap(CMAP_31_LEFT).unwrap();
        let cluster = Cluster {
            nodes: Vec::new(),
            members,
            source: PeerSource::CorosyncRuntime,
        };
        assert_eq!(
            shown(&cluster.peers().unwrap()),
            vec![
                "nodeid 1 192.0.2.1 corosync-member",
                "nodeid 1 2001:db8::1 corosync-member"
            ]
        );
    }

    #[test]
    fn cmap_garbage_is_refused_with_the_line() {
        for bad in [
            "Failed to initialize the cmap API. Error CS_ERR_LIBRARY",
            "runtime.members.1.ip (str) = r(0) ip(192.0.2.1) r(1)",
            "runtime.members.1.ip (str) = r(0) ip(node1.example.test)",
            "runtime.members.1.ip (str) = ip(192.0.2.1)",
            "runtime.members.1.ip (str) = r(9) ip(192.0.2.1)",
            "runtime.members.1.ip (str) = r(0) ip(0.0.0.0)",
            "runtime.members.1.ip (u32) = 3",
            "runtime.members.x.status (str) = joined",
            "runtime.members.1.status (str) = joined\nextra",
            "runtime.members.1.status (str) = maybe",
            "nodelist.node.0.nodeid (u32) = -1",
            "nodelist.node.0.ring0_addr (u8) = 1",
            "totem.cluster_name (str) = x",
        ] {
            let e = parse_cmap(bad).unwrap_err();
            assert_eq!(e.code(), 1, "{bad}");
            assert!(
                e.reason().starts_with("corosync-cmapctl printed ") && !e.reason().contains('\n'),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(parse_cmap("").unwrap(), (Vec::new(), Vec::new()));
    }
}
