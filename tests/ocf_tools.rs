//! The agent as Pacemaker's own tools see it: xmllint against the OCF DTD, ocf-tester
//! against the installed entry, crm_resource --validate, and the logging conventions.

mod common;
use common::*;

const DTD: &str = "/usr/share/resource-agents/ra-api-1.dtd";
fn xmllint_dtd(xml: &str, dtd: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("xmllint")
        .args(["--noout", "--dtdvalid", dtd, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xmllint (libxml2-utils) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn meta_data_is_valid_against_the_ocf_dtd() {
    let out = std::process::Command::new(vipsec_bin())
        .arg("meta-data")
        .output()
        .unwrap();
    assert!(out.status.success());
    let xml = String::from_utf8(out.stdout).unwrap();
    let lint = xmllint_dtd(&xml, DTD);
    assert!(
        lint.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&lint.stderr)
    );
    // Every parameter has its descriptions and a typed content element.
    let params = [
        "tunnel",
        "vip",
        "confdir",
        "fallbacktunnel",
        "ctlsocket",
        "ike",
        "vicisocket",
        "auth",
        "psk_file",
        "cert",
        "peer_id",
        "mode",
        "clients",
        "dnssec",
        "dnssec_anchor",
        "resolver",
    ];
    for p in params {
        assert!(
            xml.contains(&format!("<parameter name=\"{p}\"")),
            "{p} missing"
        );
    }
    assert_eq!(xml.matches("<parameter name=").count(), params.len());
    assert_eq!(xml.matches("<content type=").count(), params.len());
    assert!(xml.contains(r#"<parameter name="tunnel" unique="1" required="1">"#));
    assert!(xml.contains(r#"<content type="string" default="/etc/ipsec.d/"/>"#));
    assert!(xml.contains(r#"<action name="monitor" timeout="20s" interval="10s" depth="0"/>"#));
    assert!(xml.contains(r#"<action name="monitor" timeout="20s" interval="60s" depth="10"/>"#));
}

#[test]
fn mesh_meta_data_is_valid_against_the_ocf_dtd() {
    let out = std::process::Command::new(vipsec_bin())
        .args(["mesh", "meta-data"])
        .output()
        .unwrap();
    let xml = String::from_utf8(out.stdout).unwrap();
    let lint = xmllint_dtd(&xml, DTD);
    assert!(
        lint.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(xml.contains(r#"<resource-agent name="mesh""#));
    for p in [
        "peers",
        "local_address",
        "auth",
        "secret_file",
        "cert",
        "policy",
        "exclude_ssh",
        "exclude_icmp",
        "secure_ports",
        "confdir",
        "ctlsocket",
        "ike",
        "vicisocket",
    ] {
        assert!(
            xml.contains(&format!("<parameter name=\"{p}\"")),
            "{p} missing"
        );
    }
    assert!(xml.contains(r#"<content type="boolean" default="true"/>"#));
    // The OCF entry of the mesh is the same binary.
    let agent = OcfAgent::named("mesh");
    let via_entry = ocf_command(&agent.path, "meta-data", None, &env_of(&[]))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(via_entry.stdout).unwrap(), xml);
}

#[test]
fn meta_data_for_ocf_1_1_managers_adds_only_the_1_1_features() {
    // Pacemaker announces OCF 1.1 in the environment; the 1.1 dialect is the DTD plus
    // `reloadable` and `reload-agent`, nothing else.
    let agent = OcfAgent::new();
    let env = env_of(&[("OCF_RA_VERSION_MAJOR", "1"), ("OCF_RA_VERSION_MINOR", "1")]);
    let out = ocf_command(&agent.path, "meta-data", None, &env)
        .output()
        .unwrap();
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(xml.contains("<version>1.1</version>"));
    assert!(xml.contains(r#"reloadable="1""#));
    assert!(xml.contains(r#"<action name="reload-agent""#));
    let dtd = std::fs::read_to_string(DTD).unwrap();
    let dtd_1_1 = dtd
        .replace("|validate-all)", "|validate-all|reload-agent)")
        .replace(
            "unique  (1|0)   \"0\">",
            "unique  (1|0)   \"0\"\n        reloadable (1|0) \"0\">",
        );
    assert_ne!(dtd, dtd_1_1, "the DTD changed shape; update this test");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ra-api-1.1.dtd");
    std::fs::write(&path, dtd_1_1).unwrap();
    let lint = xmllint_dtd(&xml, path.to_str().unwrap());
    assert!(
        lint.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&lint.stderr)
    );
}

#[test]
fn help_shows_the_meta_data_text() {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let out = std::process::Command::new(vipsec_bin())
        .args(["start", "--help"])
        .output()
        .unwrap();
    let help = squash(&String::from_utf8(out.stdout).unwrap());
    let xml = String::from_utf8(
        std::process::Command::new(vipsec_bin())
            .arg("meta-data")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // Every parameter's descriptions from meta-data appear in --help (modulo wrapping).
    let mut seen = 0;
    for tag in ["longdesc", "shortdesc"] {
        for chunk in xml.split(&format!("<{tag} lang=\"en\">")).skip(2) {
            let text = chunk
                .split(&format!("</{tag}>"))
                .next()
                .unwrap()
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&");
            assert!(
                help.contains(&squash(&text)),
                "--help lacks {text:?}:\n{help}"
            );
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        2 * xml.matches("<parameter name=").count(),
        "two descriptions per parameter"
    );
    assert!(help.contains("[env: OCF_RESKEY_fallbacktunnel]"));
}

#[test]
fn ocf_tester_passes_the_full_lifecycle() {
    let agent = install_agent();
    let lab = Lab::new("192.0.2.50");
    lab.add_vip();
    let options = [
        ("tunnel", "rw".to_string()),
        ("vip", "192.0.2.50".to_string()),
        ("confdir", lab.pluto.confdir.display().to_string()),
        ("ctlsocket", lab.pluto.ctlsocket.display().to_string()),
    ];
    assert_ocf_tester_passes(
        &lab.ns,
        agent,
        "vip-tunnel",
        &options,
        &lab.state_dir,
        &lab.run_dir,
    );
    // ocf-tester ends with a stop: nothing left in pluto.
    assert!(!lab.pluto.whack("--status").contains("\"rw\":"));
}

#[test]
fn crm_resource_validate_returns_the_agents_code_and_reason() {
    install_agent();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rw.conf"),
        Lab::road_warrior_conn("rw", "192.0.2.60"),
    )
    .unwrap();
    let confdir = format!("confdir={}", tmp.path().display());
    let run = |opts: &[&str]| {
        let mut c = distro_cmd("crm_resource");
        c.args([
            "--validate",
            "--class",
            "ocf",
            "--provider",
            "vipsec",
            "--agent",
            "ipsec",
        ]);
        for o in opts {
            c.args(["--option", o]);
        }
        Run::from(c.output().unwrap())
    };
    let r = run(&["vip=192.0.2.60/24", "tunnel=rw", &confdir]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stdout
            .contains("vip: \"192.0.2.60/24\" has a prefix length"),
        "{r:?}"
    );
    let r = run(&["vip=192.0.2.60", "tunnel=bad name", &confdir]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stdout.contains("tunnel: "), "{r:?}");
    let r = run(&["vip=192.0.2.60", "tunnel=rw", &confdir]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn logging_follows_the_ha_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let logfile = tmp.path().join("agent.log");
    let agent = OcfAgent::new();
    let base = [
        ("OCF_RESOURCE_INSTANCE", "logged"),
        ("OCF_RESKEY_tunnel", "rw"),
        ("OCF_RESKEY_vip", "192.0.2.70"),
        ("OCF_RESKEY_CRM_meta_interval", "10000"),
    ];
    let mut env = env_of(&base);
    env.insert("HA_LOGFILE".into(), logfile.display().to_string());
    env.insert(
        "HA_RSCTMP".into(),
        tmp.path().join("state").display().to_string(),
    );
    env.insert("HA_debug".into(), "0".into());
    let r = Run::from(
        ocf_command(&agent.path, "monitor", None, &env)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 7, "{r:?}");
    env.insert("OCF_RESKEY_vip".into(), "192.0.2.70/24".into());
    let r = Run::from(
        ocf_command(&agent.path, "monitor", None, &env)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 6);
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        !log.contains("DEBUG"),
        "debug lines with HA_debug=0:\n{log}"
    );
    assert!(log.contains("vipsec(logged)["), "{log}");
    assert!(
        log.contains("ERROR: monitor: vip: \"192.0.2.70/24\" has a prefix length"),
        "{log}"
    );
    // The exit reason is printed once, not echoed by the log on stderr.
    assert_eq!(r.stderr.matches("prefix length").count(), 1, "{}", r.stderr);

    env.insert("OCF_RESKEY_vip".into(), "192.0.2.70".into());
    env.insert("HA_debug".into(), "1".into());
    ocf_command(&agent.path, "monitor", None, &env)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        log.contains("DEBUG: monitor"),
        "no debug lines with HA_debug=1:\n{log}"
    );
}

#[test]
fn syslog_gets_the_facility_and_the_tag() {
    use std::os::unix::net::UnixDatagram;
    // A private /dev/log in a private mount namespace: the test sees exactly what the
    // agent sends, whatever syslog daemon the machine runs (or not).
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let agent = OcfAgent::new();
    // A bind mount needs a mount point; if the machine has no /dev/log, make an empty one
    // for the duration of the test and take it away afterwards.
    struct Placeholder(bool);
    impl Drop for Placeholder {
        fn drop(&mut self) {
            if self.0 {
                let _ = std::fs::remove_file("/dev/log");
            }
        }
    }
    let _placeholder = Placeholder(
        std::fs::symlink_metadata("/dev/log").is_err() && std::fs::write("/dev/log", "").is_ok(),
    );
    let script = format!(
        "mount --bind {} /dev/log && exec \"$0\" validate-all",
        sock_path.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(&agent.path)
        .env("OCF_RESOURCE_INSTANCE", "sys")
        .env("OCF_RESKEY_tunnel", "rw")
        .env("OCF_RESKEY_vip", "192.0.2.80")
        .env("OCF_RESKEY_nosuch", "1")
        .env("OCF_RESKEY_confdir", "/nonexistent")
        .env("HA_LOGFACILITY", "local3")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("a syslog message arrives");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    // local3 = 19; warning = 4: <19*8+4>
    assert!(msg.starts_with("<156>"), "{msg}");
    assert!(msg.contains("vipsec(sys)["), "{msg}");
    assert!(
        msg.contains("WARNING: ignoring unknown parameter \"nosuch\""),
        "{msg}"
    );
}
