//! monitor: three honest states. 0: started, VIP here, conn loaded and oriented.
//! 7: cleanly stopped (no state). 1: started but broken.

use serde::Serialize;

use super::Env;
use crate::error::{Error, Result};
use crate::ike::ConnState;
use crate::kernel::addr::AddressLocation;
use crate::state::LockKind;

#[derive(Debug, Serialize)]
pub struct Report {
    pub instance: String,
    pub tunnel: String,
    pub vip: std::net::IpAddr,
    pub vip_local: bool,
    pub vip_interface: Option<String>,
    /// running | stopped | failed
    pub state: &'static str,
    pub exit_code: i32,
    pub reason: String,
}

/// Runs the checks; the report describes what was found, the result is the exit code.
pub fn run(env: &Env) -> (Report, Result<()>) {
    let mut vip_at: Option<AddressLocation> = None;
    let result = check(env, &mut vip_at);
    let (state, reason) = match &result {
        Ok(()) => (
            "running",
            format!(
                "tunnel {} is loaded and oriented on VIP {}",
                env.cfg.tunnel, env.cfg.vip
            ),
        ),
        Err(Error::NotRunning(r)) => ("stopped", r.clone()),
        Err(e) => ("failed", e.reason().to_string()),
    };
    let report = Report {
        instance: env.ctx.instance.clone(),
        tunnel: env.cfg.tunnel.to_string(),
        vip: env.cfg.vip,
        vip_local: vip_at.is_some(),
        vip_interface: vip_at.map(|a| a.interface),
        state,
        exit_code: result.as_ref().err().map_or(0, Error::code),
        reason,
    };
    (report, result)
}

fn check(env: &Env, vip_at: &mut Option<AddressLocation>) -> Result<()> {
    let _lock = env.store.lock(LockKind::Shared, env.deadline)?;
    // The VIP is looked up even when stopped: by hand, "is the VIP here?" is half the answer.
    *vip_at = env.vip_location()?;
    let Some(state) = env.store.read()? else {
        return Err(Error::NotRunning(format!(
            "tunnel {} is not started on this node",
            env.cfg.tunnel
        )));
    };
    if state.tunnel != env.cfg.tunnel.as_str() || state.vip != env.cfg.vip {
        return Err(Error::Generic(format!(
            "this instance was started for tunnel {} on VIP {}, not {} on {}; stop it before changing tunnel or vip",
            state.tunnel, state.vip, env.cfg.tunnel, env.cfg.vip
        )));
    }
    if let Err(e) = env.ike.check_installed() {
        // A probe must say "not running" when the programs are missing (ocf-tester checks it).
        return Err(if env.ctx.is_probe() {
            Error::NotRunning(e.reason().to_string())
        } else {
            e
        });
    }
    if vip_at.is_none() {
        return Err(Error::Generic(format!(
            "VIP {} is no longer configured on this node, but tunnel {} was started here",
            env.cfg.vip, env.cfg.tunnel
        )));
    }
    if !env.ike.daemon_running() {
        return Err(env.daemon_not_running());
    }
    match env.ike.status(&env.cfg.tunnel, env.deadline)?.conn {
        ConnState::Oriented => Ok(()),
        ConnState::Unoriented => Err(Error::Generic(format!(
            "tunnel {} is loaded but not oriented on VIP {}; pluto may not listen on it (whack --listen)",
            env.cfg.tunnel, env.cfg.vip
        ))),
        ConnState::Absent => Err(Error::Generic(format!(
            "tunnel {} is not loaded in pluto (was pluto restarted?)",
            env.cfg.tunnel
        ))),
    }
}
