//! Validation, in one place: raw strings from the environment or the command line go in,
//! a typed `Config` comes out. Nothing downstream sees an unchecked string.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::params::Agent;

/// Parameter values as given, keyed by parameter name. Empty values count as unset,
/// as in the shell agents (`pcs` passes `name=` to clear a parameter).
#[derive(Debug, Default, Clone)]
pub struct RawParams {
    values: BTreeMap<String, String>,
}

impl RawParams {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(name.to_string(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Refuses a control character in any value, before anything parses one: values reach
    /// daemons' configuration files (a newline in `confdir` would start a conn line of the
    /// attacker's in the generated include file) and name paths. Checked here, over every
    /// value given, so that a parameter added later is covered without asking. Only the
    /// list parameters may use tabs and newlines, as separators (their items are then parsed
    /// as addresses, names or ports, which admit none).
    pub fn refuse_control_characters(&self) -> Result<()> {
        for (name, value) in &self.values {
            let separator =
                |c: char| LIST_PARAMS.contains(&name.as_str()) && matches!(c, '\t' | '\n');
            if let Some(c) = value.chars().find(|&c| c.is_control() && !separator(c)) {
                return Err(Error::configured(
                    name,
                    format!(
                        "contains the control character U+{:04X}; values are single lines of \
                         printable text",
                        u32::from(c)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The parameters of `agent` from `OCF_RESKEY_<name>`; names the agent does not know
    /// are returned separately so the caller can warn about them.
    pub fn from_env(agent: Agent, env: &BTreeMap<String, String>) -> (RawParams, Vec<String>) {
        let mut raw = RawParams::default();
        let mut unknown = Vec::new();
        for (key, value) in env {
            let Some(name) = key.strip_prefix("OCF_RESKEY_") else {
                continue;
            };
            // CRM_meta_* are the resource manager's own attributes, not parameters.
            if name.starts_with("CRM_meta_") || name == "crm_feature_set" {
                continue;
            }
            if agent.params().iter().any(|p| p.name == name) {
                raw.set(name, value.clone());
            } else {
                unknown.push(name.to_string());
            }
        }
        (raw, unknown)
    }
}

/// A libreswan conn name: `[A-Za-z0-9._-]`, not starting with '-' (it is passed as an
/// argument to libreswan's tools and must never read as an option).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ConnName(String);

pub const CONN_NAME_MAX: usize = 100;

impl ConnName {
    pub fn parse(param: &str, value: &str) -> Result<ConnName> {
        let bad = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
        if let Some(c) = bad {
            return Err(Error::configured(
                param,
                format!("{value:?} contains {c:?}; use only letters, digits, '.', '_' and '-'"),
            ));
        }
        if value.starts_with('-') || value.starts_with('.') {
            return Err(Error::configured(
                param,
                format!("{value:?} must start with a letter, digit or '_'"),
            ));
        }
        // libreswan's ipsec.conf reader takes `conn 12` for a number, not a name: the
        // file vipsec writes would not load (found by tests/properties.rs).
        if value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::configured(
                param,
                format!("{value:?} is all digits, which libreswan reads as a number; add a letter"),
            ));
        }
        if value.len() > CONN_NAME_MAX {
            return Err(Error::configured(
                param,
                format!(
                    "is {} characters long; at most {CONN_NAME_MAX} are allowed",
                    value.len()
                ),
            ));
        }
        Ok(ConnName(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How ESP carries the traffic: host to host, or encapsulated between subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Transport,
    Tunnel,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Transport => "transport",
            Mode::Tunnel => "tunnel",
        }
    }
}

/// Key material. No Display, a redacted Debug, wiped on drop: it cannot end up in a log
/// line or an error message by accident.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile so the wipe is not optimised away as a dead store.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

pub const PSK_MIN_BYTES: usize = 20;

/// Reads a key file that must be private to its owner: mode 0600 or stricter.
///
/// The file is opened once, never through a symlink, and judged by what was opened
/// (`fstat` on the descriptor): no swap between the check and the read. It must belong to
/// root (whoever else owns it can change the key), with no group or other permissions.
pub fn read_secret_file(param: &str, path: &Path, min_len: usize) -> Result<Secret> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let fail = |e: std::io::Error| {
        let why = if e.raw_os_error() == Some(nix::libc::ELOOP) {
            "is a symbolic link; point the parameter at the file itself".to_string()
        } else {
            e.to_string()
        };
        Error::configured(param, format!("{}: {why}", path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(Error::configured(
            param,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(Error::configured(
            param,
            format!(
                "{} has mode {:04o}, so others can read the key; chmod 600 it",
                path.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    if meta.uid() != 0 {
        return Err(Error::configured(
            param,
            format!(
                "{} belongs to uid {}, who can change the key; chown root it",
                path.display(),
                meta.uid()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(1 << 16) as usize);
    (&mut file)
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    let secret = Secret(bytes);
    if secret.0.len() < min_len {
        return Err(Error::configured(
            param,
            format!(
                "{} holds {} bytes; a key needs at least {min_len}",
                path.display(),
                secret.0.len()
            ),
        ));
    }
    Ok(secret)
}

pub fn required<'a>(raw: &'a RawParams, name: &str) -> Result<&'a str> {
    raw.get(name).ok_or_else(|| {
        Error::configured(
            name,
            "required parameter is missing; set it on the resource",
        )
    })
}

/// The parameters read with `list_items` (or, `resolver`, the same separators): the only
/// ones whose values may hold tabs and newlines.
pub const LIST_PARAMS: &[&str] = &[
    "clients",
    "peers",
    "local_address",
    "secure_ports",
    "forward_subnets",
    "clear_from",
    "resolver",
];

/// The items of a list parameter: separated by spaces, commas, tabs or newlines.
pub fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([' ', ',', '\t', '\n'])
        .filter(|t| !t.is_empty())
}

/// A unicast host address, as the VIP or a peer must be.
pub fn parse_host_address(param: &str, value: &str) -> Result<IpAddr> {
    let value = value.trim();
    if let Some((addr, prefix)) = value.split_once('/') {
        return Err(Error::configured(
            param,
            format!("{value:?} has a prefix length (/{prefix}); give the bare address {addr}"),
        ));
    }
    if value.contains('%') {
        return Err(Error::configured(
            param,
            format!("{value:?} has an IPv6 zone index; give a global address without '%'"),
        ));
    }
    let ip: IpAddr = value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            Error::configured(param, format!("{value:?} is not an IPv4 or IPv6 address"))
        })?;
    let why_not = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address (give the IPv4 form)")
        }
        _ => None,
    };
    match why_not {
        Some(what) => Err(Error::configured(
            param,
            format!("{value} is {what}, not a host address"),
        )),
        None => Ok(ip),
    }
}

/// auth=cert's `cert` parameter: the NSS nickname of this node's certificate.
pub fn required_nss_nickname(raw: &RawParams) -> Result<&str> {
    let nick = raw.get("cert").ok_or_else(|| {
        Error::configured(
            "cert",
            "auth=cert needs the NSS nickname of this node's certificate",
        )
    })?;
    if nick.len() > 255 || nick.chars().any(|c| c.is_control() || c == '"') {
        return Err(Error::configured(
            "cert",
            format!("{nick:?} is not a usable NSS nickname"),
        ));
    }
    Ok(nick)
}

/// Which IKE daemon owns the conns, and the socket it is driven through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "daemon", rename_all = "lowercase")]
pub enum IkeDaemon {
    /// pluto, through its control socket.
    Libreswan { ctlsocket: PathBuf },
    /// charon, over its VICI socket.
    Strongswan { vicisocket: PathBuf },
}

impl IkeDaemon {
    /// `ike`, and the socket parameter that belongs to it. A parameter of the other
    /// daemon is refused rather than ignored: a ctlsocket given to a strongSwan resource
    /// means its author expects something vipsec would not do.
    pub fn parse(raw: &RawParams) -> Result<IkeDaemon> {
        let socket =
            |name: &str, default: &str| absolute_path(name, raw.get(name).unwrap_or(default));
        // `name` is set, but belongs to the daemon `ike=owner` would select.
        let refuse = |name: &str, owner: &str| match raw.get(name) {
            Some(_) => Err(Error::configured(
                name,
                format!("belongs to the other IKE daemon; unset it or set ike={owner}"),
            )),
            None => Ok(()),
        };
        match raw.get("ike").unwrap_or("libreswan") {
            "libreswan" => {
                refuse("vicisocket", "strongswan")?;
                Ok(IkeDaemon::Libreswan {
                    ctlsocket: socket("ctlsocket", crate::params::DEFAULT_CTLSOCKET)?,
                })
            }
            "strongswan" => {
                for name in ["ctlsocket", "confdir"] {
                    refuse(name, "libreswan")?;
                }
                Ok(IkeDaemon::Strongswan {
                    vicisocket: socket("vicisocket", crate::params::DEFAULT_VICISOCKET)?,
                })
            }
            other => Err(Error::configured(
                "ike",
                format!("{other:?} is not libreswan or strongswan"),
            )),
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        match self {
            IkeDaemon::Libreswan { ctlsocket } => ctlsocket,
            IkeDaemon::Strongswan { vicisocket } => vicisocket,
        }
    }

    /// The parameter that names the socket, for messages.
    pub fn socket_param(&self) -> &'static str {
        match self {
            IkeDaemon::Libreswan { .. } => "ctlsocket",
            IkeDaemon::Strongswan { .. } => "vicisocket",
        }
    }

    /// The service that runs the daemon, for messages.
    pub fn service(&self) -> &'static str {
        match self {
            IkeDaemon::Libreswan { .. } => "ipsec",
            IkeDaemon::Strongswan { .. } => "strongswan",
        }
    }

    /// The daemon does not answer on its socket: what to do about it.
    pub fn not_running(&self, daemon_name: &str) -> Error {
        Error::Generic(format!(
            "{daemon_name} is not running (no listener on {}); start the {} service, or set {} to the running {daemon_name}'s socket",
            self.socket().display(),
            self.service(),
            self.socket_param()
        ))
    }

    /// `cert`, in the daemon's terms: pluto's NSS nickname, or the path of the
    /// certificate file charon is given (its private key is charon's, loaded as swanctl
    /// loads credentials; vipsec never handles it).
    pub fn required_cert(&self, raw: &RawParams) -> Result<String> {
        match self {
            IkeDaemon::Libreswan { .. } => required_nss_nickname(raw).map(str::to_string),
            IkeDaemon::Strongswan { .. } => {
                let path = raw.get("cert").ok_or_else(|| {
                    Error::configured(
                        "cert",
                        "auth=cert with ike=strongswan needs the path of this node's certificate file",
                    )
                })?;
                absolute_path("cert", path).map(|p| p.display().to_string())
            }
        }
    }

    /// The certificate file exists here (charon's case; pluto's nickname is looked up by
    /// pluto). A file of this node: it may differ between nodes.
    pub fn check_cert_file(&self, cert: &str) -> Result<()> {
        if !matches!(self, IkeDaemon::Strongswan { .. }) {
            return Ok(());
        }
        match std::fs::metadata(cert) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(Error::configured("cert", format!("{cert} is not a file"))),
            Err(e) => Err(Error::configured("cert", format!("{cert}: {e}"))),
        }
    }

    /// pluto reads conns and secrets from confdir; charon is given both over VICI.
    pub fn uses_confdir(&self) -> bool {
        matches!(self, IkeDaemon::Libreswan { .. })
    }
}

pub fn absolute_path(param: &str, value: &str) -> Result<PathBuf> {
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(Error::configured(
            param,
            format!("{value:?} is not an absolute path"),
        ));
    }
    Ok(path)
}

pub fn check_directory(param: &str, path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::configured(
            param,
            format!("{} is not a directory", path.display()),
        )),
        Err(e) => Err(Error::configured(param, format!("{}: {e}", path.display()))),
    }
}

/// How this invocation was made: who asked, how long it may take, how deep to look.
#[derive(Debug, Clone)]
pub struct Context {
    pub instance: String,
    /// Recurring monitor interval; `None` for a probe (or any non-recurring action).
    pub interval: Option<Duration>,
    /// OCF_CHECK_LEVEL: 0 asks the kernel only; 10 (and above) also asks the IKE daemon
    /// and reads the XFRM policies and SAs.
    pub check_level: u32,
    /// HA_RSCTMP: where per-instance state lives.
    pub state_dir: PathBuf,
    /// Set by ocf-tester (OCF_TESTER_FAIL_HAVE_BINARY), as ocf-shellfuncs honours it:
    /// act as if the programs the agent needs were missing.
    pub pretend_binaries_missing: bool,
}

impl Context {
    pub fn is_probe(&self) -> bool {
        self.interval.is_none()
    }
}

pub const DEFAULT_STATE_DIR: &str = "/run/resource-agents";

/// Where the generated conns and keys live, and what stop reads to know which conns and
/// key ids to remove. Fixed: no variable in the agent's environment may change what a
/// stop takes down (tests that run agents side by side mount a directory of their own
/// here, in a mount namespace).
pub const RUN_DIR: &str = "/run/vipsec";

/// `OCF_RESKEY_CRM_meta_timeout` and `_interval` are milliseconds; by hand, "20s",
/// "1min" or plain milliseconds are accepted.
pub fn parse_duration_ms(what: &str, value: &str) -> Result<Duration> {
    let v = value.trim();
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(v).map_err(|_| {
        Error::Args(format!(
            "{what}: {value:?} is not a duration (milliseconds or e.g. 20s)"
        ))
    })
}

pub fn parse_check_level(value: &str) -> Result<u32> {
    value.trim().parse::<u32>().map_err(|_| {
        Error::Args(format!(
            "OCF_CHECK_LEVEL: {value:?} is not a number (0, 10 or 20)"
        ))
    })
}

/// Instance names become file names: keep them to a safe alphabet.
pub fn instance_file_stem(instance: &str) -> String {
    instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::ipsec::config::IpsecConfig;

    fn raw(pairs: &[(&str, &str)]) -> RawParams {
        let mut r = RawParams::default();
        for (k, v) in pairs {
            r.set(k, *v);
        }
        r
    }

    #[test]
    fn control_characters_are_refused_naming_the_parameter() {
        let refused = |k: &str, v: &str| match raw(&[(k, v)]).refuse_control_characters() {
            Err(e) => e.reason().starts_with(&format!("{k}:")),
            Ok(()) => false,
        };
        assert!(refused("confdir", "/tmp/x\nconn evil"));
        assert!(refused("peer_id", "@a.example\r"));
        // A parameter no list knows of, as a future one would be.
        assert!(refused("some_future_path", "/tmp/\u{1b}x"));
        // Lists keep their separators, and nothing else.
        assert!(!refused("peers", "192.0.2.1\n192.0.2.2\t192.0.2.3"));
        assert!(refused("peers", "192.0.2.1\r192.0.2.2"));
        assert!(!refused("confdir", "/etc/ipsec.d/ with space"));
        // Every list named is a parameter of an agent.
        for name in LIST_PARAMS {
            let known = [Agent::Ipsec, Agent::Mesh]
                .iter()
                .any(|a| a.params().iter().any(|p| p.name == *name));
            assert!(known, "{name}");
        }
    }

    #[test]
    fn a_good_configuration_parses() {
        let c =
            IpsecConfig::parse(&raw(&[("tunnel", "rw-1.a_b"), ("vip", "2001:db8::10")])).unwrap();
        assert_eq!(c.tunnel.as_str(), "rw-1.a_b");
        assert_eq!(c.vip, "2001:db8::10".parse::<IpAddr>().unwrap());
        assert_eq!(c.confdir, PathBuf::from("/etc/ipsec.d/"));
        assert_eq!(c.ike.socket(), Path::new("/run/pluto/pluto.ctl"));
        assert_eq!(c.fallbacktunnel, None);
    }

    #[test]
    fn the_ike_daemon_and_its_socket() {
        let base = [("tunnel", "t"), ("vip", "192.0.2.1")];
        let with = |extra: &[(&str, &str)]| {
            IpsecConfig::parse(&raw(&[&base[..], extra].concat())).map(|c| c.ike)
        };
        assert_eq!(
            with(&[("ike", "strongswan")]).unwrap(),
            IkeDaemon::Strongswan {
                vicisocket: "/var/run/charon.vici".into()
            }
        );
        assert_eq!(
            with(&[("ike", "strongswan"), ("vicisocket", "/run/a/charon.vici")])
                .unwrap()
                .socket(),
            Path::new("/run/a/charon.vici")
        );
        assert_eq!(
            with(&[("ike", "libreswan")]).unwrap().socket_param(),
            "ctlsocket"
        );
        let refused: &[(&[(&str, &str)], &str)] = &[
            (&[("ike", "racoon")], "ike:"),
            (&[("ike", "StrongSwan")], "ike:"),
            (&[("vicisocket", "/run/charon.vici")], "vicisocket:"),
            (
                &[("ike", "strongswan"), ("ctlsocket", "/run/pluto/pluto.ctl")],
                "ctlsocket:",
            ),
            (
                &[("ike", "strongswan"), ("confdir", "/etc/ipsec.d")],
                "confdir:",
            ),
            (
                &[("ike", "strongswan"), ("vicisocket", "charon.vici")],
                "vicisocket:",
            ),
        ];
        for (extra, prefix) in refused {
            let e = with(extra).unwrap_err();
            assert_eq!(e.code(), 6, "{extra:?}");
            assert!(e.reason().starts_with(prefix), "{extra:?}: {}", e.reason());
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = IpsecConfig::parse(&raw(&[
            ("tunnel", "t"),
            ("vip", "192.0.2.1"),
            ("fallbacktunnel", ""),
        ]));
        assert_eq!(c.unwrap().fallbacktunnel, None);
        let e = IpsecConfig::parse(&raw(&[("tunnel", ""), ("vip", "192.0.2.1")])).unwrap_err();
        assert_eq!(e.code(), 6);
        assert!(e.reason().starts_with("tunnel:"));
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("tunnel", "t"), ("vip", "192.0.2.10/24")], "vip:"),
            (&[("tunnel", "t"), ("vip", "192.0.2.256")], "vip:"),
            (&[("tunnel", "t"), ("vip", "fe80::1%eth0")], "vip:"),
            (&[("tunnel", "t"), ("vip", "::ffff:192.0.2.1")], "vip:"),
            (&[("tunnel", "-t"), ("vip", "192.0.2.1")], "tunnel:"),
            (&[("tunnel", "t;rm"), ("vip", "192.0.2.1")], "tunnel:"),
            (
                &[
                    ("tunnel", "t"),
                    ("vip", "192.0.2.1"),
                    ("fallbacktunnel", "t"),
                ],
                "fallbacktunnel:",
            ),
            (
                &[("tunnel", "t"), ("vip", "192.0.2.1"), ("confdir", "etc")],
                "confdir:",
            ),
            (
                &[
                    ("tunnel", "t"),
                    ("vip", "192.0.2.1"),
                    ("ctlsocket", "pluto.ctl"),
                ],
                "ctlsocket:",
            ),
        ];
        for (pairs, prefix) in cases {
            let e = IpsecConfig::parse(&raw(pairs)).unwrap_err();
            assert_eq!(e.code(), 6, "{pairs:?}");
            assert!(e.reason().starts_with(prefix), "{pairs:?}: {}", e.reason());
        }
    }

    #[test]
    fn durations_and_instance_stems() {
        assert_eq!(
            parse_duration_ms("t", "20000").unwrap(),
            Duration::from_secs(20)
        );
        assert_eq!(
            parse_duration_ms("t", "20s").unwrap(),
            Duration::from_secs(20)
        );
        assert_eq!(parse_duration_ms("t", "x").unwrap_err().code(), 2);
        assert_eq!(instance_file_stem("mesh:0"), "mesh_0");
        assert_eq!(instance_file_stem("../../etc/passwd"), "_.._etc_passwd");
    }
}

/// A DNS name as RFC 1123 allows it (letters, digits, '-', dots; not all-numeric).
pub fn parse_dns_name(param: &str, name: &str) -> Result<String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let numeric = bare.chars().all(|c| c.is_ascii_digit() || c == '.');
    if bare.is_empty() || bare.len() > 253 || numeric || !bare.split('.').all(label_ok) {
        return Err(Error::configured(
            param,
            format!("{name:?} is neither an IP address nor a DNS name"),
        ));
    }
    Ok(bare.to_ascii_lowercase())
}

pub fn parse_bool(param: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::configured(
            param,
            format!("{value:?} is not a boolean (true or false)"),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Port {
    /// tcp | udp | sctp
    pub proto: &'static str,
    pub port: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

/// An address prefix, e.g. 10.88.1.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subnet {
    pub addr: IpAddr,
    pub len: u8,
}

impl Subnet {
    pub fn host(addr: IpAddr) -> Subnet {
        Subnet {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}
