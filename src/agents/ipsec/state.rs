//! What a started `ocf:vipsec:ipsec` resource records (in the instance's state file).

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state::StateStore;

/// What a started `ocf:vipsec:ipsec` resource brought up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecState {
    pub format: u32,
    pub instance: String,
    pub tunnel: String,
    pub vip: IpAddr,
    pub fallbacktunnel: Option<String>,
    /// The IKE daemon's socket (ctlsocket, or vicisocket with ike=strongswan); the
    /// field keeps its first name so that older state files still read.
    pub ctlsocket: PathBuf,
    pub confdir: PathBuf,
    /// The IKE daemon instance that had the conn oriented when start returned.
    #[serde(default)]
    pub daemon_instance: Option<u64>,
    /// Seconds since the epoch.
    pub started_at: u64,
}

impl IpsecState {
    pub fn now() -> u64 {
        crate::state::now_secs()
    }
}

impl StateStore {
    pub fn read(&self) -> Result<Option<IpsecState>> {
        self.read_json()
    }

    pub fn write(&self, state: &IpsecState) -> Result<()> {
        self.write_json(state)
    }
}
