//! The VIP tunnel's lifecycle against a real pluto in a real network namespace.

mod common;
use common::*;

#[track_caller]
fn expect(run: &Run, code: i32, what: &str) {
    assert_eq!(
        run.code, code,
        "{what}: expected {code}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
}

fn lifecycle(vip: &str) {
    let lab = Lab::new(vip);
    expect(
        &lab.ocf("monitor", &[("OCF_RESKEY_CRM_meta_interval", "")]),
        7,
        "probe before start",
    );
    expect(&lab.ocf("validate-all", &[]), 0, "validate-all");

    // VIP not here: start refuses with the reason operators need.
    let r = lab.ocf("start", &[]);
    expect(&r, 1, "start without the VIP");
    assert_eq!(r.reasons().len(), 1, "{}", r.stderr);
    assert!(
        r.reasons()[0].contains(&format!(
            "VIP {vip} is not configured on this node; colocate and order"
        )),
        "{}",
        r.stderr
    );
    expect(&lab.ocf("monitor", &[]), 7, "monitor after a refused start");

    lab.add_vip();
    expect(&lab.ocf("start", &[]), 0, "start");
    assert!(
        lab.pluto.oriented("rw"),
        "pluto does not have rw oriented:\n{}",
        lab.pluto.whack("--status")
    );
    assert!(
        lab.pluto.listens_on(vip),
        "pluto does not listen on the VIP:\n{}",
        lab.pluto.whack("--status")
    );
    expect(&lab.ocf("monitor", &[]), 0, "monitor after start");
    // The include file addconn read is gone: nothing accumulates in the run directory.
    assert!(
        files_under(&lab.run_dir)
            .iter()
            .all(|f| !f.starts_with("include-")),
        "{:?}",
        files_under(&lab.run_dir)
    );
    expect(
        &lab.ocf("monitor", &[("OCF_RESKEY_CRM_meta_interval", "0")]),
        0,
        "probe after start",
    );
    expect(&lab.ocf("start", &[]), 0, "start again (idempotent)");
    expect(&lab.ocf("monitor", &[]), 0, "monitor after second start");

    // By hand, the same state is seen without naming the instance.
    let r = lab.cli("monitor", &["--json"]);
    expect(&r, 0, "monitor by hand");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["state"], "running");
    assert_eq!(v["instance"], "vip-tunnel");
    assert_eq!(v["vip_interface"], "v0");

    expect(&lab.ocf("stop", &[]), 0, "stop");
    let status = lab.pluto.whack("--status");
    assert!(
        !status.contains("\"rw\":"),
        "rw still loaded after stop:\n{status}"
    );
    expect(&lab.ocf("monitor", &[]), 7, "monitor after stop");
    expect(&lab.ocf("stop", &[]), 0, "stop again (idempotent)");
    expect(&lab.ocf("monitor", &[]), 7, "monitor after second stop");
}

#[test]
fn lifecycle_ipv4() {
    lifecycle("192.0.2.10");
}

#[test]
fn lifecycle_ipv6() {
    lifecycle("2001:db8::10");
}

#[test]
fn monitor_detects_failures() {
    let mut lab = Lab::new("198.51.100.10");
    lab.add_vip();
    expect(&lab.ocf("start", &[]), 0, "start");

    // The VIP vanishes behind the cluster's back.
    lab.del_vip();
    let r = lab.ocf("monitor", &[]);
    expect(&r, 1, "monitor with the VIP gone");
    assert!(
        r.reasons()[0].contains("198.51.100.10 is no longer configured"),
        "{}",
        r.stderr
    );
    lab.add_vip();
    expect(&lab.ocf("monitor", &[]), 0, "monitor with the VIP back");

    // The conn is deleted behind the cluster's back: depth 0 asks only the kernel (pluto
    // is the same and listens on the VIP), depth 10 asks pluto and sees it.
    lab.pluto.whack("--name rw --delete");
    expect(
        &lab.ocf("monitor", &[]),
        0,
        "depth-0 monitor with the conn gone",
    );
    let r = lab.ocf("monitor", &[("OCF_CHECK_LEVEL", "10")]);
    expect(&r, 1, "depth-10 monitor with the conn gone");
    assert!(r.reasons()[0].contains("not loaded"), "{}", r.stderr);
    expect(&lab.ocf("start", &[]), 0, "start repairs");
    expect(&lab.ocf("monitor", &[]), 0, "monitor after repair");

    // pluto dies: monitor fails, stop still succeeds (nothing is left to take down).
    lab.pluto.kill();
    let r = lab.ocf("monitor", &[]);
    expect(&r, 1, "monitor with pluto dead");
    assert!(
        r.reasons()[0].contains("pluto is not running"),
        "{}",
        r.stderr
    );
    let r = lab.ocf("start", &[]);
    expect(&r, 1, "start with pluto dead");
    expect(&lab.ocf("stop", &[]), 0, "stop with pluto dead");
    expect(&lab.ocf("monitor", &[]), 7, "monitor after stop");

    // A restarted pluto has forgotten every conn: start loads it again.
    lab.pluto.restart();
    expect(&lab.ocf("start", &[]), 0, "start after pluto restart");
    expect(
        &lab.ocf("monitor", &[]),
        0,
        "monitor after pluto restart and start",
    );
}

#[test]
fn fallback_tunnel_is_initiated_on_stop() {
    let lab = Lab::new("203.0.113.10");
    lab.add_vip();
    lab.ns.ip("addr add 203.0.113.11/24 dev v0");
    // This node's own tunnel toward the VIP's next home; the peer does not answer here,
    // so pluto keeps trying in the background, which is exactly what stop must not wait for.
    lab.pluto.add_conn_file(
        "back.conf",
        "conn back\n\tleft=203.0.113.11\n\tright=203.0.113.99\n\tauthby=secret\n\tikev2=yes\n\tauto=add\n",
    );
    lab.pluto
        .add_conn_file("rw.conf", &Lab::road_warrior_conn("rw", "203.0.113.10"));
    let fb = [("OCF_RESKEY_fallbacktunnel", "back")];
    expect(&lab.ocf("start", &fb), 0, "start");
    let t0 = std::time::Instant::now();
    expect(&lab.ocf("stop", &fb), 0, "stop");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "stop waited for the fallback tunnel"
    );
    let states = lab.pluto.whack("--showstates");
    assert!(
        states.contains("\"back\""),
        "no IKE state for the fallback tunnel after stop:\n{states}"
    );
}

#[test]
fn reload_agent_changes_fallbacktunnel_only() {
    let lab = Lab::new("192.0.2.20");
    lab.add_vip();
    expect(&lab.ocf("start", &[]), 0, "start");
    expect(
        &lab.ocf("reload-agent", &[("OCF_RESKEY_fallbacktunnel", "other")]),
        0,
        "reload-agent",
    );
    let state = std::fs::read_to_string(lab.state_dir.join("vipsec-vip-tunnel.state")).unwrap();
    assert!(state.contains("\"fallbacktunnel\": \"other\""), "{state}");
    expect(&lab.ocf("monitor", &[]), 0, "monitor after reload");
    let r = lab.ocf("reload-agent", &[("OCF_RESKEY_vip", "192.0.2.21")]);
    expect(&r, 1, "reload-agent of a non-reloadable parameter");
    assert!(r.reasons()[0].starts_with("vip differs"), "{}", r.stderr);
    expect(&lab.ocf("stop", &[]), 0, "stop");
}

#[test]
fn depth_10_reads_the_kernels_xfrm_state_for_the_vip() {
    let lab = Lab::new("192.0.2.30");
    lab.add_vip();
    expect(&lab.ocf("start", &[]), 0, "start");
    // What pluto installs when a client connects: policies with the VIP as an endpoint,
    // and (during negotiation) a larval SA. Policies install on this kernel; full ESP SAs
    // need the real-kernel lab, but an SPI allocation shows the SA path.
    lab.ns.ip("xfrm policy add src 192.0.2.30/32 dst 198.51.100.7/32 dir out tmpl src 192.0.2.30 dst 198.51.100.7 proto esp mode transport");
    lab.ns.ip("xfrm policy add src 198.51.100.7/32 dst 192.0.2.30/32 dir in tmpl src 198.51.100.7 dst 192.0.2.30 proto esp mode transport");
    lab.ns.ip("xfrm policy add src 203.0.113.1/32 dst 203.0.113.2/32 dir out tmpl src 203.0.113.1 dst 203.0.113.2 proto esp mode transport");
    lab.ns
        .ip("xfrm state allocspi src 198.51.100.7 dst 192.0.2.30 proto esp");
    let r = lab.cli("monitor", &["--json", "--check-level", "10"]);
    expect(&r, 0, "depth-10 monitor");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let policies = v["xfrm"]["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "only the VIP's policies: {}", r.stdout);
    assert!(policies.iter().any(|p| p["dir"] == "out"
        && p["dst"] == "198.51.100.7/32"
        && p["tmpl"][0]["mode"] == "transport"));
    assert!(policies
        .iter()
        .any(|p| p["dir"] == "in" && p["src"] == "198.51.100.7/32"));
    let sas = v["xfrm"]["sas"].as_array().unwrap();
    assert_eq!(sas.len(), 1, "{}", r.stdout);
    assert_eq!(
        sas[0]["established"], false,
        "a larval SA carries no traffic"
    );
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no peer has an SA"),
        "{}",
        r.stdout
    );
    // Depth 0 does not read XFRM at all.
    let r = lab.cli("monitor", &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v.get("xfrm").is_none());
    expect(&lab.ocf("stop", &[]), 0, "stop");
}

/// A conn vipsec generates from parameters, with a pre-shared key, negotiated by a real
/// client: its pluto establishes the IKE SA with the VIP's pluto (this kernel cannot
/// install the ESP SAs that would follow; the real-kernel lab carries traffic).
#[test]
fn generated_psk_conn_negotiates_ike_with_a_real_client() {
    const VIP: &str = "192.0.2.40";
    const KEY: &str = "vipsec-test-key-not-secret-0123456789";
    let lab = Lab::new(VIP);
    // The VIP's conn comes from vipsec, not from confdir.
    std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
    let client = Netns::new("vc");
    lab.ns.link_to(&client, "c0", "c1");
    lab.ns.ip(&format!("addr add {VIP}/24 dev c0"));
    client.ip("addr add 192.0.2.41/24 dev c1");
    let psk_file = lab.tmp.path().join("psk");
    std::fs::write(&psk_file, format!("{KEY}\n")).unwrap();
    let psk = psk_file.display().to_string();
    let logfile = lab.tmp.path().join("agent.log");
    let log = logfile.display().to_string();
    let params = [
        ("OCF_RESKEY_auth", "psk"),
        ("OCF_RESKEY_psk_file", psk.as_str()),
        ("OCF_RESKEY_peer_id", "@client.example.test"),
        ("HA_LOGFILE", log.as_str()),
        ("HA_debug", "1"),
    ];

    // A world-readable key file is refused before anything is written.
    std::fs::set_permissions(
        &psk_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let r = lab.ocf("start", &params);
    expect(&r, 6, "start with a world-readable psk_file");
    assert!(
        r.reasons()[0].starts_with("psk_file: ") && r.reasons()[0].contains("chmod 600"),
        "{}",
        r.stderr
    );
    assert!(files_under(&lab.run_dir).is_empty());
    std::fs::set_permissions(
        &psk_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    expect(&lab.ocf("start", &params), 0, "start with a generated conn");
    expect(&lab.ocf("monitor", &params), 0, "monitor");
    assert_vip_conns_run_no_updown(&lab.pluto);
    let conn = std::fs::read_to_string(lab.run_dir.join("vipsec-vip-tunnel.conf")).unwrap();
    // Each version's dialect: 5.x dropped dpdaction= and spells IKEv2-only keyexchange=.
    let dialect: &[&str] = if lab.pluto.major_version() >= 5 {
        &["\tkeyexchange=ikev2"]
    } else {
        &["\tdpdaction=clear", "\tikev2=insist"]
    };
    for line in [
        "\tleft=192.0.2.40",
        "\tright=%any",
        "\trightid=@client.example.test",
        "\tfailureshunt=drop",
    ]
    .iter()
    .chain(dialect)
    {
        assert!(
            conn.lines().any(|l| l == *line),
            "generated conn lacks {line:?}:\n{conn}"
        );
    }
    let secrets_path = lab.pluto.confdir.join("vipsec-vip-tunnel.secrets");
    let secrets = read_linked(&secrets_path, &lab.run_dir);
    let hex: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        secrets.contains(&format!("192.0.2.40 @client.example.test : PSK 0x{hex}")),
        "{secrets}"
    );
    use std::os::unix::fs::PermissionsExt;
    // The key itself is on the run directory (tmpfs in production: never on a disk, gone
    // after a reboot); confdir holds only a link pluto's include follows.
    let keys = lab.run_dir.join("vipsec-vip-tunnel.secrets");
    assert_eq!(
        std::fs::read_link(&secrets_path).unwrap(),
        std::path::Path::new("/run/vipsec/vipsec-vip-tunnel.secrets")
    );
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&keys).unwrap().contains(&hex));

    // The client: its own pluto, the same key, initiating toward the VIP.
    let ctmp = tempfile::tempdir().unwrap();
    let cpluto = Pluto::start(&client, ctmp.path());
    std::fs::write(
        cpluto.confdir.join("c.secrets"),
        format!("@client.example.test {VIP} : PSK 0x{hex}\n"),
    )
    .unwrap();
    cpluto.add_conn_file(
        "c.conf",
        &format!("conn c\n\tleft=192.0.2.41\n\tleftid=@client.example.test\n\tright={VIP}\n\trightid={VIP}\n\tauthby=secret\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tauto=ignore\n"),
    );
    cpluto.whack("--rereadsecrets");
    cpluto.add_and_initiate("c.conf", "c");
    let t0 = std::time::Instant::now();
    loop {
        let (c, a) = (
            cpluto.whack("--showstates"),
            lab.pluto.whack("--showstates"),
        );
        if c.contains("ESTABLISHED_IKE_SA") && a.contains("ESTABLISHED_IKE_SA") {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "no IKE SA between client and VIP:\nclient:\n{c}\nVIP:\n{a}\nVIP pluto log:\n{}",
            lab.pluto.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The key appears in no log and on no command line we ran.
    let agent_log = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        agent_log.contains("DEBUG: running"),
        "debug logging shows the commands run:\n{agent_log}"
    );
    assert!(
        !agent_log.contains(KEY) && !agent_log.contains(&hex),
        "{agent_log}"
    );
    assert!(!lab.pluto.log().contains(KEY));

    expect(&lab.ocf("stop", &params), 0, "stop");
    assert!(
        secrets_path.symlink_metadata().is_err() && !keys.exists(),
        "the key stays behind after stop"
    );

    assert!(!lab.run_dir.join("vipsec-vip-tunnel.conf").exists());
    assert!(!lab.pluto.whack("--status").contains("\"rw\":"));
    expect(&lab.ocf("monitor", &params), 7, "monitor after stop");
}

/// clients=: the node that starts the tunnel initiates toward its known clients from the
/// VIP, so they need not find it themselves after a failover; a known client that is down
/// costs the start nothing; stop takes their conns down too (the client is told).
#[test]
fn start_initiates_toward_the_known_clients() {
    const VIP: &str = "192.0.2.44";
    const KEY: &str = "vipsec-test-key-not-secret-known-clients";
    let lab = Lab::new(VIP);
    std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
    let client = lab.linked_client("vk", "192.0.2.45");
    let psk = lab.psk_file(KEY);
    // The client only listens (auto=add): whatever IKE SA it gets, the VIP's node began.
    let ctmp = tempfile::tempdir().unwrap();
    let cpluto = Pluto::start(&client, ctmp.path());
    let hex: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        cpluto.confdir.join("c.secrets"),
        format!("192.0.2.45 {VIP} : PSK 0x{hex}\n"),
    )
    .unwrap();
    cpluto.add_conn_file(
        "c.conf",
        &format!("conn c\n\tleft=192.0.2.45\n\tright={VIP}\n\tauthby=secret\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tauto=ignore\n"),
    );
    cpluto.whack("--rereadsecrets");
    cpluto.add_conn("c.conf", "c");

    // 192.0.2.46 is listed but nobody is there.
    let params = [
        ("OCF_RESKEY_auth", "psk"),
        ("OCF_RESKEY_psk_file", psk.as_str()),
        ("OCF_RESKEY_clients", "192.0.2.46 192.0.2.45"),
    ];
    let t0 = std::time::Instant::now();
    expect(&lab.ocf("start", &params), 0, "start with known clients");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "a known client that is down held the start up for {:?}",
        t0.elapsed()
    );
    let established = |p: &Pluto| p.whack("--showstates").contains("ESTABLISHED_IKE_SA");
    let t0 = std::time::Instant::now();
    while !(established(&cpluto) && established(&lab.pluto)) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "no IKE SA initiated toward the known client:\nclient:\n{}\nVIP pluto log:\n{}",
            cpluto.whack("--showstates"),
            lab.pluto.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = lab.pluto.log();
    // The VIP's end began it, and told the client to drop what it had with the VIP.
    assert!(
        log.contains("sending INITIAL_CONTACT"),
        "VIP pluto log:\n{log}"
    );
    assert!(
        log.contains("192.0.2.46"),
        "no attempt toward the client that is down:\n{log}"
    );
    expect(&lab.ocf("monitor", &params), 0, "monitor");
    assert_vip_conns_run_no_updown(&lab.pluto);
    let conn = std::fs::read_to_string(lab.run_dir.join("vipsec-vip-tunnel.conf")).unwrap();
    assert!(
        conn.contains("conn rw-to-192.0.2.45\n") && conn.contains("\tright=192.0.2.45\n"),
        "{conn}"
    );
    expect(&lab.ocf("stop", &params), 0, "stop");
    let status = lab.pluto.whack("--status");
    assert!(
        !status.contains("\"rw-to-192.0.2.4") && !status.contains("\"rw\""),
        "stop left the known clients' conns behind:\n{status}"
    );
    assert!(!cpluto.whack("--showstates").contains("ESTABLISHED_IKE_SA"));
}

/// peer_id=@NAME with DNSSEC: a client connecting from an address its name securely
/// resolves to keeps its IKE SA; one whose name resolves elsewhere is disconnected and the
/// monitor fails (the VIP tunnel's only peer).
#[test]
fn dnssec_checks_the_address_peers_connect_from() {
    const VIP: &str = "192.0.2.40";
    let lab = Lab::new(VIP);
    std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
    let named = common::named::Named::start_in(Some(&lab.ns));
    let client = lab.linked_client("vd", "192.0.2.41");
    const KEY: &str = "dnssec-test-key-not-secret-0123456789";
    let key_hex: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
    let (psk, resolver, anchor) = (
        lab.psk_file(KEY),
        format!("127.0.0.1:{}", named.port),
        named.anchor.display().to_string(),
    );
    let ctmp = tempfile::tempdir().unwrap();
    let cpluto = Pluto::start(&client, ctmp.path());
    let connect = |id: &str| {
        std::fs::write(
            cpluto.confdir.join("c.secrets"),
            format!("@{id} {VIP} : PSK 0x{key_hex}\n"),
        )
        .unwrap();
        cpluto.add_conn_file(
            "c.conf",
            &format!("conn c\n\tleft=192.0.2.41\n\tleftid=@{id}\n\tright={VIP}\n\trightid={VIP}\n\tauthby=secret\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tauto=ignore\n"),
        );
        cpluto.whack("--rereadsecrets");
        let _ = sh(&format!(
            "{} ipsec whack --ctlsocket {} --name c --delete",
            client.exec_prefix(),
            cpluto.ctlsocket.display()
        ));
        cpluto.add_and_initiate("c.conf", "c");
        let t0 = std::time::Instant::now();
        while !lab
            .pluto
            .whack("--showstates")
            .contains("ESTABLISHED_IKE_SA")
        {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "no IKE SA:\n{}",
                lab.pluto.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let params = |id: &'static str| {
        vec![
            ("OCF_RESKEY_auth", "psk".to_string()),
            ("OCF_RESKEY_psk_file", psk.clone()),
            ("OCF_RESKEY_peer_id", format!("@{id}")),
            ("OCF_RESKEY_resolver", resolver.clone()),
            ("OCF_RESKEY_dnssec_anchor", anchor.clone()),
        ]
    };
    let as_ref = |v: &Vec<(&'static str, String)>| {
        v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
    };

    // The real client: its name securely resolves to the address it connects from.
    let good = as_ref(&params("client.example.test"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    expect(&lab.ocf("start", &good), 0, "start");
    connect("client.example.test");
    expect(
        &lab.ocf("monitor", &good),
        0,
        "monitor with the validated client",
    );
    assert!(
        lab.pluto
            .whack("--showstates")
            .contains("ESTABLISHED_IKE_SA"),
        "the validated client was disconnected"
    );
    // DNS goes away (nothing answers on the resolver's port): the client that validated
    // stays, and the monitor says degraded, not failed — dropping port 53 traffic must
    // not take the VIP down on every node.
    let outage: Vec<(&str, &str)> = good
        .iter()
        .map(|(k, v)| match *k {
            "OCF_RESKEY_resolver" => (*k, "127.0.0.1:9"),
            _ => (*k, *v),
        })
        .collect();
    let r = lab.ocf("monitor", &outage);
    expect(
        &r,
        190,
        "monitor during a DNS outage, client validated before",
    );
    assert!(
        r.reasons()[0].contains("kept: it validated before"),
        "{r:?}"
    );
    assert!(
        lab.pluto
            .whack("--showstates")
            .contains("ESTABLISHED_IKE_SA"),
        "the validated client was disconnected by a DNS outage"
    );
    expect(&lab.ocf("monitor", &good), 0, "monitor once DNS is back");
    expect(&lab.ocf("stop", &good), 0, "stop");
    // A client never validated is not let in while DNS is down (fail closed), but the
    // resource is degraded, not failed.
    expect(&lab.ocf("start", &good), 0, "start");
    connect("client.example.test");
    let r = lab.ocf("monitor", &outage);
    expect(&r, 190, "monitor during a DNS outage, new client");
    assert!(
        r.reasons()[0].contains("was deleted until DNS answers"),
        "{r:?}"
    );
    expect(&lab.ocf("stop", &good), 0, "stop");

    // A client presenting a name that securely resolves elsewhere: disconnected, failed.
    let bad = as_ref(&params("impostor.example.test"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    expect(&lab.ocf("start", &bad), 0, "start");
    connect("impostor.example.test");
    let r = lab.ocf("monitor", &bad);
    expect(&r, 1, "monitor with an impostor connected");
    assert!(
        r.reasons()[0].contains("peer 192.0.2.41 presented @impostor.example.test, but impostor.example.test securely resolves to 192.0.2.99, not to 192.0.2.41; its IKE SA #"),
        "{r:?}"
    );
    // That IKE SA is gone (the client's pluto may well try again: the next monitor
    // disconnects it again).
    let serial = r.reasons()[0]
        .split("its IKE SA #")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    let states = lab.pluto.whack("--showstates");
    assert!(
        !states.contains(&format!("#{serial}: ")),
        "the impostor keeps IKE SA #{serial}:\n{states}"
    );
    expect(&lab.ocf("stop", &bad), 0, "stop");
}

/// A VIP whose peers must present @client.example.test, with named (the signed zones) in
/// its namespace, and a client at 192.0.2.41 that connects presenting that name.
/// (Fields drop in order: the client's pluto before its namespace, named before the lab.)
struct DnsVip {
    cpluto: Pluto,
    _ctmp: tempfile::TempDir,
    client: Netns,
    named: common::named::Named,
    lab: Lab,
    psk: String,
}

impl DnsVip {
    const VIP: &'static str = "192.0.2.40";
    const KEY: &'static str = "dnssec-rekey-key-not-secret-0123456789";

    fn new() -> DnsVip {
        let lab = Lab::new(Self::VIP);
        std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
        let named = common::named::Named::start_in(Some(&lab.ns));
        let client = lab.linked_client("vk", "192.0.2.41");
        let ctmp = tempfile::tempdir().unwrap();
        let cpluto = Pluto::start(&client, ctmp.path());
        let hex: String = Self::KEY.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            cpluto.confdir.join("c.secrets"),
            format!("@client.example.test {} : PSK 0x{hex}\n", Self::VIP),
        )
        .unwrap();
        cpluto.add_conn_file(
            "c.conf",
            &format!("conn c\n\tleft=192.0.2.41\n\tleftid=@client.example.test\n\tright={vip}\n\trightid={vip}\n\tauthby=secret\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tauto=ignore\n", vip = Self::VIP),
        );
        cpluto.whack("--rereadsecrets");
        let psk = lab.psk_file(Self::KEY);
        DnsVip {
            cpluto,
            _ctmp: ctmp,
            client,
            named,
            lab,
            psk,
        }
    }

    /// The resource's parameters, asking DNS at `resolver`.
    fn params(&self, resolver: &str) -> Vec<(&'static str, String)> {
        vec![
            ("OCF_RESKEY_auth", "psk".into()),
            ("OCF_RESKEY_psk_file", self.psk.clone()),
            ("OCF_RESKEY_peer_id", "@client.example.test".into()),
            ("OCF_RESKEY_resolver", resolver.into()),
            (
                "OCF_RESKEY_dnssec_anchor",
                self.named.anchor.display().to_string(),
            ),
        ]
    }

    fn ocf(&self, action: &str, resolver: &str) -> Run {
        let p = self.params(resolver);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.lab.ocf(action, &p)
    }

    fn real_dns(&self) -> String {
        format!("127.0.0.1:{}", self.named.port)
    }

    /// The VIP's established IKE SAs, by serial.
    fn ike_serials(&self) -> Vec<String> {
        self.lab
            .pluto
            .whack("--showstates")
            .lines()
            .filter(|l| l.contains("ESTABLISHED_IKE_SA"))
            .filter_map(|l| l.split(':').next())
            .map(|s| s.trim().trim_start_matches('#').to_string())
            .collect()
    }

    /// The client (re)connects; returns once the VIP has an IKE SA with it.
    fn connect(&self) {
        let _ = sh(&format!(
            "{} ipsec whack --ctlsocket {} --name c --delete",
            self.client.exec_prefix(),
            self.cpluto.ctlsocket.display()
        ));
        self.cpluto.add_and_initiate("c.conf", "c");
        self.wait_for(|serials| !serials.is_empty(), "an IKE SA with the client");
    }

    fn wait_for(&self, done: impl Fn(&[String]) -> bool, what: &str) -> Vec<String> {
        let t0 = std::time::Instant::now();
        loop {
            let serials = self.ike_serials();
            if done(&serials) {
                return serials;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "no {what}:\n{}",
                self.lab.pluto.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// An on-path resolver strips the signatures from the answers for the client's name (it
/// can damage answers, not forge them): that is "cannot tell", not "no". The client that
/// validated before stays (190, with the reason, its IKE SA kept): whoever sits between
/// the nodes and their resolver cannot take the VIP down on every node. A client that
/// never validated is not let in while DNS cannot tell (its IKE SA deleted), and the
/// resource is degraded, not failed.
#[test]
fn dnssec_stripped_signatures_keep_a_validated_client_and_refuse_a_new_one() {
    use common::named::{Forgery, HostileResolver};
    let v = DnsVip::new();
    let hostile = HostileResolver::start_in(
        Some(&v.lab.ns),
        v.named.port,
        vec![Forgery::StripSignatures("client.example.test")],
    );
    let stripping = format!("127.0.0.1:{}", hostile.port);
    expect(&v.ocf("start", &v.real_dns()), 0, "start");
    v.connect();
    expect(
        &v.ocf("monitor", &v.real_dns()),
        0,
        "monitor, client validated",
    );
    let before = v.ike_serials();
    let r = v.ocf("monitor", &stripping);
    expect(
        &r,
        190,
        "monitor through the stripping resolver, client validated before",
    );
    assert!(
        r.reasons()[0].contains("kept: it validated before")
            && r.reasons()[0].contains("the answer is bogus"),
        "{r:?}"
    );
    assert_eq!(
        v.ike_serials(),
        before,
        "the validated client was disconnected by stripped signatures"
    );
    expect(
        &v.ocf("monitor", &v.real_dns()),
        0,
        "monitor with the real answers again",
    );
    expect(&v.ocf("stop", &v.real_dns()), 0, "stop");

    // After a stop nothing is remembered: the same client is new, and not let in.
    expect(&v.ocf("start", &v.real_dns()), 0, "start");
    v.connect();
    let serials = v.ike_serials();
    let r = v.ocf("monitor", &stripping);
    expect(
        &r,
        190,
        "monitor through the stripping resolver, new client",
    );
    assert!(
        r.reasons()[0].contains("was deleted until DNS answers"),
        "{r:?}"
    );
    let states = v.lab.pluto.whack("--showstates");
    for s in &serials {
        assert!(
            !states.contains(&format!("#{s}: ")),
            "the new client keeps IKE SA #{s} though nothing validated it:\n{states}"
        );
    }
    expect(&v.ocf("stop", &v.real_dns()), 0, "stop");
}

/// A DNS outage across an IKE rekey: the validated client is remembered by what it is
/// (identity, name, address), not by the IKE SA that carried it, so the rekeyed SA (a new
/// serial) is kept, degraded, not deleted as a never-validated peer.
#[test]
fn dnssec_outage_across_an_ike_rekey_keeps_the_validated_client() {
    let v = DnsVip::new();
    // Nothing answers there.
    let silent = "127.0.0.1:9";
    expect(&v.ocf("start", &v.real_dns()), 0, "start");
    v.connect();
    expect(
        &v.ocf("monitor", &v.real_dns()),
        0,
        "monitor, client validated",
    );
    let before = v.ike_serials();
    expect(
        &v.ocf("monitor", silent),
        190,
        "monitor, DNS down, before the rekey",
    );
    // pluto 5.2 may report an exchange still in flight on the old SA (an expectation
    // failure, non-zero exit) while rekeying it anyway: what counts is the new serial at
    // the VIP, waited for below.
    let rekey = sh(&format!(
        "{} ipsec whack --ctlsocket {} --rekey-ike --name c",
        v.client.exec_prefix(),
        v.cpluto.ctlsocket.display()
    ));
    println!("rekey: {}", String::from_utf8_lossy(&rekey.stdout));
    let after = v.wait_for(
        |serials| !serials.is_empty() && serials.iter().all(|s| !before.contains(s)),
        "rekeyed IKE SA",
    );
    let r = v.ocf("monitor", silent);
    expect(&r, 190, "monitor, DNS down, after the rekey");
    assert!(
        r.reasons()[0].contains("kept: it validated before"),
        "{r:?}"
    );
    assert_eq!(
        v.ike_serials(),
        after,
        "the rekeyed SA of the validated client was deleted during the outage (before: {before:?})"
    );
    expect(
        &v.ocf("monitor", &v.real_dns()),
        0,
        "monitor once DNS is back",
    );
    expect(&v.ocf("stop", &v.real_dns()), 0, "stop");
}

/// The known clients' SAs are judged as the tunnel's are: a known client that presents a
/// name which securely resolves elsewhere is disconnected and the monitor fails, one whose
/// name resolves to its address keeps its SA. (libreswan 4.x reports a plain conn's SAs
/// without the peer's address; the VIP initiated these, so nobody else would notice.)
#[test]
fn dnssec_judges_the_known_clients_too() {
    const VIP: &str = "192.0.2.40";
    const KEY: &str = "known-client-dnssec-key-not-secret";
    let lab = Lab::new(VIP);
    std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
    let named = common::named::Named::start_in(Some(&lab.ns));
    let client = lab.linked_client("vj", "192.0.2.41");
    let (psk, resolver, anchor) = (
        lab.psk_file(KEY),
        format!("127.0.0.1:{}", named.port),
        named.anchor.display().to_string(),
    );
    let hex: String = KEY.bytes().map(|b| format!("{b:02x}")).collect();
    let ctmp = tempfile::tempdir().unwrap();
    let cpluto = Pluto::start(&client, ctmp.path());
    let ike_sa = |p: &Pluto| p.whack("--showstates").contains("ESTABLISHED_IKE_SA");

    for (name, verdict) in [("impostor.example.test", 1), ("client.example.test", 0)] {
        // The client only listens, presenting `name`: whatever SA it has, the VIP began.
        std::fs::write(
            cpluto.confdir.join("c.secrets"),
            format!("@{name} {VIP} : PSK 0x{hex}\n"),
        )
        .unwrap();
        cpluto.add_conn_file(
            "c.conf",
            &format!("conn c\n\tleft=192.0.2.41\n\tleftid=@{name}\n\tright={VIP}\n\trightid={VIP}\n\tauthby=secret\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tauto=ignore\n"),
        );
        cpluto.whack("--rereadsecrets");
        cpluto.add_conn("c.conf", "c");
        let id = format!("@{name}");
        let params = [
            ("OCF_RESKEY_auth", "psk"),
            ("OCF_RESKEY_psk_file", psk.as_str()),
            ("OCF_RESKEY_peer_id", id.as_str()),
            ("OCF_RESKEY_clients", "192.0.2.41"),
            ("OCF_RESKEY_resolver", resolver.as_str()),
            ("OCF_RESKEY_dnssec_anchor", anchor.as_str()),
        ];
        expect(&lab.ocf("start", &params), 0, "start");
        let t0 = std::time::Instant::now();
        while !(ike_sa(&cpluto) && ike_sa(&lab.pluto)) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "no IKE SA with the known client presenting {name}:\n{}",
                lab.pluto.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let r = lab.ocf("monitor", &params);
        expect(
            &r,
            verdict,
            &format!("monitor, the known client presenting {name}"),
        );
        if verdict == 0 {
            assert!(
                ike_sa(&lab.pluto),
                "the validated known client was disconnected"
            );
        } else {
            assert!(
                r.reasons()[0].contains(&format!("peer 192.0.2.41 presented @{name}, but {name} securely resolves to 192.0.2.99, not to 192.0.2.41")),
                "{r:?}"
            );
            let states = lab.pluto.whack("--showstates");
            assert!(
                !states.contains("ESTABLISHED_IKE_SA"),
                "the impostor keeps its IKE SA:\n{states}"
            );
        }
        expect(&lab.ocf("stop", &params), 0, "stop");
    }
}

/// auth=cert: the generated conn signs with the key type of this node's certificate
/// (libreswan 4 signs with RSA unless told, and an ECDSA certificate then fails every
/// IKE_AUTH), and a certificate missing from pluto's NSS database is refused at start
/// with OCF_ERR_INSTALLED, naming the parameter.
#[test]
fn generated_cert_conn_authenticates_with_an_ecdsa_certificate() {
    const VIP: &str = "192.0.2.50";
    let lab = Lab::new(VIP);
    std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
    let client = Netns::new("ve");
    lab.ns.link_to(&client, "c0", "c1");
    lab.ns.ip(&format!("addr add {VIP}/24 dev c0"));
    client.ip("addr add 192.0.2.51/24 dev c1");
    let params = [
        ("OCF_RESKEY_auth", "cert"),
        ("OCF_RESKEY_cert", "vip cert"),
        ("OCF_RESKEY_dnssec", "off"),
    ];

    let r = lab.ocf("start", &params);
    expect(&r, 5, "start with a certificate pluto does not have");
    assert!(
        r.reasons()[0].starts_with("cert: certificate \"vip cert\" is not in pluto's NSS database"),
        "{}",
        r.stderr
    );
    expect(&lab.ocf("stop", &params), 0, "stop after the failed start");

    let ca = TestCa::new("ec");
    lab.pluto.import_cert(&ca, "vip cert", "vip.example.test");
    expect(
        &lab.ocf("start", &params),
        0,
        "start with an ECDSA certificate",
    );
    let conn = std::fs::read_to_string(lab.run_dir.join("vipsec-vip-tunnel.conf")).unwrap();
    for line in [
        "\tleftcert=\"vip cert\"",
        "\tleftauth=ecdsa",
        "\trightid=%fromcert",
    ] {
        assert!(
            conn.lines().any(|l| l == line),
            "generated conn lacks {line:?}:\n{conn}"
        );
    }

    // A real client with its own ECDSA certificate from the same CA.
    let ctmp = tempfile::tempdir().unwrap();
    let cpluto = Pluto::start(&client, ctmp.path());
    cpluto.import_cert(&ca, "client", "client.example.test");
    cpluto.add_conn_file(
        "c.conf",
        &format!("conn c\n\tleft=192.0.2.51\n\tleftcert=client\n\tleftid=%fromcert\n\tleftauth=ecdsa\n\tright={VIP}\n\trightid=%fromcert\n\trightauth=ecdsa\n\tikev2=insist\n\ttype=transport\n\tike=aes_gcm256-sha2_256-dh19\n\tesp=aes_gcm256\n\tauto=ignore\n"),
    );
    cpluto.add_and_initiate("c.conf", "c");
    // This kernel has no ESP, so the Child SA (and with it the IKE SA) fails right after;
    // the IKE SA's authentication, both ways, is what is asserted.
    let t0 = std::time::Instant::now();
    loop {
        let log = lab.pluto.log();
        assert!(
            !log.contains("sign function failed"),
            "the VIP's pluto could not sign with its certificate:\n{log}"
        );
        if log.contains("responder established IKE SA")
            && log.contains("CN=client.example.test")
            && cpluto.log().contains("initiator established IKE SA")
        {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "no certificate-authenticated IKE SA between client and VIP:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    expect(&lab.ocf("stop", &params), 0, "stop");
}

/// A fallback toward the VIP itself (this node's own tunnel to the VIP's next home)
/// cannot be oriented while the VIP is still here, as it is when Pacemaker stops the
/// tunnel: stop leaves a waiter that initiates it once the VIP has gone, and a start in
/// between ends the waiter and takes the fallback down.
#[test]
fn fallback_toward_the_vip_comes_up_once_the_vip_has_left() {
    const VIP: &str = "203.0.113.20";
    let lab = Lab::new(VIP);
    // The node's own address stays when the VIP (the subnet's first address) goes.
    must(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.conf.v0.promote_secondaries=1",
        lab.ns.name
    ));
    lab.add_vip();
    lab.ns.ip("addr add 203.0.113.21/24 dev v0");
    lab.pluto.add_conn_file(
        "back.conf",
        &format!("conn back\n\tleft=203.0.113.21\n\tright={VIP}\n\tauthby=secret\n\tikev2=yes\n\tauto=ignore\n"),
    );
    lab.pluto
        .add_conn_file("rw.conf", &Lab::road_warrior_conn("rw", VIP));
    let fb = [("OCF_RESKEY_fallbacktunnel", "back")];
    let waiter = lab.state_dir.join("vipsec-vip-tunnel.fallback-waiter");
    let wait_until = |what: &str, ok: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !ok() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(15),
                "timed out waiting for {what}\npluto log:\n{}",
                lab.pluto.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };

    expect(&lab.ocf("start", &fb), 0, "start");
    let t0 = std::time::Instant::now();
    expect(&lab.ocf("stop", &fb), 0, "stop with the VIP still here");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "stop waited for the VIP to leave"
    );
    wait_until("the waiter to record itself", &|| waiter.exists());
    assert!(
        !lab.pluto.whack("--showstates").contains("\"back\""),
        "the fallback was initiated toward a local address"
    );

    // The VIP comes back to this node before leaving: start ends the waiter and the
    // fallback.
    expect(&lab.ocf("start", &fb), 0, "start again");
    assert!(!waiter.exists(), "start left the waiter");
    assert!(
        !lab.pluto.whack("--status").contains("\"back\":"),
        "start left the fallback loaded"
    );

    // Stop, then the VIP leaves (Pacemaker's order): the fallback is initiated.
    expect(&lab.ocf("stop", &fb), 0, "stop");
    wait_until("the waiter to record itself", &|| waiter.exists());
    lab.del_vip();
    wait_until("the fallback to be initiated", &|| {
        lab.pluto.whack("--showstates").contains("\"back\"")
    });
    wait_until("the waiter to finish", &|| !waiter.exists());
    assert!(
        lab.pluto.oriented("back"),
        "{}",
        lab.pluto.whack("--status")
    );
    expect(&lab.ocf("monitor", &fb), 7, "monitor after stop");
}

/// A local user cannot make a dead pluto look alive. /proc/net/unix prints socket paths
/// raw: `nobody` binds a socket whose path holds a newline and a line naming pluto's
/// control socket (and an inode), and others at lookalike paths. The agent must still see
/// that pluto is not running: a stop that believed it would fail (whack: "Pluto is not
/// running") and the node would be fenced.
#[test]
fn a_local_user_cannot_forge_a_running_pluto() {
    let mut lab = Lab::new("198.51.100.32");
    lab.add_vip();
    expect(&lab.ocf("start", &[]), 0, "start");
    lab.pluto.kill();

    let home = tempfile::Builder::new()
        .prefix("vipsec-nobody")
        .tempdir_in("/tmp")
        .unwrap();
    must(&format!("chown nobody: {}", home.path().display()));
    let ctl = lab.pluto.ctlsocket.display().to_string();
    let forged = format!("x\n0: 00000002 00000000 00010000 0001 01 7 {ctl}");
    let lookalikes = [
        format!("{}/pluto.ctl", home.path().display()),
        format!("{}{ctl}", home.path().display()),
    ];
    let _attackers = KilledOnDrop(
        std::iter::once(forged.as_str())
            .chain(lookalikes.iter().map(String::as_str))
            .map(|path| {
                // The host's tools (a test root need not carry nc): /tmp is the same there.
                lab.ns
                    .host_cmd("setpriv")
                    .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                    .args([
                        "sh",
                        "-c",
                        "cd \"$1\" && mkdir -p \"$(dirname \"$2\")\" && exec nc -lU \"$2\"",
                    ])
                    .arg("sh")
                    .arg(home.path())
                    .arg(path)
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let t0 = std::time::Instant::now();
    loop {
        let t = must(&format!("{} cat /proc/net/unix", lab.ns.exec_prefix()));
        if t.contains(&format!(
            "\n0: 00000002 00000000 00010000 0001 01 7 {ctl}\n"
        )) && lookalikes.iter().all(|l| t.contains(l.as_str()))
        {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "nobody's sockets: {t}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let r = lab.ocf("monitor", &[]);
    expect(&r, 1, "monitor with pluto dead and forged sockets");
    assert!(
        r.reasons()[0].contains("pluto is not running"),
        "{}",
        r.stderr
    );
    expect(
        &lab.ocf("stop", &[]),
        0,
        "stop with pluto dead and forged sockets",
    );
    expect(&lab.ocf("monitor", &[]), 7, "monitor after stop");
}

/// Processes killed when the test ends, failed or not (they would hold its output open).
struct KilledOnDrop(Vec<std::process::Child>);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What stop does depends on its parameters and recorded state only: variables a
/// resource manager or a shell may carry (ocf-tester's "binaries missing" switch, the old
/// waiter marker, the old run directory override) do not turn it into a no-op that
/// reports success, nor hide the known clients' conns from it.
#[test]
fn no_environment_variable_turns_stop_into_a_no_op() {
    let lab = Lab::new("198.51.100.30");
    lab.add_vip();
    // A directory of the attacker's, with a conn file of vipsec's shape naming none of
    // the conns (what the agent read as its run directory when VIPSEC_RUN_DIR was set).
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("vipsec-vip-tunnel.conf"),
        "conn decoy\n\tleft=198.51.100.30\n\tright=%any\n",
    )
    .unwrap();
    let elsewhere = elsewhere.path().display().to_string();
    let vars = [
        ("OCF_TESTER_FAIL_HAVE_BINARY", "1"),
        ("VIPSEC_FALLBACK_WAITER", "1"),
        ("VIPSEC_RUN_DIR", elsewhere.as_str()),
    ];
    for (var, value) in vars {
        expect(&lab.ocf("start", &[]), 0, "start");
        assert!(lab.pluto.oriented("rw"));
        expect(&lab.ocf("stop", &[(var, value)]), 0, var);
        assert!(
            !lab.pluto.whack("--status").contains("\"rw\":"),
            "stop with {var} left the conn loaded"
        );
        expect(&lab.ocf("monitor", &[]), 7, "monitor after that stop");
    }

    // The generated conns, one per known client (192.0.2.47: nobody there): all of them
    // go, with every variable set at once.
    std::fs::remove_file(lab.pluto.confdir.join("rw.conf")).unwrap();
    let psk = lab.psk_file("vipsec-test-key-not-secret-stop-scope");
    let params = [
        ("OCF_RESKEY_auth", "psk"),
        ("OCF_RESKEY_psk_file", psk.as_str()),
        ("OCF_RESKEY_clients", "192.0.2.47"),
    ];
    expect(&lab.ocf("start", &params), 0, "start with a known client");
    assert!(lab.pluto.whack("--status").contains("\"rw-to-192.0.2.47\""));
    let stop_env: Vec<_> = params.iter().chain(&vars).copied().collect();
    expect(&lab.ocf("stop", &stop_env), 0, "stop with every variable");
    let status = lab.pluto.whack("--status");
    assert!(
        !status.contains("\"rw-to-192.0.2.47\"") && !status.contains("\"rw\""),
        "stop left the known client's conn behind:\n{status}"
    );
    expect(&lab.ocf("monitor", &params), 7, "monitor after that stop");
}

/// The agent holds keys: no core dump of it may reach the disk, whatever the caller's
/// limits (a release build aborts on a panic). Seen from outside, while it waits.
#[test]
fn the_agent_runs_without_core_dumps() {
    let lab = Lab::new("198.51.100.31");
    std::fs::create_dir_all(&lab.state_dir).unwrap();
    let lock = lab.state_dir.join("vipsec-vip-tunnel.lock");
    // Something holds the instance lock: the monitor waits for it, long enough to look.
    let mut holder = std::process::Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut env = lab.env(&[("OCF_RESKEY_CRM_meta_timeout", "2000")]);
    env.insert("HA_RSCTMP".into(), lab.state_dir.display().to_string());
    let mut agent = ocf_command(&lab.agent.path, "monitor", None, &env)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.id())).unwrap();
    let _ = agent.wait();
    let _ = holder.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(core, ["0", "0"], "{limits}");
    // A timeout beyond what the clock can hold is no reason to crash either.
    let r = lab.ocf(
        "monitor",
        &[("OCF_RESKEY_CRM_meta_timeout", "18446744073709551615s")],
    );
    expect(&r, 7, "monitor with an enormous timeout");
}

/// pluto runs no updown script for the VIP's generated conns: it has nothing to do for
/// them and would hold every other client's exchange while it runs.
fn assert_vip_conns_run_no_updown(pluto: &Pluto) {
    let status = pluto.whack("--status");
    let updowns: Vec<&str> = status
        .lines()
        .filter(|l| l.contains("\"rw") && l.contains("updown="))
        .collect();
    assert!(
        !updowns.is_empty() && updowns.iter().all(|l| !l.contains("ipsec _updown")),
        "{updowns:#?}"
    );
}
