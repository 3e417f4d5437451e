//! mesh stop: delete every conn the mesh loaded (their policies and SAs go with them),
//! remove the generated files and keys. Idempotent; works from the generated file when
//! the state file is gone.

use super::{MeshEnv, MeshState};
use crate::error::{Error, Result};
use crate::kernel::guard;
use crate::state::LockKind;

pub fn run(env: &MeshEnv) -> Result<()> {
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    let files = env.files();
    let state = match env.store.read_json::<MeshState>() {
        Ok(state) => state,
        Err(e) => {
            log::warn!("{}; stopping from the generated file", e.reason());
            None
        }
    };
    let mut conns: Vec<String> = state
        .as_ref()
        .map(|s| s.plan.all_conns().into_iter().collect())
        .unwrap_or_default();
    for c in env.ike.generated_conns(&files.conn) {
        if !conns.contains(&c) {
            conns.push(c);
        }
    }
    let mut errors: Vec<Error> = Vec::new();
    if env.ike.check_installed().is_ok() && env.ike.daemon_running() {
        let names: Vec<&str> = conns.iter().map(String::as_str).collect();
        for (_, result) in env.for_each_conn(&names, |c| env.ike.unload(c, env.deadline)) {
            if let Err(e) = result {
                errors.push(e);
            }
        }
    }
    // A stopped mesh guards nothing: the node takes clear text again. Without a state
    // file, every guard policy goes.
    let locals: Vec<std::net::IpAddr> = state
        .as_ref()
        .map(|s| s.plan.locals().into_iter().collect())
        .unwrap_or_default();
    if let Err(e) = guard::apply(&locals, &[], env.deadline) {
        errors.push(e);
    }
    // Traffic a failed reload held while swapping conns is let go with the mesh.
    if let Err(e) = guard::release_all(env.deadline) {
        errors.push(e);
    }
    if let Err(e) = env.ike.remove_generated(&files, env.deadline) {
        errors.push(e);
    }
    if errors.is_empty() {
        env.store.remove()?;
        log::info!("mesh stopped ({} conns removed)", conns.len());
        return Ok(());
    }
    for e in &errors[1..] {
        log::error!("{}", e.reason());
    }
    Err(errors.swap_remove(0))
}
