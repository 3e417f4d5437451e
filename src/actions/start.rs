//! start: where the VIP is local, load the conn, make pluto listen on the VIP, and return
//! only once pluto has the conn oriented on this node.

use super::{validate, Env};
use crate::error::{Error, Result};
use crate::ike::ConnState;
use crate::state::{IpsecState, LockKind, STATE_FORMAT};

pub fn run(env: &Env) -> Result<()> {
    validate::run(env)?;
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    let Some(at) = env.vip_location()? else {
        return Err(env.vip_not_here());
    };
    if !env.ike.daemon_running() {
        return Err(env.daemon_not_running());
    }
    let tunnel = &env.cfg.tunnel;
    let already = env.ike.status(tunnel, env.deadline)?.conn == ConnState::Oriented;
    if already && env.store.read()?.is_some() {
        log::info!(
            "tunnel {tunnel} is already loaded and oriented on VIP {}",
            env.cfg.vip
        );
        return Ok(());
    }
    // Record first: if anything below fails, monitor reports failed (1), and stop knows
    // what to clean up, instead of a half-started resource looking cleanly stopped.
    env.store.write(&IpsecState {
        format: STATE_FORMAT,
        instance: env.ctx.instance.clone(),
        tunnel: tunnel.to_string(),
        vip: env.cfg.vip,
        fallbacktunnel: env.cfg.fallbacktunnel.as_ref().map(ToString::to_string),
        ctlsocket: env.cfg.ctlsocket.clone(),
        confdir: env.cfg.confdir.clone(),
        started_at: IpsecState::now(),
    })?;
    if !already {
        env.ike.load(tunnel, &env.cfg.confdir, env.deadline)?;
    }
    // pluto only binds addresses it has seen: the VIP may have arrived after pluto started.
    env.ike.listen(env.deadline)?;
    let status = env.ike.status(tunnel, env.deadline)?;
    match status.conn {
        ConnState::Oriented => {
            log::info!("tunnel {tunnel} loaded and oriented on VIP {} ({})", env.cfg.vip, at.interface);
            Ok(())
        }
        ConnState::Unoriented => Err(Error::Generic(format!(
            "pluto loaded {tunnel} but cannot orient it on VIP {}: check that the conn's left (or right) is the VIP",
            env.cfg.vip
        ))),
        ConnState::Absent => Err(Error::Generic(format!(
            "pluto does not list {tunnel} after loading it; see pluto's log"
        ))),
    }
}
