//! validate-all: everything start would need, checked without touching anything.

use super::Env;
use crate::agents::ipsec::config::Auth;
use crate::config::Secret;
use crate::error::{Error, Result};

/// Returns the pre-shared key it checked (auth=psk), so start need not read it again.
pub fn run(env: &Env) -> Result<Option<Secret>> {
    let cfg = env.cfg;
    cfg.check_local()?;
    let psk = cfg.load_psk()?;
    env.ike.check_installed()?;
    let ike = env.ike;
    let tunnel_defined = ike.conn_defined_in(&cfg.confdir, &cfg.tunnel)?;
    let where_ = |conn| ike.definition_words(&cfg.confdir, conn);
    match (&cfg.auth, tunnel_defined) {
        (Auth::Existing, false) => {
            return Err(Error::configured(
                "tunnel",
                format!("no {}; define it there, fix confdir, or set auth to have vipsec generate it", where_(&cfg.tunnel)),
            ))
        }
        (Auth::Psk | Auth::Cert(_), true) => {
            return Err(Error::configured(
                "tunnel",
                format!("{} is defined, but auth= asks vipsec to generate it; unset auth or rename one of them", where_(&cfg.tunnel)),
            ))
        }
        _ => {}
    }
    if let Some(fallback) = &cfg.fallbacktunnel {
        if !ike.conn_defined_in(&cfg.confdir, fallback)? {
            return Err(Error::configured(
                "fallbacktunnel",
                format!("no {}; define it there or fix confdir", where_(fallback)),
            ));
        }
    }
    if cfg.peer_name().is_some()
        && cfg.dnssec_mode() != crate::dns::DnssecMode::Off
        && !cfg.dnssec_anchor.is_file()
    {
        return Err(Error::configured(
            "dnssec_anchor",
            format!(
                "{} is not a file; install dns-root-data, point dnssec_anchor at the zone's keys, or set dnssec=off",
                cfg.dnssec_anchor.display()
            ),
        ));
    }
    Ok(psk)
}
