//! The cluster as Corosync knows it: the nodelist's ring addresses (from the running
//! Corosync's cmap, else from corosync.conf) and the cluster key that pcs put on every
//! node. What the zero-configuration mesh is built from.

use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::exec;

/// Where a peer list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerSource {
    Parameter,
    CorosyncRuntime,
    CorosyncConf,
}

/// Ring addresses (names or addresses, as written) of every node, in nodelist order.
pub fn nodelist(
    conf: &Path,
    path_env: &str,
    deadline: Instant,
) -> Result<(Vec<String>, PeerSource)> {
    if let Some(cmapctl) = exec::find_in_path("corosync-cmapctl", path_env) {
        if let Ok(out) = exec::run(cmapctl.as_os_str(), &["-b", "nodelist.node"], deadline) {
            let addrs = parse_cmap(&out.stdout);
            if out.success() && !addrs.is_empty() {
                return Ok((addrs, PeerSource::CorosyncRuntime));
            }
        }
    }
    let text = std::fs::read_to_string(conf).map_err(|e| {
        Error::configured(
            "corosync_conf",
            format!("{}: {e}; Corosync is not running either: set peers, or point corosync_conf at the cluster's corosync.conf", conf.display()),
        )
    })?;
    let addrs = parse_conf(&text);
    if addrs.is_empty() {
        return Err(Error::configured(
            "corosync_conf",
            format!(
                "{} has no nodelist with ring addresses; set peers",
                conf.display()
            ),
        ));
    }
    Ok((addrs, PeerSource::CorosyncConf))
}

/// `corosync-cmapctl -b nodelist.node` lines: `nodelist.node.0.ring0_addr (str) = 192.0.2.1`.
pub fn parse_cmap(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        let key = key.split_whitespace().next().unwrap_or("");
        let mut parts = key.split('.');
        let is_ring = parts.next() == Some("nodelist")
            && parts.next() == Some("node")
            && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
            && parts
                .next()
                .is_some_and(|k| k.starts_with("ring") && k.ends_with("_addr"))
            && parts.next().is_none();
        if is_ring && !value.trim().is_empty() && !out.contains(&value.trim().to_string()) {
            out.push(value.trim().to_string());
        }
    }
    out
}

/// The ringN_addr values of every `node { }` inside `nodelist { }` of a corosync.conf.
pub fn parse_conf(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_suffix('{') {
            stack.push(section.trim().to_string());
            continue;
        }
        if line == "}" {
            stack.pop();
            continue;
        }
        let in_node = stack.len() == 2 && stack[0] == "nodelist" && stack[1] == "node";
        if let (true, Some((key, value))) = (in_node, line.split_once(':')) {
            let key = key.trim();
            let value = value.trim().to_string();
            if key.starts_with("ring")
                && key.ends_with("_addr")
                && !value.is_empty()
                && !out.contains(&value)
            {
                out.push(value);
            }
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

    #[test]
    fn conf_nodelist_with_names_addresses_and_two_rings() {
        assert_eq!(
            parse_conf(CONF),
            vec!["192.0.2.1", "2001:db8::1", "beta.example.test", "192.0.2.3"]
        );
        assert!(parse_conf("totem {\n version: 2\n}\n").is_empty());
    }

    #[test]
    fn cmap_nodelist() {
        // The format of corosync 3.1's `corosync-cmapctl -b nodelist.node`.
        let cmap = "nodelist.node.0.name (str) = node1\nnodelist.node.0.nodeid (u32) = 1\n\
nodelist.node.0.ring0_addr (str) = 192.0.2.1\nnodelist.node.1.name (str) = node2\n\
nodelist.node.1.ring0_addr (str) = 192.0.2.2\nnodelist.node.1.ring1_addr (str) = 2001:db8::2\n";
        assert_eq!(
            parse_cmap(cmap),
            vec!["192.0.2.1", "192.0.2.2", "2001:db8::2"]
        );
        assert!(parse_cmap("Failed to initialize the cmap API. Error CS_ERR_LIBRARY\n").is_empty());
    }
}
