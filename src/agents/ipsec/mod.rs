//! `ocf:vipsec:ipsec`: the VIP's road-warrior tunnel lives where the VIP lives. One module
//! per verb; each takes the validated configuration and the invocation context, and
//! returns success or an `Error` that is already the OCF exit code.

pub mod clients;
pub mod config;
pub mod fallback;
pub mod monitor;
pub mod reload;
pub mod start;
pub mod state;
pub mod stop;
pub mod validate;

use std::time::Instant;

use super::{print_json, Printing, Verb};

use crate::agents::ipsec::config::IpsecConfig;
use crate::config::instance_file_stem;
use crate::config::Context;
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
        self.cfg.ike.not_running(self.ike.daemon_name())
    }
}

/// Runs one verb. `fallback_waiter`: this process is the detached half of a stop
/// (fallback.rs), re-executed by it.
pub fn run(verb: Verb, printing: Printing, fallback_waiter: bool, env: &Env) -> Result<()> {
    match verb {
        Verb::Start => start::run(env),
        Verb::Stop if fallback_waiter => fallback::wait_then_bring_up(env),
        Verb::Stop => stop::run(env),
        Verb::ReloadAgent => reload::run(env),
        Verb::ValidateAll => validate::run(env).map(|_| ()),
        Verb::Monitor => {
            let (report, result) = monitor::run(env);
            match printing {
                Printing::Quiet => {}
                Printing::Json => print_json(&report),
                Printing::Text => {
                    let vip = match &report.vip_interface {
                        Some(i) => format!("VIP {} is here (on {i})", report.vip),
                        None => format!("VIP {} is not on this node", report.vip),
                    };
                    println!("{}: {} — {vip}", report.state, report.reason);
                }
            }
            result
        }
    }
}
