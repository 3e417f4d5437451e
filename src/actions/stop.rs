//! stop: take the conn down and delete it, re-listen, bring up the fallback tunnel
//! asynchronously. Idempotent; cleans up everything it can before reporting any error,
//! since a half-done stop is the worst state for a cluster to find.

use super::Env;
use crate::error::{Error, Result};
use crate::ike::ConnSource;
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
                "pluto is not running; tunnel {} is down with it",
                env.cfg.tunnel
            );
        }
        env.ike
            .remove_generated(&env.generated_files(), env.deadline)?;
        return env.store.remove();
    }
    let mut errors: Vec<Error> = Vec::new();
    // Delete even without a state file: a start that died before writing it may have
    // loaded the conn.
    if let Err(e) = env.ike.unload(&env.cfg.tunnel, env.deadline) {
        errors.push(e);
    }
    // A generated conn's files and key go with it (the key is forgotten by pluto too).
    if let Err(e) = env
        .ike
        .remove_generated(&env.generated_files(), env.deadline)
    {
        errors.push(e);
    }
    if let Err(e) = env.ike.listen(env.deadline) {
        errors.push(e);
    }
    // Only a tunnel that was running hands over to the fallback.
    if state.is_some() && errors.is_empty() {
        if let Some(fallback) = &env.cfg.fallbacktunnel {
            // Load it from confdir first: pluto only initiates conns it knows.
            let up = env
                .ike
                .load(
                    fallback,
                    ConnSource::Confdir(&env.cfg.confdir),
                    env.deadline,
                )
                .and_then(|()| env.ike.initiate_async(fallback, env.deadline));
            match up {
                Ok(()) => log::info!("initiating fallback tunnel {fallback}"),
                // The fallback is a courtesy to this node's own traffic; it must not fail
                // the stop (that would get the node fenced).
                Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
            }
        }
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
