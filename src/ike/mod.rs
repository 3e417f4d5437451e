//! The IKE daemon behind a small trait: actions say what they want done to a conn,
//! a backend (libreswan today) knows how to ask its daemon.

pub mod libreswan;
pub mod libreswan_conf;
pub mod libreswan_status;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::config::{Auth, ConnName, Mode, Secret};
use crate::error::Result;
use crate::mesh::config::MeshConfig;
use crate::mesh::plan::MeshPlan;

/// Which of a conn's SAs: the IKE SA (the authenticated peer) or its Child SAs (the
/// kernel's ESP SAs that carry traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaKind {
    Ike,
    Child,
}

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

/// Where a conn's definition is.
pub enum ConnSource<'a> {
    /// Somewhere in the *.conf files of a directory (ocf:heartbeat:ipsec's confdir).
    Confdir(&'a Path),
    /// A file vipsec generated.
    File(&'a Path),
}

/// What a generated road-warrior conn needs to know.
pub struct ConnSpec<'a> {
    pub name: &'a ConnName,
    pub vip: IpAddr,
    pub auth: &'a Auth,
    pub peer_id: Option<&'a str>,
    pub mode: Mode,
}

/// The files a generated conn lives in; both derive from the resource instance, so stop
/// can always find them, even after a crash lost the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFiles {
    pub conn: PathBuf,
    pub secrets: PathBuf,
}

/// The identity a peer authenticated with, as the IKE daemon reports it, for one of a
/// conn's established Child SAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The conn (for a template's instances, the template's name).
    pub conn: String,
    /// The IKE SA carrying it (deleting it disconnects the peer).
    pub ike_serial: u64,
    /// The peer's address, when the daemon names it (instances of a road-warrior conn);
    /// for a conn with a fixed peer it is that conn's peer.
    pub address: Option<IpAddr>,
    pub id: String,
}

pub trait IkeBackend: Sync {
    /// The daemon's tools are installed (OCF_ERR_INSTALLED otherwise).
    fn check_installed(&self) -> Result<()>;
    /// Names the running daemon instance (it changes when the daemon restarts, and a
    /// restarted daemon has forgotten what it was told); `None` when it is not running.
    /// Asks the kernel, not the daemon: cheap enough for every monitor.
    fn daemon_instance(&self) -> Option<u64>;

    fn daemon_running(&self) -> bool {
        self.daemon_instance().is_some()
    }
    /// Loads `conn` into the daemon.
    fn load(&self, conn: &ConnName, source: ConnSource, deadline: Instant) -> Result<()>;
    /// Where the generated conn of `instance` lives (secrets under `secrets_dir`).
    fn generated_files(&self, instance_stem: &str, secrets_dir: &Path) -> GeneratedFiles;
    /// Writes a generated conn (and its key, readable only by root) and makes the daemon
    /// read the key. Fails if the daemon does not read the secrets file.
    fn write_generated(
        &self,
        spec: &ConnSpec,
        psk: Option<&Secret>,
        files: &GeneratedFiles,
        deadline: Instant,
    ) -> Result<()>;
    /// Writes a mesh's conns (one file) and pair keys, and makes the daemon read the keys.
    fn write_mesh(
        &self,
        plan: &MeshPlan,
        cfg: &MeshConfig,
        master: Option<&Secret>,
        files: &GeneratedFiles,
        deadline: Instant,
    ) -> Result<()>;
    /// Loads every conn of a generated file in one batch, installing the kernel policies
    /// of those marked for it.
    fn load_all(&self, file: &Path, deadline: Instant) -> Result<()>;
    /// Loads the named conns of a generated file (and routes them), leaving the others.
    fn load_some(
        &self,
        file: &Path,
        conns: &[String],
        route: bool,
        deadline: Instant,
    ) -> Result<()>;
    /// Removes a generated conn's files (absent files are fine) and makes the daemon
    /// forget the key.
    fn remove_generated(&self, files: &GeneratedFiles, deadline: Instant) -> Result<()>;
    /// Makes the daemon (re)scan interfaces, so it listens on addresses that appeared.
    fn listen(&self, deadline: Instant) -> Result<()>;
    /// Takes the conn's SAs down and forgets the conn. Absent conns are not an error.
    fn unload(&self, conn: &ConnName, deadline: Instant) -> Result<()>;
    /// Starts negotiating `conn` inside the daemon without waiting for the result.
    fn initiate_async(&self, conn: &ConnName, deadline: Instant) -> Result<()>;
    fn status(&self, conn: &ConnName, deadline: Instant) -> Result<DaemonStatus>;
    /// (serial, peer address) of the conn's established IKE SAs or Child (IPsec) SAs.
    fn established_peers(
        &self,
        conn: &ConnName,
        kind: SaKind,
        deadline: Instant,
    ) -> Result<Vec<(u64, IpAddr)>>;
    /// The identities the peers of all established Child SAs authenticated with.
    fn peer_identities(&self, deadline: Instant) -> Result<Vec<PeerIdentity>>;
    /// Deletes one IKE SA (and its Child SAs), notifying the peer.
    fn delete_state(&self, serial: u64, deadline: Instant) -> Result<()>;
}
