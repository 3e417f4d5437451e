//! validate-all: everything start would need, checked without touching anything.

use super::Env;
use crate::error::{Error, Result};
use crate::ike::libreswan::conn_defined_in;

pub fn run(env: &Env) -> Result<()> {
    env.cfg.check_local()?;
    env.ike.check_installed()?;
    for (param, conn) in [
        ("tunnel", Some(&env.cfg.tunnel)),
        ("fallbacktunnel", env.cfg.fallbacktunnel.as_ref()),
    ] {
        let Some(conn) = conn else { continue };
        if !conn_defined_in(&env.cfg.confdir, conn)? {
            return Err(Error::configured(
                param,
                format!(
                    "no 'conn {conn}' in {}/*.conf; define it there or fix confdir",
                    env.cfg.confdir.display().to_string().trim_end_matches('/')
                ),
            ));
        }
    }
    Ok(())
}
