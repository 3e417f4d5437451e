//! One module per action. Each takes the validated configuration and the invocation
//! context, and returns success or an `Error` that is already the OCF exit code.

pub mod fallback;
pub mod mesh;
pub mod monitor;
pub mod peer_names;
pub mod reload;
pub mod start;
pub mod stop;
pub mod validate;

use std::time::Instant;

use crate::config::instance_file_stem;
use crate::config::{Context, IpsecConfig};
use crate::error::{Error, Result};
use crate::ike::{GeneratedFiles, IkeBackend};
use crate::kernel::addr::{find_local_address, AddressLocation};
use crate::state::StateStore;

/// Everything an action works with.
pub struct Env<'a> {
    pub cfg: &'a IpsecConfig,
    pub ctx: &'a Context,
    pub ike: &'a dyn IkeBackend,
    pub store: StateStore,
    /// When the action must have finished (a margin before Pacemaker's timeout).
    pub deadline: Instant,
}

impl Env<'_> {
    pub fn vip_location(&self) -> Result<Option<AddressLocation>> {
        find_local_address(self.cfg.vip, self.deadline)
    }

    /// Where this instance's generated conn (if any) lives.
    pub fn generated_files(&self) -> GeneratedFiles {
        let stem = format!("vipsec-{}", instance_file_stem(&self.ctx.instance));
        self.ike.generated_files(&stem, &self.cfg.confdir)
    }

    pub fn vip_not_here(&self) -> Error {
        Error::Generic(format!(
            "VIP {} is not configured on this node; colocate and order this resource after the VIP",
            self.cfg.vip
        ))
    }

    pub fn daemon_not_running(&self) -> Error {
        Error::Generic(format!(
            "{name} is not running (no answer on {}); start the ipsec service, or set ctlsocket to the running {name}'s socket",
            self.cfg.ctlsocket.display(),
            name = self.ike.daemon_name()
        ))
    }
}
