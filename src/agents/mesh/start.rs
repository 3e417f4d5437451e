//! mesh start: plan the peers, write every conn and pair key, and load them in one batch,
//! which installs the kernel policies. Each pair's SA comes up on its first packet (in a
//! cluster, Corosync's heartbeats send one at once); nothing is initiated by hand, so a
//! mesh with many unreachable peers does not flood pluto with doomed negotiations.

use super::{MeshEnv, MeshState};
use crate::error::Result;
use crate::state::LockKind;

pub fn run(env: &MeshEnv) -> Result<()> {
    let (master, listing) = env.validate()?;
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    if !env.ike.daemon_running() {
        return Err(env.daemon_not_running());
    }
    let previous = env.store.read_json::<MeshState>().ok().flatten();
    if let Some(state) = &previous {
        if state.daemon_instance.is_some() && state.daemon_instance == env.ike.daemon_instance() {
            // Already started with this pluto: bring it in line with the parameters.
            log::info!("mesh already started; applying the parameters as a reload would");
            drop(_lock);
            return super::reload::run(env);
        }
    }
    // A previous state (the IKE daemon restarted under a started mesh): peers it knew
    // keep their addresses through a DNS outage, and refused ones stay blocked.
    let mut state = env.plan(master.as_ref(), listing, previous.as_ref())?;
    for s in &state.plan.skipped {
        log::warn!("peer {}: {}", s.peer, s.reason);
    }
    // Recorded first: if loading fails half-way, monitor says failed and stop cleans up.
    env.store.write_json(&state)?;
    let blocked = state.blocked_ends();
    if env.cfg.policy == crate::agents::mesh::config::Policy::Require && !blocked.is_empty() {
        crate::kernel::guard::hold(&blocked, env.deadline)?;
    }
    let files = env.files();
    env.write_conns(&state.plan, master.as_ref(), &files)?;
    env.ike.load_all(&files.conn, env.deadline)?;
    env.apply_guard(&state.plan)?;
    state.daemon_instance = env.ike.daemon_instance();
    env.store.write_json(&state)?;
    log::info!(
        "mesh started: {} peers, {} conns, policy {:?}",
        state.plan.peers.len(),
        state.plan.all_conns().len(),
        env.cfg.policy
    );
    Ok(())
}
