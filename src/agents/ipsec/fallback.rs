//! The hand-over to `fallbacktunnel` at stop: this node's own tunnel toward the VIP on
//! its next owner.
//!
//! Pacemaker stops the tunnel before it removes the VIP (order: vip then tunnel), so when
//! stop runs the VIP is usually still here, and pluto cannot orient a conn whose far end
//! is a local address. Stop therefore loads the fallback at once and initiates it when
//! pluto can orient it (a fallback that does not point at the VIP); otherwise it leaves a
//! detached waiter behind — this same binary, re-executed in a session of its own with
//! its output on /dev/null, so the resource manager does not wait for it — that watches
//! the VIP leave this node, makes pluto re-scan its interfaces, reloads and initiates the
//! fallback. The waiter gives up after `WAIT_LIMIT`, when pluto goes away, or when the
//! tunnel is started here again; start also ends it (`cancel`).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Env;
use crate::config::ConnName;
use crate::error::{Error, Result};
use crate::ike::{ConnSource, ConnState};
use crate::kernel::addr::find_local_address;
use crate::state::{write_atomic, LockKind};

/// The first argument of the re-executed stop that is the waiter (an argument, not an
/// environment variable: nothing a resource manager or a shell passes along by accident
/// can turn a stop into a waiter).
pub const WAITER_ARG: &str = "--vipsec-internal-fallback-waiter";
/// How long the waiter waits for the VIP to leave (Pacemaker removes it right after the
/// tunnel's stop; a VIP that stays means the tunnel alone was stopped).
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);
/// What the waiter may spend on pluto once the VIP has gone.
const BRING_UP_BUDGET: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// What stop found out about the fallback before it deleted the main conn.
pub struct Prepared<'a> {
    fallback: &'a ConnName,
    /// The load's error, if it failed.
    load_error: Option<Error>,
    /// The daemon can negotiate it from this node now (its local end is here).
    ready: bool,
}

/// Stop's first half (main conn still up): loads the fallback, so it is there even if
/// the VIP never leaves (pluto only initiates conns it knows), and asks whether pluto
/// can orient it here now.
pub fn prepare<'a>(env: &Env, fallback: &'a ConnName) -> Prepared<'a> {
    let loaded = env.ike.load(
        fallback,
        ConnSource::Confdir(&env.cfg.confdir),
        env.deadline,
    );
    let ready = loaded.is_ok()
        && matches!(
            env.ike.conn_state(fallback, env.deadline),
            Ok(ConnState::Ready)
        );
    Prepared {
        fallback,
        load_error: loaded.err(),
        ready,
    }
}

/// Stop's second half, under the instance lock, once the main conn is gone: initiates
/// the fallback, or leaves the waiter to do it once the VIP has left. Never fails the
/// stop: the fallback is a courtesy to this node's own traffic, and a failed stop gets a
/// node fenced.
pub fn finish(env: &Env, prepared: Prepared) {
    let fallback = prepared.fallback;
    if prepared.ready {
        match env.ike.initiate_async(fallback, env.deadline) {
            Ok(()) => log::info!("initiating fallback tunnel {fallback}"),
            Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
        }
        return;
    }
    match env.vip_location() {
        Ok(Some(_)) => match spawn_waiter(env) {
            Ok(pid) => log::info!(
                "fallback tunnel {fallback} comes up once VIP {} has left this node (waiter pid {pid}, for up to {}s)",
                env.cfg.vip,
                WAIT_LIMIT.as_secs()
            ),
            Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
        },
        Ok(None) => {
            let why = match prepared.load_error {
                Some(e) => e.reason().to_string(),
                None => format!(
                    "{} cannot negotiate it from this node",
                    env.ike.daemon_name()
                ),
            };
            log::warn!("fallback tunnel {fallback} not started: {why}");
        }
        Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
    }
}

fn waiter_file(env: &Env) -> PathBuf {
    env.store.sibling("fallback-waiter")
}

/// The process's start time (clock ticks since boot), so a recorded pid is never
/// mistaken for a later process that got the same number.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

fn spawn_waiter(env: &Env) -> Result<u32> {
    cancel(env);
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(arg0)
        .arg(WAITER_ARG)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid() is async-signal-safe and touches no memory of this process.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Generic(format!("cannot start the fallback waiter: {e}")))?;
    // Not waited for: it outlives this stop by design. It records itself (see
    // wait_then_bring_up), so a start can end it.
    Ok(child.id())
}

/// Ends this instance's waiter, if one is still waiting (start takes the VIP back).
pub fn cancel(env: &Env) {
    let path = waiter_file(env);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return,
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            return;
        }
    };
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    if let (Some(Ok(pid)), Some(Ok(started))) = (fields.next(), fields.next()) {
        let pid = u32::try_from(pid).unwrap_or(0);
        if pid != std::process::id() && pid > 1 && start_time(pid) == Some(started) {
            let target = nix::unistd::Pid::from_raw(pid as i32);
            if nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM).is_ok() {
                log::info!("ended the fallback waiter (pid {pid})");
            }
        }
    }
    let _ = fs::remove_file(&path);
}

/// Whether the waiter file still names this process (a later stop or a start replaced or
/// removed it).
fn still_the_waiter(env: &Env) -> bool {
    let me = std::process::id().to_string();
    fs::read_to_string(waiter_file(env))
        .is_ok_and(|t| t.split_whitespace().next() == Some(me.as_str()))
}

/// The waiter's whole life (the re-executed stop, see the module comment).
pub fn wait_then_bring_up(env: &Env) -> Result<()> {
    let Some(fallback) = env.cfg.fallbacktunnel.as_ref() else {
        return Ok(());
    };
    let me = std::process::id();
    let record = format!("{me} {}\n", start_time(me).unwrap_or(0));
    write_atomic(&waiter_file(env), record.as_bytes(), 0o600)?;
    let give_up = Instant::now() + WAIT_LIMIT;
    loop {
        std::thread::sleep(POLL);
        // Superseded by a later stop's waiter, ended by a start, or pluto is gone (a
        // restarted pluto has forgotten the fallback anyway).
        if !still_the_waiter(env)
            || env.store.read().ok().flatten().is_some()
            || !env.ike.daemon_running()
        {
            return Ok(());
        }
        match find_local_address(env.cfg.vip, Instant::now() + Duration::from_secs(5)) {
            Ok(None) => break,
            Ok(Some(_)) => {}
            Err(e) => log::debug!("fallback waiter: {}", e.reason()),
        }
        if Instant::now() >= give_up {
            log::warn!(
                "fallback tunnel {fallback} not started: VIP {} did not leave this node within {}s",
                env.cfg.vip,
                WAIT_LIMIT.as_secs()
            );
            let _ = fs::remove_file(waiter_file(env));
            return Ok(());
        }
    }
    let deadline = Instant::now() + BRING_UP_BUDGET;
    let _lock = env.store.lock(LockKind::Exclusive, deadline)?;
    // A start that ran meanwhile owns the node's conns now.
    if !still_the_waiter(env) || env.store.read().ok().flatten().is_some() {
        return Ok(());
    }
    let _ = fs::remove_file(waiter_file(env));
    // The daemon binds conns to the addresses it knows: re-scan first, now that the VIP
    // is gone, then load the fallback again (it could not be served before) and initiate it.
    let up = env
        .ike
        .rescan_addresses(deadline)
        .and_then(|()| {
            env.ike
                .load(fallback, ConnSource::Confdir(&env.cfg.confdir), deadline)
        })
        .and_then(|()| env.ike.initiate_async(fallback, deadline));
    match up {
        Ok(()) => log::info!(
            "VIP {} has left this node: initiating fallback tunnel {fallback}",
            env.cfg.vip
        ),
        Err(e) => log::warn!("fallback tunnel {fallback}: {}", e.reason()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_this_process_is_stable() {
        let me = std::process::id();
        let a = start_time(me).expect("own /proc stat");
        assert_eq!(start_time(me), Some(a));
        assert_eq!(start_time(u32::MAX), None);
    }
}
