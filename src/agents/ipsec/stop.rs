//! stop: take the conn down and delete it, hand over to the fallback tunnel
//! (see fallback.rs). Idempotent; cleans up everything it can before reporting any error,
//! since a half-done stop is the worst state for a cluster to find.

use super::{fallback, Env};
use crate::agents::ipsec::config::Auth;
use crate::error::{Error, Result};
use crate::state::LockKind;

pub fn run(env: &Env) -> Result<()> {
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    let state = match env.store.read() {
        Ok(s) => s,
        Err(e) => {
            // An unreadable state file must not block a stop: clean up from the parameters.
            log::warn!("{}; stopping from the resource parameters", e.reason());
            None
        }
    };
    if env.ike.check_installed().is_err() || !env.ike.daemon_running() {
        // Without pluto no conn is loaded and no SA negotiated: the tunnel is down.
        if state.is_some() {
            log::warn!(
                "{} is not running; tunnel {} is down with it",
                env.ike.daemon_name(),
                env.cfg.tunnel
            );
        }
        env.ike
            .remove_generated(&env.generated_files(), env.deadline)?;
        return env.store.remove();
    }
    let mut errors: Vec<Error> = Vec::new();
    // The known clients' conns, as start wrote them (the parameters may have changed).
    let files = env.generated_files();
    let known_clients: Vec<String> = env
        .ike
        .generated_conns(&files.conn)
        .into_iter()
        .filter(|c| c != env.cfg.tunnel.as_str())
        .collect();
    // Everything that leaves the clients' SAs alone comes first. Deleting the conn sends
    // them a Delete, and a client that keeps its tunnel up re-initiates toward the VIP at
    // once, retransmitting with exponential back-off (0.5 s, 1 s, 2 s, 4 s, ...) until
    // the VIP's next node answers: every moment this stop spends after the Delete delays
    // the VIP's move and can cost a client a whole back-off step (tests/lab measures it).
    // A generated conn's files and key go (pluto forgets the key; established SAs keep
    // theirs until deleted below).
    if let Err(e) = env.ike.remove_generated(&files, env.deadline) {
        errors.push(e);
    }
    // Only a tunnel that was running hands over to the fallback, loaded before the
    // delete for the same reason.
    let fallback = match (&env.cfg.fallbacktunnel, &state) {
        (Some(f), Some(_)) if errors.is_empty() => Some(fallback::prepare(env, f)),
        _ => None,
    };
    // Delete even without a state file: a start that died before writing it may have
    // loaded the conn.
    let taken_down = if env.cfg.auth == Auth::Existing {
        env.ike.release(&env.cfg.tunnel, env.deadline)
    } else {
        env.ike.unload(&env.cfg.tunnel, env.deadline)
    };
    if let Err(e) = taken_down {
        errors.push(e);
    }
    for name in &known_clients {
        let unloaded = crate::config::ConnName::parse("clients", name)
            .and_then(|conn| env.ike.unload(&conn, env.deadline));
        if let Err(e) = unloaded {
            errors.push(e);
        }
    }
    if let (Some(prepared), true) = (fallback, errors.is_empty()) {
        // The state goes first: the fallback's waiter takes a state file for a start
        // that happened after it.
        env.store.remove()?;
        fallback::finish(env, prepared);
    }
    if errors.is_empty() {
        env.store.remove()?;
        log::info!("tunnel {} stopped", env.cfg.tunnel);
        Ok(())
    } else {
        for e in &errors[1..] {
            log::error!("{}", e.reason());
        }
        Err(errors.swap_remove(0))
    }
}
