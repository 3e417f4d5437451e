//! Per-instance state under HA_RSCTMP: what `start` brought up, so `monitor` can tell a
//! cleanly stopped resource (no state: 7) from a failed one (state, but broken: 1).
//! Writes are atomic (temp file + rename in the same directory); start, stop and reload
//! hold an exclusive lock, monitor a shared one, so a monitor by hand during a cluster
//! operation never sees half a change.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use crate::config::instance_file_stem;
use crate::error::{Error, Result};

pub const STATE_FORMAT: u32 = 1;

/// The sibling file of the peers whose names DNSSEC validated (agents::peer_names): part
/// of the instance's state, removed with it, so a peer is not trusted across a stop.
pub const VALIDATED_PEERS: &str = "validated";

pub struct StateStore {
    dir: PathBuf,
    stem: String,
}

pub enum LockKind {
    Shared,
    Exclusive,
}

/// Held while it lives; dropping it unlocks.
pub struct InstanceLock {
    _lock: Flock<File>,
}

impl StateStore {
    pub fn new(dir: &Path, instance: &str) -> StateStore {
        StateStore {
            dir: dir.to_path_buf(),
            stem: format!("vipsec-{}", instance_file_stem(instance)),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.state", self.stem))
    }

    /// Another per-instance file beside the state, e.g. `vipsec-<instance>.<suffix>`.
    pub fn sibling(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.stem))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.stem))
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| {
            Error::Generic(format!(
                "state directory {} (HA_RSCTMP): {e}",
                self.dir.display()
            ))
        })
    }

    /// Waits for the instance lock until `deadline`; another action still holding it then
    /// is reported, never waited on past the action's own timeout.
    pub fn lock(&self, kind: LockKind, deadline: Instant) -> Result<InstanceLock> {
        self.ensure_dir()?;
        let path = self.lock_path();
        let mut file = open_private(&path)
            .map_err(|e| Error::Generic(format!("lock file {}: {e}", path.display())))?;
        let arg = match kind {
            LockKind::Shared => FlockArg::LockSharedNonblock,
            LockKind::Exclusive => FlockArg::LockExclusiveNonblock,
        };
        loop {
            match Flock::lock(file, arg) {
                Ok(lock) => return Ok(InstanceLock { _lock: lock }),
                Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(Error::Generic(format!(
                        "another action on this resource still holds {}; try again when it has finished",
                        path.display()
                    )))
                }
                Err((_, e)) => {
                    return Err(Error::Generic(format!("cannot lock {}: {e}", path.display())))
                }
            }
        }
    }

    /// Any agent's state; the `format` field must be the one this vipsec writes.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Generic(format!(
                    "state file {}: {e}",
                    path.display()
                )))
            }
        };
        let unreadable = |e: serde_json::Error| {
            Error::Generic(format!(
                "state file {} is unreadable ({e}); stop the resource to clear it",
                path.display()
            ))
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(unreadable)?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(STATE_FORMAT)) {
            return Err(Error::Generic(format!(
                "state file {} has format {format:?} (this vipsec writes {STATE_FORMAT}); stop the resource to clear it",
                path.display()
            )));
        }
        serde_json::from_value(value).map(Some).map_err(unreadable)
    }

    pub fn write_json<T: Serialize>(&self, state: &T) -> Result<()> {
        self.ensure_dir()?;
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::Generic(format!("cannot encode state: {e}")))?;
        write_atomic(&self.path(), &json, 0o600)
    }

    pub fn remove(&self) -> Result<()> {
        // The validated peers first: a state without them is a fresh start, never the
        // other way round.
        for path in [self.sibling(VALIDATED_PEERS), self.path()] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Generic(format!(
                        "cannot remove {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Ok(())
    }

    /// The instance whose state records `tunnel`, so a monitor by hand finds the state the
    /// cluster's instance wrote without being told its resource id.
    pub fn find_instance_by_tunnel(dir: &Path, tunnel: &str) -> Option<String> {
        let entries = fs::read_dir(dir).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("vipsec-") && name.ends_with(".state")) {
                continue;
            }
            let Ok(text) = fs::read_to_string(entry.path()) else {
                continue;
            };
            // Any agent's state that names this tunnel (only the ipsec agent's do).
            let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if state["tunnel"].as_str() == Some(tunnel) {
                if let Some(instance) = state["instance"].as_str() {
                    return Some(instance.to_string());
                }
            }
        }
        None
    }
}

/// Opens (creating it 0600) a file only this user may open: never through a symlink, and
/// an existing file that others could open is made private first (an instance lock that
/// any local user can open is a lock any local user can hold, and a stop that cannot get
/// it times out: the node is fenced).
fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "owned by uid {}, not by this user; remove it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write `data` to `path` atomically: a temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| Error::Generic(format!("cannot write {}: {e}", path.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".vipsec-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(data).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::ipsec::state::IpsecState;

    fn sample(instance: &str) -> IpsecState {
        IpsecState {
            format: STATE_FORMAT,
            instance: instance.into(),
            tunnel: "rw".into(),
            vip: "192.0.2.10".parse().unwrap(),
            fallbacktunnel: None,
            ctlsocket: "/run/pluto/pluto.ctl".into(),
            confdir: "/etc/ipsec.d".into(),
            daemon_instance: Some(7),
            started_at: 1,
        }
    }

    #[test]
    fn write_read_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "vip-tunnel");
        assert_eq!(store.read_json::<IpsecState>().unwrap(), None);
        store.write_json(&sample("vip-tunnel")).unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            store.read_json::<IpsecState>().unwrap(),
            Some(sample("vip-tunnel"))
        );
        assert_eq!(
            StateStore::find_instance_by_tunnel(dir.path(), "rw").as_deref(),
            Some("vip-tunnel")
        );
        store.remove().unwrap();
        store.remove().unwrap();
        assert_eq!(store.read_json::<IpsecState>().unwrap(), None);
        // No temp files left behind.
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.iter().all(|n| n.to_string_lossy().ends_with(".lock")),
            "{left:?}"
        );
    }

    #[test]
    fn a_corrupt_state_is_an_error_not_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "x");
        fs::write(store.path(), "{not json").unwrap();
        assert_eq!(store.read().unwrap_err().code(), 1);
    }

    #[test]
    fn the_instance_lock_is_private_whatever_the_umask() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "x");
        let deadline = Instant::now() + Duration::from_secs(1);
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let lock = store.lock(LockKind::Shared, deadline);
        nix::sys::stat::umask(old);
        drop(lock.unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&store.lock_path()), 0o600);
        // One left readable by others (an older vipsec, a umask 000 shell) is closed.
        fs::set_permissions(store.lock_path(), fs::Permissions::from_mode(0o644)).unwrap();
        drop(store.lock(LockKind::Exclusive, deadline).unwrap());
        assert_eq!(mode(&store.lock_path()), 0o600);
        // A symlink planted where the lock goes is not followed.
        let other = StateStore::new(dir.path(), "y");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, other.lock_path()).unwrap();
        let Err(e) = other.lock(LockKind::Exclusive, deadline) else {
            panic!("locked through a symlink")
        };
        assert!(e.reason().contains("lock file"), "{e}");
        assert!(!target.exists());
    }

    #[test]
    fn exclusive_lock_excludes_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "x");
        let held = store.lock(LockKind::Exclusive, Instant::now()).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(
            store.lock(LockKind::Shared, soon).err().map(|e| e.code()),
            Some(1)
        );
        drop(held);
        let _a = store.lock(LockKind::Shared, Instant::now()).unwrap();
        let _b = store.lock(LockKind::Shared, Instant::now()).unwrap();
    }
}
