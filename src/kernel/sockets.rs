//! Which sockets exist in this network namespace, from the kernel's /proc/net tables
//! (a stable kernel ABI). Lets monitor see that pluto is alive, which pluto it is, and
//! that it listens for IKE on the VIP — without talking to pluto, whose control socket
//! logs an error for every connection that sends no command.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The kernel inode of the listening unix socket bound at `path`, if a process listens
/// there. A restarted daemon gets a new inode: the inode names the daemon instance.
pub fn listening_unix_socket(path: &Path) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    let wanted = path.to_str()?;
    if let Some(inode) = parse_unix_listeners(&table).find_map(|(i, b)| (b == wanted).then_some(i))
    {
        return Some(inode);
    }
    // The same socket under another spelling (/var/run vs /run): resolve only sockets of
    // the same file name, never every socket's path (one on a dead network mount would
    // hang the monitor).
    let name = path.file_name()?;
    let canonical = std::fs::canonicalize(path).ok()?;
    let found = parse_unix_listeners(&table).find_map(|(inode, bound)| {
        let bound = Path::new(bound);
        (bound.file_name() == Some(name)
            && std::fs::canonicalize(bound).ok().as_deref() == Some(canonical.as_path()))
        .then_some(inode)
    });
    found
}

/// (inode, path) of every listening, path-bound unix socket in a /proc/net/unix table.
pub fn parse_unix_listeners(table: &str) -> impl Iterator<Item = (u64, &str)> {
    const SO_ACCEPTCON: u32 = 0x0001_0000;
    table.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path
        let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
        let path = f.get(7)?;
        if flags & SO_ACCEPTCON == 0 || !path.starts_with('/') {
            return None;
        }
        Some((f.get(6)?.parse().ok()?, *path))
    })
}

/// IKE's ports: 500, and 4500 (NAT traversal).
pub const IKE_PORTS: [u16; 2] = [500, 4500];

/// Is a UDP socket bound to `addr` on one of `ports`?
pub fn udp_bound(addr: IpAddr, ports: &[u16]) -> bool {
    udp_bound_to_any(&[addr], ports)
}

/// Is a UDP socket bound to one of `addrs` (all of one family) on one of `ports`? One
/// read of the kernel's table.
pub fn udp_bound_to_any(addrs: &[IpAddr], ports: &[u16]) -> bool {
    let Some(first) = addrs.first() else {
        return false;
    };
    let file = if first.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    std::fs::read_to_string(file)
        .is_ok_and(|t| parse_udp_bound(&t).any(|(a, p)| addrs.contains(&a) && ports.contains(&p)))
}

/// Local (address, port) of every socket in a /proc/net/udp or udp6 table.
pub fn parse_udp_bound(table: &str) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
    parse_table(table).map(|s| s.local)
}

/// One socket of a /proc/net/{tcp,udp}{,6} table.
pub struct TableSocket {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    /// The kernel's TCP state number (UDP sockets use the same numbers).
    pub state: u8,
}

/// TCP_LISTEN; TCP_CLOSE, which a UDP socket not connected to a peer is in.
const TCP_LISTEN: u8 = 0x0a;
const TCP_CLOSE: u8 = 0x07;

/// An "address:port" of the tables: hex 32-bit words in host byte order, hex port.
fn parse_endpoint(text: &str) -> Option<(IpAddr, u16)> {
    let (hex, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok();
    let addr = match hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?.to_ne_bytes())),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((addr, port))
}

/// Every socket of a /proc/net/{tcp,udp}{,6} table.
pub fn parse_table(table: &str) -> impl Iterator<Item = TableSocket> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut f = line.split_whitespace().skip(1);
        let local = parse_endpoint(f.next()?)?;
        let remote = parse_endpoint(f.next()?)?;
        let state = u8::from_str_radix(f.next()?, 16).ok()?;
        Some(TableSocket {
            local,
            remote,
            state,
        })
    })
}

/// The ports on which a socket of this namespace takes `proto` (6 TCP, 17 UDP) from
/// anyone at `addr`: TCP listeners, UDP sockets not connected to one peer, bound to
/// `addr`, to a wildcard address (an IPv6 one takes IPv4 too) or to `addr` mapped into
/// IPv6. A table that cannot be read counts as every port taken.
pub fn open_ports(proto: u8, addr: IpAddr) -> std::collections::BTreeSet<u16> {
    let (name, wanted) = match proto {
        6 => ("tcp", TCP_LISTEN),
        _ => ("udp", TCP_CLOSE),
    };
    let mapped = match addr {
        IpAddr::V4(a) => Some(IpAddr::V6(a.to_ipv6_mapped())),
        IpAddr::V6(_) => None,
    };
    let mut ports = std::collections::BTreeSet::new();
    for file in [format!("/proc/net/{name}"), format!("/proc/net/{name}6")] {
        let Ok(table) = std::fs::read_to_string(&file) else {
            log::warn!("cannot read {file}: treating every port as listened on");
            return (0..=u16::MAX).collect();
        };
        ports.extend(
            parse_table(&table)
                .filter(|s| s.state == wanted && (proto == 6 || s.remote.1 == 0))
                .filter(|s| {
                    let bound = s.local.0;
                    bound == addr || bound.is_unspecified() || Some(bound) == mapped
                })
                .map(|s| s.local.1),
        );
    }
    ports
}

/// The kernel's ephemeral ports (net.ipv4.ip_local_port_range, which IPv6 uses too),
/// and the ones it never hands out (ip_local_reserved_ports): the ports replies to this
/// node's own connections come back to, and those it must leave alone.
pub fn ephemeral_ports() -> (u16, u16, std::collections::BTreeSet<u16>) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| parse_port_range(&t));
    let (lo, hi) = range.unwrap_or_else(|| {
        log::warn!("cannot read net.ipv4.ip_local_port_range: assuming Linux's 32768-60999");
        (32768, 60999)
    });
    let reserved = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
        .map(|t| parse_reserved_ports(&t))
        .unwrap_or_default();
    (lo, hi, reserved)
}

fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    (lo <= hi).then_some((lo, hi))
}

/// "8080,9000-9100" → every port listed.
fn parse_reserved_ports(text: &str) -> std::collections::BTreeSet<u16> {
    text.trim()
        .split(',')
        .filter_map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            Some(lo.trim().parse::<u16>().ok()?..=hi.trim().parse::<u16>().ok()?)
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured in a namespace running pluto (libreswan 4.10), x86_64.
    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
00000000795aced3: 00000002 00000000 00010000 0001 01 40178 /run/pluto/pluto.ctl
000000003ce2aced: 00000003 00000000 00000000 0001 03  1603
00000000aaaaaaaa: 00000002 00000000 00000000 0001 01 40180 /run/pluto/other.sock
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2800: 0100007F:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40207 2 00000000a46e6226 0
 2800: 0A0200C0:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40205 2 00000000d248070a 0
 6800: 0A0200C0:1194 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40206 2 000000001797a651 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2800: 00000000000000000000000001000000:01F4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40209 2 00000000593bda27 0
 2801: B80D0120000000000000000010000000:01F4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40211 2 00000000593bda28 0
";

    #[test]
    fn unix_listeners_only() {
        let l: Vec<_> = parse_unix_listeners(UNIX).collect();
        assert_eq!(l, vec![(40178, "/run/pluto/pluto.ctl")]);
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:08B0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100A8C0:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100A8C0:D431 0200A8C0:0016 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
";

    #[test]
    fn open_ports_and_their_states() {
        let s: Vec<_> = parse_table(TCP).collect();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].local, ("0.0.0.0".parse().unwrap(), 2224));
        assert_eq!(s[1].local, ("192.168.0.1".parse().unwrap(), 40000));
        assert_eq!(s[0].state, TCP_LISTEN);
        assert_eq!(s[2].remote, ("192.168.0.2".parse().unwrap(), 22));
        assert_eq!(s[2].state, 1);
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("9 2"), None);
        assert_eq!(
            parse_reserved_ports("8080,9000-9002\n"),
            [8080, 9000, 9001, 9002].into()
        );
        assert!(parse_reserved_ports("\n").is_empty());
    }

    #[test]
    fn udp_v4_and_v6_addresses() {
        let v4: Vec<_> = parse_udp_bound(UDP).collect();
        assert!(v4.contains(&("192.0.2.10".parse().unwrap(), 500)));
        assert!(v4.contains(&("192.0.2.10".parse().unwrap(), 4500)));
        assert!(v4.contains(&("127.0.0.1".parse().unwrap(), 500)));
        let v6: Vec<_> = parse_udp_bound(UDP6).collect();
        assert!(v6.contains(&("::1".parse().unwrap(), 500)));
        assert!(
            v6.contains(&("2001:db8::10".parse().unwrap(), 500)),
            "{v6:?}"
        );
    }
}
