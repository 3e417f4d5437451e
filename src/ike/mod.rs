//! The IKE daemon behind a small trait: actions say what they want done to a conn,
//! a backend (libreswan today) knows how to ask its daemon.

pub mod libreswan;
pub mod libreswan_status;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::config::ConnName;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnState {
    /// The daemon does not know the conn.
    Absent,
    /// Loaded, but no local interface holds its local end (e.g. the VIP is elsewhere).
    Unoriented,
    /// Loaded and bound to a local address: ready to negotiate.
    Oriented,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    pub conn: ConnState,
    /// Addresses the daemon listens on for IKE.
    pub listening: Vec<SocketAddr>,
}

pub trait IkeBackend {
    /// The daemon's tools are installed (OCF_ERR_INSTALLED otherwise).
    fn check_installed(&self) -> Result<()>;
    /// Names the running daemon instance (it changes when the daemon restarts, and a
    /// restarted daemon has forgotten what it was told); `None` when it is not running.
    /// Asks the kernel, not the daemon: cheap enough for every monitor.
    fn daemon_instance(&self) -> Option<u64>;

    fn daemon_running(&self) -> bool {
        self.daemon_instance().is_some()
    }
    /// Loads `conn` from the conn files under `confdir`.
    fn load(&self, conn: &ConnName, confdir: &Path, deadline: Instant) -> Result<()>;
    /// Makes the daemon (re)scan interfaces, so it listens on addresses that appeared.
    fn listen(&self, deadline: Instant) -> Result<()>;
    /// Takes the conn's SAs down and forgets the conn. Absent conns are not an error.
    fn unload(&self, conn: &ConnName, deadline: Instant) -> Result<()>;
    /// Starts negotiating `conn` inside the daemon without waiting for the result.
    fn initiate_async(&self, conn: &ConnName, deadline: Instant) -> Result<()>;
    fn status(&self, conn: &ConnName, deadline: Instant) -> Result<DaemonStatus>;
}
