//! mesh reload-agent: apply a changed peer list (or master secret) without disturbing
//! unchanged peers: conns of departed peers are deleted, new peers' conns loaded and
//! routed, the rest and their SAs left alone. A new master secret replaces every pair's
//! conn, so each pair authenticates again with its new key.

use std::collections::BTreeSet;

use super::{MeshEnv, MeshState};
use crate::agents::mesh::config::Policy;
use crate::agents::mesh::plan::PlannedPeer;
use crate::config::ConnName;
use crate::error::{Error, Result};
use crate::state::LockKind;

pub fn run(env: &MeshEnv) -> Result<()> {
    let (master, listing) = env.validate()?;
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    let Some(old) = env.store.read_json::<MeshState>()? else {
        log::info!("mesh not running; new parameters take effect at the next start");
        return Ok(());
    };
    if old.policy != env.cfg.policy {
        return Err(Error::Generic(format!(
            "policy differs from the running mesh's ({:?}); that change needs a restart",
            old.policy
        )));
    }
    if !env.ike.daemon_running() {
        return Err(env.daemon_not_running());
    }
    let mut state = env.plan(master.as_ref(), listing, Some(&old))?;
    let new_plan = state.plan.clone();
    let fingerprint = master.as_ref().map(crate::keys::fingerprint);
    let rekey = fingerprint != old.key_fingerprint;
    // A peer is unchanged when everything about its conns is: address, local end, names.
    // How it is listed or where its address came from may change (a Corosync member
    // that left falls back to the address its nodelist entry writes): its conns and SA
    // stay, the new state records the new origin.
    let kept: Vec<&PlannedPeer> = if rekey {
        Vec::new()
    } else {
        new_plan
            .peers
            .iter()
            .filter(|p| old.plan.peers.iter().any(|o| o.same_conns(p)))
            .collect()
    };
    let gone: Vec<&PlannedPeer> = old
        .plan
        .peers
        .iter()
        .filter(|o| !kept.iter().any(|k| k.same_conns(o)))
        .collect();
    let added: Vec<&PlannedPeer> = new_plan
        .peers
        .iter()
        .filter(|p| !kept.contains(p))
        .collect();
    let new_conns = new_plan.all_conns();
    let old_pass: BTreeSet<&String> = old.plan.pass_conns.iter().collect();

    // Under require nothing may pass in clear while a pair's conns are swapped: its
    // traffic, and that of the subnets forwarded through it, is held (blocked every way)
    // from before its old conns go until its new ones are routed. If a step fails, the
    // hold stays: fail closed, and the failure is reported (stop releases it). A named
    // peer that gets no conn now stays held (state.blocked).
    let mut held: Vec<(std::net::IpAddr, u8)> = gone
        .iter()
        .chain(added.iter())
        .flat_map(|p| p.remote_ends())
        .collect();
    let blocked = state.blocked_ends();
    held.extend(blocked.iter().copied());
    held.sort();
    held.dedup();
    let holding = env.cfg.policy == Policy::Require && !held.is_empty();
    if holding {
        crate::kernel::guard::hold(&held, env.deadline)?;
    }
    let files = env.files();
    env.write_conns(&new_plan, master.as_ref(), &files)?;
    for conn in gone.iter().flat_map(|p| p.conns.iter()).chain(
        old.plan
            .pass_conns
            .iter()
            .filter(|c| !new_conns.contains(*c)),
    ) {
        env.ike
            .unload(&ConnName::parse("conn", conn)?, env.deadline)?;
    }
    // Bypass conns first (see plan::conn_defs), then the pairs'.
    let mut to_load: Vec<String> = new_plan
        .pass_conns
        .iter()
        .filter(|c| !old_pass.contains(c))
        .cloned()
        .collect();
    to_load.extend(added.iter().flat_map(|p| p.conns.iter().cloned()));
    if !to_load.is_empty() {
        env.ike.load_some(
            &files.conn,
            &to_load,
            env.cfg.policy != Policy::Disable,
            env.deadline,
        )?;
    }
    env.apply_guard(&new_plan)?;
    // Released: what was swapped, and peers blocked before that are not any more.
    let mut release: Vec<(std::net::IpAddr, u8)> = held;
    release.extend(old.blocked_ends());
    release.retain(|end| !blocked.contains(end));
    release.sort();
    release.dedup();
    if env.cfg.policy == Policy::Require && !release.is_empty() {
        crate::kernel::guard::release(&release, env.deadline)?;
    }
    log::info!(
        "mesh reloaded: {} peers kept, {} removed, {} added{}",
        kept.len(),
        gone.len(),
        added.len(),
        if rekey {
            " (new master secret: every pair rekeyed)"
        } else {
            ""
        }
    );
    state.daemon_instance = env.ike.daemon_instance();
    state.started_at = old.started_at;
    env.store.write_json(&state)
}
