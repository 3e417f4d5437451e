//! Reachability as an attacker sees it: listeners that log who reached them, and probes
//! from a chosen source address and port (python3 of the host, inside a namespace).

use super::{Netns, Run};

/// Listens on every "tcp:ADDR:PORT" / "udp:ADDR:PORT" given (ADDR "dual": IPv6's and IPv4's),
/// printing each connection or datagram as "tcp PORT from ADDR:PORT".
const LISTENER: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    proto, rest = spec.split(":", 1)
    addr, port = rest.rsplit(":", 1)
    addr, port = ("::" if addr == "dual" else addr), int(port)
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr, port))
    if proto == "tcp":
        s.listen(16)
    sel.register(s, selectors.EVENT_READ, (proto, port))
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        proto, port = key.data
        if proto == "tcp":
            c, peer = key.fileobj.accept()
            c.close()
        else:
            _, peer = key.fileobj.recvfrom(2048)
        print(proto, port, "from", "%s:%d" % (peer[0], peer[1]), flush=True)
"#;

/// argv: source address, destination, source ports, TCP ports, UDP ports (each a
/// comma-separated list). Prints "open SPORT DPORT" for every TCP connection that
/// succeeded, and sends one datagram from each source port to each UDP port ("refused
/// SPORT DPORT ERRNO" when the kernel would not send it).
const PROBE: &str = r#"
import socket, sys
src, dst, sports, tcp, udp = sys.argv[1:6]
ports = lambda s: [int(p) for p in s.split(",") if p]
for sp in ports(sports):
    for dp in ports(tcp):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(1.0)
        s.bind((src, sp))
        try:
            s.connect((dst, dp))
            print("open", sp, dp, flush=True)
        except OSError:
            pass
        finally:
            s.close()
    for dp in ports(udp):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((src, sp))
        try:
            s.sendto(b"probe", (dst, dp))
        except OSError as e:
            print("refused", sp, dp, e.errno, flush=True)
        s.close()
"#;

/// A LISTENER in `ns`, its output in `log`: killed on drop.
pub struct Listener(std::process::Child);

impl Listener {
    pub fn start(ns: &Netns, log: &std::path::Path, specs: &[&str]) -> Listener {
        let child = ns
            .host_cmd("python3")
            .args(["-c", LISTENER])
            .args(specs)
            .stdout(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while !std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("ready")
        {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "listener {specs:?} not up"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn probe(ns: &Netns, src: &str, dst: &str, sports: &str, tcp: &str, udp: &str) -> String {
    let r = Run::from(
        ns.host_cmd("python3")
            .args(["-c", PROBE, src, dst, sports, tcp, udp])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "probe from {src} ports {sports} failed: {r:?}");
    r.stdout
}
