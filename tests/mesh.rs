//! ocf:vipsec:mesh on three "nodes" (namespaces on one bridge), each with its own pluto:
//! every pair's conns and kernel policies, require/use/disable, idempotency, reload that
//! leaves unchanged peers alone, and ocf-tester.

mod common;
use common::probe::{probe, Listener};
use common::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

const NODES: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];

struct Node {
    ns: Netns,
    pluto: Pluto,
    state_dir: PathBuf,
    run_dir: PathBuf,
    addr: &'static str,
}

struct MeshLab {
    nodes: Vec<Node>,
    _switch: Netns,
    tmp: tempfile::TempDir,
    agent: OcfAgent,
    secret: PathBuf,
}

impl MeshLab {
    /// `extra`: additional addresses per node (to grow the mesh in a reload test).
    fn new(count: usize) -> MeshLab {
        let switch = Netns::new("msw");
        must(&format!(
            "ip -n {} link add br0 type bridge && ip -n {} link set br0 up",
            switch.name, switch.name
        ));
        let tmp = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for (i, addr) in NODES.iter().take(count).enumerate() {
            let ns = Netns::new("mn");
            ns.link_to(&switch, "eth0", &format!("p{i}"));
            must(&format!("ip -n {} link set p{i} master br0", switch.name));
            ns.ip(&format!("addr add {addr}/24 dev eth0"));
            let dir = tmp.path().join(format!("n{i}"));
            let pluto = Pluto::start(&ns, &dir.join("pluto"));
            nodes.push(Node {
                ns,
                run_dir: pluto.run_dir.clone().unwrap_or_default(),
                pluto,
                state_dir: dir.join("state"),
                addr,
            });
        }
        let secret = tmp.path().join("master.key");
        std::fs::write(
            &secret,
            "mesh master secret for tests only 0123456789abcdef\n",
        )
        .unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        MeshLab {
            nodes,
            _switch: switch,
            tmp,
            agent: OcfAgent::named("mesh"),
            secret,
        }
    }

    fn env(&self, n: &Node, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env = env_of(&[
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RESOURCE_INSTANCE", "mesh"),
            ("OCF_RESKEY_CRM_meta_timeout", "60000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2 192.0.2.3"),
        ]);
        env.insert(
            "OCF_RESKEY_secret_file".into(),
            self.secret.display().to_string(),
        );
        env.insert(
            "OCF_RESKEY_confdir".into(),
            n.pluto.confdir.display().to_string(),
        );
        env.insert(
            "OCF_RESKEY_ctlsocket".into(),
            n.pluto.ctlsocket.display().to_string(),
        );
        env.insert("HA_RSCTMP".into(), n.state_dir.display().to_string());
        env.insert(RUN_DIR.into(), n.run_dir.display().to_string());
        for (k, v) in extra {
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert(k.to_string(), v.to_string());
            }
        }
        env
    }

    fn ocf(&self, i: usize, action: &str, extra: &[(&str, &str)]) -> Run {
        let n = &self.nodes[i];
        Run::from(
            ocf_command(&self.agent.path, action, Some(&n.ns), &self.env(n, extra))
                .output()
                .unwrap(),
        )
    }

    fn all(&self, action: &str, extra: &[(&str, &str)], code: i32) {
        for i in 0..self.nodes.len() {
            let r = self.ocf(i, action, extra);
            assert_eq!(r.code, code, "node {i} {action}: {r:?}");
        }
    }
}

/// (dir, src, dst, proto, action, priority) of the kernel's policies, sockets left out.
fn policies(ns: &Netns) -> Vec<String> {
    must(&format!("ip -n {} xfrm policy", ns.name))
        .split("\nsrc ")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.contains(" socket "))
        .collect()
}

fn has(policies: &[String], needle: &[&str]) -> bool {
    policies
        .iter()
        .any(|p| needle.iter().all(|n| p.contains(n)))
}

#[test]
fn require_mesh_policies_monitor_and_teardown() {
    let lab = MeshLab::new(3);
    lab.all("monitor", &[("OCF_RESKEY_CRM_meta_interval", "")], 7);
    lab.all("validate-all", &[("OCF_RESKEY_policy", "require")], 0);
    lab.all("start", &[("OCF_RESKEY_policy", "require")], 0);
    lab.all("start", &[("OCF_RESKEY_policy", "require")], 0); // idempotent
                                                              // The inbound guard: clear text to the node's mesh address is blocked last of all,
                                                              // the peers (until their SA) and SSH are allowed ahead of it.
    for n in &lab.nodes {
        let pol = policies(&n.ns);
        let to_me = format!("dst {}/32", n.addr);
        assert!(
            has(
                &pol,
                &[
                    "0.0.0.0/0",
                    &to_me,
                    "dir in action block priority 2147418112"
                ]
            ),
            "no guard on {}: {pol:#?}",
            n.addr
        );
        for peer in NODES.iter().filter(|p| **p != n.addr) {
            assert!(
                has(
                    &pol,
                    &[&format!("{peer}/32 {to_me}"), "dir in priority 2147418111"]
                ),
                "{peer} not allowed ahead of the guard on {}: {pol:#?}",
                n.addr
            );
        }
    }
    // A guard lost from the kernel is a failure: clear text would be accepted.
    lab.nodes[1]
        .ns
        .ip("xfrm policy delete src 0.0.0.0/0 dst 192.0.2.2/32 dir in");
    let r = lab.ocf(1, "monitor", &[("OCF_RESKEY_policy", "require")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.reasons()[0].contains("inbound guard of 192.0.2.2 is missing"),
        "{r:?}"
    );
    // A second start (as after a failed monitor, the same pluto) puts it back.
    assert_eq!(
        lab.ocf(1, "start", &[("OCF_RESKEY_policy", "require")])
            .code,
        0
    );
    assert!(has(
        &policies(&lab.nodes[1].ns),
        &["dst 192.0.2.2/32", "dir in action block"]
    ));
    for (i, n) in lab.nodes.iter().enumerate() {
        let status = n.pluto.whack("--status");
        for peer in NODES.iter().filter(|p| **p != n.addr) {
            assert!(
                status.contains(&format!("\"vm-{peer}\":")),
                "node {i}: conn to {peer} not loaded"
            );
            assert!(
                !status.contains(&format!("\"vm-{}\":", n.addr)),
                "node {i} has a conn to itself"
            );
        }
        let pol = policies(&n.ns);
        for peer in NODES.iter().filter(|p| **p != n.addr) {
            // The peer's own conn: an out policy requiring ESP in transport mode.
            assert!(
                has(
                    &pol,
                    &[
                        &format!("{}/32 dst {peer}/32 dir out", n.addr),
                        "proto esp",
                        "mode transport"
                    ]
                ),
                "node {i}: no ESP out policy to {peer}:\n{pol:#?}"
            );
        }
        // require: negotiation holds packets and a failed negotiation drops them.
        let conf = std::fs::read_to_string(n.run_dir.join("vipsec-mesh.conf")).unwrap();
        assert!(
            conf.contains("\tfailureshunt=drop\n\tnegotiationshunt=hold\n"),
            "{conf}"
        );
        // SSH and ICMP stay outside the policy, before everything else: this node's own
        // SSH is vipsec's (priority 99), sshd's the IKE daemon's pass conn (100).
        assert!(
            has(
                &pol,
                &[&format!(
                    "{}/32 dst 0.0.0.0/0 proto tcp dport 22 dir out priority 99",
                    n.addr
                )]
            ),
            "{pol:#?}"
        );
        assert!(
            has(
                &pol,
                &[&format!(
                    "{}/32 dst 0.0.0.0/0 proto tcp sport 22 dir out priority 100",
                    n.addr
                )]
            ),
            "{pol:#?}"
        );
        assert!(
            has(
                &pol,
                &[&format!(
                    "{}/32 dst 0.0.0.0/0 proto icmp dir out priority 100",
                    n.addr
                )]
            ),
            "{pol:#?}"
        );
        // The pair keys: 0600, one line per peer, and the same key at both ends.
        let secrets = read_linked(&n.pluto.confdir.join("vipsec-mesh.secrets"), &n.run_dir);
        assert_eq!(
            secrets.lines().filter(|l| l.contains(": PSK 0x")).count(),
            2,
            "{secrets}"
        );
    }
    let key_of = |i: usize, a: &str, b: &str| -> String {
        read_linked(
            &lab.nodes[i].pluto.confdir.join("vipsec-mesh.secrets"),
            &lab.nodes[i].run_dir,
        )
        .lines()
        .find(|l| l.starts_with(&format!("{a} {b} ")))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .unwrap()
    };
    assert_eq!(
        key_of(0, "192.0.2.1", "192.0.2.2"),
        key_of(1, "192.0.2.2", "192.0.2.1"),
        "both ends derive the same key"
    );
    assert_ne!(
        key_of(0, "192.0.2.1", "192.0.2.2"),
        key_of(0, "192.0.2.1", "192.0.2.3"),
        "pairs never share a key"
    );

    // The derived keys really agree: every pair's pluto authenticates the IKE SA (the Child
    // SA cannot be installed by this kernel, which has no ESP), so monitor is degraded,
    // naming the peers without SA — a peer being down is not this node's failure.
    // A first packet to each peer triggers the negotiation (in a cluster, Corosync's
    // heartbeats do this at once).
    for n in &lab.nodes {
        for peer in NODES.iter().filter(|p| **p != n.addr) {
            let _ = sh(&format!(
                "ip netns exec {} bash -c 'echo x > /dev/udp/{peer}/9' 2>/dev/null",
                n.ns.name
            ));
        }
    }
    let t0 = std::time::Instant::now();
    while !NODES.iter().enumerate().all(|(i, _)| {
        lab.nodes[i]
            .pluto
            .whack("--showstates")
            .matches("ESTABLISHED_IKE_SA")
            .count()
            >= 2
    }) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "IKE SAs not established:\n{}",
            lab.nodes[0].pluto.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = lab.ocf(0, "monitor", &[("OCF_RESKEY_policy", "require")]);
    assert_eq!(r.code, 190, "{r:?}");
    assert!(
        r.reasons()[0].contains("no SA with 2 peer(s): 192.0.2.2, 192.0.2.3"),
        "{r:?}"
    );
    let json = Run::from(
        lab.nodes[0]
            .ns
            .cmd(vipsec_bin())
            .args([
                "mesh",
                "monitor",
                "--json",
                "--instance",
                "mesh",
                "--peers",
                "192.0.2.1 192.0.2.2 192.0.2.3",
                "--policy",
                "require",
            ])
            .arg("--secret_file")
            .arg(&lab.secret)
            .arg("--ctlsocket")
            .arg(&lab.nodes[0].pluto.ctlsocket)
            .env("HA_RSCTMP", &lab.nodes[0].state_dir)
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["state"], "degraded");
    assert_eq!(v["peers"].as_array().unwrap().len(), 2);
    assert_eq!(v["peers"][0]["policy"], true);
    assert_eq!(
        v["peers_without_sa"],
        serde_json::json!(["192.0.2.2", "192.0.2.3"])
    );

    // A policy lost from the kernel is this node's failure.
    lab.nodes[0]
        .ns
        .ip("xfrm policy delete src 192.0.2.1/32 dst 192.0.2.3/32 dir out");
    let r = lab.ocf(0, "monitor", &[("OCF_RESKEY_policy", "require")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.reasons()[0].contains("no kernel policy for 1 peer(s): 192.0.2.3"),
        "{r:?}"
    );

    lab.all("stop", &[("OCF_RESKEY_policy", "require")], 0);
    lab.all("stop", &[("OCF_RESKEY_policy", "require")], 0); // idempotent
    lab.all("monitor", &[], 7);
    for n in &lab.nodes {
        assert!(
            !n.pluto.whack("--status").contains("\"vm-"),
            "conns left after stop"
        );
        let pol = policies(&n.ns);
        assert!(
            !pol.iter().any(|p| p.contains("192.0.2.")),
            "policies left after stop: {pol:#?}"
        );
        assert!(std::fs::symlink_metadata(n.pluto.confdir.join("vipsec-mesh.secrets")).is_err());
    }
}

#[test]
fn use_and_disable_policies() {
    let lab = MeshLab::new(2);
    lab.all(
        "start",
        &[
            ("OCF_RESKEY_policy", "use"),
            ("OCF_RESKEY_secure_ports", "5432"),
        ],
        0,
    );
    let pol = policies(&lab.nodes[0].ns);
    assert!(
        has(
            &pol,
            &["192.0.2.1/32 dst 192.0.2.2/32 dir out", "proto esp"]
        ),
        "{pol:#?}"
    );
    assert!(
        !pol.iter().any(|p| p.contains("action block")),
        "use must not block: {pol:#?}"
    );
    // secure_ports: its own ESP-required policies toward the peer's port.
    assert!(
        has(
            &pol,
            &[
                "192.0.2.1/32 dst 192.0.2.2/32 proto tcp dport 5432 dir out",
                "proto esp"
            ]
        ),
        "{pol:#?}"
    );
    let conf = std::fs::read_to_string(lab.nodes[0].run_dir.join("vipsec-mesh.conf")).unwrap();
    assert!(conf.contains("conn vm-192.0.2.2\n") && conf.contains("\tfailureshunt=passthrough\n"));
    assert!(conf.contains("conn vm-192.0.2.2-tcp5432-out\n"));
    lab.all("stop", &[], 0);

    // Forwarded (container) subnets: tunnel-mode conns between the subnets and nodes,
    // whose on-demand policies the kernel now holds (libreswan's trap templates say
    // "transport" until the SA is negotiated in tunnel mode).
    let fwd = [(
        "OCF_RESKEY_forward_subnets",
        "192.0.2.1=10.88.1.0/24 192.0.2.2=10.88.2.0/24",
    )];
    lab.all("start", &fwd, 0);
    let pol = policies(&lab.nodes[0].ns);
    for (src, dst) in [
        ("10.88.1.0/24", "192.0.2.2/32"),
        ("192.0.2.1/32", "10.88.2.0/24"),
        ("10.88.1.0/24", "10.88.2.0/24"),
    ] {
        assert!(
            has(&pol, &[&format!("{src} dst {dst} dir out"), "proto esp"]),
            "no policy {src} -> {dst}: {pol:#?}"
        );
    }
    let pol_b = policies(&lab.nodes[1].ns);
    assert!(
        has(
            &pol_b,
            &["10.88.2.0/24 dst 10.88.1.0/24 dir out", "proto esp"]
        ),
        "the other end mirrors: {pol_b:#?}"
    );
    let conf = std::fs::read_to_string(lab.nodes[0].run_dir.join("vipsec-mesh.conf")).unwrap();
    assert!(conf.contains("conn vm-192.0.2.2-fwd3\n\tleft=192.0.2.1\n\tright=192.0.2.2\n\tleftsubnet=10.88.1.0/24\n\trightsubnet=10.88.2.0/24\n"), "{conf}");
    assert!(conf.contains("\ttype=tunnel\n"));
    lab.all("stop", &fwd, 0);

    // disable: conns loaded, no kernel policy at all (the quick off switch).
    lab.all("start", &[("OCF_RESKEY_policy", "disable")], 0);
    let pol = policies(&lab.nodes[0].ns);
    assert!(
        !pol.iter().any(|p| p.contains("192.0.2.2")),
        "disable installed policies: {pol:#?}"
    );
    assert!(lab.nodes[0]
        .pluto
        .whack("--status")
        .contains("\"vm-192.0.2.2\":"));
    lab.all("stop", &[], 0);
}

#[test]
fn reload_adds_and_removes_peers_leaving_the_others_alone() {
    let lab = MeshLab::new(2);
    let two = [("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2 192.0.2.9")];
    lab.all("start", &two, 0);
    let serial = |n: &Node, conn: &str| n.pluto.conn_serial(conn);
    let before = serial(&lab.nodes[0], "vm-192.0.2.2");
    assert!(!before.is_empty());
    assert!(lab.nodes[0]
        .pluto
        .whack("--status")
        .contains("\"vm-192.0.2.9\":"));
    // 192.0.2.9 leaves, 192.0.2.7 joins.
    let r = lab.ocf(
        0,
        "reload-agent",
        &[("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2 192.0.2.7")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let status = lab.nodes[0].pluto.whack("--status");
    assert!(
        !status.contains("\"vm-192.0.2.9\":"),
        "departed peer's conn still loaded"
    );
    assert!(
        status.contains("\"vm-192.0.2.7\":"),
        "new peer's conn not loaded"
    );
    assert_eq!(
        serial(&lab.nodes[0], "vm-192.0.2.2"),
        before,
        "an unchanged peer's conn was reloaded"
    );
    let pol = policies(&lab.nodes[0].ns);
    assert!(
        has(
            &pol,
            &["192.0.2.1/32 dst 192.0.2.7/32 dir out", "proto esp"]
        ),
        "no policy for the new peer: {pol:#?}"
    );
    assert!(
        !pol.iter().any(|p| p.contains("192.0.2.9")),
        "departed peer's policies remain: {pol:#?}"
    );
    // A new master secret replaces every pair's conn (new keys).
    std::fs::write(
        &lab.secret,
        "a different mesh master secret, 0123456789abcdef\n",
    )
    .unwrap();
    let r = lab.ocf(
        0,
        "reload-agent",
        &[("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2 192.0.2.7")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(
        serial(&lab.nodes[0], "vm-192.0.2.2"),
        before,
        "a new master secret must rekey every pair"
    );
    lab.all("stop", &[], 0);
}

#[test]
fn ocf_tester_passes_for_the_mesh() {
    let lab = MeshLab::new(2);
    let n = &lab.nodes[0];
    // This kernel cannot install ESP SAs, so with policy use/require monitor is honestly
    // "degraded" (190), which ocf-tester does not know. disable expects no SA.
    let options = [
        ("peers", "192.0.2.1 192.0.2.2".to_string()),
        ("policy", "disable".to_string()),
        ("secret_file", lab.secret.display().to_string()),
        ("confdir", n.pluto.confdir.display().to_string()),
        ("ctlsocket", n.pluto.ctlsocket.display().to_string()),
    ];
    assert_ocf_tester_passes(
        &n.ns,
        &lab.agent.path,
        "mesh",
        &options,
        &n.state_dir,
        &n.run_dir,
    );
    let _ = &lab.tmp;
}

/// No peers, no secret_file: the mesh comes from Corosync's nodelist and cluster key, and
/// follows membership changes within one monitor run.
#[test]
fn zero_config_mesh_from_corosync_follows_membership() {
    let lab = MeshLab::new(3);
    let conf = lab.tmp.path().join("corosync.conf");
    let write_conf = |addrs: &[&str]| {
        let mut c =
            String::from("totem {\n    version: 2\n    cluster_name: vipsec\n}\nnodelist {\n");
        for (i, a) in addrs.iter().enumerate() {
            c.push_str(&format!("    node {{\n        name: node{}\n        nodeid: {}\n        ring0_addr: {a}\n    }}\n", i + 1, i + 1));
        }
        c.push_str("}\nquorum {\n    provider: corosync_votequorum\n}\n");
        std::fs::write(&conf, c).unwrap();
    };
    write_conf(&NODES);
    let authkey = cluster_authkey(lab.tmp.path());
    let conf_s = conf.display().to_string();
    let key_s = authkey.display().to_string();
    let zero = [
        ("OCF_RESKEY_peers", ""),
        ("OCF_RESKEY_secret_file", ""),
        ("OCF_RESKEY_corosync_conf", conf_s.as_str()),
        ("OCF_RESKEY_corosync_authkey", key_s.as_str()),
    ];
    lab.all("start", &zero, 0);
    for n in &lab.nodes {
        let status = n.pluto.whack("--status");
        for peer in NODES.iter().filter(|p| **p != n.addr) {
            assert!(
                status.contains(&format!("\"vm-{peer}\":")),
                "{}: no conn to {peer}",
                n.addr
            );
            assert!(has(
                &policies(&n.ns),
                &[&format!("{}/32 dst {peer}/32 dir out", n.addr), "proto esp"]
            ));
        }
    }
    // Both ends derive the same pair key from the cluster key.
    let key_line = |i: usize, a: &str, b: &str| {
        read_linked(
            &lab.nodes[i].pluto.confdir.join("vipsec-mesh.secrets"),
            &lab.nodes[i].run_dir,
        )
        .lines()
        .find(|l| l.starts_with(&format!("{a} {b} ")))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .unwrap()
    };
    assert_eq!(
        key_line(0, "192.0.2.1", "192.0.2.3"),
        key_line(2, "192.0.2.3", "192.0.2.1")
    );

    // Explains itself.
    let n0 = &lab.nodes[0];
    let mut json_cmd = n0.ns.cmd(vipsec_bin());
    json_cmd
        .args([
            "mesh",
            "monitor",
            "--json",
            "--instance",
            "mesh",
            "--corosync_conf",
            &conf_s,
            "--corosync_authkey",
            &key_s,
        ])
        .arg("--ctlsocket")
        .arg(&n0.pluto.ctlsocket)
        .arg("--confdir")
        .arg(&n0.pluto.confdir)
        .env("HA_RSCTMP", &n0.state_dir);
    with_run_dir(&mut json_cmd, &n0.run_dir, n0.ns.root());
    let v: serde_json::Value =
        serde_json::from_str(&Run::from(json_cmd.output().unwrap()).stdout).unwrap();
    assert_eq!(v["peer_source"], "corosync-conf");
    assert_eq!(v["key_source"], "corosync authkey");

    let serial = |n: &Node, conn: &str| n.pluto.conn_serial(conn);
    let before = serial(n0, "vm-192.0.2.2");
    // A node joins the cluster: within one monitor run its conn and policy appear, and the
    // others' conns are not reloaded.
    write_conf(&["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]);
    let r = lab.ocf(0, "monitor", &zero);
    assert!(r.code == 0 || r.code == 190, "{r:?}");
    assert!(
        n0.pluto.whack("--status").contains("\"vm-192.0.2.4\":"),
        "joined node has no conn"
    );
    assert!(has(
        &policies(&n0.ns),
        &["192.0.2.1/32 dst 192.0.2.4/32 dir out", "proto esp"]
    ));
    assert_eq!(
        serial(n0, "vm-192.0.2.2"),
        before,
        "an unchanged peer was reloaded"
    );
    // It leaves again: its conn and policies go.
    write_conf(&NODES);
    lab.ocf(0, "monitor", &zero);
    assert!(
        !n0.pluto.whack("--status").contains("\"vm-192.0.2.4\":"),
        "departed node's conn remains"
    );
    assert!(!policies(&n0.ns).iter().any(|p| p.contains("192.0.2.4")));
    assert_eq!(serial(n0, "vm-192.0.2.2"), before);

    // No cluster key and no secret_file: a reason that says what to pass instead.
    let r = lab.ocf(
        1,
        "validate-all",
        &[
            ("OCF_RESKEY_peers", ""),
            ("OCF_RESKEY_secret_file", ""),
            ("OCF_RESKEY_corosync_authkey", "/nonexistent/authkey"),
        ],
    );
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.reasons()[0].starts_with("corosync_authkey: ")
            && r.reasons()[0].contains("set secret_file"),
        "{r:?}"
    );
    lab.all("stop", &zero, 0);
}

/// Peers given by name: under dnssec=require only names that validate get a conn; under
/// dnssec=log the others are used with a warning.
#[test]
fn dnssec_decides_which_named_peers_get_a_conn() {
    let lab = MeshLab::new(3);
    let n0 = &lab.nodes[0];
    let named = common::named::Named::start_in(Some(&n0.ns));
    let resolver = format!("127.0.0.1:{}", named.port);
    let anchor = named.anchor.display().to_string();
    let logfile = lab.tmp.path().join("agent.log");
    let log = logfile.display().to_string();
    let by_name = [
        (
            "OCF_RESKEY_peers",
            "n1.example.test n2.example.test n3.unsigned.test",
        ),
        ("OCF_RESKEY_resolver", resolver.as_str()),
        ("OCF_RESKEY_dnssec_anchor", anchor.as_str()),
        ("HA_LOGFILE", log.as_str()),
    ];
    // Default for named peers: require.
    let r = lab.ocf(0, "start", &by_name);
    assert_eq!(r.code, 0, "{r:?}");
    let status = n0.pluto.whack("--status");
    assert!(
        status.contains("\"vm-192.0.2.2\":"),
        "the validated peer has no conn"
    );
    assert!(
        !status.contains("\"vm-192.0.2.3\":"),
        "a peer whose name is not validated got a conn"
    );
    let r = lab.ocf(0, "monitor", &by_name);
    assert_eq!(r.code, 190, "{r:?}");
    assert!(
        r.reasons()[0].contains("n3.unsigned.test (refused by DNSSEC:"),
        "{r:?}"
    );
    // DNS goes away (nothing answers on the resolver's port) and the mesh is reloaded
    // (as a membership change would): the validated peer keeps its conn, untouched.
    let serial = n0.pluto.conn_serial("vm-192.0.2.2");
    let mut outage = by_name.to_vec();
    outage[1] = ("OCF_RESKEY_resolver", "127.0.0.1:9");
    let r = lab.ocf(0, "reload-agent", &outage);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        n0.pluto.conn_serial("vm-192.0.2.2"),
        serial,
        "a DNS outage dropped (or replaced) a validated peer's conn"
    );
    let text = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        text.contains("peer n2.example.test: ")
            && text.contains("keeping its last validated addresses"),
        "{text}"
    );
    assert_eq!(lab.ocf(0, "stop", &by_name).code, 0);

    // dnssec=log: used, and said so.

    let mut logged = by_name.to_vec();
    logged.push(("OCF_RESKEY_dnssec", "log"));
    assert_eq!(lab.ocf(0, "start", &logged).code, 0);
    assert!(n0.pluto.whack("--status").contains("\"vm-192.0.2.3\":"));
    let text = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        text.contains("WARNING: peer n3.unsigned.test: ")
            && text.contains("(dnssec=log: using it anyway)"),
        "{text}"
    );
    assert_eq!(lab.ocf(0, "stop", &logged).code, 0);
}

/// Replays `ip xfrm monitor policy` output over the policies present before it started:
/// after every event, each remote end in `watched` ("address/prefix": a peer, or a
/// subnet forwarded through it) must still have an outbound policy (pluto's ESP policy
/// or vipsec's hold). Returns the moments one had none.
fn out_policy_gaps(before: &str, events: &str, watched: &[&str]) -> Vec<String> {
    // A policy is its selector line ("src A/32 dst B/32 …") and its direction.
    fn blocks(text: &str) -> Vec<(bool, String, String)> {
        let mut out = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let deleted = line.starts_with("Deleted ");
            // "Updated": the kernel replaced a policy of the same selector in place.
            let head = line
                .trim_start_matches("Deleted ")
                .trim_start_matches("Updated ")
                .trim();

            if !head.starts_with("src ") {
                continue;
            }
            let dir = lines
                .peek()
                .filter(|l| l.trim_start().starts_with("dir "))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
                .unwrap_or_default();
            out.push((deleted, head.to_string(), dir));
        }
        out
    }
    let mut present: std::collections::BTreeSet<(String, String)> = blocks(before)
        .into_iter()
        .map(|(_, sel, dir)| (sel, dir))
        .collect();
    let has = |present: &std::collections::BTreeSet<(String, String)>,
               end: &str,
               key: &str,
               want: &str| {
        present.iter().any(|(sel, dir)| {
            dir == want
                && sel
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| w == [key, end])
        })
    };
    // Inbound ones are not watched: the IKE daemon installs them with the SA only.
    let missing = |present: &std::collections::BTreeSet<(String, String)>, end: &str| {
        [("dst", "out")]
            .into_iter()
            .filter(|(key, dir)| !has(present, end, key, dir))
            .map(|(_, dir)| dir)
            .collect::<Vec<_>>()
    };
    let mut gaps = Vec::new();
    for w in watched {
        let m = missing(&present, w);
        assert!(m.is_empty(), "{w} had no {m:?} policy to begin with");
    }
    for (i, (deleted, sel, dir)) in blocks(events).into_iter().enumerate() {
        if deleted {
            present.remove(&(sel.clone(), dir.clone()));
        } else {
            present.insert((sel.clone(), dir.clone()));
        }
        for w in watched {
            let m = missing(&present, w);
            if !m.is_empty() {
                gaps.push(format!(
                    "event {i} ({} {sel} dir {dir}): no {m:?} policy for {w}",
                    if deleted { "deleted" } else { "added" }
                ));
            }
        }
    }
    gaps
}

/// Under require, a reload that swaps a pair's conns (a new master secret, a membership
/// change) never leaves a moment where that pair, or a subnet forwarded through it, has
/// no outbound policy: its traffic is
/// held (blocked) from before the old conns go until the new ones are routed. Watched
/// event by event over netlink (`ip xfrm monitor`).
#[test]
fn reload_under_require_leaves_no_moment_without_an_out_policy() {
    let lab = MeshLab::new(2);
    const FORWARDED: &str =
        "192.0.2.1=198.51.100.0/24 192.0.2.2=203.0.113.0/25 192.0.2.9=203.0.113.128/25";
    let peers = [
        ("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2 192.0.2.9"),
        ("OCF_RESKEY_policy", "require"),
        ("OCF_RESKEY_forward_subnets", FORWARDED),
    ];
    lab.all("start", &peers, 0);
    let ns = &lab.nodes[0].ns;
    let watch = |what: &str, action: &dyn Fn(), watched: &[&str]| {
        let log = lab
            .tmp
            .path()
            .join(format!("xfrm-{}.log", what.replace(' ', "-")));
        let before = must(&format!("ip -n {} xfrm policy", ns.name));
        let mut monitor = std::process::Command::new("ip")
            .args(["-n", &ns.name, "xfrm", "monitor", "policy"])
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        action();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = monitor.kill();
        let _ = monitor.wait();
        let events = std::fs::read_to_string(&log).unwrap();
        assert!(
            events.contains("dir out"),
            "{what}: the reload changed no outbound policy (nothing was swapped?):\n{events}"
        );
        let gaps = out_policy_gaps(&before, &events, watched);
        assert!(
            gaps.is_empty(),
            "{what}:\n{}\n\nevents:\n{events}",
            gaps.join("\n")
        );
    };
    // A new master secret: every pair's conns are replaced.
    std::fs::write(
        &lab.secret,
        "a different mesh master secret, 0123456789abcdef\n",
    )
    .unwrap();
    watch(
        "new master secret",
        &|| assert_eq!(lab.ocf(0, "reload-agent", &peers).code, 0),
        &[
            "192.0.2.2/32",
            "192.0.2.9/32",
            "203.0.113.0/25",
            "203.0.113.128/25",
        ],
    );
    // A membership change: 192.0.2.9 leaves, 192.0.2.7 joins; 192.0.2.2 is untouched.
    let changed = [
        ("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2 192.0.2.7"),
        ("OCF_RESKEY_policy", "require"),
        ("OCF_RESKEY_forward_subnets", FORWARDED),
    ];
    watch(
        "membership change",
        &|| assert_eq!(lab.ocf(0, "reload-agent", &changed).code, 0),
        &["192.0.2.2/32", "203.0.113.0/25"],
    );
    // Nothing held afterwards: the holds are gone, the new pair has its ESP policy.
    let pol = policies(ns);
    assert!(
        !pol.iter().any(|p| p.contains("priority 1000 ")),
        "{pol:#?}"
    );
    assert!(
        has(
            &pol,
            &["192.0.2.1/32 dst 192.0.2.7/32 dir out", "proto esp"]
        ),
        "{pol:#?}"
    );
    lab.all("stop", &changed, 0);
}

/// auth=cert with peers listed by name: a peer must present a certificate for the name
/// it is listed under, and the IKE daemon refuses any other during IKE_AUTH — a valid
/// certificate of the same CA, presented from that peer's address, never gets an SA,
/// not even until the next monitor.
#[test]
fn a_peer_listed_by_name_must_present_that_names_certificate() {
    let lab = MeshLab::new(2);
    let (n0, n1) = (&lab.nodes[0], &lab.nodes[1]);
    let named = common::named::Named::start_in(Some(&n0.ns));
    let resolver = format!("127.0.0.1:{}", named.port);
    let anchor = named.anchor.display().to_string();
    let ca = TestCa::new("ec");
    n0.pluto.import_cert(&ca, "node", "n1.example.test");
    // n1 holds two valid certificates of the same CA: one for a name that is not its own.
    n1.pluto
        .import_cert(&ca, "impostor", "impostor.example.test");
    n1.pluto.import_cert(&ca, "node", "n2.example.test");
    let by_name = [
        ("OCF_RESKEY_peers", "n1.example.test n2.example.test"),
        ("OCF_RESKEY_auth", "cert"),
        ("OCF_RESKEY_cert", "node"),
        ("OCF_RESKEY_secret_file", ""),
        ("OCF_RESKEY_resolver", resolver.as_str()),
        ("OCF_RESKEY_dnssec_anchor", anchor.as_str()),
    ];
    let on_n1 = |cert: &'static str| {
        [
            ("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2"),
            ("OCF_RESKEY_auth", "cert"),
            ("OCF_RESKEY_cert", cert),
            ("OCF_RESKEY_secret_file", ""),
            ("OCF_RESKEY_dnssec", "off"),
        ]
    };
    let r = lab.ocf(0, "start", &by_name);
    assert_eq!(r.code, 0, "{r:?}");
    let conns = std::fs::read_to_string(n0.run_dir.join("vipsec-mesh.conf")).unwrap();
    assert!(conns.contains("\trightid=@n2.example.test\n"), "{conns}");
    let poke = |n: &Node, peer: &str| {
        let _ = sh(&format!(
            "ip netns exec {} bash -c 'echo x > /dev/udp/{peer}/9' 2>/dev/null",
            n.ns.name
        ));
    };
    let established = |n: &Node| n.pluto.whack("--showstates").contains("ESTABLISHED_IKE_SA");
    // The impostor certificate: both ends try, n0 never establishes. Only n0 is judged:
    // n1 is the attacker's own node, and when n0 initiates, n1 (the IKEv2 responder)
    // counts its IKE SA established once it has sent its IKE_AUTH reply — before n0
    // has read n1's certificate and refused it. Such a half has nothing to talk to: n0
    // holds no IKE SA, no Child SA and no key for it.
    assert_eq!(lab.ocf(1, "start", &on_n1("impostor")).code, 0);
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(8) {
        poke(n1, "192.0.2.1");
        poke(n0, "192.0.2.2");
        let states = n0.pluto.whack("--showstates");
        assert!(
            !states.contains("ESTABLISHED_IKE_SA") && !states.contains("ESTABLISHED_CHILD_SA"),
            "n0 holds an SA with the impostor certificate:\n{states}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // The certificate for its own name: accepted at once.
    assert_eq!(lab.ocf(1, "stop", &on_n1("impostor")).code, 0);
    assert_eq!(lab.ocf(1, "start", &on_n1("node")).code, 0);
    let t0 = std::time::Instant::now();
    while !established(n0) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "no IKE SA with the right certificate:\n{}",
            n0.pluto.log()
        );
        poke(n1, "192.0.2.1");
        poke(n0, "192.0.2.2");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert_eq!(lab.ocf(1, "stop", &on_n1("node")).code, 0);
    assert_eq!(lab.ocf(0, "stop", &by_name).code, 0);
}

/// `vipsec mesh monitor --json` on node `i` with the parameters `extra` gives the agent.
fn monitor_json(lab: &MeshLab, i: usize, extra: &[(&str, &str)]) -> serde_json::Value {
    let n = &lab.nodes[i];
    let mut cmd = n.ns.cmd(vipsec_bin());
    cmd.args(["mesh", "monitor", "--json", "--instance", "mesh"]);
    for (k, v) in lab.env(n, extra) {
        match k.strip_prefix("OCF_RESKEY_") {
            Some(p) if !p.starts_with("CRM_meta") => {
                cmd.arg(format!("--{p}")).arg(v);
            }
            None if k == "HA_RSCTMP" || k == "VIPSEC_RUN_DIR" => {
                cmd.env(k, v);
            }
            _ => {}
        }
    }
    let out = Run::from(cmd.output().unwrap());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// (address, listed_as, origin) of every peer the monitor reports.
fn peer_origins(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["peer"].as_str().unwrap().to_string(),
                p["listed_as"].as_str().unwrap().to_string(),
                p["origin"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The zero-configuration mesh takes its peers from the addresses Corosync itself uses
/// for its members, not from what their names resolve to now: with nodelist names that
/// only Corosync's /etc/hosts knows (`nodeb`), or that DNS — validly signed — maps
/// elsewhere (`impostor` at 192.0.2.99), the tunnels go to the members' addresses.
/// Nodes that are not members use the addresses their nodelist entries write; a name is
/// resolved only when an entry has nothing else, under DNSSEC (require by default: an
/// unsigned answer gets no conn). With Corosync stopped, corosync.conf is all there is.
#[test]
fn zero_config_mesh_takes_corosync_members_addresses_not_their_names() {
    let lab = MeshLab::new(3);
    let n0 = &lab.nodes[0];
    let named = common::named::Named::start_in(Some(&n0.ns));
    let resolver = format!("127.0.0.1:{}", named.port);
    let anchor = named.anchor.display().to_string();
    // As `pcs cluster setup` writes it from what it was given: three running nodes (two
    // by a name), one more by address, two by a name only (neither running).
    let nodes = [
        ("node1", "192.0.2.1"),
        ("node2", "nodeb.example.test"),
        ("node3", "impostor.example.test"),
        ("node4", "192.0.2.4"),
        ("node5", "good.example.test"),
        ("node6", "host.unsigned.test"),
    ];
    let mut conf = String::from(
        "totem {\n version: 2\n cluster_name: vipsecmesh\n transport: knet\n crypto_cipher: none\n crypto_hash: none\n}\n\
logging {\n to_stderr: yes\n to_logfile: no\n to_syslog: no\n}\n\
quorum {\n provider: corosync_votequorum\n}\nnodelist {\n",
    );
    for (i, (name, ring0)) in nodes.iter().enumerate() {
        conf.push_str(&format!(
            " node {{\n  name: {name}\n  nodeid: {}\n  ring0_addr: {ring0}\n }}\n",
            i + 1
        ));
    }
    conf.push_str("}\n");
    // What Corosync resolves the names with; the agent never sees this file.
    let hosts =
        "127.0.0.1 localhost\n192.0.2.2 nodeb.example.test\n192.0.2.3 impostor.example.test\n\
192.0.2.10 good.example.test\n192.0.2.40 host.unsigned.test\n";
    let mut corosyncs: Vec<common::cluster::Corosync> = lab
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            common::cluster::Corosync::start(
                &n.ns,
                &lab.tmp.path().join(format!("corosync{i}")),
                &conf,
                hosts,
            )
        })
        .collect();
    corosyncs[0].wait_members(&[1, 2, 3], std::time::Duration::from_secs(30));
    let conf_path = lab.tmp.path().join("corosync0/corosync.conf");
    let conf_s = conf_path.display().to_string();
    let authkey = cluster_authkey(lab.tmp.path());
    let key_s = authkey.display().to_string();
    let zero = [
        ("OCF_RESKEY_peers", ""),
        ("OCF_RESKEY_secret_file", ""),
        ("OCF_RESKEY_corosync_conf", conf_s.as_str()),
        ("OCF_RESKEY_corosync_authkey", key_s.as_str()),
        ("OCF_RESKEY_resolver", resolver.as_str()),
        ("OCF_RESKEY_dnssec_anchor", anchor.as_str()),
    ];
    let r = lab.ocf(0, "start", &zero);
    assert_eq!(r.code, 0, "{r:?}");
    let status = n0.pluto.whack("--status");
    for (peer, why) in [
        (
            "192.0.2.2",
            "a member known by a name only Corosync resolves",
        ),
        ("192.0.2.3", "a member whose name DNS maps elsewhere"),
        (
            "192.0.2.4",
            "a node not running, by the address its entry writes",
        ),
        ("192.0.2.10", "a name-only node, resolved under DNSSEC"),
    ] {
        assert!(
            status.contains(&format!("\"vm-{peer}\":")),
            "no conn to {peer} ({why})"
        );
    }
    for (peer, why) in [
        ("192.0.2.99", "where DNS says a member's name is"),
        (
            "192.0.2.40",
            "a name-only node whose name does not validate",
        ),
    ] {
        assert!(
            !status.contains(&format!("\"vm-{peer}\":")),
            "a conn to {peer} ({why})"
        );
    }
    let v = monitor_json(&lab, 0, &zero);
    assert_eq!(v["peer_source"], "corosync-runtime", "{v}");
    let o = |a: &str, l: &str, s: &str| (a.to_string(), l.to_string(), s.to_string());
    let mut origins = peer_origins(&v);
    origins.sort();
    assert_eq!(
        origins,
        vec![
            o(
                "192.0.2.10",
                "good.example.test (192.0.2.10)",
                "resolved-name"
            ),
            o("192.0.2.2", "node2 (192.0.2.2)", "corosync-member"),
            o("192.0.2.3", "node3 (192.0.2.3)", "corosync-member"),
            o("192.0.2.4", "node4 (192.0.2.4)", "corosync-conf"),
        ],
        "{v}"
    );
    let skipped = v["skipped"].to_string();
    assert!(
        skipped.contains("host.unsigned.test") && skipped.contains("refused by DNSSEC"),
        "{v}"
    );

    // Corosync stops on this node: corosync.conf is all there is. The address node4's
    // entry writes stays (its SA untouched); the members' names are now resolved, under
    // DNSSEC — node2's does not validate (no conn); node3's validated answer is where
    // DNS says it is (a name is only as true as DNS, which is why members come first).
    let serial = n0.pluto.conn_serial("vm-192.0.2.4");
    corosyncs[0].stop();
    // What the next monitor does on noticing the change (follow_membership).
    let r = lab.ocf(0, "reload-agent", &zero);
    assert_eq!(r.code, 0, "{r:?}");
    let v = monitor_json(&lab, 0, &zero);
    assert_eq!(v["peer_source"], "corosync-conf", "{v}");
    let mut origins = peer_origins(&v);
    origins.sort();
    assert_eq!(
        origins,
        vec![
            o(
                "192.0.2.10",
                "good.example.test (192.0.2.10)",
                "resolved-name"
            ),
            o("192.0.2.4", "node4 (192.0.2.4)", "corosync-conf"),
            o(
                "192.0.2.99",
                "impostor.example.test (192.0.2.99)",
                "resolved-name"
            ),
        ],
        "{v}"
    );
    assert!(
        v["skipped"].to_string().contains("nodeb.example.test"),
        "{v}"
    );
    assert_eq!(n0.pluto.conn_serial("vm-192.0.2.4"), serial);
    assert_eq!(lab.ocf(0, "stop", &zero).code, 0);
}

/// The guard under require with the default exclusions, tried by an outsider on the
/// LAN who is also the node's resolver (so it can send from the resolver's address and
/// port): it reaches sshd and ping, and nothing else — no listening TCP or UDP port,
/// whatever the source port (22, 53, the resolver's), a service started after the mesh
/// included. This node's own SSH and DNS (to a resolver on a port of its own) work.
#[test]
fn require_guard_admits_ssh_and_ping_and_nothing_else_from_an_outsider() {
    let lab = MeshLab::new(2);
    let outsider = Netns::new("mo");
    outsider.link_to(&lab._switch, "eth0", "po");
    must(&format!(
        "ip -n {} link set po master br0",
        lab._switch.name
    ));
    outsider.ip("addr add 192.0.2.50/24 dev eth0");
    outsider.ip("addr add 192.0.2.51/24 dev eth0");
    let named = common::named::Named::start_on(Some(&outsider), "192.0.2.50");
    let resolver = format!("192.0.2.50:{}", named.port);
    let n0 = &lab.nodes[0];
    let node_log = lab.tmp.path().join("node-listener.log");
    // sshd's stand-in, pcsd, pacemaker-remote, Corosync, and ports inside the ephemeral
    // range (where the replies' allow rules are): dual-stack TCP, UDP.
    let _services = Listener::start(
        &n0.ns,
        &node_log,
        &[
            "tcp:0.0.0.0:22",
            "tcp:0.0.0.0:2224",
            "tcp:0.0.0.0:3121",
            "tcp:192.0.2.1:5405",
            "udp:192.0.2.1:5405",
            "tcp:dual:45000",
            "udp:0.0.0.0:45001",
        ],
    );
    let out_log = lab.tmp.path().join("outsider-listener.log");
    let _outsider_sshd = Listener::start(&outsider, &out_log, &["tcp:192.0.2.51:22"]);
    let params = [
        ("OCF_RESKEY_peers", "192.0.2.1 192.0.2.2"),
        ("OCF_RESKEY_policy", "require"),
        ("OCF_RESKEY_resolver", resolver.as_str()),
    ];
    let r = lab.ocf(0, "start", &params);
    assert_eq!(r.code, 0, "{r:?}");
    // A service started after the mesh: carved out of the replies' ports at monitor.
    let late_log = lab.tmp.path().join("late-listener.log");
    let _late = Listener::start(&n0.ns, &late_log, &["tcp:192.0.2.1:45002"]);
    let r = lab.ocf(0, "monitor", &params);
    assert!(r.code == 0 || r.code == 190, "{r:?}");

    // Allowed: sshd from any source port, ping.
    assert_eq!(
        probe(&outsider, "192.0.2.50", "192.0.2.1", "0", "22", "").trim(),
        "open 0 22",
        "the outsider cannot reach sshd"
    );
    assert!(
        sh(&format!(
            "ip netns exec {} ping -c1 -W2 192.0.2.1",
            outsider.name
        ))
        .status
        .success(),
        "the outsider cannot ping the node"
    );
    // This node's own SSH to the outsider, and DNS from its resolver, on its own port,
    // over UDP and TCP.
    assert_eq!(
        probe(&n0.ns, "192.0.2.1", "192.0.2.51", "0", "22", "").trim(),
        "open 0 22",
        "this node's SSH to a non-peer does not work:\n{:#?}",
        policies(&n0.ns)
    );
    for tcp in ["+notcp", "+tcp"] {
        let answer = Run::from(
            n0.ns
                .host_cmd("dig")
                .args(["+short", "+time=2", "+tries=1", tcp, "-p"])
                .arg(named.port.to_string())
                .args(["@192.0.2.50", "good.example.test", "A"])
                .output()
                .unwrap(),
        );
        assert_eq!(
            answer.stdout.trim(),
            "192.0.2.10",
            "DNS {tcp} from the resolver on port {} blocked: {answer:?}",
            named.port
        );
    }
    // Nothing else, from the reply ports the guard knows of (the resolver's own once
    // named has let go of it).
    let resolver_port = named.port;
    drop(named);
    let sports = format!("22,53,{resolver_port}");
    let opened = probe(
        &outsider,
        "192.0.2.50",
        "192.0.2.1",
        &sports,
        "2224,3121,5405,45000,45002",
        "5405,45001",
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let hits: Vec<String> = std::fs::read_to_string(&node_log)
        .unwrap()
        .lines()
        .chain(std::fs::read_to_string(&late_log).unwrap().lines())
        .filter(|l| l.contains("192.0.2.50:") && !l.starts_with("tcp 22 "))
        .map(String::from)
        .collect();
    assert!(
        !opened.contains("open") && hits.is_empty(),
        "clear text from the outsider reached services:\n{opened}\n{hits:#?}\n{:#?}",
        policies(&n0.ns)
    );

    assert_eq!(lab.ocf(0, "stop", &params).code, 0);
}

/// Under require, a named peer whose name stops resolving to it (here a secure NXDOMAIN:
/// its records removed from the signed zone) loses its conns at reload, but not its
/// protection: its last address stays blocked both ways (recorded in the state, kept
/// across reloads), and nothing is sent to it in clear. Stop lets it go.
#[test]
fn a_refused_named_peer_stays_blocked_not_in_clear() {
    let lab = MeshLab::new(2);
    let (n0, n1) = (&lab.nodes[0], &lab.nodes[1]);
    let named = common::named::Named::start_in(Some(&n0.ns));
    let resolver = format!("127.0.0.1:{}", named.port);
    let anchor = named.anchor.display().to_string();
    let params = [
        ("OCF_RESKEY_peers", "n1.example.test n2.example.test"),
        ("OCF_RESKEY_policy", "require"),
        ("OCF_RESKEY_resolver", resolver.as_str()),
        ("OCF_RESKEY_dnssec_anchor", anchor.as_str()),
    ];
    let r = lab.ocf(0, "start", &params);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(n0.pluto.whack("--status").contains("\"vm-192.0.2.2\":"));
    // n1 takes anything (it runs no mesh): what reaches it was sent in clear.
    let log = lab.tmp.path().join("n1-listener.log");
    let _listener = Listener::start(&n1.ns, &log, &["udp:192.0.2.2:7777"]);
    let blocked_out = |pol: &[String]| {
        pol.iter().any(|p| {
            p.contains("0.0.0.0/0 dst 192.0.2.2/32")
                && p.contains("dir out")
                && p.contains("priority 1000 ")
                && p.contains("action block")
        })
    };

    named.remove_records("example.test", "n2");
    for round in ["reload", "reload again"] {
        let r = lab.ocf(0, "reload-agent", &params);
        assert_eq!(r.code, 0, "{round}: {r:?}");
        assert!(
            !n0.pluto.whack("--status").contains("\"vm-192.0.2.2\":"),
            "{round}: the refused peer kept its conn"
        );
        let pol = policies(&n0.ns);
        assert!(
            blocked_out(&pol),
            "{round}: nothing blocks traffic to the refused peer's last address: {pol:#?}"
        );
        let sent = probe(&n0.ns, "192.0.2.1", "192.0.2.2", "0", "", "7777");
        assert!(sent.contains("refused 0 7777"), "{round}: {sent}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hits = std::fs::read_to_string(&log).unwrap();
    assert!(
        !hits.contains("from 192.0.2.1:"),
        "clear text reached the refused peer: {hits}"
    );
    let r = lab.ocf(0, "monitor", &params);
    assert_eq!(r.code, 190, "{r:?}");
    assert_eq!(lab.ocf(0, "stop", &params).code, 0);
    assert!(
        !blocked_out(&policies(&n0.ns)),
        "the block outlived the mesh"
    );
}

/// A Corosync cluster key (256 bytes, 0400) in `dir`, as pcs writes one.
fn cluster_authkey(dir: &std::path::Path) -> std::path::PathBuf {
    let authkey = dir.join("authkey");
    std::fs::write(&authkey, (0..=255u8).collect::<Vec<u8>>()).unwrap();
    std::fs::set_permissions(
        &authkey,
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .unwrap();
    authkey
}
