//! vipsec's VICI client against a real charon: strongSwan run from a Debian root of its
//! own (tests/strongswan-root.sh; strongSwan cannot be installed beside libreswan) in a
//! network namespace, with its own strongswan.conf and VICI socket. Skipped, with the
//! reason, when VIPSEC_STRONGSWAN_ROOT does not name such a root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Netns;
use vipsec::ike::vici::{Client, Message};

fn strongswan_root() -> Option<PathBuf> {
    let root = PathBuf::from(std::env::var_os("VIPSEC_STRONGSWAN_ROOT")?);
    assert!(
        root.join("usr/lib/ipsec/charon").exists(),
        "VIPSEC_STRONGSWAN_ROOT={} has no charon (build it with tests/strongswan-root.sh)",
        root.display()
    );
    Some(root)
}

/// charon in a namespace, from the root, with a private /run (its pid file) and its own
/// configuration and socket under `dir`. Killed on drop.
struct Charon {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Charon {
    fn start(ns: &Netns, root: &Path, dir: &Path) -> Charon {
        let socket = dir.join("charon.vici");
        let conf = dir.join("strongswan.conf");
        fs::write(
            &conf,
            format!(
                "charon {{\n  install_routes = no\n  filelog {{\n    log {{\n      path = {log}\n      default = 1\n      ike = 2\n    }}\n  }}\n  plugins {{\n    vici {{\n      socket = unix://{sock}\n    }}\n  }}\n}}\n",
                log = dir.join("charon.log").display(),
                sock = socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sh", "-c"])
            .arg(r#"mount -t tmpfs run "$0/run" && exec chroot "$0" env STRONGSWAN_CONF="$1" /usr/lib/ipsec/charon"#)
            .arg(root)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("charon starts");
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "charon did not open {socket:?}; its log:\n{}",
                fs::read_to_string(dir.join("charon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Charon {
            child,
            socket,
            dir: dir.to_path_buf(),
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket, soon()).unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn psk_conn(name: &str) -> Message {
    let end = |id: &str| Message::new().with("auth", "psk").with("id", id);
    Message::new().with_section(
        name,
        Message::new()
            .with_list("local_addrs", ["192.0.2.1"])
            .with_list("remote_addrs", ["192.0.2.2"])
            .with("version", "2")
            .with_section("local", end("192.0.2.1"))
            .with_section("remote", end("192.0.2.2"))
            .with_section(
                "children",
                Message::new().with_section(
                    name,
                    Message::new()
                        .with("mode", "transport")
                        .with_list("esp_proposals", ["aes256gcm16"]),
                ),
            ),
    )
}

#[test]
fn conns_and_keys_load_list_and_unload_over_vici() {
    let Some(root) = strongswan_root() else {
        eprintln!("skipped: VIPSEC_STRONGSWAN_ROOT is not set (tests/strongswan-root.sh builds a root with charon)");
        return;
    };
    let ns = Netns::new("vici");
    ns.veth("v0", "v1", true);
    ns.ip("addr add 192.0.2.1/24 dev v0");
    let tmp = tempfile::tempdir().unwrap();
    let charon = Charon::start(&ns, &root, tmp.path());
    let mut c = charon.client();

    let v = c.request("version", Message::new(), soon()).unwrap();
    assert_eq!(v.str("daemon"), Some("charon"), "{v:?}");
    let version = v.str("version").unwrap_or("");
    assert!(
        version.starts_with("5.") || version.starts_with("6."),
        "{v:?}"
    );

    let key = Message::new()
        .with("type", "IKE")
        .with("data", b"\x01\x02not text\xff".to_vec())
        .with_list("owners", ["192.0.2.1", "192.0.2.2"]);
    c.request("load-shared", key, soon()).unwrap();
    c.request("load-conn", psk_conn("pair"), soon()).unwrap();

    // charon's own view of the conn. (5.9.8 ignores list-conns' `ike` filter, which later
    // versions honour: whoever asks must still pick the conn out of the answer.)
    c.request("load-conn", psk_conn("other"), soon()).unwrap();
    let (conns, _) = c
        .streamed(
            "list-conns",
            "list-conn",
            Message::new().with("ike", "pair"),
            soon(),
        )
        .unwrap();
    let pair = conns.iter().find_map(|m| m.section("pair"));
    let pair = pair.unwrap_or_else(|| panic!("no conn pair in {conns:?}"));
    assert_eq!(pair.list("local_addrs"), ["192.0.2.1"], "{pair:?}");
    assert_eq!(pair.list("remote_addrs"), ["192.0.2.2"], "{pair:?}");
    let child = pair.section("children").and_then(|ch| ch.section("pair"));
    assert_eq!(
        child.and_then(|c| c.str("mode")),
        Some("TRANSPORT"),
        "{pair:?}"
    );

    // Nobody at 192.0.2.2: no SA, and asking for one conn's SAs is not a dump of all.
    let (sas, _) = c
        .streamed(
            "list-sas",
            "list-sa",
            Message::new().with("ike", "pair"),
            soon(),
        )
        .unwrap();
    assert!(sas.is_empty(), "{sas:?}");

    // Refusals carry charon's reason; unknown commands are named.
    let e = c
        .request("unload-conn", Message::new().with("name", "nosuch"), soon())
        .unwrap_err();
    assert!(e.reason().contains("nosuch"), "{e:?}");
    let e = c
        .request("no-such-command", Message::new(), soon())
        .unwrap_err();
    assert!(e.reason().contains("does not know"), "{e:?}");

    c.request("unload-conn", Message::new().with("name", "pair"), soon())
        .unwrap();
    let (conns, _) = c
        .streamed("list-conns", "list-conn", Message::new(), soon())
        .unwrap();
    let names: Vec<&str> = conns
        .iter()
        .flat_map(|m| m.sections().map(|(n, _)| n))
        .collect();
    assert_eq!(
        names,
        ["other"],
        "{conns:?}\ncharon's log:\n{}",
        charon.log()
    );
}
