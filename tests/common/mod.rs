//! Test harness: real network namespaces, real pluto processes, the real binary.
//! Every resource is a guard that cleans up in Drop, so a failing test leaves nothing.
#![allow(dead_code)]

pub mod charon;
pub mod cluster;
pub mod named;
pub mod probe;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The vipsec under test. With a test root (libreswan's or strongSwan's), a copy under /tmp (bind-mounted at the same
/// path inside the root): the build directory may not be reachable from inside the root
/// (CI clones under /root), and a path must mean the same binary inside and out. One copy
/// per build, shared by the test processes, installed by rename.
pub fn vipsec_bin() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_vipsec"));
    if test_root().is_none() && std::env::var_os("VIPSEC_STRONGSWAN_ROOT").is_none() {
        return built;
    }
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs::metadata(&built).unwrap();
        let dir = Path::new("/tmp/vipsec-tests-bin");
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join(format!(
            "vipsec-{}-{}",
            meta.len(),
            meta.mtime_nsec() + meta.mtime() * 1_000_000_000
        ));
        if !copy.exists() {
            let tmp = dir.join(format!(".vipsec.{}", std::process::id()));
            fs::copy(&built, &tmp).unwrap();
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
            fs::rename(&tmp, &copy).unwrap();
        }
        copy
    })
    .clone()
}

/// The distribution root the IKE daemon and the agent run from, when the suite runs
/// against another distribution's libreswan (`VIPSEC_TEST_ROOT`, a root made by
/// tests/debian13-root.sh: Debian 13's libreswan 5.2 and Pacemaker 3). `None`: the host's.
/// Paths under /tmp and the checkout are the same inside the root and out.
pub fn test_root() -> Option<&'static Path> {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = PathBuf::from(std::env::var_os("VIPSEC_TEST_ROOT")?);
        assert!(
            root.join("usr/sbin/ipsec").exists(),
            "VIPSEC_TEST_ROOT={} has no usr/sbin/ipsec (build it with tests/debian13-root.sh)",
            root.display()
        );
        Some(root)
    })
    .as_deref()
}

/// `cmd` as a shell command line run from the daemon's distribution (the test root, if
/// any), outside any namespace: `ipsec initnss`, `certutil`, `pk12util`.
pub fn distro_sh(cmd: &str) -> String {
    sh_from(test_root(), cmd)
}

/// `cmd` as a shell command line run from `root` (`None`: the host).
fn sh_from(root: Option<&Path>, cmd: &str) -> String {
    match root {
        Some(root) => format!("chroot {} {cmd}", root.display()),
        None => cmd.to_string(),
    }
}

/// `path` of the distribution in `root` (`None`: the host's) as seen from the host.
fn path_from(root: Option<&Path>, path: &str) -> PathBuf {
    match root {
        Some(root) => root.join(path.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}

/// A program of the daemon's distribution (the test root's, if any), outside any
/// namespace: crm_resource, pcs.
pub fn distro_cmd(program: &str) -> Command {
    match test_root() {
        Some(root) => {
            let mut c = Command::new("chroot");
            c.arg(root).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A path of the daemon's distribution (the test root's, if any) as seen from the host.
pub fn distro_path(path: &str) -> PathBuf {
    path_from(test_root(), path)
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call, usable for namespaces and interfaces.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        std::process::id() % 100000,
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("sh runs")
}

#[track_caller]
pub fn must(cmd: &str) -> String {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "command failed: {cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
    /// The distribution its daemon and agent run from (`cmd`): the test root, or one
    /// given (strongSwan's).
    root: Option<PathBuf>,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        must(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ));
        Netns {
            name,
            root: test_root().map(Path::to_path_buf),
        }
    }

    /// The distribution root its programs run from (`None`: the host's).
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// `cmd` as a shell command line run from the namespace's distribution, outside the
    /// namespace (as `distro_sh` does for the test root).
    pub fn root_sh(&self, cmd: &str) -> String {
        sh_from(self.root(), cmd)
    }

    /// A path of the namespace's distribution, as seen from the host.
    pub fn root_path(&self, path: &str) -> PathBuf {
        path_from(self.root(), path)
    }

    /// A namespace whose programs (`cmd`) run from `root`.
    pub fn in_root(prefix: &str, root: &Path) -> Netns {
        let mut ns = Netns::new(prefix);
        ns.root = Some(root.to_path_buf());
        ns
    }

    /// A veth pair inside the namespace: `a` gets the addresses, `b` is its peer.
    pub fn veth(&self, a: &str, b: &str, up: bool) {
        must(&format!(
            "ip -n {n} link add {a} type veth peer name {b}",
            n = self.name
        ));
        if up {
            must(&format!(
                "ip -n {n} link set {a} up && ip -n {n} link set {b} up",
                n = self.name
            ));
        } else {
            // Only `a` up: no carrier, so IPv6 duplicate address detection never finishes.
            must(&format!("ip -n {n} link set {a} up", n = self.name));
        }
    }

    /// A veth pair between this namespace (`here`) and `other` (`there`), both up.
    pub fn link_to(&self, other: &Netns, here: &str, there: &str) {
        must(&format!(
            "ip -n {a} link add {here} type veth peer name {there} netns {b} && ip -n {a} link set {here} up && ip -n {b} link set {there} up",
            a = self.name,
            b = other.name
        ));
    }

    pub fn ip(&self, args: &str) {
        must(&format!("ip -n {} {args}", self.name));
    }

    /// Runs a command inside the namespace, from the daemon's distribution (the test
    /// root, if any): pluto, the agent, ocf-tester.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        if let Some(root) = &self.root {
            c.arg("chroot").arg(root);
        }
        c.arg(program);
        c
    }

    /// Runs one of the host's programs inside the namespace (named, test tools).
    pub fn host_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The prefix of a shell command line that runs inside the namespace, from the
    /// daemon's distribution (as `cmd`).
    pub fn exec_prefix(&self) -> String {
        match &self.root {
            Some(root) => format!("ip netns exec {} chroot {}", self.name, root.display()),
            None => format!("ip netns exec {}", self.name),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// A pluto of its own inside a namespace: private rundir, NSS db, ipsec.d and secrets.
/// Runs with --nofork as our child, so it can be waited for (PID 1 here reaps nothing).
pub struct Pluto {
    pub dir: PathBuf,
    pub ctlsocket: PathBuf,
    pub confdir: PathBuf,
    /// What this pluto and the agents that drive it see as /run/vipsec (the keys' files
    /// the confdir's links point to); `None`: the system's.
    pub run_dir: Option<PathBuf>,
    root: Option<PathBuf>,
    child: Option<Child>,
    netns: String,
    /// `ip netns exec NS [chroot ROOT]`
    exec: String,
}

impl Pluto {
    pub fn start(ns: &Netns, dir: &Path) -> Pluto {
        let confdir = dir.join("ipsec.d");
        for d in ["run", "nss", "ipsec.d"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        must(&distro_sh(&format!(
            "ipsec initnss --nssdir {} >/dev/null",
            dir.join("nss").display()
        )));
        // As the stock /etc/ipsec.secrets does for /etc/ipsec.d.
        let secrets = dir.join("ipsec.secrets");
        fs::write(
            &secrets,
            format!("include {}/*.secrets\n", confdir.display()),
        )
        .unwrap();
        let conf = dir.join("ipsec.conf");
        fs::write(
            &conf,
            format!("config setup\n\tlogfile={}/pluto.log\n", dir.display()),
        )
        .unwrap();
        let mut p = Pluto {
            dir: dir.to_path_buf(),
            ctlsocket: dir.join("run/pluto.ctl"),
            confdir,
            run_dir: Some(dir.join("vipsec")),
            root: ns.root().map(Path::to_path_buf),
            child: None,
            netns: ns.name.clone(),
            exec: ns.exec_prefix(),
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let d = &self.dir;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("exec {} \"$@\"", self.exec))
            .arg("sh");
        cmd.args(["ipsec", "pluto", "--nofork"])
            .arg("--config")
            .arg(d.join("ipsec.conf"))
            .arg("--rundir")
            .arg(d.join("run"))
            .arg("--nssdir")
            .arg(d.join("nss"))
            .arg("--ipsecdir")
            .arg(d.join("ipsec.d"))
            .arg("--secretsfile")
            .arg(d.join("ipsec.secrets"))
            .arg("--logfile")
            .arg(d.join("pluto.log"));
        if let Some(run_dir) = &self.run_dir {
            with_run_dir(&mut cmd, run_dir, self.root.as_deref());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pluto starts");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.ctlsocket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "pluto did not open {:?}",
                self.ctlsocket
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The distribution's own pluto: /etc/ipsec.conf, /etc/ipsec.secrets (which includes
    /// /etc/ipsec.d/*.secrets), /run/pluto/pluto.ctl, the system NSS database — what an
    /// agent with no parameters talks to. Only `log_dir` is the test's.
    pub fn start_system(ns: &Netns, log_dir: &Path) -> Pluto {
        fs::create_dir_all(log_dir).unwrap();
        if !distro_path("/var/lib/ipsec/nss/cert9.db").exists() {
            must(&distro_sh("ipsec initnss >/dev/null"));
        }
        let log = log_dir.join("pluto.log");
        let child = ns
            .cmd("ipsec")
            .args(["pluto", "--nofork", "--logfile"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pluto starts");
        let p = Pluto {
            dir: log_dir.to_path_buf(),
            ctlsocket: PathBuf::from("/run/pluto/pluto.ctl"),
            confdir: PathBuf::from("/etc/ipsec.d"),
            run_dir: None,
            root: ns.root().map(Path::to_path_buf),
            child: Some(child),
            netns: ns.name.clone(),
            exec: ns.exec_prefix(),
        };
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(distro_path("/run/pluto/pluto.ctl")).is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the system pluto did not open /run/pluto/pluto.ctl"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// Kills pluto hard, as a crash would (its socket file stays behind).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        let _ = fs::remove_file(&self.ctlsocket);
        let _ = fs::remove_file(self.dir.join("run/pluto.pid"));
        // A test root's chroot keeps the same paths for private plutos (under /tmp).
        self.spawn();
    }

    pub fn whack(&self, args: &str) -> String {
        must(&format!(
            "{} ipsec whack --ctlsocket {} {args}",
            self.exec,
            self.ctlsocket.display()
        ))
    }

    /// Whether pluto has `conn` oriented (bound to a local address), in either version's
    /// words: 4.x `"rw":     oriented;`, 5.x `"rw":   host: oriented;`.
    pub fn oriented(&self, conn: &str) -> bool {
        let status = self.whack("--status");
        status.contains(&format!("\"{conn}\":     oriented;"))
            || status.contains(&format!("\"{conn}\":   host: oriented;"))
    }

    /// Whether pluto listens for IKE on `addr` port 500 (4.x `UDP 192.0.2.1:500`, 5.x
    /// `192.0.2.1:UDP/500`; IPv6 in brackets).
    pub fn listens_on(&self, addr: &str) -> bool {
        let a = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr.to_string()
        };
        let status = self.whack("--status");
        status.contains(&format!("UDP {a}:500")) || status.contains(&format!("{a}:UDP/500"))
    }

    /// The installed libreswan's major version (4 on Debian 12, 5 on Debian 13).
    pub fn major_version(&self) -> u32 {
        let v = must(&distro_sh("ipsec --version"));
        v.split_whitespace()
            .find_map(|w| w.trim_start_matches('v').split('.').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Imports a certificate (with its private key) issued by `ca` into this pluto's NSS
    /// database under `nickname`, and trusts the CA.
    pub fn import_cert(&self, ca: &TestCa, nickname: &str, cn: &str) {
        let nss = self.dir.join("nss");
        let p12 = ca.issue(nickname, cn);
        let (certutil, pk12util) = (distro_sh("certutil"), distro_sh("pk12util"));
        must(&format!(
            "{certutil} -A -d sql:{nss} -n 'vipsec test CA' -t CT,, -i {ca} 2>/dev/null || true; {pk12util} -i {p12} -d sql:{nss} -W '' >/dev/null",
            nss = nss.display(),
            ca = ca.dir.path().join("ca.crt").display(),
            p12 = p12.display()
        ));
    }

    /// Loads conn `name` from `file` in confdir and initiates it, without waiting.
    pub fn add_and_initiate(&self, file: &str, name: &str) {
        self.add_conn(file, name);
        self.whack(&format!("--name {name} --initiate --asynchronous"));
    }

    /// Loads conn `name` from `file` in confdir (it waits for peers).
    pub fn add_conn(&self, file: &str, name: &str) {
        // addconn: what `ipsec auto --add` runs on 4.x; 5.x deprecates `ipsec auto`.
        must(&format!(
            "{} ipsec addconn --ctlsocket {} --config {}/{file} {name}",
            self.exec,
            self.ctlsocket.display(),
            self.confdir.display()
        ));
    }

    pub fn add_conn_file(&self, file: &str, text: &str) {
        fs::write(self.confdir.join(file), text).unwrap();
    }

    /// pluto's serial number of a loaded conn ("conn serial: $N"): it changes when the
    /// conn is deleted and loaded again, so it tells untouched conns from reloaded ones.
    pub fn conn_serial(&self, conn: &str) -> String {
        let status = self.whack("--status");
        let serial = status
            .lines()
            .find(|l| l.contains(&format!("\"{conn}\":")) && l.contains("conn serial:"))
            .and_then(|l| l.split("conn serial: ").nth(1))
            .unwrap_or("")
            .to_string();
        // Two empty serials would compare equal: a conn missing is a failure here.
        assert!(!serial.is_empty(), "no conn serial of {conn} in:\n{status}");
        serial
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pluto.log")).unwrap_or_default()
    }
}

impl Drop for Pluto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = sh(&format!(
                "{} ipsec whack --ctlsocket {} --shutdown >/dev/null 2>&1",
                self.exec,
                self.ctlsocket.display()
            ));
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What one agent invocation returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The `ocf-exit-reason:` lines on stderr.
    pub fn reasons(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .collect()
    }
}

/// The OCF entry point: a directory holding `ipsec` -> the binary, as resource.d does.
pub struct OcfAgent {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl OcfAgent {
    pub fn new() -> OcfAgent {
        OcfAgent::named("ipsec")
    }

    /// The entry of another resource type (`mesh`).
    pub fn named(agent_type: &str) -> OcfAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(agent_type);
        std::os::unix::fs::symlink(vipsec_bin(), &path).unwrap();
        OcfAgent { _dir: dir, path }
    }
}

/// The environment a resource manager gives an agent, without the caller's OCF_*/HA_*.
/// `env[RUN_DIR]`, if there, is no variable: the directory mounted at /run/vipsec for
/// this run (`with_run_dir`).
pub fn ocf_command(
    program: &Path,
    action: &str,
    netns: Option<&Netns>,
    env: &BTreeMap<String, String>,
) -> Command {
    let mut c = match netns {
        Some(ns) => ns.cmd(program),
        None => Command::new(program),
    };
    c.arg(action);
    for (k, _) in std::env::vars() {
        if k.starts_with("OCF_") || k.starts_with("HA_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        if k == RUN_DIR {
            with_run_dir(&mut c, Path::new(v), netns.and_then(Netns::root));
        } else {
            c.env(k, v);
        }
    }
    c
}

/// The key of an agent's environment map (see `ocf_command`) that names its run
/// directory. The agent's run directory is fixed (/run/vipsec: no variable may change
/// what stop removes), so tests that run agents side by side give each its own by
/// mounting one there.
pub const RUN_DIR: &str = "(mounted at /run/vipsec)";

/// The file a confdir's link to /run/vipsec names, read from `run_dir`, the directory the
/// daemon and agent saw there.
pub fn read_linked(link: &Path, run_dir: &Path) -> String {
    let target = fs::read_link(link).unwrap();
    let name = target
        .strip_prefix("/run/vipsec")
        .unwrap_or_else(|_| panic!("{link:?} links to {target:?}, not into /run/vipsec"));
    fs::read_to_string(run_dir.join(name)).unwrap()
}

/// Runs `cmd` in a mount namespace of its own where `dir` is /run/vipsec (also inside
/// `root`, the distribution it runs from, if any). `ip netns exec` and chroot inherit it.
pub fn with_run_dir(cmd: &mut Command, dir: &Path, root: Option<&Path>) {
    use nix::mount::{mount, MsFlags};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let mut targets = vec![PathBuf::from("/run/vipsec")];
    targets.extend(root.map(|r| r.join("run/vipsec")));
    for d in targets.iter().map(PathBuf::as_path).chain([dir]) {
        fs::create_dir_all(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    let dir = dir.to_path_buf();
    // Safety: only system calls between fork and exec (nix passes short paths on the
    // stack).
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            let none: Option<&str> = None;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
            for t in &targets {
                mount(
                    Some(dir.as_path()),
                    t.as_path(),
                    none,
                    MsFlags::MS_BIND,
                    none,
                )?;
            }
            Ok(())
        });
    }
}

pub fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Files in a directory tree (relative names), to prove an action wrote nothing.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(
                    files_under(&p)
                        .into_iter()
                        .map(|f| format!("{}/{f}", e.file_name().to_string_lossy())),
                );
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// One node: a namespace with an interface for the VIP, its own pluto, a conn `rw` whose
/// local end is the VIP, and private state/run directories for the agent.
pub struct Lab {
    pub tmp: tempfile::TempDir,
    pub pluto: Pluto,
    pub ns: Netns,
    pub vip: String,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub agent: OcfAgent,
}

impl Lab {
    /// `vip` is not configured yet: call `add_vip`.
    pub fn new(vip: &str) -> Lab {
        let ns = Netns::new("vl");
        ns.veth("v0", "v1", true);
        let tmp = tempfile::tempdir().unwrap();
        let pluto = Pluto::start(&ns, &tmp.path().join("pluto"));
        pluto.add_conn_file("rw.conf", &Self::road_warrior_conn("rw", vip));
        let state_dir = tmp.path().join("rsctmp");
        let run_dir = pluto.run_dir.clone().unwrap_or_default();
        Lab {
            pluto,
            ns,
            vip: vip.to_string(),
            state_dir,
            run_dir,
            agent: OcfAgent::new(),
            tmp,
        }
    }

    pub fn road_warrior_conn(name: &str, vip: &str) -> String {
        format!("conn {name}\n\tleft={vip}\n\tright=%any\n\tauthby=secret\n\tikev2=yes\n\tauto=ignore\n")
    }

    pub fn add_vip(&self) {
        if self.vip.contains(':') {
            self.ns
                .ip(&format!("addr add {}/64 dev v0 nodad", self.vip));
        } else {
            self.ns.ip(&format!("addr add {}/24 dev v0", self.vip));
        }
    }

    /// A client's namespace linked to the lab's, the VIP on the lab's end of the link
    /// and `address` on the client's (for the generated conns' tests, which drop rw.conf).
    pub fn linked_client(&self, prefix: &str, address: &str) -> Netns {
        let client = Netns::new(prefix);
        self.ns.link_to(&client, "c0", "c1");
        self.ns.ip(&format!("addr add {}/24 dev c0", self.vip));
        client.ip(&format!("addr add {address}/24 dev c1"));
        client
    }

    /// `key` as a psk_file (root's, 0600) in the lab's directory; its path.
    pub fn psk_file(&self, key: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.tmp.path().join("psk");
        std::fs::write(&path, key).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    }

    pub fn del_vip(&self) {
        let len = if self.vip.contains(':') { 64 } else { 24 };
        self.ns.ip(&format!("addr del {}/{len} dev v0", self.vip));
    }

    pub fn env(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = env_of(&[
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RESOURCE_INSTANCE", "vip-tunnel"),
            ("OCF_RESOURCE_TYPE", "ipsec"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_tunnel", "rw"),
            ("OCF_RESKEY_vip", &self.vip),
        ]);
        env.insert(
            "OCF_RESKEY_confdir".into(),
            self.pluto.confdir.display().to_string(),
        );
        env.insert(
            "OCF_RESKEY_ctlsocket".into(),
            self.pluto.ctlsocket.display().to_string(),
        );
        env.insert("HA_RSCTMP".into(), self.state_dir.display().to_string());
        env.insert(RUN_DIR.into(), self.run_dir.display().to_string());
        for (k, v) in extra {
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert(k.to_string(), v.to_string());
            }
        }
        env
    }

    /// Runs the OCF agent inside the namespace, as Pacemaker would.
    pub fn ocf(&self, action: &str, extra: &[(&str, &str)]) -> Run {
        Run::from(
            ocf_command(&self.agent.path, action, Some(&self.ns), &self.env(extra))
                .output()
                .unwrap(),
        )
    }

    /// Runs `vipsec ACTION` by hand inside the namespace, with the lab's parameters as flags.
    pub fn cli(&self, action: &str, extra_args: &[&str]) -> Run {
        let mut c = self.ns.cmd(vipsec_bin());
        c.arg(action)
            .args(["--tunnel", "rw", "--vip", &self.vip])
            .arg("--confdir")
            .arg(&self.pluto.confdir)
            .arg("--ctlsocket")
            .arg(&self.pluto.ctlsocket)
            .args(extra_args)
            .env("HA_RSCTMP", &self.state_dir);
        with_run_dir(&mut c, &self.run_dir, self.ns.root());
        Run::from(c.output().unwrap())
    }
}

pub const INSTALLED_AGENT: &str = "/usr/lib/ocf/resource.d/vipsec/ipsec";

/// Puts this build where Pacemaker looks for ocf:vipsec:ipsec and ocf:vipsec:mesh (once
/// per test process).
/// A copy, not a symlink: ocf-tester runs meta-data as `nobody`, who may not be able to
/// reach the build directory (CI clones under /root).
/// With a test root, it goes into the root's resource.d (the path returned is the one
/// seen from inside the root, where Pacemaker and ocf-tester run).
pub fn install_agent() -> &'static Path {
    install_agent_in(test_root())
}

/// The same into another distribution root (strongSwan's), once per root and process.
pub fn install_agent_in(root: Option<&Path>) -> &'static Path {
    static DONE: std::sync::Mutex<Vec<Option<PathBuf>>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let key = root.map(Path::to_path_buf);
    if !done.contains(&key) {
        let installed = path_from(root, INSTALLED_AGENT);
        fs::create_dir_all(installed.parent().unwrap()).unwrap();
        let tmp = format!("{}.{}", installed.display(), std::process::id());
        fs::copy(vipsec_bin(), &tmp).unwrap();
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        fs::rename(&tmp, &installed).unwrap();
        // ocf:vipsec:mesh is the same binary under the mesh's name.
        let mesh = installed.with_file_name("mesh");
        if fs::symlink_metadata(&mesh).is_err() {
            std::os::unix::fs::symlink("ipsec", &mesh).unwrap();
        }
        done.push(key);
    }
    Path::new(INSTALLED_AGENT)
}

/// Runs resource-agents' ocf-tester inside `ns` against `agent` (`options` become
/// `-o name=value`) and asserts that it passes with no failed check.
#[track_caller]
pub fn assert_ocf_tester_passes(
    ns: &Netns,
    agent: &Path,
    instance: &str,
    options: &[(&str, String)],
    state_dir: &Path,
    run_dir: &Path,
) {
    let mut cmd = ns.cmd("ocf-tester");
    cmd.args(["-n", instance]);
    for (name, value) in options {
        cmd.arg("-o").arg(format!("{name}={value}"));
    }
    with_run_dir(&mut cmd, run_dir, ns.root());
    let out = cmd.arg(agent).env("HA_RSCTMP", state_dir).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ocf-tester failed:\n{text}");
    assert!(
        text.contains("passed all tests") && !text.contains("* rc="),
        "{text}"
    );
}

/// A throw-away certificate authority (openssl), for tests with certificates.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// "ec" (P-256) or "rsa" (2048 bits): the key type of what it issues.
    key: &'static str,
}

impl TestCa {
    pub fn new(key: &'static str) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        must(&format!(
            "cd {} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj '/O=vipsec test/CN=vipsec test CA' -days 30 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>&1",
            dir.path().display()
        ));
        TestCa { dir, key }
    }

    fn key_args(&self) -> &'static str {
        match self.key {
            "rsa" => "-newkey rsa:2048",
            _ => "-newkey ec -pkeyopt ec_paramgen_curve:P-256",
        }
    }

    /// A PKCS#12 file (empty password) of a certificate for `cn`, with `cn` as its DNS
    /// name too, and its key.
    pub fn issue(&self, nickname: &str, cn: &str) -> PathBuf {
        self.issue_with(
            nickname,
            &format!("/O=vipsec test/CN={cn}"),
            &format!("DNS:{cn}"),
        )
    }

    /// The same with any subject (openssl's `-subj` syntax: `/` separates attributes, a
    /// `,` is part of a value) and subjectAltName (`DNS:…,IP:…,email:…`; "" for none):
    /// what a CA that signs what it is asked for would issue.
    pub fn issue_with(&self, nickname: &str, subject: &str, san: &str) -> PathBuf {
        let d = self.dir.path();
        let stem = unique("crt");
        let san = if san.is_empty() {
            String::new()
        } else {
            format!("subjectAltName={san}\\n")
        };
        must(&format!(
            "cd {d} && openssl req {key} -nodes -keyout {stem}.key -out {stem}.csr -subj '{subject}' 2>&1 && \
             printf '{san}keyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth,clientAuth\\n' > {stem}.ext && \
             openssl x509 -req -in {stem}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {stem}.crt -days 30 -extfile {stem}.ext 2>&1 && \
             openssl pkcs12 -export -in {stem}.crt -inkey {stem}.key -name '{nickname}' -out {stem}.p12 -passout pass:",
            d = d.display(),
            key = self.key_args()
        ));
        d.join(format!("{stem}.p12"))
    }
}
