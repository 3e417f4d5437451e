//! monitor: three honest states. 0: started, VIP here, conn loaded and ready.
//! 7: cleanly stopped (no state). 1: started but broken.
//!
//! Depth 0 (every interval) asks only the kernel: the VIP is here, the pluto that
//! oriented the conn at start is still the one running (its control socket's inode), and
//! it listens for IKE on the VIP. Only if pluto changed does it ask pluto. Depth 10 also
//! asks pluto for the conn's orientation and reads the kernel's XFRM policies and SAs for
//! the VIP. A road-warrior conn with no client connected is normal: depth 10 then
//! returns 0 and says so (clients come and go; that is not this node's failure).

use serde::Serialize;

use super::Env;
use crate::agents::ipsec::config::Auth;
use crate::agents::peer_names::{self, Claim};
use crate::config::ConnName;
use crate::dns::DnssecMode;
use crate::error::{Error, Result};
use crate::ike::{ConnState, ConnStatus, SaKind};

use crate::kernel::addr::AddressLocation;
use crate::kernel::xfrm;
use crate::state::LockKind;

#[derive(Debug, Serialize)]
pub struct Report {
    pub instance: String,
    pub tunnel: String,
    pub vip: std::net::IpAddr,
    pub vip_local: bool,
    pub vip_interface: Option<String>,
    /// running | stopped | failed
    pub state: &'static str,
    pub exit_code: i32,
    pub reason: String,
    pub check_level: u32,
    /// Depth 10: the kernel's policies and SAs with the VIP as an endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xfrm: Option<xfrm::XfrmView>,
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Findings {
    vip_at: Option<AddressLocation>,
    xfrm: Option<xfrm::XfrmView>,
    warnings: Vec<String>,
}

/// Runs the checks; the report describes what was found, the result is the exit code.
pub fn run(env: &Env) -> (Report, Result<()>) {
    let mut found = Findings::default();
    let result = check(env, &mut found);
    let (state, reason) = match &result {
        Ok(()) => (
            "running",
            format!(
                "tunnel {} is loaded and ready on VIP {}",
                env.cfg.tunnel, env.cfg.vip
            ),
        ),
        Err(Error::NotRunning(r)) => ("stopped", r.clone()),
        Err(Error::Degraded(r)) => ("degraded", r.clone()),
        Err(e) => ("failed", e.reason().to_string()),
    };
    for w in &found.warnings {
        log::warn!("{w}");
    }
    let report = Report {
        instance: env.ctx.instance.clone(),
        tunnel: env.cfg.tunnel.to_string(),
        vip: env.cfg.vip,
        vip_local: found.vip_at.is_some(),
        vip_interface: found.vip_at.map(|a| a.interface),
        state,
        exit_code: result.as_ref().err().map_or(0, Error::code),
        reason,
        check_level: env.ctx.check_level,
        xfrm: found.xfrm,
        warnings: found.warnings,
    };
    (report, result)
}

fn check(env: &Env, found: &mut Findings) -> Result<()> {
    let (cfg, tunnel) = (env.cfg, &env.cfg.tunnel);
    let _lock = env.store.lock(LockKind::Shared, env.deadline)?;
    // The VIP is looked up even when stopped: by hand, "is the VIP here?" is half the answer.
    found.vip_at = env.vip_location()?;
    let Some(state) = env.store.read()? else {
        return Err(Error::NotRunning(format!(
            "tunnel {tunnel} is not started on this node"
        )));
    };
    if state.tunnel != tunnel.as_str() || state.vip != cfg.vip {
        return Err(Error::Generic(format!(
            "this instance was started for tunnel {} on VIP {}, not {tunnel} on {}; stop it before changing tunnel or vip",
            state.tunnel, state.vip, cfg.vip
        )));
    }
    if let Err(e) = env.ike.check_installed() {
        // A probe must say "not running" when the programs are missing (ocf-tester checks it).
        return Err(if env.ctx.is_probe() {
            Error::NotRunning(e.reason().to_string())
        } else {
            e
        });
    }
    if found.vip_at.is_none() {
        return Err(Error::Generic(format!(
            "VIP {} is no longer configured on this node, but tunnel {tunnel} was started here",
            cfg.vip
        )));
    }
    let Some(daemon) = env.ike.daemon_instance() else {
        return Err(env.daemon_not_running());
    };
    let ask_daemon = env.ctx.check_level >= 10 || state.daemon_instance != Some(daemon);
    // The daemon's view of the conn (its state and SAs), asked once, when needed.
    let checks_names = cfg.peer_name().is_some() && cfg.dnssec_mode() != DnssecMode::Off;
    let status = if ask_daemon || checks_names {
        Some(tunnel_status(env)?)
    } else {
        None
    };
    if let (true, Some(status)) = (ask_daemon, &status) {
        if state.daemon_instance.is_some_and(|d| d != daemon) {
            found.warnings.push(format!(
                "{} was restarted since start; asking it for the conn",
                env.ike.daemon_name()
            ));
        }
        let name = env.ike.daemon_name();
        match status.state {
            ConnState::Ready => {}
            ConnState::Loaded => {
                return Err(Error::Generic(format!(
                    "tunnel {tunnel} is loaded but {name} cannot serve it on VIP {}; restart the resource to make {name} rescan its addresses",
                    cfg.vip
                )))
            }
            ConnState::Absent => {
                return Err(Error::Generic(format!(
                    "tunnel {tunnel} is not loaded in {name}{}",
                    if state.daemon_instance != Some(daemon) { format!(" ({name} was restarted since start)") } else { String::new() }
                )))
            }
        }
    }
    if !env.ike.listens_for_ike(cfg.vip) {
        return Err(Error::Generic(format!(
            "{} does not listen for IKE on VIP {} (UDP 500/4500); restart the resource to make it listen",
            env.ike.daemon_name(),
            cfg.vip
        )));
    }
    let degraded = check_peer_names(env, status.as_ref(), found)?;
    if let (true, Some(status)) = (env.ctx.check_level >= 10, &status) {
        let view = xfrm::dump(env.deadline)?.involving(cfg.vip);
        check_child_sas_in_kernel(env, status, &view)?;
        if !view.sas.iter().any(|s| s.established) {
            found.warnings.push(format!(
                "tunnel {tunnel}: no peer has an SA with VIP {} right now (fine for a road-warrior conn between clients)",
                cfg.vip
            ));
        }
        found.xfrm = Some(view);
    }
    match degraded {
        Some(why) => Err(Error::Degraded(why)),
        None => Ok(()),
    }
}

/// The tunnel's conn as the daemon sees it, with the SAs of the known clients' conns
/// (asked together: on libreswan 4.x one full status answers them all).
fn tunnel_status(env: &Env) -> Result<ConnStatus> {
    let conns: Vec<&ConnName> = std::iter::once(&env.cfg.tunnel)
        .chain(env.cfg.clients.iter().map(|c| &c.conn))
        .collect();
    let mut all = env.ike.conns_status(&conns, env.deadline)?.into_iter();
    let Some(mut status) = all.next() else {
        return Err(Error::Generic(format!(
            "{} gave no status for tunnel {}",
            env.ike.daemon_name(),
            env.cfg.tunnel
        )));
    };
    status.sas.extend(all.flat_map(|theirs| theirs.sas));
    Ok(status)
}

/// Every connected peer identified by a DNS name must come from an address that name
/// securely resolves to: with peer_id=@NAME that name; with auth=cert and no such
/// peer_id, the name in the identity each peer authenticated with (its certificate's,
/// as the daemon reports it: an FQDN, or a DN's CN where the print has one reading —
/// charon's DNs mostly have not, and claim no name: "cannot tell"). Under require a peer
/// that fails is disconnected (its IKE SA deleted) and the monitor fails: for the VIP
/// tunnel that peer is the service's whole purpose, and an impostor holding the tunnel
/// is a failure, not a degradation.
/// Returns why the check is degraded (DNS did not answer), if it is.
fn check_peer_names(
    env: &Env,
    status: Option<&ConnStatus>,
    found: &mut Findings,
) -> Result<Option<String>> {
    let (cfg, mode) = (env.cfg, env.cfg.dnssec_mode());
    if mode == DnssecMode::Off {
        return Ok(None);
    }
    let claims: Vec<Claim> = match (cfg.peer_name(), &cfg.auth) {
        (Some(name), _) => status
            .map(|s| s.peers(SaKind::Ike))
            .unwrap_or_default()
            .into_iter()
            .map(|(ike_serial, address)| Claim {
                ike_serial,
                address,
                name: Some(name.to_string()),
                shown: format!("@{name}"),
                ambiguous: false,
            })
            .collect(),
        (None, Auth::Cert(_)) => {
            let mut claims = Vec::new();
            for p in env.ike.peer_identities(env.deadline)? {
                if !cfg.is_tunnel_conn(&p.conn) {
                    continue;
                }
                // libreswan names no address on a plain conn's SAs; with auth=cert the
                // tunnel is the generated template, so such a conn is a known client's.
                let Some(address) = p.address.or_else(|| cfg.known_client_of(&p.conn)) else {
                    continue;
                };
                claims.push(Claim {
                    ike_serial: p.ike_serial,
                    address,
                    // Messages quote the name, or the identity itself when it names none.
                    shown: p.claimed_name.clone().unwrap_or(p.shown),
                    name: p.claimed_name,
                    ambiguous: p.ambiguous,
                });
            }
            claims
        }
        (None, _) => return Ok(None),
    };
    let outcome = peer_names::judge(
        env.ike,
        &env.store,
        &cfg.dnssec_anchor,
        &cfg.resolver,
        mode,
        claims,
        env.deadline,
    )?;
    found.warnings.extend(outcome.tolerated);
    if !outcome.refused.is_empty() {
        let mut refused = Vec::new();
        for r in outcome.refused {
            refused.push(r.what);
            // A known client's conn is this node's to initiate: left loaded, the daemon
            // would negotiate with the impostor again. The next start loads it anew.
            if let Some(client) = cfg.clients.iter().find(|c| c.address == r.address) {
                match env.ike.unload(&client.conn, env.deadline) {
                    Ok(()) => refused.push(format!("conn {} unloaded", client.conn)),
                    Err(e) => log::warn!("known client {}: {}", client.address, e.reason()),
                }
            }
        }
        return Err(Error::Generic(refused.join("; ")));
    }
    // DNS did not answer: nobody was shown to be an impostor, so the VIP stays up here
    // (degraded), whoever can drop port 53 traffic cannot take it down cluster-wide.
    Ok((!outcome.unverified.is_empty()).then(|| outcome.unverified.join("; ")))
}

/// Every Child SA pluto believes in must be in the kernel, both ways: an SA lost from
/// the kernel (flushed by hand, a crashed helper) leaves pluto content while the peer's
/// traffic is dropped. Restarting the resource renegotiates it.
fn check_child_sas_in_kernel(env: &Env, status: &ConnStatus, view: &xfrm::XfrmView) -> Result<()> {
    let vip = env.cfg.vip;
    let mut broken: Vec<String> = Vec::new();
    for (serial, peer) in status.peers(SaKind::Child) {
        let has = |src, dst| {
            view.sas
                .iter()
                .any(|s| s.established && s.src == src && s.dst == dst)
        };
        let missing: Vec<&str> = [(has(peer, vip), "inbound"), (has(vip, peer), "outbound")]
            .into_iter()
            .filter(|(present, _)| !present)
            .map(|(_, dir)| dir)
            .collect();
        if !missing.is_empty() {
            broken.push(format!(
                "{}'s IPsec SA #{serial} with {peer} has no {} SA in the kernel",
                env.ike.daemon_name(),
                missing.join(" or ")
            ));
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(Error::Generic(format!(
            "tunnel {}: {}; that peer's traffic is dropped",
            env.cfg.tunnel,
            broken.join("; ")
        )))
    }
}
