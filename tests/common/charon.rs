//! strongSwan's charon for tests: run from a Debian root of its own
//! (tests/strongswan-root.sh; strongSwan cannot be installed beside libreswan) in a
//! network namespace, with its own strongswan.conf and VICI socket.

use super::Netns;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vipsec::ike::vici::Client;

/// The root charon runs from; `None` (the test is skipped, saying why) when unset.
pub fn strongswan_root() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("VIPSEC_STRONGSWAN_ROOT") else {
        eprintln!("skipped: VIPSEC_STRONGSWAN_ROOT is not set (tests/strongswan-root.sh builds a root with charon)");
        return None;
    };
    let root = PathBuf::from(root);
    assert!(
        root.join("usr/lib/ipsec/charon").exists(),
        "VIPSEC_STRONGSWAN_ROOT={} has no charon (build it with tests/strongswan-root.sh)",
        root.display()
    );
    Some(root)
}

/// charon in a namespace, from the root, with a private /run (its pid file) and its own
/// configuration and socket under `dir`. Killed on drop.
pub struct Charon {
    child: Child,
    pub socket: PathBuf,
    pub dir: PathBuf,
}

impl Charon {
    pub fn start(ns: &Netns, root: &Path, dir: &Path) -> Charon {
        let socket = dir.join("charon.vici");
        let conf = dir.join("strongswan.conf");
        fs::write(
            &conf,
            format!(
                "charon {{\n  install_routes = no\n  filelog {{\n    log {{\n      path = {log}\n      default = 1\n      ike = 2\n      flush_line = yes\n    }}\n  }}\n  plugins {{\n    vici {{\n      socket = unix://{sock}\n    }}\n  }}\n}}\n",
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

    /// Kills charon and starts a new one with the same configuration and socket: what
    /// it was given over VICI is gone.
    pub fn restart(&mut self, ns: &Netns, root: &Path) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
        let dir = self.dir.clone();
        *self = Charon::start(ns, root, &dir);
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket, soon()).unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}
