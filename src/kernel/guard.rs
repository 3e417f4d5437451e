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
//! The policies are recognised by their priorities, far below (numerically above)
//! anything pluto installs (pluto's are around 1-2 million; its passthrough conns 100),
//! and the replies of this node's own SSH (`SSH_PRIORITY`), ahead of everything.
//!
//! XFRM policies are stateless: "the replies of outgoing connections" can only be said
//! as "from this source port, to a local port that only outgoing connections use". That
//! is the kernel's ephemeral range less every port a local socket listens on, as aligned
//! blocks (a selector's port has a mask): see `port_blocks`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Instant;

use futures_util::TryStreamExt;
use netlink_packet_xfrm::{
    XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK, XFRM_POLICY_FWD, XFRM_POLICY_IN, XFRM_POLICY_OUT,
};
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
/// This node's own SSH, both ways (exclude_ssh): ahead of every pair's policies and of
/// the IKE daemons' pass conns (100), so SSH to another node keeps working whatever
/// happens to IKE. Inbound it admits only replies (source port 22 to an ephemeral port
/// nothing listens on), never a service.
pub const SSH_PRIORITY: u32 = 99;

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
    /// Allow rules only, in both directions: see SSH_PRIORITY.
    Pass,
}

impl Tier {
    /// (allow, block)
    pub fn priorities(self) -> (u32, u32) {
        match self {
            Tier::Last => (ALLOW_PRIORITY, BLOCK_PRIORITY),
            Tier::AheadOfPass => (AHEAD_ALLOW_PRIORITY, AHEAD_BLOCK_PRIORITY),
            Tier::Pass => (SSH_PRIORITY, SSH_PRIORITY),
        }
    }

    /// The tier and kind (allow?) of a guard policy's priority; `None`: not the guard's.
    fn of(priority: u32) -> Option<(Tier, bool)> {
        [Tier::Last, Tier::AheadOfPass, Tier::Pass]
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

/// One policy of the guard (inbound unless `out`). Ports are 0 for any; for ICMP `sport`
/// is the type. `dport_mask`: the bits of `dport` that must match (0: any port, 0xffff:
/// exactly `dport`, fewer: an aligned block of ports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    pub src: IpAddr,
    pub src_len: u8,
    pub dst: IpAddr,
    pub dst_len: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub dport_mask: u16,
    pub allow: bool,
    pub out: bool,
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
            dport_mask: 0,
            allow: false,
            out: false,
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
            dport_mask: if dport == 0 { 0 } else { u16::MAX },
            allow: true,
            out: false,
            tier: Tier::Last,
        }
    }

    /// Allows `proto` from `src/src_len` port `sport` to `dst`'s ports `block` (a port and
    /// its mask, from `port_blocks`): the replies to this node's own connections.
    pub fn allow_replies(
        src: IpAddr,
        src_len: u8,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        (dport, dport_mask): (u16, u16),
    ) -> Rule {
        Rule {
            src,
            src_len,
            dport,
            dport_mask,
            ..Rule::allow_proto(dst, proto, sport, 0)
        }
    }

    /// This node's own address in the rule: the destination of an inbound one.
    fn local(&self) -> IpAddr {
        if self.out {
            self.src
        } else {
            self.dst
        }
    }

    fn direction(&self) -> u8 {
        if self.out {
            XFRM_POLICY_OUT
        } else {
            XFRM_POLICY_IN
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

/// The guard's rules now in the kernel (recognised by priority), for this node's
/// addresses in `locals` (an empty `locals`: every address).
pub fn installed(locals: &[IpAddr], deadline: Instant) -> Result<Vec<Rule>> {
    Ok(dump(deadline)?
        .into_iter()
        .filter(|(r, dir, prio)| {
            (*dir == XFRM_POLICY_IN || *dir == XFRM_POLICY_OUT)
                && Tier::of(*prio).is_some()
                && (locals.is_empty() || locals.contains(&r.local()))
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
                dport_mask: sel.dport_mask,
                allow: info.action == XFRM_POLICY_ALLOW,
                out: info.direction == XFRM_POLICY_OUT,
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
                let (dir, p) = (r.direction(), r.priority());
                (r, dir, p)
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
                if r.dport_mask != 0 {
                    let sel = &mut req.message_mut().user_policy_info.selector;
                    (sel.dport, sel.dport_mask) = (r.dport, r.dport_mask);
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
                if r.dport_mask != 0 {
                    let sel = &mut req.message_mut().user_policy_id.selector;
                    (sel.dport, sel.dport_mask) = (r.dport, r.dport_mask);
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

/// The policies that block everything between this node and `remote` (a peer, or a
/// subnet forwarded through it), every way: out to it, in and forwarded from it. Their
/// selectors (any address of this node) differ from pluto's (the conn's own address), so
/// they can sit beside pluto's and win by priority.
fn hold_rules((remote, len): (IpAddr, u8)) -> [(Rule, u8, u32); 3] {
    let any = unspecified(remote);
    let block = |src, src_len, dst, dst_len, out| Rule {
        src,
        src_len,
        dst,
        dst_len,
        proto: 0,
        sport: 0,
        dport: 0,
        dport_mask: 0,
        allow: false,
        out,
        // Its priority is HOLD_PRIORITY, given with it.
        tier: Tier::Last,
    };
    [
        (
            block(any, 0, remote, len, true),
            XFRM_POLICY_OUT,
            HOLD_PRIORITY,
        ),
        (
            block(remote, len, any, 0, false),
            XFRM_POLICY_IN,
            HOLD_PRIORITY,
        ),
        (
            block(remote, len, any, 0, false),
            XFRM_POLICY_FWD,
            HOLD_PRIORITY,
        ),
    ]
}

/// Make-before-break under `require`: while a peer's conns are deleted and loaded again
/// (a new key, a changed address), nothing to or from it, or the subnets forwarded
/// through it, may pass in clear. `hold` blocks that traffic every way; `release` lets
/// it go once the new conns are in place. Each remote is (address, prefix length).
pub fn hold(remotes: &[(IpAddr, u8)], deadline: Instant) -> Result<()> {
    let rules: Vec<_> = remotes.iter().flat_map(|r| hold_rules(*r)).collect();
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

pub fn release(remotes: &[(IpAddr, u8)], deadline: Instant) -> Result<()> {
    let rules: Vec<_> = remotes.iter().flat_map(|r| hold_rules(*r)).collect();
    change_policies("releasing held traffic", &[], &rules, deadline)
}

/// The ports `lo..=hi` less `taken`, as few aligned (port, mask) blocks as cover them
/// exactly: a selector matches a port p when `p & mask == port`.
pub fn port_blocks(lo: u16, hi: u16, taken: &std::collections::BTreeSet<u16>) -> Vec<(u16, u16)> {
    let mut blocks = Vec::new();
    let mut start = u32::from(lo);
    let end = u32::from(hi);
    while start <= end {
        if taken.contains(&(start as u16)) {
            start += 1;
            continue;
        }
        // The free run from `start`.
        let run_end = taken
            .range(start as u16..=hi)
            .next()
            .map_or(end, |t| u32::from(*t) - 1);
        while start <= run_end {
            // The largest block aligned at `start` that fits in the run.
            let mut size = if start == 0 {
                1 << 16
            } else {
                1u32 << start.trailing_zeros()
            };
            while start + size - 1 > run_end {
                size >>= 1;
            }
            blocks.push((start as u16, !(size - 1) as u16));
            start += size;
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn covered(blocks: &[(u16, u16)]) -> BTreeSet<u16> {
        (0..=u16::MAX)
            .filter(|p| blocks.iter().any(|(v, m)| p & m == *v))
            .collect()
    }

    #[test]
    fn port_blocks_cover_the_range_less_what_is_taken_exactly() {
        let taken: BTreeSet<u16> = [32768, 40000, 40001, 45000, 60999].into();
        for (lo, hi) in [
            (32768, 60999),
            (1024, 65535),
            (0, 65535),
            (5, 5),
            (40000, 40001),
        ] {
            let blocks = port_blocks(lo, hi, &taken);
            let want: BTreeSet<u16> = (lo..=hi).filter(|p| !taken.contains(p)).collect();
            assert_eq!(covered(&blocks), want, "{lo}-{hi}: {blocks:?}");
            for (v, m) in &blocks {
                assert_eq!(v & !m, 0, "{v}/{m:#x} not aligned");
            }
        }
        // Linux's default range, nothing taken: 7 blocks.
        assert_eq!(port_blocks(32768, 60999, &BTreeSet::new()).len(), 7);
        assert_eq!(port_blocks(0, 65535, &BTreeSet::new()), vec![(0, 0)]);
    }
}
