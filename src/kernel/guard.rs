//! The inbound guard of a `require` mesh: XFRM policies vipsec installs itself (not
//! pluto) so that clear text addressed to the mesh's own addresses is dropped unless it
//! comes from a peer, from an allowed source (`clear_from`, the name servers) or is
//! excluded traffic (SSH, ICMP). Pluto's policies for an established SA are more specific
//! and of higher priority, so a peer with an SA must use it (clear text from it is then
//! dropped by pluto's own inbound policy).
//!
//! Why not pluto: conns with type=drop make pluto 4.x pick the drop conn for acquires and
//! on-demand negotiation stops working. Why only inbound: outbound is already held or
//! dropped by the conns' shunts, and an outbound block would stop the kernel's acquires.
//!
//! The policies are recognised by their two priorities, far below (numerically above)
//! anything pluto installs (pluto's are around 1-2 million; its passthrough conns 100).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use futures_util::TryStreamExt;
use netlink_packet_xfrm::{XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK, XFRM_POLICY_IN};
use serde::Serialize;

use super::block_on_until;
use crate::error::{Error, Result};

/// Priority of the guard's allow rules: just ahead of its block rules.
pub const ALLOW_PRIORITY: u32 = 0x7fff_0000 - 1;
/// Priority of the guard's block rules: last of all.
pub const BLOCK_PRIORITY: u32 = 0x7fff_0000;
/// The same two ahead of pass policies (see Tier::AheadOfPass).
pub const AHEAD_ALLOW_PRIORITY: u32 = 99_998;
pub const AHEAD_BLOCK_PRIORITY: u32 = 99_999;

/// Where the guard's policies rank. Last of all suits pluto: its own policies all come
/// first. charon's bypass-lan plugin (loaded on Debian) installs pass policies for the
/// node's own subnets ranked ahead of a guard that comes last, and clear text from
/// anyone on those subnets would pass it (seen in the lab: an outsider's TCP reached a
/// require node). With charon the guard ranks ahead of such pass policies (charon ranks
/// a /24's at about 175,000) and behind vipsec's own conns (fixed at 100-3000 there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Tier {
    Last,
    AheadOfPass,
}

impl Tier {
    /// (allow, block)
    pub fn priorities(self) -> (u32, u32) {
        match self {
            Tier::Last => (ALLOW_PRIORITY, BLOCK_PRIORITY),
            Tier::AheadOfPass => (AHEAD_ALLOW_PRIORITY, AHEAD_BLOCK_PRIORITY),
        }
    }

    /// The tier and kind (allow?) of a guard policy's priority; `None`: not the guard's.
    fn of(priority: u32) -> Option<(Tier, bool)> {
        [Tier::Last, Tier::AheadOfPass]
            .into_iter()
            .find_map(|t| match t.priorities() {
                (allow, _) if allow == priority => Some((t, true)),
                (_, block) if block == priority => Some((t, false)),
                _ => None,
            })
    }
}

/// Whether `priority` is one of the guard's block rules'.
pub fn is_block_priority(priority: u32) -> bool {
    matches!(Tier::of(priority), Some((_, false)))
}

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;

/// One inbound policy of the guard. Ports are 0 for any; for ICMP `sport` is the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    pub src: IpAddr,
    pub src_len: u8,
    pub dst: IpAddr,
    pub dst_len: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub allow: bool,
    pub tier: Tier,
}

impl Rule {
    pub fn block_all_to(dst: IpAddr) -> Rule {
        Rule {
            src: unspecified(dst),
            src_len: 0,
            dst,
            dst_len: host_len(dst),
            proto: 0,
            sport: 0,
            dport: 0,
            allow: false,
            tier: Tier::Last,
        }
    }

    /// Allows everything from `src/src_len` to `dst`.
    pub fn allow_from(src: IpAddr, src_len: u8, dst: IpAddr) -> Rule {
        Rule {
            src,
            src_len,
            ..Rule::allow_proto(dst, 0, 0, 0)
        }
    }

    /// Allows `proto` (with these ports; 0 = any) from anywhere to `dst`.
    pub fn allow_proto(dst: IpAddr, proto: u8, sport: u16, dport: u16) -> Rule {
        Rule {
            src: unspecified(dst),
            src_len: 0,
            dst,
            dst_len: host_len(dst),
            proto,
            sport,
            dport,
            allow: true,
            tier: Tier::Last,
        }
    }

    fn priority(&self) -> u32 {
        let (allow, block) = self.tier.priorities();
        if self.allow {
            allow
        } else {
            block
        }
    }
}

pub fn host_len(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn unspecified(like: IpAddr) -> IpAddr {
    if like.is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    }
}

fn nl_err(what: &'static str) -> impl Fn(xfrmnetlink::Error) -> Error {
    move |e| Error::Generic(format!("XFRM netlink: {what}: {e}"))
}

/// The guard's rules now in the kernel (recognised by priority), for destinations in
/// `locals` (an empty `locals`: every destination).
pub fn installed(locals: &[IpAddr], deadline: Instant) -> Result<Vec<Rule>> {
    Ok(dump(deadline)?
        .into_iter()
        .filter(|(r, dir, prio)| {
            *dir == XFRM_POLICY_IN
                && Tier::of(*prio).is_some()
                && (locals.is_empty() || locals.contains(&r.dst))
        })
        .map(|(r, _, _)| r)
        .collect())
}

/// Every XFRM policy of the namespace as (rule, direction, priority).
fn dump(deadline: Instant) -> Result<Vec<(Rule, u8, u32)>> {
    block_on_until("reading XFRM policies", deadline, async move {
        let (conn, handle, _) = xfrmnetlink::new_connection()
            .map_err(|e| Error::Generic(format!("cannot open an XFRM netlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        let mut rules = Vec::new();
        let mut dump = handle.policy().get_dump().execute();
        while let Some(msg) = dump.try_next().await.map_err(nl_err("dump"))? {
            let info = &msg.user_policy_info;
            let sel = &info.selector;
            let fam = sel.family;
            let addr = |a: &netlink_packet_xfrm::Address| {
                if fam == netlink_packet_xfrm::AF_INET {
                    IpAddr::V4(a.to_ipv4())
                } else {
                    IpAddr::V6(a.to_ipv6())
                }
            };
            let rule = Rule {
                src: addr(&sel.saddr),
                src_len: sel.prefixlen_s,
                dst: addr(&sel.daddr),
                dst_len: sel.prefixlen_d,
                proto: sel.proto,
                sport: sel.sport,
                dport: sel.dport,
                allow: info.action == XFRM_POLICY_ALLOW,
                tier: Tier::of(info.priority).map_or(Tier::Last, |(t, _)| t),
            };
            rules.push((rule, info.direction, info.priority));
        }
        conn.abort();
        Ok(rules)
    })
}

/// Makes the guard for `locals` exactly `desired`: adds what is missing, then removes
/// what is no longer wanted (so a change never opens a gap). Returns (added, removed).
pub fn apply(locals: &[IpAddr], desired: &[Rule], deadline: Instant) -> Result<(usize, usize)> {
    let present: HashSet<Rule> = installed(locals, deadline)?.into_iter().collect();
    let wanted: HashSet<&Rule> = desired.iter().collect();
    // Allows go in before the blocks they carve holes in, and blocks come out before
    // their allows: otherwise, for a moment, a start drops the peers' and the excluded
    // traffic (the lab's rollout lost a ping to it).
    let mut add: Vec<Rule> = desired
        .iter()
        .filter(|r| !present.contains(*r))
        .cloned()
        .collect();
    add.sort_by_key(|r| !r.allow);
    let mut remove: Vec<Rule> = present
        .iter()
        .filter(|r| !wanted.contains(r))
        .cloned()
        .collect();
    remove.sort_by_key(|r| r.allow);
    if add.is_empty() && remove.is_empty() {
        return Ok((0, 0));
    }
    let counts = (add.len(), remove.len());
    let with_dir = |rules: Vec<Rule>| -> Vec<(Rule, u8, u32)> {
        rules
            .into_iter()
            .map(|r| {
                let p = r.priority();
                (r, XFRM_POLICY_IN, p)
            })
            .collect()
    };
    change_policies(
        "installing the inbound guard",
        &with_dir(add),
        &with_dir(remove),
        deadline,
    )?;
    Ok(counts)
}

/// Adds `add` (in that order), then deletes `remove` (in that order): each (rule,
/// direction, priority). An equal selector already present (add) or one already gone
/// (delete) is not an error.
fn change_policies(
    what: &'static str,
    add: &[(Rule, u8, u32)],
    remove: &[(Rule, u8, u32)],
    deadline: Instant,
) -> Result<()> {
    let (add, remove) = (add.to_vec(), remove.to_vec());
    block_on_until(what, deadline, async move {
        let (conn, handle, _) = xfrmnetlink::new_connection()
            .map_err(|e| Error::Generic(format!("cannot open an XFRM netlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        for (r, dir, priority) in &add {
            let mut req = handle
                .policy()
                .add(r.src, r.src_len, r.dst, r.dst_len)
                .direction(*dir)
                .action(if r.allow {
                    XFRM_POLICY_ALLOW
                } else {
                    XFRM_POLICY_BLOCK
                })
                .priority(*priority);
            if r.proto != 0 {
                req = req.selector_protocol(r.proto);
                if r.sport != 0 {
                    req = req.selector_protocol_src_port(r.sport);
                }
                if r.dport != 0 {
                    req = req.selector_protocol_dst_port(r.dport);
                }
            }
            match req.execute().await {
                Ok(()) => {}
                // The kernel keeps one policy per selector and direction: pluto's own
                // passthrough conns (SSH, ICMP) already allow exactly this traffic.
                Err(xfrmnetlink::Error::NetlinkError(e))
                    if e.raw_code() == -(nix::errno::Errno::EEXIST as i32) =>
                {
                    log::debug!("policy {r:?}: an equal selector is already there");
                }
                Err(e) => {
                    return Err(Error::Generic(format!(
                        "XFRM netlink: adding policy {r:?}: {e}"
                    )))
                }
            }
        }
        for (r, dir, _) in &remove {
            let mut req = handle
                .policy()
                .delete(r.src, r.src_len, r.dst, r.dst_len)
                .direction(*dir);
            if r.proto != 0 {
                req = req.selector_protocol(r.proto);
                if r.sport != 0 {
                    req = req.selector_protocol_src_port(r.sport);
                }
                if r.dport != 0 {
                    req = req.selector_protocol_dst_port(r.dport);
                }
            }
            match req.execute().await {
                Ok(()) => {}
                // Already gone: that is what was wanted.
                Err(xfrmnetlink::Error::NetlinkError(e))
                    if e.raw_code() == -(nix::errno::Errno::ENOENT as i32) => {}
                Err(e) => {
                    return Err(Error::Generic(format!(
                        "XFRM netlink: removing policy {r:?}: {e}"
                    )))
                }
            }
        }
        conn.abort();
        Ok(())
    })
}

/// Priority of the policies that hold a pair's traffic while its conns are swapped: ahead
/// of pluto's (about 1-2 million), behind the SSH/ICMP passthrough conns (100).
pub const HOLD_PRIORITY: u32 = 1000;

/// The two policies that block everything between this node and `peer`, both ways. Their
/// selectors (any address of this node) differ from pluto's (the conn's own address), so
/// they can sit beside pluto's and win by priority.
fn hold_rules(peer: IpAddr) -> [(Rule, u8, u32); 2] {
    let any = unspecified(peer);
    let block = |src, src_len, dst, dst_len| Rule {
        src,
        src_len,
        dst,
        dst_len,
        proto: 0,
        sport: 0,
        dport: 0,
        allow: false,
        // Its priority is HOLD_PRIORITY, given with it.
        tier: Tier::Last,
    };
    [
        (
            block(any, 0, peer, host_len(peer)),
            netlink_packet_xfrm::XFRM_POLICY_OUT,
            HOLD_PRIORITY,
        ),
        (
            block(peer, host_len(peer), any, 0),
            XFRM_POLICY_IN,
            HOLD_PRIORITY,
        ),
    ]
}

/// Make-before-break under `require`: while a peer's conns are deleted and loaded again
/// (a new key, a changed address), nothing to or from it may pass in clear. `hold` blocks
/// the peers' traffic both ways; `release` lets it go once their new conns are in place.
pub fn hold(peers: &[IpAddr], deadline: Instant) -> Result<()> {
    let rules: Vec<_> = peers.iter().flat_map(|p| hold_rules(*p)).collect();
    change_policies(
        "holding traffic while conns are swapped",
        &rules,
        &[],
        deadline,
    )
}

/// Releases every hold in the kernel (stop: whatever a failed reload left).
pub fn release_all(deadline: Instant) -> Result<()> {
    let held: Vec<_> = dump(deadline)?
        .into_iter()
        .filter(|(_, _, prio)| *prio == HOLD_PRIORITY)
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    change_policies("releasing held traffic", &[], &held, deadline)
}

pub fn release(peers: &[IpAddr], deadline: Instant) -> Result<()> {
    let rules: Vec<_> = peers.iter().flat_map(|p| hold_rules(*p)).collect();
    change_policies("releasing held traffic", &[], &rules, deadline)
}
