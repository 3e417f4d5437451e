//! stop: take the conn down and delete it, re-listen, bring up the fallback tunnel
//! asynchronously. Idempotent; cleans up everything it can before reporting any error,
//! since a half-done stop is the worst state for a cluster to find.

use std::time::{Duration, Instant};

use super::Env;
use crate::config::ConnName;
use crate::error::{Error, Result};
use crate::ike::ConnSource;
use crate::kernel::addr::find_local_address;
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
    let fallback = match (
        &env.cfg.fallbacktunnel,
        state.is_some() && errors.is_empty(),
    ) {
        (Some(f), true) => Some(f.clone()),
        _ => None,
    };
    if errors.is_empty() {
        env.store.remove()?;
        drop(_lock);
        log::info!("tunnel {} stopped", env.cfg.tunnel);
        if let Some(fallback) = fallback {
            start_fallback(env, &fallback);
        }
        Ok(())
    } else {
        for e in &errors[1..] {
            log::error!("{}", e.reason());
        }
        Err(errors.swap_remove(0))
    }
}

/// The fallback tunnel runs from this node's own address to the VIP on its new owner.
/// Pacemaker stops this resource before it moves the VIP, so the VIP is usually still
/// here now, and a conn toward a local address cannot be oriented. The hand-over then
/// waits, in a detached child, for the VIP to leave (up to FALLBACK_WAIT), then makes
/// pluto listen again and initiates the fallback. The stop itself never waits for it.
fn start_fallback(env: &Env, fallback: &ConnName) {
    match env.vip_location() {
        Ok(None) => bring_up_fallback(env, fallback, env.deadline),
        Ok(Some(_)) => match detach() {
            Ok(true) => {
                let give_up = Instant::now() + FALLBACK_WAIT;
                while Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(250));
                    let deadline = Instant::now() + Duration::from_secs(5);
                    if matches!(find_local_address(env.cfg.vip, deadline), Ok(None)) {
                        bring_up_fallback(env, fallback, Instant::now() + FALLBACK_BUDGET);
                        std::process::exit(0);
                    }
                }
                log::warn!(
                    "fallback tunnel {fallback}: VIP {} did not leave this node within {FALLBACK_WAIT:?}; not started",
                    env.cfg.vip
                );
                std::process::exit(0);
            }
            Ok(false) => log::info!(
                "fallback tunnel {fallback} starts once VIP {} has left this node",
                env.cfg.vip
            ),
            Err(e) => log::warn!("fallback tunnel {fallback}: cannot wait for the VIP: {e}"),
        },
        Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
    }
}

const FALLBACK_WAIT: Duration = Duration::from_secs(300);
const FALLBACK_BUDGET: Duration = Duration::from_secs(30);

fn bring_up_fallback(env: &Env, fallback: &ConnName, deadline: Instant) {
    // Re-listen first: the VIP's sockets are gone, and pluto orients conns on listen.
    let up = env
        .ike
        .listen(deadline)
        .and_then(|()| {
            env.ike
                .load(fallback, ConnSource::Confdir(&env.cfg.confdir), deadline)
        })
        .and_then(|()| env.ike.initiate_async(fallback, deadline));
    match up {
        Ok(()) => log::info!("initiating fallback tunnel {fallback}"),
        // The fallback is a courtesy to this node's own traffic; it must not fail the
        // stop (that would get the node fenced).
        Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
    }
}

/// Forks a child that outlives this process: in its own session, with stdin, stdout and
/// stderr on /dev/null and every other descriptor closed (Pacemaker reads the agent's
/// output until every copy of the pipe is closed, and the state lock must not be held).
/// Returns true in the child, false in the parent.
fn detach() -> std::result::Result<bool, String> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: this process is single-threaded here (the netlink runtimes are per call
    // and gone, the conn workers joined), so the child may run ordinary code.
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Parent { .. } => Ok(false),
        ForkResult::Child => {
            let _ = setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            let keep = |fd: i32| fd <= 2;
            if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                let fds: Vec<i32> = dir
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .filter(|fd| !keep(*fd))
                    .collect();
                for fd in fds {
                    let _ = nix::unistd::close(fd);
                }
            }
            Ok(true)
        }
    }
}
