//! reload-agent: apply the parameters that can change without a restart
//! (those marked reloadable in the table) to a running resource.

use super::Env;
use crate::error::{Error, Result};
use crate::state::LockKind;

pub fn run(env: &Env) -> Result<()> {
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    let Some(mut state) = env.store.read()? else {
        log::info!("not running; new parameters take effect at the next start");
        return Ok(());
    };
    let cfg = env.cfg;
    let changed_fixed = [
        ("tunnel", state.tunnel != cfg.tunnel.as_str()),
        ("vip", state.vip != cfg.vip),
        ("confdir", state.confdir != cfg.confdir),
        (cfg.ike.socket_param(), state.ctlsocket != cfg.ike.socket()),
    ];
    if let Some((name, _)) = changed_fixed.iter().find(|(_, changed)| *changed) {
        return Err(Error::Generic(format!(
            "{name} differs from the running resource's; that change needs a restart, not a reload"
        )));
    }
    let fallback = cfg.fallbacktunnel.as_ref().map(ToString::to_string);
    if state.fallbacktunnel != fallback {
        log::info!(
            "fallbacktunnel: {:?} -> {:?}",
            state.fallbacktunnel,
            fallback
        );
        state.fallbacktunnel = fallback;
        env.store.write(&state)?;
    }
    Ok(())
}
