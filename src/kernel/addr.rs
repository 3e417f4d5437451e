//! Is an address configured on this node? Exact match over rtnetlink: 192.0.2.1 is not
//! 192.0.2.10, and an IPv6 address still in (or failed) duplicate address detection does
//! not count, because the kernel will not use it as a source yet.

use std::net::IpAddr;
use std::time::Instant;

use futures_util::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::AddressFamily;
use serde::Serialize;

use super::block_on_until;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressLocation {
    pub interface: String,
    pub ifindex: u32,
    pub prefix_len: u8,
}

/// Where the address is configured and usable in this network namespace, if anywhere.
pub fn find_local_address(ip: IpAddr, deadline: Instant) -> Result<Option<AddressLocation>> {
    block_on_until("reading interface addresses", deadline, async move {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::Generic(format!("cannot open a netlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        let result = lookup(&handle, ip).await;
        conn.abort();
        result
    })
}

/// Every usable address of this network namespace (both families).
pub fn local_addresses(deadline: Instant) -> Result<Vec<IpAddr>> {
    block_on_until("reading interface addresses", deadline, async move {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::Generic(format!("cannot open a netlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        let mut stream = handle.address().get().execute();
        let mut out = Vec::new();
        loop {
            match stream.try_next().await {
                Ok(Some(msg)) => {
                    if let Some(ip) = usable_local(&msg) {
                        out.push(ip);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    conn.abort();
                    return Err(Error::Generic(format!("netlink address dump failed: {e}")));
                }
            }
        }
        conn.abort();
        Ok(out)
    })
}

/// This host's own usable address carried by the message, if any.
fn usable_local(msg: &AddressMessage) -> Option<IpAddr> {
    let ip = own_address(msg)?;
    matches_usable(msg, ip).then_some(ip)
}

/// IFA_LOCAL is this host's address; IFA_ADDRESS is the peer's on point-to-point links
/// (and equal to IFA_LOCAL elsewhere). IPv6 only sends IFA_ADDRESS.
fn own_address(msg: &AddressMessage) -> Option<IpAddr> {
    let attr = |want_local: bool| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(l) if want_local => Some(*l),
            AddressAttribute::Address(a) if !want_local => Some(*a),
            _ => None,
        })
    };
    attr(true).or(attr(false))
}

async fn lookup(handle: &rtnetlink::Handle, ip: IpAddr) -> Result<Option<AddressLocation>> {
    let nl_err = |e: rtnetlink::Error| Error::Generic(format!("netlink address dump failed: {e}"));
    let mut request = handle.address().get();
    // Dump one family only: half the messages to parse on a dual-stack host.
    request.message_mut().header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let mut stream = request.execute();
    let mut found = None;
    while let Some(msg) = stream.try_next().await.map_err(nl_err)? {
        if found.is_none() && matches_usable(&msg, ip) {
            found = Some((msg.header.index, msg.header.prefix_len));
        }
    }
    let Some((ifindex, prefix_len)) = found else {
        return Ok(None);
    };
    let mut links = handle.link().get().match_index(ifindex).execute();
    let mut interface = format!("if{ifindex}");
    if let Some(link) = links.try_next().await.map_err(nl_err)? {
        if let Some(name) = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        }) {
            interface = name;
        }
    }
    Ok(Some(AddressLocation {
        interface,
        ifindex,
        prefix_len,
    }))
}

/// The message carries exactly `ip` as this host's own address, and the kernel can use it.
pub(crate) fn matches_usable(msg: &AddressMessage, ip: IpAddr) -> bool {
    if own_address(msg) != Some(ip) {
        return false;
    }
    // IFA_FLAGS (32 bit) supersedes the 8-bit header flags when present.
    let unusable = match msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Flags(f) => Some(*f),
        _ => None,
    }) {
        Some(flags) => flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed),
        None => msg
            .header
            .flags
            .intersects(AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed),
    };
    !unusable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(attrs: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.attributes = attrs;
        m
    }

    #[test]
    fn exact_match_only() {
        let ten: IpAddr = "192.0.2.10".parse().unwrap();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let m = msg(vec![
            AddressAttribute::Local(one),
            AddressAttribute::Address(one),
        ]);
        assert!(matches_usable(&m, one));
        assert!(!matches_usable(&m, ten));
    }

    #[test]
    fn point_to_point_peer_is_not_local() {
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        let peer: IpAddr = "192.0.2.2".parse().unwrap();
        let m = msg(vec![
            AddressAttribute::Local(me),
            AddressAttribute::Address(peer),
        ]);
        assert!(matches_usable(&m, me));
        assert!(!matches_usable(&m, peer));
    }

    #[test]
    fn tentative_and_dadfailed_do_not_count() {
        let ip: IpAddr = "2001:db8::10".parse().unwrap();
        for f in [AddressFlags::Tentative, AddressFlags::Dadfailed] {
            let m = msg(vec![
                AddressAttribute::Address(ip),
                AddressAttribute::Flags(f),
            ]);
            assert!(!matches_usable(&m, ip));
        }
        let m = msg(vec![
            AddressAttribute::Address(ip),
            AddressAttribute::Flags(AddressFlags::Nodad),
        ]);
        assert!(matches_usable(&m, ip));
    }
}
