//! start: where the VIP is local, load the conn, make the IKE daemon serve the VIP, and
//! return only once the daemon is ready to serve the conn on this node.

use super::state::IpsecState;
use super::{clients, fallback, validate, Env};
use crate::agents::ipsec::config::Auth;
use crate::error::{Error, Result};
use crate::ike::{ConnSource, ConnState, Identity, PskEntry};

use crate::state::{LockKind, STATE_FORMAT};

pub fn run(env: &Env) -> Result<()> {
    let psk = validate::run(env)?;
    let _lock = env.store.lock(LockKind::Exclusive, env.deadline)?;
    let Some(at) = env.vip_location()? else {
        return Err(env.vip_not_here());
    };
    if !env.ike.daemon_running() {
        return Err(env.daemon_not_running());
    }
    // This node holds the VIP (again): a stop's waiter must not bring the fallback up,
    // and this node's own tunnel toward the VIP has no place here any more. It goes before
    // anything makes pluto re-scan its interfaces: libreswan 4.10's pluto aborts (assertion
    // in free_host_pair) when --listen finds the VIP back under a fallback that is still
    // negotiating toward it (seen under Pacemaker: tests/pacemaker.rs).
    fallback::cancel(env);
    if let Some(fallback) = &env.cfg.fallbacktunnel {
        if let Err(e) = env.ike.release(fallback, env.deadline) {
            log::warn!("fallback tunnel {fallback}: {}", e.reason());
        }
    }
    let tunnel = &env.cfg.tunnel;
    let mut fresh = false;
    let mut state = match env.store.read().ok().flatten() {
        Some(s) if env.ike.conn_state(tunnel, env.deadline)? == ConnState::Ready => {
            log::info!(
                "tunnel {tunnel} is already loaded and ready on VIP {}",
                env.cfg.vip
            );
            s
        }
        _ => {
            // Record first: if anything below fails, monitor reports failed (1) and stop
            // knows what to clean up, instead of a half-started resource looking stopped.
            let s = IpsecState {
                format: STATE_FORMAT,
                instance: env.ctx.instance.clone(),
                tunnel: tunnel.to_string(),
                vip: env.cfg.vip,
                fallbacktunnel: env.cfg.fallbacktunnel.as_ref().map(ToString::to_string),
                ctlsocket: env.cfg.ike.socket().to_path_buf(),
                confdir: env.cfg.confdir.clone(),
                daemon_instance: None,
                started_at: IpsecState::now(),
            };
            env.store.write(&s)?;
            if env.cfg.auth == Auth::Existing {
                env.ike
                    .load(tunnel, ConnSource::Confdir(&env.cfg.confdir), env.deadline)?;
            } else {
                let conns = env.cfg.generated_conns();
                let files = env.generated_files();
                // The VIP's key, for whoever presents the identity asked of peers.
                let keys: Option<Vec<PskEntry>> = psk.map(|key| {
                    vec![PskEntry {
                        local: Identity::Address(env.cfg.vip),
                        remote: env.cfg.peer_id.clone(),
                        key,
                    }]
                });
                env.ike
                    .write_conns(&conns, keys.as_deref(), &files, env.deadline)?;
                // Every conn of the file in one addconn: each process start counts
                // between the old node's Delete and this node serving the VIP.
                let names: Vec<String> = conns.iter().map(|c| c.name.clone()).collect();
                env.ike
                    .load_some(&files.conn, &names, false, env.deadline)?;
            }
            // The daemon only serves addresses it has seen: the VIP may be newer than it.
            env.ike.rescan_addresses(env.deadline)?;
            let daemon = env.ike.daemon_name();
            match env.ike.conn_state(tunnel, env.deadline)? {
                ConnState::Ready => {}
                ConnState::Loaded => {
                    return Err(Error::Generic(format!(
                        "{daemon} loaded {tunnel} but cannot serve it on VIP {}: check that the conn's local end is the VIP",
                        env.cfg.vip
                    )))
                }
                ConnState::Absent => {
                    return Err(Error::Generic(format!(
                        "{daemon} does not list {tunnel} after loading it; see {daemon}'s log"
                    )))
                }
            }
            log::info!(
                "tunnel {tunnel} loaded and ready on VIP {} ({})",
                env.cfg.vip,
                at.interface
            );
            fresh = true;
            s
        }
    };
    // Remember which daemon instance has the conn: a monitor that finds the same one
    // alive and listening on the VIP need not ask it again.
    let instance = env.ike.daemon_instance();
    if state.daemon_instance != instance {
        state.daemon_instance = instance;
        env.store.write(&state)?;
    }
    // Last: the tunnel is ready, so the known clients' exchanges can complete at once.
    if fresh {
        clients::initiate_all(env);
    }
    Ok(())
}
