//! validate-all: everything start would need, checked without touching anything.

use super::Env;
use crate::config::{Auth, Secret};
use crate::error::{Error, Result};
use crate::ike::libreswan::conn_defined_in;

/// Returns the pre-shared key it checked (auth=psk), so start need not read it again.
pub fn run(env: &Env) -> Result<Option<Secret>> {
    let cfg = env.cfg;
    cfg.check_local()?;
    let psk = cfg.load_psk()?;
    env.ike.check_installed()?;
    let confdir = cfg.confdir.display().to_string();
    let confdir = confdir.trim_end_matches('/');
    let tunnel_defined = conn_defined_in(&cfg.confdir, &cfg.tunnel)?;
    match (&cfg.auth, tunnel_defined) {
        (Auth::Existing, false) => {
            return Err(Error::configured(
                "tunnel",
                format!("no 'conn {}' in {confdir}/*.conf; define it there, fix confdir, or set auth to have vipsec generate it", cfg.tunnel),
            ))
        }
        (Auth::Psk | Auth::Cert(_), true) => {
            return Err(Error::configured(
                "tunnel",
                format!("'conn {}' is defined in {confdir}/*.conf, but auth= asks vipsec to generate it; unset auth or rename one of them", cfg.tunnel),
            ))
        }
        _ => {}
    }
    if let Some(fallback) = &cfg.fallbacktunnel {
        if !conn_defined_in(&cfg.confdir, fallback)? {
            return Err(Error::configured(
                "fallbacktunnel",
                format!("no 'conn {fallback}' in {confdir}/*.conf; define it there or fix confdir"),
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
