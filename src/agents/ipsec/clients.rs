//! The VIP's known clients (`clients`): the node that has just taken the VIP initiates
//! toward them, so they need not wait for their own retransmissions or dead peer
//! detection to find the tunnel's new end (the failover's outage, measured in tests/lab).
//! Each has a conn of its own (config.rs): libreswan 4.x cannot instantiate a template
//! toward more than one address by hand (`whack --remote-host` finds the first instance
//! again), and 5.x keeps whack attached to such an instance.

use super::Env;

/// Starts an IKE exchange toward every known client, asynchronously inside the daemon:
/// a client that is down costs the start nothing (the daemon keeps trying it), and one
/// that is up has its SA within one exchange, with INITIAL_CONTACT so it drops the SAs
/// it still had with the VIP's previous node. A failure to ask the daemon is logged,
/// never fatal: the tunnel serves clients that connect by themselves anyway.
pub fn initiate_all(env: &Env) {
    let mut started = 0;
    for client in &env.cfg.clients {
        match env.ike.initiate_async(&client.conn, env.deadline) {
            Ok(()) => started += 1,
            Err(e) => log::warn!("known client {}: {}", client.address, e.reason()),
        }
    }
    if started > 0 {
        log::info!(
            "tunnel {}: initiating toward {started} known client(s) from VIP {}",
            env.cfg.tunnel,
            env.cfg.vip
        );
    }
}
