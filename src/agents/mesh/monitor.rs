//! mesh monitor, from the kernel: 0 when every peer's policies are in place and its SA
//! is up; 190 (degraded) when policies are in place but some peers have no SA (a peer
//! being down is not this node's failure); 1 when policies are missing or pluto lost the
//! conns; 7 when stopped.

use std::net::IpAddr;

use serde::Serialize;

use super::{MeshEnv, MeshState};
use crate::error::{Error, Result};
use crate::ike::ConnState;
use crate::kernel::guard;
use crate::kernel::xfrm::{self, XfrmView};
use std::collections::BTreeMap;

use crate::agents::mesh::config::{MeshAuth, Policy};
use crate::agents::mesh::corosync::PeerSource;
use crate::agents::mesh::plan::PeerOrigin;
use crate::agents::peer_names::{self, Claim};
use crate::dns::DnssecMode;
use crate::state::LockKind;

#[derive(Debug, Serialize)]
pub struct PeerReport {
    pub peer: IpAddr,
    pub listed_as: String,
    /// Where its address came from: parameter, corosync-member, corosync-conf or
    /// resolved-name.
    pub origin: PeerOrigin,
    pub local: IpAddr,
    pub conn: String,
    /// The kernel has the out policy for this pair (trap or SA).
    pub policy: bool,
    /// An established SA carries this pair's traffic.
    pub sa: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub instance: String,
    /// running | degraded | stopped | failed
    pub state: &'static str,
    pub exit_code: i32,
    pub reason: String,
    pub policy: Option<Policy>,
    /// Where the peer list and the key come from.
    pub peer_source: Option<PeerSource>,
    pub key_source: Option<String>,
    pub peers: Vec<PeerReport>,
    /// Listed peers without a conn (names that do not resolve, no route).
    pub skipped: Vec<crate::agents::mesh::plan::Skipped>,
    pub peers_without_sa: Vec<String>,
}

pub fn run(env: &MeshEnv) -> (Report, Result<()>) {
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    let mut policy = None;
    let mut sources = None;
    let result = follow_membership(env)
        .and_then(|()| check(env, &mut peers, &mut skipped, &mut policy, &mut sources));
    let (state, reason) = match &result {
        Ok(()) if policy == Some(Policy::Disable) => (
            "running",
            format!(
                "policy=disable: {} peers' conns loaded, no kernel policy, traffic in clear",
                peers.len()
            ),
        ),
        Ok(()) => (
            "running",
            format!("all {} peers have policies and SAs", peers.len()),
        ),
        Err(Error::Degraded(r)) => ("degraded", r.clone()),
        Err(Error::NotRunning(r)) => ("stopped", r.clone()),
        Err(e) => ("failed", e.reason().to_string()),
    };
    let peers_without_sa = peers
        .iter()
        .filter(|p| !p.sa)
        .map(|p| p.listed_as.clone())
        .collect();
    let report = Report {
        instance: env.ctx.instance.clone(),
        state,
        exit_code: result.as_ref().err().map_or(0, Error::code),
        reason,
        policy,
        peer_source: sources.as_ref().map(|(p, _)| *p),
        key_source: sources.map(|(_, k)| k),
        peers,
        skipped,
        peers_without_sa,
    };
    (report, result)
}

/// A mesh that follows Corosync applies membership changes here, at the latest one
/// monitor interval after `pcs cluster node add/remove`: Pacemaker calls no reload for
/// them (no parameter changed). It is the same change reload-agent makes — departed
/// nodes' conns removed, new nodes' added, every other conn and SA untouched — under the
/// same instance lock, and a failure is reported as this monitor's failure, which
/// Pacemaker answers with a restart. Costs one corosync-cmapctl call when nothing changed.
fn follow_membership(env: &MeshEnv) -> Result<()> {
    if env.cfg.peers.is_some() {
        return Ok(());
    }
    let Some(state) = env.store.read_json::<MeshState>()? else {
        return Ok(());
    };
    let listed = match env.peer_list() {
        Ok((_, _, listed)) => listed,
        Err(e) => {
            // Neither Corosync nor corosync.conf answers now: keep what is set up.
            log::warn!("cluster membership not read, keeping the mesh as it is: {e}");
            return Ok(());
        }
    };
    if listed == state.listed {
        return Ok(());
    }
    let added: Vec<&String> = listed
        .iter()
        .filter(|a| !state.listed.contains(a))
        .collect();
    let gone: Vec<&String> = state
        .listed
        .iter()
        .filter(|a| !listed.contains(a))
        .collect();
    log::info!("cluster membership changed (added {added:?}, removed {gone:?}); applying it");
    super::reload::run(env)
}

fn has_out_policy(view: &XfrmView, local: IpAddr, peer: IpAddr) -> bool {
    let host = if peer.is_ipv4() { 32 } else { 128 };
    view.policies.iter().any(|p| {
        p.dir == "out"
            && p.proto == 0
            && p.action == "allow"
            && p.sel_src == (local, host)
            && p.sel_dst == (peer, host)
            && !p.tmpl.is_empty()
    })
}

/// An SA each way: with one of them lost from the kernel, one direction's traffic is
/// dropped while pluto still reports the pair as up.
fn has_sa(view: &XfrmView, local: IpAddr, peer: IpAddr) -> bool {
    let one_way = |src, dst| {
        view.sas
            .iter()
            .any(|s| s.established && s.src == src && s.dst == dst)
    };
    one_way(local, peer) && one_way(peer, local)
}

fn list(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    if names.len() > shown.len() {
        format!(
            "{} and {} more",
            shown.join(", "),
            names.len() - shown.len()
        )
    } else {
        shown.join(", ")
    }
}

fn check(
    env: &MeshEnv,
    peers: &mut Vec<PeerReport>,
    skipped: &mut Vec<crate::agents::mesh::plan::Skipped>,
    policy: &mut Option<Policy>,
    sources: &mut Option<(PeerSource, String)>,
) -> Result<()> {
    let _lock = env.store.lock(LockKind::Shared, env.deadline)?;
    let Some(state) = env.store.read_json::<MeshState>()? else {
        return Err(Error::NotRunning(
            "the mesh is not started on this node".into(),
        ));
    };
    *policy = Some(state.policy);
    *sources = Some((state.peer_source, state.key_source.clone()));
    *skipped = state.plan.skipped.clone();
    if let Err(e) = env.ike.check_installed() {
        return Err(if env.ctx.is_probe() {
            Error::NotRunning(e.reason().to_string())
        } else {
            e
        });
    }
    let Some(daemon) = env.ike.daemon_instance() else {
        return Err(env.daemon_not_running());
    };
    if state.daemon_instance != Some(daemon) || env.ctx.check_level >= 10 {
        // The daemon restarted (and forgot its conns), or a deep check: ask it.
        if let Some(first) = state.plan.peers.first() {
            let conn = crate::config::ConnName::parse("conn", first.main_conn())?;
            if env.ike.conn_state(&conn, env.deadline)? == ConnState::Absent {
                return Err(Error::Generic(format!(
                    "{} no longer has the mesh's conns (restarted since start?); restart the resource",
                    env.ike.daemon_name()
                )));
            }
        }
    }
    let view = xfrm::dump(env.deadline)?;
    for p in &state.plan.peers {
        peers.push(PeerReport {
            peer: p.address,
            listed_as: if p.listed_as == p.address.to_string() {
                p.listed_as.clone()
            } else {
                format!("{} ({})", p.listed_as, p.address)
            },
            origin: p.origin,
            local: p.local,
            conn: p.main_conn().to_string(),
            policy: has_out_policy(&view, p.local, p.address),
            sa: has_sa(&view, p.local, p.address),
        });
    }
    let policies_expected = match state.policy {
        Policy::Require => true,
        Policy::Use => env.ike.fail_open_conns_trap(),
        Policy::Disable => false,
    };
    if policies_expected {
        let missing: Vec<String> = peers
            .iter()
            .filter(|p| !p.policy)
            .map(|p| p.listed_as.clone())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Generic(format!(
                "no kernel policy for {} peer(s): {}; restart the resource",
                missing.len(),
                list(&missing)
            )));
        }
    }
    if state.policy == Policy::Require {
        // The guard's block rules are what keep clear text out; the allow rules only
        // narrow them. Read from the dump above: no second netlink round trip.
        let unguarded: Vec<String> = state
            .plan
            .locals()
            .into_iter()
            .filter(|local| {
                let block = guard::Rule::block_all_to(*local);
                !view.policies.iter().any(|p| {
                    p.dir == "in"
                        && p.action == "block"
                        && guard::is_block_priority(p.priority)
                        && p.proto == 0
                        && p.sel_src == (block.src, block.src_len)
                        && p.sel_dst == (block.dst, block.dst_len)
                })
            })
            .map(|local| local.to_string())
            .collect();
        if !unguarded.is_empty() {
            return Err(Error::Generic(format!(
                "policy=require, but the inbound guard of {} is missing: clear text is accepted; restart the resource",
                unguarded.join(", ")
            )));
        }
    }
    if state.policy != Policy::Disable {
        // The replies' ports leave out every port a local socket listens on, read now:
        // a service started since is carved out here (a diff: nothing changes otherwise).
        env.apply_guard(&state.plan)?;
    }
    if state.policy == Policy::Disable {
        // Switched off on purpose: traffic goes in clear, and that is what was asked for.
        return Ok(());
    }
    let (refused, unverified) = check_certificate_names(env, &state, peers)?;
    let mut down: Vec<String> = peers
        .iter()
        .filter(|p| !p.sa && !refused.iter().any(|(a, _)| *a == p.peer))
        .map(|p| p.listed_as.clone())
        .collect();
    down.extend(refused.into_iter().map(|(_, why)| why));
    down.extend(unverified);
    down.extend(skipped.iter().map(|s| format!("{} ({})", s.peer, s.reason)));
    if !down.is_empty() {
        return Err(Error::Degraded(format!(
            "no SA with {} peer(s): {}",
            down.len(),
            list(&down)
        )));
    }
    Ok(())
}

/// With auth=cert any certificate of the mesh's CA is accepted from any peer address
/// (rightid=%fromcert), so a node could present its own valid certificate from another
/// node's address. Each established SA's identity (its certificate's name, as pluto
/// reports it) must therefore securely resolve to the address the SA is with. Under
/// require a peer that fails is disconnected (its IKE SA deleted) and named: one peer of
/// a mesh is degraded, not this node's failure. Returns those peers.
/// (peer, why) of the peers refused by DNSSEC, and why others could not be checked.
type NameCheck = (Vec<(IpAddr, String)>, Vec<String>);

fn check_certificate_names(
    env: &MeshEnv,
    state: &MeshState,
    peers: &mut [PeerReport],
) -> Result<NameCheck> {
    let mode = env.cfg.dnssec.unwrap_or(DnssecMode::Require);
    if !matches!(env.cfg.auth, MeshAuth::Cert { .. }) || mode == DnssecMode::Off {
        return Ok((Vec::new(), Vec::new()));
    }
    let conns: BTreeMap<&str, IpAddr> = state
        .plan
        .peers
        .iter()
        .flat_map(|p| p.conns.iter().map(move |c| (c.as_str(), p.address)))
        .collect();
    let claims: Vec<Claim> = env
        .ike
        .peer_identities(env.deadline)?
        .into_iter()
        .filter_map(|p| {
            // The mesh's conns each have one peer: the plan says which.
            let address = *conns.get(p.conn.as_str())?;
            if p.address.is_some_and(|a| a != address) {
                return None;
            }
            Some(Claim {
                ike_serial: p.ike_serial,
                address,
                // Messages quote the name, or the identity itself when it names none.
                shown: p.claimed_name.clone().unwrap_or(p.shown),
                name: p.claimed_name,
                ambiguous: p.ambiguous,
            })
        })
        .collect();
    let mut refused = Vec::new();
    let outcome = peer_names::judge(
        env.ike,
        &env.store,
        &env.cfg.dnssec_anchor,
        &env.cfg.resolver,
        mode,
        claims,
        env.deadline,
    )?;
    for w in &outcome.tolerated {
        log::warn!("{w}");
    }
    // DNS did not answer: the peers kept (validated before) stay up; new ones were
    // disconnected until it does. Either way the mesh is degraded, and says why.
    for u in &outcome.unverified {
        log::warn!("{u}");
    }
    for r in outcome.refused {
        log::warn!("{}", r.what);
        for p in peers.iter_mut().filter(|p| p.peer == r.address) {
            p.sa = false;
        }
        refused.push((
            r.address,
            format!("{} (refused by DNSSEC: {})", r.address, r.what),
        ));
    }
    Ok((refused, outcome.unverified))
}
