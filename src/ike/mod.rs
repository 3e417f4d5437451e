//! The IKE daemon behind a small trait: actions say what they want done to a conn,
//! a backend (libreswan today) knows how to ask its daemon.

pub mod libreswan;
pub mod libreswan_conf;
pub mod libreswan_status;
pub mod spec;
pub mod strongswan;
pub mod strongswan_conf;
pub mod strongswan_status;
pub mod vici;

pub use spec::{
    ConnAuth, ConnDef, ConnMode, DeadPeer, Identity, Install, ProtoPort, PskEntry, Remote, Shunt,
};

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::config::ConnName;
use crate::error::Result;

/// Which of a conn's SAs: the IKE SA (the authenticated peer) or its Child SAs (the
/// kernel's ESP SAs that carry traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaKind {
    Ike,
    Child,
}

/// What the daemon can do with a conn on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnState {
    /// The daemon does not know the conn.
    Absent,
    /// Known, but its local end is not an address of this node (e.g. the VIP is
    /// elsewhere): it cannot serve or negotiate here.
    Loaded,
    /// Known and bound to a local address: ready to serve and negotiate.
    Ready,
}

/// One established SA of a conn (or of its instances), as the daemon reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstablishedSa {
    pub kind: SaKind,
    /// The daemon's number for it (an IKE SA's deletes it and its Child SAs).
    pub serial: u64,
    pub peer: IpAddr,
}

/// A conn as the daemon sees it: can it serve here, and which SAs carry its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStatus {
    pub state: ConnState,
    pub sas: Vec<EstablishedSa>,
}

impl ConnStatus {
    /// (serial, peer) of the established SAs of one kind.
    pub fn peers(&self, kind: SaKind) -> Vec<(u64, IpAddr)> {
        self.sas
            .iter()
            .filter(|sa| sa.kind == kind)
            .map(|sa| (sa.serial, sa.peer))
            .collect()
    }
}

/// Where a conn's definition is.
pub enum ConnSource<'a> {
    /// Somewhere in the *.conf files of a directory (ocf:heartbeat:ipsec's confdir).
    Confdir(&'a Path),
    /// A file vipsec generated.
    File(&'a Path),
}

/// The files a generated conn lives in; both derive from the resource instance, so stop
/// can always find them, even after a crash lost the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFiles {
    pub conn: PathBuf,
    /// Where the daemon looks for the keys (its secrets include); a link to `keys`.
    pub secrets: PathBuf,
    /// The keys themselves, on the run directory's tmpfs: never written to a disk, and
    /// gone after a reboot (the link left behind then points at nothing).
    pub keys: PathBuf,
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
    /// The identity as the daemon printed it (for messages).
    pub shown: String,
    /// The one host name the identity claims (an FQDN, or a DN's single CN that is a
    /// host name), read by the backend; `None` when it names no host.
    pub claimed_name: Option<String>,
    /// The printed identity could name a host or not, depending on how it is read
    /// (charon prints a DN's values unescaped): "cannot tell", never a name.
    pub ambiguous: bool,
}

pub trait IkeBackend: Sync {
    /// The daemon, as messages name it ("pluto").
    fn daemon_name(&self) -> &'static str;
    /// The daemon's tools are installed (OCF_ERR_INSTALLED otherwise).
    fn check_installed(&self) -> Result<()>;
    /// Whether `conn` is defined in the hand-written configuration under `confdir`.
    fn conn_defined_in(&self, confdir: &Path, conn: &ConnName) -> Result<bool>;
    /// Where such a definition goes, in the daemon's words, for messages
    /// ("'conn rw' in /etc/ipsec.d/*.conf").
    fn definition_words(&self, confdir: &Path, conn: &ConnName) -> String;
    /// The names of the conns in a generated file (what a stop that lost its state
    /// must remove).
    fn generated_conns(&self, file: &Path) -> Vec<String>;
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
    /// Writes generated conns (one file, readable only by root) and, when `keys` is
    /// given, their pre-shared keys (a secrets file the daemon must be seen to read).
    fn write_conns(
        &self,
        conns: &[ConnDef],
        keys: Option<&[PskEntry]>,
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
    /// Makes the daemon (re)scan interfaces, so it serves addresses that appeared and
    /// lets go of those that left.
    fn rescan_addresses(&self, deadline: Instant) -> Result<()>;
    /// Takes the conn's SAs down and forgets the conn. Absent conns are not an error.
    fn unload(&self, conn: &ConnName, deadline: Instant) -> Result<()>;
    /// Takes down the SAs of a conn of the user's own configuration (confdir's,
    /// swanctl's). pluto forgets the conn too, as ocf:heartbeat:ipsec has it do (start adds
    /// it from confdir again); charon keeps it (swanctl loads it, not vipsec).
    fn release(&self, conn: &ConnName, deadline: Instant) -> Result<()> {
        self.unload(conn, deadline)
    }
    /// Whether the daemon receives IKE on `addr`: pluto binds a socket to each address
    /// it serves (after a rescan).
    fn listens_for_ike(&self, addr: IpAddr) -> bool {
        crate::kernel::sockets::udp_bound(addr, &crate::kernel::sockets::IKE_PORTS)
    }
    /// Where the `require` mesh's inbound guard ranks among the kernel's policies.
    fn guard_tier(&self) -> crate::kernel::guard::Tier {
        crate::kernel::guard::Tier::Last
    }
    /// Whether a fail-open conn (its traffic passes in clear while it has no SA) has a
    /// kernel policy before its SA exists: pluto's trap with a passthrough failure shunt
    /// does; charon has no such shunt, so its fail-open conns have policies only with
    /// their SAs (strongswan_conf::start_action).
    fn fail_open_conns_trap(&self) -> bool {
        true
    }
    /// Starts negotiating `conn` inside the daemon without waiting for the result.
    fn initiate_async(&self, conn: &ConnName, deadline: Instant) -> Result<()>;
    /// The conn's state and established SAs, in one query of the daemon.
    fn conn_status(&self, conn: &ConnName, deadline: Instant) -> Result<ConnStatus>;
    /// Several conns' states and SAs, in the order asked: one query per conn, unless the
    /// daemon answers them all at once more cheaply.
    fn conns_status(&self, conns: &[&ConnName], deadline: Instant) -> Result<Vec<ConnStatus>> {
        conns
            .iter()
            .map(|c| self.conn_status(c, deadline))
            .collect()
    }
    /// Whether the daemon has the conn, and whether it can serve it on this node.
    fn conn_state(&self, conn: &ConnName, deadline: Instant) -> Result<ConnState> {
        self.conn_status(conn, deadline).map(|s| s.state)
    }
    /// The identities the peers of all established Child SAs authenticated with.
    fn peer_identities(&self, deadline: Instant) -> Result<Vec<PeerIdentity>>;
    /// Deletes one IKE SA (and its Child SAs), notifying the peer.
    fn delete_state(&self, serial: u64, deadline: Instant) -> Result<()>;
}
