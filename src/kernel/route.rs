//! Which local address the kernel would use to reach a peer: one RTM_GETROUTE per peer
//! (the kernel's own FIB lookup, RTA_PREFSRC), over one rtnetlink socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use futures_util::TryStreamExt;
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::RouteMessageBuilder;

use super::block_on_until;
use crate::error::{Error, Result};

/// For each destination, the preferred source address, or None when there is no route.
pub fn source_addresses(dests: &[IpAddr], deadline: Instant) -> Result<Vec<Option<IpAddr>>> {
    let dests = dests.to_vec();
    block_on_until("looking up routes to the peers", deadline, async move {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::Generic(format!("cannot open a netlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        let mut out = Vec::with_capacity(dests.len());
        for dest in dests {
            let msg = match dest {
                IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(a, 32)
                    .build(),
                IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(a, 128)
                    .build(),
            };
            // No route is an answer (an error from the kernel), not a failure of the lookup.
            let found = match handle.route().get(msg).execute().try_next().await {
                Ok(Some(route)) => route.attributes.iter().find_map(|a| match a {
                    RouteAttribute::PrefSource(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                    RouteAttribute::PrefSource(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                    _ => None,
                }),
                Ok(None) | Err(_) => None,
            };
            out.push(found);
        }
        conn.abort();
        Ok(out)
    })
}
