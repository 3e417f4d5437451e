//! Which sockets exist in this network namespace, from the kernel: the listening unix
//! sockets over NETLINK_SOCK_DIAG, bound UDP ports from /proc/net/udp{,6} (a stable
//! kernel ABI). Lets monitor see that pluto is alive, which pluto it is, and that it
//! listens for IKE on the VIP — without talking to pluto, whose control socket logs an
//! error for every connection that sends no command.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The kernel inode of the listening unix socket bound at `path` by root, if one listens
/// there. A restarted daemon gets a new inode: the inode names the daemon instance.
///
/// The socket is the one whose file (device, inode) is the file at `path` — not a path
/// string: /proc/net/unix prints paths raw, so any user can bind a socket whose path
/// holds a newline and a forged line naming the daemon's socket (and inode). sock_diag
/// gives the same facts as binary fields no user can write into, and the owner's uid.
/// Following the path's symlinks (/var/run vs /run) comes with `stat`.
pub fn listening_unix_socket(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let file = std::fs::metadata(path).ok()?;
    let wanted = (
        nix::sys::stat::major(file.dev()),
        nix::sys::stat::minor(file.dev()),
        file.ino(),
    );
    let name = path.as_os_str().as_bytes();
    // The bound file is matched by device and inode; where a filesystem reports other
    // numbers to stat than to sock_diag (network and overlay filesystems: seen in the
    // emulated lab, over virtme-ng's shared root), by the exact path it was bound at —
    // which the kernel reports as bound, byte for byte, so no newline can forge it.
    unix_listeners()?
        .into_iter()
        .find(|l| l.uid == Some(0) && (l.file() == Some(wanted) || l.name.as_deref() == Some(name)))
        .map(|l| u64::from(l.inode))
}

/// A listening unix socket as sock_diag describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListener {
    /// The socket's own inode (/proc/net/unix's Inode column).
    pub inode: u32,
    /// The bound file's inode and device (the kernel's internal dev_t: major << 20 |
    /// minor), for sockets bound to a path.
    pub vfs: Option<(u32, u32)>,
    /// The uid of the socket's owner.
    pub uid: Option<u32>,
    /// The path it was bound at, as given to bind (no trailing NUL).
    pub name: Option<Vec<u8>>,
}

impl UnixListener {
    /// (major, minor, inode) of the bound file, comparable with `stat`'s.
    fn file(&self) -> Option<(u64, u64, u64)> {
        let (ino, dev) = self.vfs?;
        Some((
            u64::from(dev >> 20),
            u64::from(dev & 0xf_ffff),
            u64::from(ino),
        ))
    }
}

// <linux/netlink.h>, <linux/sock_diag.h>, <linux/unix_diag.h>
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// The state a listening socket is in (TCP's numbering, which unix_diag uses too).
const LISTEN_STATE: u32 = 10;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_UID: u32 = 0x40;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_UID: u16 = 7;
/// A dump that never ends (it cannot: the kernel sends each socket once) is cut here.
const MAX_DUMP_BYTES: usize = 64 << 20;

/// Every listening unix socket of this network namespace, with its bound file and owner
/// (one netlink dump; None if the kernel does not answer within a second).
pub fn unix_listeners() -> Option<Vec<UnixListener>> {
    use nix::sys::socket::{
        recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
        SockType,
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .ok()?;
    let second = nix::sys::time::TimeVal::new(1, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &second).ok()?;
    setsockopt(&fd, sockopt::SendTimeout, &second).ok()?;
    nix::sys::socket::connect(fd.as_raw_fd(), &nix::sys::socket::NetlinkAddr::new(0, 0)).ok()?;
    send(fd.as_raw_fd(), &unix_diag_request(), MsgFlags::empty()).ok()?;
    let mut found = Vec::new();
    // The kernel sends a dump in datagrams of at most 32 KiB; MSG_TRUNC tells a larger
    // one (then cut: refused) by its real length.
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC).ok()?;
        total += n;
        if n == 0 || n > buf.len() || total > MAX_DUMP_BYTES {
            return None;
        }
        match parse_unix_diag(buf.get(..n)?, &mut found) {
            Some(true) => return Some(found),
            Some(false) => {}
            None => return None,
        }
    }
}

/// A dump request for listening unix sockets, with their bound file and owner.
fn unix_diag_request() -> Vec<u8> {
    let mut r = Vec::with_capacity(40);
    r.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    r.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    r.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    r.extend_from_slice(&1u32.to_ne_bytes()); // seq
    r.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    r.extend_from_slice(&[libc_af_unix(), 0, 0, 0]); // family, protocol, pad
    r.extend_from_slice(&(1u32 << LISTEN_STATE).to_ne_bytes()); // states
    r.extend_from_slice(&0u32.to_ne_bytes()); // ino: all
    r.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_UID).to_ne_bytes());
    r.extend_from_slice(&[0xff; 8]); // cookie: none
    r
}

fn libc_af_unix() -> u8 {
    nix::sys::socket::AddressFamily::Unix as i32 as u8
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Netlink aligns messages and attributes to 4 bytes.
fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Appends the sockets of one datagram of a sock_diag dump to `found`: Some(true) at the
/// dump's end, Some(false) if more follows, None for an error or a malformed message.
pub fn parse_unix_diag(mut buf: &[u8], found: &mut Vec<UnixListener>) -> Option<bool> {
    while !buf.is_empty() {
        let len = u32_at(buf, 0)? as usize;
        let kind = u16_at(buf, 4)?;
        let msg = buf.get(16..len)?;
        buf = buf.get(align4(len).min(buf.len())..)?;
        match kind {
            NLMSG_DONE => return Some(true),
            SOCK_DIAG_BY_FAMILY => found.push(parse_unix_diag_msg(msg)?),
            // NLMSG_ERROR, or anything else: no answer to rely on.
            _ => return None,
        }
    }
    Some(false)
}

/// struct unix_diag_msg (16 bytes) then attributes.
fn parse_unix_diag_msg(msg: &[u8]) -> Option<UnixListener> {
    let mut l = UnixListener {
        inode: u32_at(msg, 4)?,
        vfs: None,
        uid: None,
        name: None,
    };
    let mut attrs = msg.get(16..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)?;
        let data = attrs.get(4..len)?;
        match kind {
            UNIX_DIAG_VFS => l.vfs = Some((u32_at(data, 0)?, u32_at(data, 4)?)),
            UNIX_DIAG_UID => l.uid = Some(u32_at(data, 0)?),
            UNIX_DIAG_NAME => {
                let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                l.name = Some(data[..end].to_vec());
            }
            _ => {}
        }
        attrs = attrs.get(align4(len).min(attrs.len())..)?;
    }
    Some(l)
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

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2800: 0100007F:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40207 2 00000000a46e6226 0
 2800: 0A0200C0:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40205 2 00000000d248070a 0
 6800: 0A0200C0:1194 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40206 2 000000001797a651 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 2800: 00000000000000000000000001000000:01F4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40209 2 00000000593bda27 0
 2801: B80D0120000000000000000010000000:01F4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40211 2 00000000593bda28 0
";

    /// A dump as the kernel sends it: one socket with its file and owner, one without
    /// attributes, then the end.
    #[test]
    fn unix_diag_dump() {
        let mut dump = Vec::new();
        let msg = |dump: &mut Vec<u8>, kind: u16, body: &[u8]| {
            dump.extend_from_slice(&(16 + body.len() as u32).to_ne_bytes());
            dump.extend_from_slice(&kind.to_ne_bytes());
            dump.extend_from_slice(&[0; 10]);
            dump.extend_from_slice(body);
        };
        let mut body = vec![1, 1, 10, 0];
        body.extend_from_slice(&40178u32.to_ne_bytes());
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&12u16.to_ne_bytes());
        body.extend_from_slice(&UNIX_DIAG_VFS.to_ne_bytes());
        body.extend_from_slice(&77u32.to_ne_bytes());
        body.extend_from_slice(&((8u32 << 20) | 3).to_ne_bytes());
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&UNIX_DIAG_UID.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        msg(&mut dump, SOCK_DIAG_BY_FAMILY, &body);
        let mut bare = vec![1, 1, 10, 0];
        bare.extend_from_slice(&5u32.to_ne_bytes());
        bare.extend_from_slice(&[0; 8]);
        msg(&mut dump, SOCK_DIAG_BY_FAMILY, &bare);
        let mut found = Vec::new();
        assert_eq!(parse_unix_diag(&dump, &mut found), Some(false));
        msg(&mut dump, NLMSG_DONE, &[0; 4]);
        found.clear();
        assert_eq!(parse_unix_diag(&dump, &mut found), Some(true));
        assert_eq!(found[0].file(), Some((8, 3, 77)));
        assert_eq!(found[0].uid, Some(0));
        assert_eq!(
            (found[1].inode, found[1].vfs, found[1].uid),
            (5, None, None)
        );
        // Cut anywhere, the dump is refused or read up to the cut, never past it.
        for cut in 0..dump.len() {
            let mut part = Vec::new();
            let _ = parse_unix_diag(&dump[..cut], &mut part);
            assert!(part.len() <= 2);
        }
    }

    /// Against this kernel: root's listening socket is found by its file, with the
    /// inode the kernel gives the socket; a socket that does not listen, a plain file
    /// and a missing path are not.
    #[test]
    fn finds_a_listening_socket_by_its_file() {
        use std::os::fd::AsRawFd;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.ctl");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))
            .unwrap()
            .display()
            .to_string();
        assert_eq!(
            listening_unix_socket(&path).map(|i| format!("socket:[{i}]")),
            Some(link)
        );
        // Through a symlink to it (the /var/run spelling of /run).
        let alias = dir.path().join("alias.ctl");
        std::os::unix::fs::symlink(&path, &alias).unwrap();
        assert!(listening_unix_socket(&alias).is_some());
        drop(listener);
        assert_eq!(listening_unix_socket(&path), None, "closed, the file stays");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(listening_unix_socket(&plain), None);
        assert_eq!(listening_unix_socket(&dir.path().join("missing")), None);
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
