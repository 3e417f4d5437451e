//! A real single-node Pacemaker cluster (corosync + pacemakerd), started without systemd
//! inside a network namespace, from the namespace's distribution (`Netns::root`), so every agent it runs (IPaddr2, vipsec) acts on the
//! namespace, never on the host. Stopped and waited for on drop.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{must, Netns};

pub const NODE: &str = "node1";

pub struct Cluster {
    pub dir: PathBuf,
    /// `ip netns exec NS [chroot ROOT]`: commands run in the cluster's namespace, from
    /// the distribution under test.
    exec: String,
    corosync: Option<Child>,
    pacemakerd: Option<Child>,
}

impl Cluster {
    pub fn start(ns: &Netns, dir: &std::path::Path) -> Cluster {
        fs::create_dir_all(dir).unwrap();
        // The distribution's own haclient (its gid may differ from the host's).
        must(&ns.root_sh(&format!("chown root:haclient {d}", d = dir.display())));
        must(&format!("chmod 0775 {}", dir.display()));
        let conf = dir.join("corosync.conf");
        fs::write(
            &conf,
            format!(
                "totem {{\n version: 2\n cluster_name: vipsectest\n transport: knet\n crypto_cipher: none\n crypto_hash: none\n}}\n\
logging {{\n to_stderr: yes\n to_logfile: no\n to_syslog: no\n}}\n\
quorum {{\n provider: corosync_votequorum\n}}\n\
nodelist {{\n node {{\n  name: {NODE}\n  nodeid: 1\n  ring0_addr: 127.0.0.1\n }}\n}}\n"
            ),
        )
        .unwrap();
        // A fresh CIB, pre-seeded: DC elected in ~2 s, no fencing on a test node.
        let lib = ns.root_path("/var/lib/pacemaker");
        let _ = sh_quiet(&format!(
            "rm -f {l}/cib/cib* {l}/pengine/*",
            l = lib.display()
        ));
        fs::create_dir_all(lib.join("cib")).unwrap();
        fs::write(
            lib.join("cib/cib.xml"),
            r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dcdead" name="dc-deadtime" value="2s"/>
        <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>
      </cluster_property_set>
    </crm_config>
    <nodes/><resources/><constraints/>
  </configuration>
  <status/>
</cib>
"#,
        )
        .unwrap();
        must(&ns.root_sh("chown hacluster:haclient /var/lib/pacemaker/cib/cib.xml"));
        must(&ns.root_sh("chmod 600 /var/lib/pacemaker/cib/cib.xml"));
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            exec: ns.exec_prefix(),
            corosync: None,
            pacemakerd: None,
        };
        let log = fs::File::create(dir.join("corosync.log")).unwrap();
        c.corosync = Some(
            ns.cmd("corosync")
                .args(["-f", "-c"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("corosync starts"),
        );
        c.wait_for("corosync quorum", Duration::from_secs(15), |c| {
            c.run_ok("corosync-quorumtool -s")
        });
        let out = fs::File::create(dir.join("pacemakerd.out")).unwrap();
        c.pacemakerd = Some(
            ns.cmd("pacemakerd")
                .env("PCMK_logfile", dir.join("pacemaker.log"))
                .env("PCMK_logfacility", "none")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("pacemakerd starts"),
        );
        c.wait_for("a DC with quorum", Duration::from_secs(60), |c| {
            let mon = c.run("crm_mon -1");
            mon.contains(&format!("Current DC: {NODE}"))
                && mon.contains("partition with quorum")
                && mon.contains(&format!("Online: [ {NODE} ]"))
        });
        c
    }

    fn sh(&self, cmd: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("exec {} sh -c \"$1\"", self.exec))
            .arg("sh")
            .arg(cmd);
        c
    }

    /// A command inside the cluster's namespace; its stdout+stderr.
    pub fn run(&self, cmd: &str) -> String {
        let out = self.sh(cmd).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub fn run_ok(&self, cmd: &str) -> bool {
        self.sh(cmd).output().is_ok_and(|o| o.status.success())
    }

    #[track_caller]
    pub fn must(&self, cmd: &str) -> String {
        let out = self.sh(cmd).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{cmd} failed:\n{text}");
        text
    }

    #[track_caller]
    pub fn wait_for(&self, what: &str, limit: Duration, mut ok: impl FnMut(&Cluster) -> bool) {
        let t0 = Instant::now();
        while !ok(self) {
            if t0.elapsed() > limit {
                let log = fs::read_to_string(self.dir.join("pacemaker.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                panic!(
                    "timed out after {limit:?} waiting for {what}\ncrm_mon:\n{}\npacemaker.log (last lines):\n{}",
                    self.run("crm_mon -1 --include=failcounts,operations 2>&1"),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// (role, failed) of a resource as crm_mon's XML shows it.
    pub fn resource(&self, id: &str) -> (String, bool) {
        let xml = self.run("crm_mon -1 --output-as=xml");
        let Some(start) = xml.find(&format!("<resource id=\"{id}\"")) else {
            return (String::new(), false);
        };
        let tag = &xml[start..start + xml[start..].find('>').unwrap_or(0)];
        let attr = |name: &str| {
            tag.split(&format!(" {name}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        (attr("role"), attr("failed") == "true")
    }

    pub fn fail_count(&self, id: &str) -> u32 {
        // "scope=status  name=fail-count-tun value=1" (the sum over the resource's operations)
        let out = self.run(&format!("crm_failcount --query -r {id} -N {NODE}"));
        out.split("value=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    #[track_caller]
    pub fn wait_role(&self, id: &str, role: &str, limit: Duration) {
        self.wait_for(&format!("{id} to be {role}"), limit, |c| {
            c.resource(id).0 == role
        });
    }
}

fn sh_quiet(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // pacemakerd stops every resource before it exits, then corosync can go.
        for child in [self.pacemakerd.take(), self.corosync.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A bare Corosync (no Pacemaker) in a namespace, for the mesh's view of a multi-node
/// cluster. It runs in a mount namespace of its own, with its own /run (Corosync refuses
/// to start beside another instance's pid file) and `hosts` as /etc/hosts: names only
/// Corosync can resolve, as `pcs cluster setup` leaves them when /etc/hosts has them.
/// Its IPC is on abstract sockets, which belong to the network namespace: tools run in
/// the namespace (corosync-cmapctl) reach it without that mount namespace. Stopped and
/// waited for on drop.
pub struct Corosync {
    child: Option<Child>,
    exec: String,
}

impl Corosync {
    pub fn start(ns: &Netns, dir: &std::path::Path, conf: &str, hosts: &str) -> Corosync {
        fs::create_dir_all(dir).unwrap();
        let conf_path = dir.join("corosync.conf");
        // state_dir: its ring id files, apart from every other node's.
        fs::write(
            &conf_path,
            format!("system {{\n state_dir: {}\n}}\n{conf}", dir.display()),
        )
        .unwrap();
        let hosts_path = dir.join("hosts");
        fs::write(&hosts_path, hosts).unwrap();
        let root = ns
            .root()
            .map(|r| r.display().to_string())
            .unwrap_or_default();
        let chroot = if root.is_empty() {
            String::new()
        } else {
            format!("chroot {root} ")
        };
        let log = fs::File::create(dir.join("corosync.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "unshare", "-m", "sh", "-c"])
            .arg(format!(
                "mount --bind {hosts} {root}/etc/hosts && mount -t tmpfs tmpfs {root}/run && exec {chroot}corosync -f -c {conf}",
                hosts = hosts_path.display(),
                conf = conf_path.display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("corosync starts");
        Corosync {
            child: Some(child),
            exec: ns.exec_prefix(),
        }
    }

    /// `corosync-cmapctl ARGS` in the namespace: its output, or "" when it fails.
    pub fn cmap(&self, args: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} corosync-cmapctl {args}", self.exec))
            .output()
            .unwrap();
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            String::new()
        }
    }

    /// Waits until this Corosync reports `ids` as joined members.
    #[track_caller]
    pub fn wait_members(&self, ids: &[u32], limit: Duration) {
        let t0 = Instant::now();
        loop {
            let members = self.cmap("runtime.members");
            if ids
                .iter()
                .all(|id| members.contains(&format!("runtime.members.{id}.status (str) = joined")))
            {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "members {ids:?} not joined after {limit:?}:\n{members}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `ip netns exec` and `unshare` exec into sh, which execs corosync: the
            // child is Corosync itself.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if t0.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Corosync {
    fn drop(&mut self) {
        self.stop();
    }
}
