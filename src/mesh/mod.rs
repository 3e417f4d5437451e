//! The mesh resource (`ocf:vipsec:mesh`): from one peer list, a host-to-host transport
//! conn to every other node. `config` validates the parameters; `plan` turns them into
//! the conns this node needs (resolving names, skipping itself, choosing local addresses).

pub mod config;
pub mod corosync;
pub mod plan;
