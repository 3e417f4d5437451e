//! Bad input, as data: each row is one thing an operator can get wrong. Every row must give
//! the OCF exit code the spec asks for, exactly one `ocf-exit-reason:` line naming the
//! parameter, and no file written — through the OCF environment and through the CLI flags.

mod common;
use common::*;
use std::path::Path;

struct Case {
    name: &'static str,
    /// Parameter overrides; "" unsets.
    params: &'static [(&'static str, &'static str)],
    code: i32,
    /// What the reason must name.
    names: &'static str,
}

const LONG_NAME: &str = "a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a1234567890";

const CASES: &[Case] = &[
    Case {
        name: "vip missing",
        params: &[("vip", "")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip with IPv4 prefix length",
        params: &[("vip", "192.0.2.10/24")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip with IPv6 prefix length",
        params: &[("vip", "2001:db8::10/64")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip octet out of range",
        params: &[("vip", "192.0.2.256")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip is a word",
        params: &[("vip", "not-an-address")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip with three octets",
        params: &[("vip", "192.0.2")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip unspecified v4",
        params: &[("vip", "0.0.0.0")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip broadcast",
        params: &[("vip", "255.255.255.255")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip multicast v4",
        params: &[("vip", "224.0.0.1")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip multicast v6",
        params: &[("vip", "ff02::1")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip unspecified v6",
        params: &[("vip", "::")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip with zone index",
        params: &[("vip", "fe80::1%eth0")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip v4-mapped v6",
        params: &[("vip", "::ffff:192.0.2.10")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip with trailing garbage",
        params: &[("vip", "192.0.2.10 x")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "vip is two addresses",
        params: &[("vip", "192.0.2.10,192.0.2.11")],
        code: 6,
        names: "vip",
    },
    Case {
        name: "tunnel missing",
        params: &[("tunnel", "")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel with shell metacharacter",
        params: &[("tunnel", "rw;reboot")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel with space",
        params: &[("tunnel", "rw tunnel")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel reads as an option",
        params: &[("tunnel", "-rw")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel with path",
        params: &[("tunnel", "rw/../x")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel non-ascii",
        params: &[("tunnel", "röw")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel too long",
        params: &[("tunnel", LONG_NAME)],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel all digits (libreswan reads a number)",
        params: &[("tunnel", "12")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel command substitution",
        params: &[("tunnel", "$(id)")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel hidden-file name",
        params: &[("tunnel", ".rw")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "tunnel not defined in confdir",
        params: &[("tunnel", "nope")],
        code: 6,
        names: "tunnel",
    },
    Case {
        name: "fallbacktunnel same as tunnel",
        params: &[("fallbacktunnel", "rw")],
        code: 6,
        names: "fallbacktunnel",
    },
    Case {
        name: "fallbacktunnel bad name",
        params: &[("fallbacktunnel", "back up")],
        code: 6,
        names: "fallbacktunnel",
    },
    Case {
        name: "fallbacktunnel not defined",
        params: &[("fallbacktunnel", "elsewhere")],
        code: 6,
        names: "fallbacktunnel",
    },
    Case {
        name: "resolver is a name",
        params: &[("resolver", "192.0.2.53 ns.example.test")],
        code: 6,
        names: "resolver",
    },
    Case {
        name: "resolver port out of range",
        params: &[("resolver", "192.0.2.53:65536")],
        code: 6,
        names: "resolver",
    },
    Case {
        name: "resolver lists too many",
        params: &[(
            "resolver",
            "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6 192.0.2.7 192.0.2.8 192.0.2.9",
        )],
        code: 6,
        names: "resolver",
    },
    Case {
        name: "confdir relative",
        params: &[("confdir", "etc/ipsec.d")],
        code: 6,
        names: "confdir",
    },
    Case {
        name: "confdir missing",
        params: &[("confdir", "/nonexistent/vipsec/ipsec.d")],
        code: 6,
        names: "confdir",
    },
    Case {
        name: "confdir is a file",
        params: &[("confdir", "@FILE@")],
        code: 6,
        names: "confdir",
    },
    Case {
        name: "ctlsocket relative",
        params: &[("ctlsocket", "run/pluto.ctl")],
        code: 6,
        names: "ctlsocket",
    },
    Case {
        name: "ike unknown",
        params: &[("ike", "openswan")],
        code: 6,
        names: "ike",
    },
    Case {
        name: "vicisocket without ike=strongswan",
        params: &[("vicisocket", "/run/charon.vici")],
        code: 6,
        names: "vicisocket",
    },
    Case {
        name: "vicisocket relative",
        params: &[
            ("ike", "strongswan"),
            ("confdir", ""),
            ("vicisocket", "charon.vici"),
        ],
        code: 6,
        names: "vicisocket",
    },
    Case {
        name: "cert not a path with ike=strongswan",
        params: &[
            ("ike", "strongswan"),
            ("confdir", ""),
            ("auth", "cert"),
            ("cert", "node-cert"),
        ],
        code: 6,
        names: "cert",
    },
    Case {
        name: "ctlsocket with ike=strongswan",
        params: &[
            ("ike", "strongswan"),
            ("confdir", ""),
            ("ctlsocket", "/run/pluto/pluto.ctl"),
        ],
        code: 6,
        names: "ctlsocket",
    },
    Case {
        name: "auth unknown",
        params: &[("auth", "password")],
        code: 6,
        names: "auth",
    },
    Case {
        name: "auth=psk without psk_file",
        params: &[("auth", "psk")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file without auth",
        params: &[("psk_file", "@PSK@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file with auth=cert",
        params: &[("auth", "cert"), ("cert", "node"), ("psk_file", "@PSK@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "auth=cert without cert",
        params: &[("auth", "cert")],
        code: 6,
        names: "cert",
    },
    Case {
        name: "cert without auth",
        params: &[("cert", "node")],
        code: 6,
        names: "cert",
    },
    Case {
        name: "cert nickname with quote",
        params: &[("auth", "cert"), ("cert", "no\"de")],
        code: 6,
        names: "cert",
    },
    Case {
        name: "peer_id without a generated conn",
        params: &[("peer_id", "@client")],
        code: 6,
        names: "peer_id",
    },
    Case {
        name: "dnssec=require with the conn in confdir (nothing to check)",
        params: &[("dnssec", "require")],
        code: 6,
        names: "dnssec",
    },
    Case {
        name: "dnssec=require with auth=psk and no peer_id",
        params: &[("auth", "psk"), ("psk_file", "@PSK@"), ("dnssec", "require")],
        code: 6,
        names: "dnssec",
    },
    Case {
        name: "dnssec=require with auth=psk and an address peer_id",
        params: &[
            ("auth", "psk"),
            ("psk_file", "@PSK@"),
            ("peer_id", "192.0.2.41"),
            ("dnssec", "require"),
        ],
        code: 6,
        names: "dnssec",
    },
    Case {
        name: "mode without a generated conn",
        params: &[("mode", "tunnel")],
        code: 6,
        names: "mode",
    },
    Case {
        name: "mode unknown",
        params: &[("auth", "psk"), ("psk_file", "@PSK@"), ("mode", "beet")],
        code: 6,
        names: "mode",
    },
    Case {
        name: "clients without a generated conn",
        params: &[("clients", "192.0.2.3")],
        code: 6,
        names: "clients",
    },
    Case {
        name: "clients with a prefix length",
        params: &[
            ("auth", "psk"),
            ("psk_file", "@PSK@"),
            ("clients", "192.0.2.3/24"),
        ],
        code: 6,
        names: "clients",
    },
    Case {
        name: "clients of the other address family",
        params: &[
            ("auth", "psk"),
            ("psk_file", "@PSK@"),
            ("clients", "192.0.2.3 2001:db8::3"),
        ],
        code: 6,
        names: "clients",
    },
    Case {
        name: "clients lists the VIP",
        params: &[
            ("auth", "psk"),
            ("psk_file", "@PSK@"),
            ("clients", "192.0.2.10"),
        ],
        code: 6,
        names: "clients",
    },
    Case {
        name: "clients lists one twice",
        params: &[
            ("auth", "psk"),
            ("psk_file", "@PSK@"),
            ("clients", "192.0.2.3,192.0.2.3"),
        ],
        code: 6,
        names: "clients",
    },
    Case {
        name: "clients is a name",
        params: &[
            ("auth", "psk"),
            ("psk_file", "@PSK@"),
            ("clients", "client.example.com"),
        ],
        code: 6,
        names: "clients",
    },
    Case {
        name: "peer_id with quote",
        params: &[("auth", "psk"), ("psk_file", "@PSK@"), ("peer_id", "@a\"b")],
        code: 6,
        names: "peer_id",
    },
    Case {
        name: "peer_id a DN libreswan reads otherwise (,, is its escaped comma)",
        params: &[("auth", "cert"), ("cert", "vip"), ("peer_id", "O=,, CN=a")],
        code: 6,
        names: "peer_id",
    },
    Case {
        name: "peer_id a DN with an empty value",
        params: &[("auth", "cert"), ("cert", "vip"), ("peer_id", "O=x, CN=")],
        code: 6,
        names: "peer_id",
    },
    Case {
        name: "psk_file relative",
        params: &[("auth", "psk"), ("psk_file", "psk")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file missing",
        params: &[("auth", "psk"), ("psk_file", "/nonexistent/psk")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file readable by others",
        params: &[("auth", "psk"), ("psk_file", "@PSKOPEN@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file too short",
        params: &[("auth", "psk"), ("psk_file", "@PSKSHORT@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file owned by another user (0600, uid 1000)",
        params: &[("auth", "psk"), ("psk_file", "@PSKUSER@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file is a symlink to a good key file",
        params: &[("auth", "psk"), ("psk_file", "@PSKLINK@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file is a FIFO (nothing may block validation)",
        params: &[("auth", "psk"), ("psk_file", "@PSKFIFO@")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "psk_file is a directory",
        params: &[("auth", "psk"), ("psk_file", "@DIR@")],
        code: 6,
        names: "psk_file",
    },
    // Control characters: values reach pluto's configuration (the generated include
    // file names confdir's files) and name paths. A confdir that exists, with a newline
    // and a conn line of its own in its name (anyone can make one in /tmp): refused, and
    // nothing written into it.
    Case {
        name: "confdir with a newline, existing",
        params: &[("auth", "psk"), ("psk_file", "@PSK@"), ("confdir", "@NLDIR@")],
        code: 6,
        names: "confdir",
    },
    Case {
        name: "psk_file with a newline",
        params: &[("auth", "psk"), ("psk_file", "@PSK@\n")],
        code: 6,
        names: "psk_file",
    },
    Case {
        name: "cert nickname with an escape sequence",
        params: &[("auth", "cert"), ("cert", "vip\u{1b}[2J")],
        code: 6,
        names: "cert",
    },
    Case {
        name: "ctlsocket with a carriage return",
        params: &[("ctlsocket", "/run/pluto/pluto.ctl\r")],
        code: 6,
        names: "ctlsocket",
    },
    Case {
        name: "vicisocket with a newline",
        params: &[("ike", "strongswan"), ("vicisocket", "/run/charon.vici\nx")],
        code: 6,
        names: "vicisocket",
    },
    Case {
        name: "dnssec_anchor with a tab",
        params: &[("dnssec_anchor", "/usr/share/dns/root.key\t")],
        code: 6,
        names: "dnssec_anchor",
    },
    Case {
        name: "peer_id with a newline",
        params: &[("auth", "psk"), ("psk_file", "@PSK@"), ("peer_id", "@c.example\nx")],
        code: 6,
        names: "peer_id",
    },
    Case {
        name: "clients with a control character",
        params: &[("clients", "192.0.2.3\u{7}")],
        code: 6,
        names: "clients",
    },
    Case {
        name: "generated conn clashes with confdir",
        params: &[("auth", "psk"), ("psk_file", "@PSK@")],
        code: 6,
        names: "tunnel",
    },
];

/// A directory whose name would add a conn line to a generated include file.
const NL_DIR: &str = "ipsec.d\nconn evil\n\tleftupdown=evil";

struct Fixture {
    tmp: tempfile::TempDir,
    agent: OcfAgent,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("ipsec.d")).unwrap();
        std::fs::write(
            tmp.path().join("ipsec.d/rw.conf"),
            Lab::road_warrior_conn("rw", "192.0.2.10"),
        )
        .unwrap();
        std::fs::write(tmp.path().join("a-file"), "").unwrap();
        std::fs::create_dir(tmp.path().join(NL_DIR)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (name, content, mode) in [
            ("psk", "a-pre-shared-key-of-enough-length-0123", 0o600),
            ("psk-open", "a-pre-shared-key-of-enough-length-0123", 0o644),
            ("psk-short", "short", 0o600),
            ("psk-user", "a-pre-shared-key-of-enough-length-0123", 0o600),
        ] {
            let path = tmp.path().join(name);
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // A local user's own key file would let that user set the key.
        std::os::unix::fs::chown(tmp.path().join("psk-user"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("psk"), tmp.path().join("psk-link")).unwrap();
        must(&format!(
            "mkfifo -m 600 {}",
            tmp.path().join("psk-fifo").display()
        ));
        Fixture {
            tmp,
            agent: OcfAgent::new(),
        }
    }

    fn params(&self, case: &Case) -> Vec<(String, String)> {
        let confdir = self.tmp.path().join("ipsec.d").display().to_string();
        let mut p: Vec<(String, String)> = vec![
            ("tunnel".into(), "rw".into()),
            ("vip".into(), "192.0.2.10".into()),
            ("confdir".into(), confdir),
        ];
        for (k, v) in case.params {
            p.retain(|(name, _)| name != k);
            if !v.is_empty() {
                let at = |f: &str| self.tmp.path().join(f).display().to_string();
                let v = v
                    .replace("@FILE@", &at("a-file"))
                    .replace("@PSKOPEN@", &at("psk-open"))
                    .replace("@PSKSHORT@", &at("psk-short"))
                    .replace("@PSKUSER@", &at("psk-user"))
                    .replace("@PSKLINK@", &at("psk-link"))
                    .replace("@PSKFIFO@", &at("psk-fifo"))
                    .replace("@PSK@", &at("psk"))
                    .replace("@DIR@", &at("ipsec.d"))
                    .replace("@NLDIR@", &at(NL_DIR));
                p.push((k.to_string(), v));
            }
        }
        p
    }

    fn dirs(&self, tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        (
            self.tmp.path().join(format!("state-{tag}")),
            self.tmp.path().join(format!("run-{tag}")),
        )
    }
}

#[track_caller]
fn check(case: &Case, how: &str, run: &Run, state: &Path, rundir: &Path) {
    let ctx = format!(
        "case {:?} via {how}: stdout={:?} stderr={:?}",
        case.name, run.stdout, run.stderr
    );
    assert_eq!(run.code, case.code, "{ctx}");
    let reasons = run.reasons();
    assert_eq!(reasons.len(), 1, "exactly one exit reason expected; {ctx}");
    assert!(
        reasons[0].starts_with(&format!("{}:", case.names)),
        "reason must name {}; {ctx}",
        case.names
    );
    assert!(
        reasons[0].contains("OCF_ERR_CONFIGURED"),
        "reason must name the code; {ctx}"
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{ctx}"
    );
    assert!(
        files_under(state).is_empty() && !state.exists(),
        "state written: {:?}; {ctx}",
        files_under(state)
    );
    // The harness made the run directory to mount it at /run/vipsec: nothing in it.
    assert!(files_under(rundir).is_empty(), "run dir written; {ctx}");
}

#[test]
fn every_bad_input_is_refused_before_anything_is_touched() {
    assert!(CASES.len() >= 25);
    let fx = Fixture::new();
    for (i, case) in CASES.iter().enumerate() {
        for action in ["validate-all", "start"] {
            // Through the OCF environment.
            let (state, rundir) = fx.dirs(&format!("{i}-{action}-ocf"));
            let mut env = env_of(&[
                ("OCF_ROOT", "/usr/lib/ocf"),
                ("OCF_RESOURCE_INSTANCE", "bad"),
            ]);
            for (k, v) in fx.params(case) {
                env.insert(format!("OCF_RESKEY_{k}"), v);
            }
            env.insert("HA_RSCTMP".into(), state.display().to_string());
            env.insert(RUN_DIR.into(), rundir.display().to_string());
            let run = Run::from(
                ocf_command(&fx.agent.path, action, None, &env)
                    .output()
                    .unwrap(),
            );
            check(case, &format!("OCF {action}"), &run, &state, &rundir);

            // Through the command line.
            let (state, rundir) = fx.dirs(&format!("{i}-{action}-cli"));
            let mut cmd = std::process::Command::new(vipsec_bin());
            cmd.arg(action).env("HA_RSCTMP", &state);
            with_run_dir(&mut cmd, &rundir, None);
            for (k, v) in fx.params(case) {
                cmd.arg(format!("--{k}={v}"));
            }
            let run = Run::from(cmd.output().unwrap());
            check(case, &format!("CLI {action}"), &run, &state, &rundir);
        }
    }
    assert!(
        files_under(&fx.tmp.path().join(NL_DIR)).is_empty(),
        "a file was written into the newline confdir"
    );
}

#[test]
fn bad_invocations_are_argument_errors() {
    let fx = Fixture::new();
    let base = |extra: &[(&str, &str)]| {
        let mut env = env_of(&[
            ("OCF_RESOURCE_INSTANCE", "bad"),
            ("OCF_RESKEY_tunnel", "rw"),
            ("OCF_RESKEY_vip", "192.0.2.10"),
        ]);
        env.insert(
            "OCF_RESKEY_confdir".into(),
            fx.tmp.path().join("ipsec.d").display().to_string(),
        );
        env.insert(
            "HA_RSCTMP".into(),
            fx.tmp.path().join("state-args").display().to_string(),
        );
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        env
    };
    // (action, environment, expected code, what the reason must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], i32, &'a str);
    let cases: &[Case] = &[
        (
            "monitor",
            &[("OCF_RESKEY_CRM_meta_timeout", "soon")],
            2,
            "timeout",
        ),
        (
            "monitor",
            &[("OCF_RESKEY_CRM_meta_interval", "often")],
            2,
            "OCF_RESKEY_CRM_meta_interval",
        ),
        (
            "monitor",
            &[("OCF_CHECK_LEVEL", "deep")],
            2,
            "OCF_CHECK_LEVEL",
        ),
        ("promote", &[], 3, "promote"),
        ("migrate_to", &[], 3, "migrate_to"),
    ];
    for (action, extra, code, names) in cases {
        let run = Run::from(
            ocf_command(&fx.agent.path, action, None, &base(extra))
                .output()
                .unwrap(),
        );
        assert_eq!(run.code, *code, "{action} {extra:?}: {}", run.stderr);
        assert_eq!(run.reasons().len(), 1, "{}", run.stderr);
        assert!(
            run.reasons()[0].contains(names),
            "{action} {extra:?}: {}",
            run.stderr
        );
    }
    // No action at all: usage, and OCF_ERR_ARGS.
    let run = Run::from(std::process::Command::new(&fx.agent.path).output().unwrap());
    assert_eq!(run.code, 2);
    assert!(
        run.stdout.starts_with("usage: ipsec {start|stop|monitor|"),
        "{}",
        run.stdout
    );
    // By hand: unknown flags are argument errors, unknown actions unimplemented.
    let run = Run::from(
        std::process::Command::new(vipsec_bin())
            .args(["monitor", "--vipp", "x"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.reasons()[0].contains("--vipp"), "{}", run.stderr);
    let run = Run::from(
        std::process::Command::new(vipsec_bin())
            .args(["promote"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn missing_ipsec_is_not_installed_except_on_a_probe() {
    let fx = Fixture::new();
    let mut env = env_of(&[
        ("OCF_RESOURCE_INSTANCE", "noipsec"),
        ("OCF_RESKEY_tunnel", "rw"),
        ("OCF_RESKEY_vip", "192.0.2.10"),
        ("PATH", "/nonexistent"),
    ]);
    env.insert(
        "OCF_RESKEY_confdir".into(),
        fx.tmp.path().join("ipsec.d").display().to_string(),
    );
    env.insert(
        "HA_RSCTMP".into(),
        fx.tmp.path().join("state-noipsec").display().to_string(),
    );
    for action in ["validate-all", "start"] {
        let run = Run::from(
            ocf_command(&fx.agent.path, action, None, &env)
                .output()
                .unwrap(),
        );
        assert_eq!(run.code, 5, "{action}: {}", run.stderr);
        assert!(
            run.reasons()[0].contains("ipsec command (libreswan) is not installed"),
            "{}",
            run.stderr
        );
    }
    // A probe (no interval) of a resource that was never started: not running.
    let run = Run::from(
        ocf_command(&fx.agent.path, "monitor", None, &env)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 7, "probe: {}", run.stderr);
    // Stop of a stopped resource succeeds even without libreswan.
    let run = Run::from(
        ocf_command(&fx.agent.path, "stop", None, &env)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "stop: {}", run.stderr);
    // ocf-tester's way of pretending the programs are gone (OCF_TESTER_FAIL_HAVE_BINARY).
    env.insert("PATH".into(), std::env::var("PATH").unwrap());
    env.insert("OCF_TESTER_FAIL_HAVE_BINARY".into(), "1".into());
    let run = Run::from(
        ocf_command(&fx.agent.path, "validate-all", None, &env)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
}

#[test]
fn unknown_parameters_are_warned_about_not_refused() {
    let fx = Fixture::new();
    let logfile = fx.tmp.path().join("ha.log");
    let mut env = env_of(&[
        ("OCF_RESOURCE_INSTANCE", "warned"),
        ("OCF_RESKEY_tunnel", "rw"),
        ("OCF_RESKEY_vip", "192.0.2.10"),
        ("OCF_RESKEY_tunel", "typo"),
        ("OCF_RESKEY_CRM_meta_timeout", "20000"),
    ]);
    env.insert(
        "OCF_RESKEY_confdir".into(),
        fx.tmp.path().join("ipsec.d").display().to_string(),
    );
    env.insert("HA_LOGFILE".into(), logfile.display().to_string());
    let run = Run::from(
        ocf_command(&fx.agent.path, "validate-all", None, &env)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(log.contains("vipsec(warned)"), "{log}");
    assert!(
        log.contains("WARNING: ignoring unknown parameter \"tunel\""),
        "{log}"
    );
    assert!(
        !log.contains("CRM_meta"),
        "resource manager attributes are not parameters: {log}"
    );
}

/// ocf:vipsec:mesh: each row a mistake, refused with 6 naming the parameter, nothing applied.
#[test]
fn mesh_bad_inputs_are_refused_before_anything_is_applied() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let agent = OcfAgent::named("mesh");
    let write = |name: &str, content: &str, mode: u32| {
        let p = tmp.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.display().to_string()
    };
    let good = write(
        "good.key",
        "a mesh master secret of enough length 0123456789",
        0o600,
    );
    let open = write(
        "open.key",
        "a mesh master secret of enough length 0123456789",
        0o640,
    );
    let short = write("short.key", "only-twenty-bytes...", 0o600);
    let foreign = write(
        "foreign.key",
        "a mesh master secret of enough length 0123456789",
        0o600,
    );
    std::os::unix::fs::chown(&foreign, Some(1000), Some(1000)).unwrap();
    let link = tmp.path().join("link.key").display().to_string();
    std::os::unix::fs::symlink(&good, &link).unwrap();
    std::fs::create_dir(tmp.path().join("ipsec.d")).unwrap();
    let confdir = tmp.path().join("ipsec.d").display().to_string();
    std::fs::create_dir(tmp.path().join(NL_DIR)).unwrap();
    let nl_confdir = tmp.path().join(NL_DIR).display().to_string();
    let good_nl = format!("{good}\n");
    let many: Vec<String> = (1..=4097).map(|i| format!("2001:db8::{i:x}")).collect();
    let many = many.join(" ");
    // (what, parameters, what the reason must say)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no peers and no corosync.conf",
            vec![
                ("peers", ""),
                ("corosync_conf", "/nonexistent/corosync.conf"),
            ],
            "corosync_conf",
        ),
        ("peers only separators", vec![("peers", " , ")], "peers"),
        (
            "duplicate peer",
            vec![("peers", "192.0.2.1 192.0.2.2 192.0.2.2")],
            "peers",
        ),
        (
            "duplicate name",
            vec![("peers", "a.example.test b.example.test A.example.test")],
            "peers",
        ),
        ("peer with prefix", vec![("peers", "192.0.2.0/24")], "peers"),
        (
            "unparsable peer",
            vec![("peers", "192.0.2.1 not_a_name")],
            "peers",
        ),
        (
            "peer address out of range",
            vec![("peers", "192.0.2.999")],
            "peers",
        ),
        ("too many peers", vec![("peers", many.as_str())], "peers"),
        (
            "resolver is a name",
            vec![("resolver", "ns.example.test")],
            "resolver",
        ),
        (
            "resolver with an empty port",
            vec![("resolver", "[2001:db8::53]:")],
            "resolver",
        ),
        (
            "no secret_file and no cluster key",
            vec![
                ("secret_file", ""),
                ("corosync_authkey", "/nonexistent/authkey"),
            ],
            "corosync_authkey",
        ),
        (
            "secret_file relative",
            vec![("secret_file", "mesh.key")],
            "secret_file",
        ),
        (
            "secret_file readable by group",
            vec![("secret_file", open.as_str())],
            "secret_file",
        ),
        (
            "secret_file too short",
            vec![("secret_file", short.as_str())],
            "secret_file",
        ),
        (
            "secret_file owned by uid 1000",
            vec![("secret_file", foreign.as_str())],
            "secret_file",
        ),
        (
            "secret_file is a symlink",
            vec![("secret_file", link.as_str())],
            "secret_file",
        ),
        (
            "secret_file does not exist",
            vec![("secret_file", "/nonexistent/mesh.key")],
            "secret_file",
        ),
        ("cert without auth=cert", vec![("cert", "node1")], "cert"),
        (
            "auth=cert without cert",
            vec![("auth", "cert"), ("secret_file", "")],
            "cert",
        ),
        (
            "secret_file with auth=cert",
            vec![("auth", "cert"), ("cert", "node1")],
            "secret_file",
        ),
        ("auth unknown", vec![("auth", "kerberos")], "auth"),
        ("ike unknown", vec![("ike", "isakmpd")], "ike"),
        (
            "confdir with ike=strongswan",
            vec![("ike", "strongswan"), ("confdir", "/etc/ipsec.d")],
            "confdir",
        ),
        (
            "vicisocket without ike=strongswan",
            vec![("vicisocket", "/run/charon.vici")],
            "vicisocket",
        ),
        (
            "cert file missing with ike=strongswan",
            vec![
                ("ike", "strongswan"),
                ("confdir", ""),
                ("auth", "cert"),
                ("secret_file", ""),
                ("cert", "/nonexistent/node.pem"),
            ],
            "cert",
        ),
        (
            "vicisocket relative",
            vec![
                ("ike", "strongswan"),
                ("confdir", ""),
                ("vicisocket", "run/charon.vici"),
            ],
            "vicisocket",
        ),
        ("policy unknown", vec![("policy", "strict")], "policy"),
        (
            "exclude_ssh not a boolean",
            vec![("exclude_ssh", "maybe")],
            "exclude_ssh",
        ),
        (
            "secure port zero",
            vec![("secure_ports", "0")],
            "secure_ports",
        ),
        (
            "secure port protocol",
            vec![("secure_ports", "gre/47")],
            "secure_ports",
        ),
        (
            "ssh both excluded and secured",
            vec![("secure_ports", "tcp/22")],
            "secure_ports",
        ),
        (
            "two IPv4 local addresses",
            vec![("local_address", "192.0.2.1,192.0.2.2")],
            "local_address",
        ),
        (
            "forward subnet without node",
            vec![("forward_subnets", "10.88.1.0/24")],
            "forward_subnets",
        ),
        (
            "forward subnet of the wrong family",
            vec![("forward_subnets", "192.0.2.1=2001:db8:1::/64")],
            "forward_subnets",
        ),
        (
            "clear_from lets everyone in",
            vec![("clear_from", "0.0.0.0/0")],
            "clear_from",
        ),
        (
            "clear_from not an address",
            vec![("clear_from", "fence-1.example")],
            "clear_from",
        ),
        (
            "clear_from prefix too long",
            vec![("clear_from", "2001:db8::/129")],
            "clear_from",
        ),
        (
            "confdir missing",
            vec![("confdir", "/nonexistent/ipsec.d")],
            "confdir",
        ),
        (
            "dnssec=require with peers by address and auth=psk (nothing to check)",
            vec![("dnssec", "require")],
            "dnssec",
        ),
        (
            "confdir with a newline, existing",
            vec![("confdir", nl_confdir.as_str())],
            "confdir",
        ),
        (
            "secret_file with a newline",
            vec![("secret_file", good_nl.as_str())],
            "secret_file",
        ),
        (
            "corosync_conf with an escape sequence",
            vec![("corosync_conf", "/etc/corosync/corosync.conf\u{1b}")],
            "corosync_conf",
        ),
        (
            "cert with a newline",
            vec![("auth", "cert"), ("secret_file", ""), ("cert", "node1\nx")],
            "cert",
        ),
        (
            "peers with a control character",
            vec![("peers", "192.0.2.1 192.0.2.2\u{1}")],
            "peers",
        ),
    ];
    for (i, (name, overrides, names)) in cases.iter().enumerate() {
        for action in ["validate-all", "start"] {
            let state = tmp.path().join(format!("state-{i}-{action}"));
            let rundir = tmp.path().join(format!("run-{i}-{action}"));
            let mut env = env_of(&[
                ("OCF_RESOURCE_INSTANCE", "mesh"),
                ("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2"),
            ]);
            env.insert("OCF_RESKEY_secret_file".into(), good.clone());
            env.insert("OCF_RESKEY_confdir".into(), confdir.clone());
            env.insert("HA_RSCTMP".into(), state.display().to_string());
            env.insert(RUN_DIR.into(), rundir.display().to_string());
            for (k, v) in overrides {
                let key = format!("OCF_RESKEY_{k}");
                if v.is_empty() {
                    env.remove(&key);
                } else {
                    env.insert(key, v.to_string());
                }
            }
            let run = Run::from(
                ocf_command(&agent.path, action, None, &env)
                    .output()
                    .unwrap(),
            );
            let ctx = format!("mesh case {name:?} via {action}: {run:?}");
            assert_eq!(run.code, 6, "{ctx}");
            assert_eq!(run.reasons().len(), 1, "{ctx}");
            assert!(run.reasons()[0].starts_with(&format!("{names}:")), "{ctx}");
            assert!(
                !state.exists() && files_under(&rundir).is_empty(),
                "something was written; {ctx}"
            );
            assert!(
                std::fs::read_dir(tmp.path().join("ipsec.d"))
                    .unwrap()
                    .next()
                    .is_none(),
                "{ctx}"
            );
            assert!(files_under(&tmp.path().join(NL_DIR)).is_empty(), "{ctx}");
        }
    }
}
