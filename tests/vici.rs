//! vipsec's VICI client against a real charon: strongSwan run from a Debian root of its
//! own (tests/strongswan-root.sh; strongSwan cannot be installed beside libreswan) in a
//! network namespace, with its own strongswan.conf and VICI socket. Skipped, with the
//! reason, when VIPSEC_STRONGSWAN_ROOT does not name such a root.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::charon::{soon, strongswan_root, Charon};
use common::Netns;
use std::net::IpAddr;
use vipsec::config::Secret;
use vipsec::ike::spec::{ConnAuth, ConnDef, ConnMode, DeadPeer, Identity, Install, Remote, Shunt};
use vipsec::ike::strongswan_conf::load_conn;
use vipsec::ike::vici::{Client, Message};

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

/// The list-sa events charon sends for one conn's IKE SAs.
fn list_sas(c: &mut Client, conn: &str) -> Vec<Message> {
    c.streamed(
        "list-sas",
        "list-sa",
        Message::new().with("ike", conn),
        soon(),
    )
    .unwrap()
    .0
}

/// One charon in a namespace of its own, at 192.0.2.1 (nobody at 192.0.2.2).
fn lone_charon(root: &Path, prefix: &str) -> (Netns, tempfile::TempDir, Charon) {
    let ns = Netns::new(prefix);
    ns.veth("v0", "v1", true);
    ns.ip("addr add 192.0.2.1/24 dev v0");
    let tmp = tempfile::tempdir().unwrap();
    let charon = Charon::start(&ns, root, tmp.path());
    (ns, tmp, charon)
}

#[test]
fn conns_and_keys_load_list_and_unload_over_vici() {
    let Some(root) = strongswan_root() else {
        return;
    };
    let (_ns, _tmp, charon) = lone_charon(&root, "vici");
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
    let sas = list_sas(&mut c, "pair");
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

/// The VIP's node (A, 192.0.2.100) and a client (C, 192.0.2.3), each with its own
/// charon, on one link; the conns vipsec generates for the VIP (its road-warrior conn and
/// C's as a known client), and C's own conn to the VIP already loaded into C with `key`.
struct VipAndClient {
    // Dropped in this order: the daemons, their directories, then the namespaces.
    ca: Charon,
    cc: Charon,
    ta: tempfile::TempDir,
    _tc: tempfile::TempDir,
    a: Netns,
    _c: Netns,
    road_warrior: ConnDef,
    known: ConnDef,
}

fn vip_and_client(root: &Path, prefix: &str, key: &Secret) -> VipAndClient {
    let a = Netns::new(&format!("{prefix}a"));
    let c = Netns::new(&format!("{prefix}c"));
    a.link_to(&c, "a0", "c0");
    a.ip("addr add 192.0.2.100/24 dev a0");
    c.ip("addr add 192.0.2.3/24 dev c0");
    let (ta, tc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cc) = (
        Charon::start(&a, root, ta.path()),
        Charon::start(&c, root, tc.path()),
    );
    let vip: IpAddr = "192.0.2.100".parse().unwrap();
    let client: IpAddr = "192.0.2.3".parse().unwrap();
    let road_warrior = ConnDef {
        name: "rw".into(),
        local: vip,
        remote: Remote::Any,
        local_subnet: None,
        remote_subnet: None,
        local_port: None,
        remote_port: None,
        mode: ConnMode::Transport,
        auth: ConnAuth::Psk {
            local: Identity::Address(vip),
            remote: None,
        },
        on_failure: Shunt::Drop,
        while_negotiating: Shunt::Drop,
        install: Install::Listen,
        dead_peer: DeadPeer::Forget,
        retry_forever: false,
        updown: false,
        initial_contact: false,
        priority: None,
    };
    // charon sends INITIAL_CONTACT only toward a configured remote identity.
    let known = ConnDef {
        name: "rw-to-192.0.2.3".into(),
        remote: Remote::Host(client),
        auth: ConnAuth::Psk {
            local: Identity::Address(vip),
            remote: Some(Identity::Address(client)),
        },
        initial_contact: true,
        ..road_warrior.clone()
    };
    let at_client = ConnDef {
        name: "tovip".into(),
        local: client,
        remote: Remote::Host(vip),
        auth: ConnAuth::Psk {
            local: Identity::Address(client),
            remote: Some(Identity::Address(vip)),
        },
        ..road_warrior.clone()
    };
    let mut vc = cc.client();
    let owners = ["192.0.2.3".to_string(), "192.0.2.100".to_string()];
    vc.load_shared("k", &owners, key, soon()).unwrap();
    vc.request(
        "load-conn",
        load_conn(&at_client, &|_| Err("no certificates here".into())).unwrap(),
        soon(),
    )
    .unwrap();
    VipAndClient {
        ca,
        cc,
        ta,
        _tc: tc,
        a,
        _c: c,
        road_warrior,
        known,
    }
}

/// Whether C's charon has authenticated A with the pre-shared key.
fn client_authenticated_vip(cc: &Charon) -> bool {
    cc.log()
        .contains("authentication of '192.0.2.100' with pre-shared key successful")
}

/// The conns vipsec generates, in strongSwan's words, negotiate: the VIP's node (A)
/// listens for any client and initiates toward a known one (C), which only listens.
/// This kernel has no ESP, so only the IKE SA can come up (the Child SA's install
/// fails): the IKE SA, authenticated with a binary pre-shared key given over VICI, is
/// what is checked.
#[test]
fn generated_conns_negotiate_between_two_charons() {
    let Some(root) = strongswan_root() else {
        return;
    };
    let key = Secret::from_bytes(b"\x00binary\xffkey with a NUL".to_vec());
    // Bound whole: its namespaces and directories must live as long as the test.
    let pair = vip_and_client(&root, "vici", &key);
    let (ca, cc, road_warrior, known) = (&pair.ca, &pair.cc, &pair.road_warrior, &pair.known);
    let owners = ["192.0.2.100".to_string(), "192.0.2.3".to_string()];
    let mut va = ca.client();
    va.load_shared("k", &owners, &key, soon()).unwrap();
    for conn in [road_warrior, known] {
        va.request(
            "load-conn",
            load_conn(conn, &|_| Err("no certificates here".into())).unwrap(),
            soon(),
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}\n{}", conn.name, ca.log()));
    }
    let mut vc = cc.client();
    let version = va.request("version", Message::new(), soon()).unwrap();
    let keeps_ike_sa = version.str("version").is_some_and(|v| v.starts_with("5."));
    // Only the IKE SA can come up here; the answer about the Child SA does not matter.
    let _ = va.request(
        "initiate",
        Message::new()
            .with("child", known.name.as_str())
            .with("ike", known.name.as_str())
            .with("timeout", "5000"),
        Instant::now() + Duration::from_secs(10),
    );
    let established = |v: &mut Client, conn: &str| {
        let sas = list_sas(v, conn);
        // The backend's own reading of charon's answer: an IKE SA of this conn, up.
        vipsec::ike::strongswan_status::established(&sas, conn)
            .iter()
            .any(|sa| sa.kind == vipsec::ike::SaKind::Ike)
    };
    // Without ESP in the kernel, 6.0 answers IKE_AUTH with NO_PROPOSAL_CHOSEN alone once
    // the Child SA's install failed, and the initiator drops the IKE SA; 5.9 keeps it.
    // Either way C must have authenticated A with the key given over VICI.
    let t0 = Instant::now();
    loop {
        if established(&mut va, &known.name) && established(&mut vc, "tovip") {
            break;
        }
        // Without ESP: C's kernel refused the Child SA after C authenticated A (6.0
        // then drops the IKE SA; 5.9 keeps it, so there it must be seen up).
        if !keeps_ike_sa
            && client_authenticated_vip(cc)
            && cc.log().contains("unable to add SAD entry")
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no IKE SA between A and C; A's log:\n{}\nC's log:\n{}",
            ca.log(),
            cc.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(client_authenticated_vip(cc), "C's log:\n{}", cc.log());
    // A, initiating from the known client's conn, told C to drop stale SAs.
    assert!(
        ca.log().contains("N(INIT_CONTACT)"),
        "A sent no INITIAL_CONTACT; A's log:\n{}",
        ca.log()
    );
}

/// What the strongSwan backend will rely on, checked on the real daemon: an initiate
/// that returns at once while the negotiation goes on in charon (the counterpart of
/// `whack --initiate --asynchronous`), terminating one IKE SA by its unique id, and
/// forgetting a key by the id it was loaded under.
#[test]
fn initiate_without_waiting_terminate_and_unload_a_key() {
    let Some(root) = strongswan_root() else {
        return;
    };
    let (_ns, tmp, charon) = lone_charon(&root, "vicii");
    let mut c = charon.client();
    let key = Secret::from_bytes(b"a key nobody at 192.0.2.2 will ever check".to_vec());
    let owners = ["192.0.2.1".to_string(), "192.0.2.2".to_string()];
    c.load_shared("vipsec-k", &owners, &key, soon()).unwrap();
    c.request("load-conn", psk_conn("pair"), soon()).unwrap();

    // Nobody answers at 192.0.2.2: a blocking initiate would take charon's whole
    // retransmission schedule. With a short timeout the call returns, the attempt stays.
    let t0 = Instant::now();
    let r = c.request(
        "initiate",
        Message::new()
            .with("child", "pair")
            .with("ike", "pair")
            .with("timeout", "100"),
        soon(),
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let e = r.expect_err("an initiate that timed out is reported as such");
    // charon's words for it, 5.9 and 6.0 alike.
    assert!(e.reason().contains("not established after 100ms"), "{e:?}");
    let sas = list_sas(&mut c, "pair");
    let ids: Vec<String> = sas
        .iter()
        .filter_map(|m| m.section("pair"))
        .filter_map(|sa| sa.str("uniqueid").map(String::from))
        .collect();
    assert_eq!(ids.len(), 1, "the attempt goes on in charon: {sas:?}");

    // Terminating that IKE SA by its id (what `delete_state` will do).
    c.request(
        "terminate",
        Message::new()
            .with("ike-id", ids[0].as_str())
            .with("force", "yes")
            .with("timeout", "-1"),
        soon(),
    )
    .unwrap();
    let sas = list_sas(&mut c, "pair");
    assert!(
        sas.iter().all(|m| m.section("pair").is_none()),
        "still there: {sas:?}"
    );
    // An SA can go between a stop's listing and its terminate (its peer deleted it, or a
    // duplicate was replaced). charon refuses the terminate; the backend's is done.
    let again = Message::new()
        .with("ike-id", ids[0].as_str())
        .with("timeout", "-1");
    let e = c.request("terminate", again, soon()).expect_err("gone");
    assert!(e.reason().contains("no matching"), "{e:?}");
    let be =
        vipsec::ike::strongswan::Strongswan::new(&charon.socket, &tmp.path().join("run"), false);
    let serial: u64 = ids[0].parse().unwrap();
    vipsec::ike::IkeBackend::delete_state(&be, serial, soon()).unwrap();

    // The key goes by its id (get-shared lists the ids), and a second unload is not an
    // error: a stop that runs twice finds nothing to undo.
    let ids = |c: &mut Client| {
        let r = c.request("get-shared", Message::new(), soon()).unwrap();
        r.list("keys")
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&mut c), ["vipsec-k"]);
    c.request(
        "unload-shared",
        Message::new().with("id", "vipsec-k"),
        soon(),
    )
    .unwrap();
    assert!(ids(&mut c).is_empty());
    c.request(
        "unload-shared",
        Message::new().with("id", "vipsec-k"),
        soon(),
    )
    .unwrap();
}

/// Runs `f` on a thread of its own inside namespace `ns` (netlink reads, e.g. the
/// backend's look at local addresses, see that namespace's interfaces).
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// The strongSwan backend, driven as the agents drive a backend: generated conns and a
/// key written and loaded, the conn seen Ready where its address is, a known client
/// initiated without waiting, everything taken back by remove_generated.
#[test]
fn the_strongswan_backend_loads_serves_and_removes_generated_conns() {
    use vipsec::config::ConnName;
    use vipsec::ike::spec::PskEntry;
    use vipsec::ike::strongswan::Strongswan;
    use vipsec::ike::{ConnState, IkeBackend};
    let Some(root) = strongswan_root() else {
        return;
    };
    let key = b"backend key \x00\x01\x02 0123456789".to_vec();
    let pair = vip_and_client(&root, "vicb", &Secret::from_bytes(key.clone()));
    let (ca, cc, ta, a) = (&pair.ca, &pair.cc, &pair.ta, &pair.a);
    let vip: IpAddr = "192.0.2.100".parse().unwrap();

    let socket = ca.socket.clone();
    let run_dir = ta.path().join("run");
    let conns = vec![pair.road_warrior.clone(), pair.known.clone()];
    let key_a = key.clone();
    let (files, status, names, t_initiate) = in_netns(a, move || {
        let be = Strongswan::new(&socket, &run_dir, false);
        let files = be.generated_files("vipsec-vip-tunnel", &run_dir);
        let keys = [PskEntry {
            local: Identity::Address(vip),
            remote: None,
            key: Secret::from_bytes(key_a),
        }];
        be.write_conns(&conns, Some(&keys), &files, soon()).unwrap();
        be.load_all(&files.conn, soon()).unwrap();
        let names = be.generated_conns(&files.conn);
        let status = be
            .conn_status(&ConnName::parse("conn", "rw").unwrap(), soon())
            .unwrap();
        let t0 = Instant::now();
        be.initiate_async(&ConnName::parse("conn", "rw-to-192.0.2.3").unwrap(), soon())
            .unwrap();
        (files, status, names, t0.elapsed())
    });
    assert_eq!(names, ["rw", "rw-to-192.0.2.3"]);
    assert_eq!(status.state, ConnState::Ready, "{status:?}");
    // Seen from a namespace without the VIP (this test's own), the same conn cannot be
    // served here: Loaded.
    let elsewhere = Strongswan::new(&ca.socket, &ta.path().join("run"), false)
        .conn_status(&ConnName::parse("conn", "rw").unwrap(), soon())
        .unwrap();
    assert_eq!(elsewhere.state, ConnState::Loaded, "{elsewhere:?}");
    assert!(t_initiate < Duration::from_secs(2), "{t_initiate:?}");
    let mode = fs::metadata(&files.conn).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    // The key charon was given under the instance's id authenticates A to C.
    let t0 = Instant::now();
    while !client_authenticated_vip(cc) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "C never authenticated A; A's log:\n{}\nC's log:\n{}",
            ca.log(),
            cc.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Everything taken back: conns, key, file.
    let socket = ca.socket.clone();
    let run_dir = ta.path().join("run");
    let files2 = files.clone();
    let after = in_netns(a, move || {
        let be = Strongswan::new(&socket, &run_dir, false);
        be.remove_generated(&files2, soon()).unwrap();
        be.conn_status(&ConnName::parse("conn", "rw").unwrap(), soon())
            .unwrap()
    });
    assert_eq!(after.state, ConnState::Absent);
    assert!(!files.conn.exists());
    let mut va = ca.client();
    let ids = va.request("get-shared", Message::new(), soon()).unwrap();
    assert!(ids.list("keys").is_empty(), "{ids:?}");
    let (left, _) = va
        .streamed("list-conns", "list-conn", Message::new(), soon())
        .unwrap();
    assert!(
        left.iter().all(|m| m.sections().next().is_none()),
        "{left:?}"
    );
}

/// A VICI socket a local user serves is never sent a byte, keys least of all: one in a
/// directory the user owns (what a `vicisocket` in /tmp or a home directory is), and one
/// the user's server listens on from a root-owned place (moved there: only the peer's
/// credentials tell). The VIP agent's start, run from strongSwan's root, refuses (6,
/// naming vicisocket).
#[test]
fn keys_go_to_no_vici_socket_a_user_serves() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;
    const VIP: &str = "198.51.100.33";
    let Some(root) = strongswan_root() else {
        return;
    };
    let ns = Netns::in_root("vfake", &root);
    ns.veth("v0", "v1", true);
    ns.ip(&format!("addr add {VIP}/24 dev v0"));
    let tmp = tempfile::tempdir().unwrap();
    let psk = tmp.path().join("psk");
    fs::write(&psk, "vipsec-test-key-not-secret-fake-vici").unwrap();
    fs::set_permissions(&psk, fs::Permissions::from_mode(0o600)).unwrap();
    let home = tempfile::Builder::new()
        .prefix("vipsec-nobody")
        .tempdir_in("/tmp")
        .unwrap();
    common::must(&format!("chown nobody: {}", home.path().display()));
    let private = tmp.path().join("private");
    fs::create_dir(&private).unwrap();
    let agent = common::OcfAgent::new();

    for moved in [false, true] {
        let bound = home.path().join(format!("vici{moved}"));
        let mut server = ns
            .host_cmd("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .args(["nc", "-lU"])
            .arg(&bound)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !bound.exists() {
            assert!(t0.elapsed() < Duration::from_secs(5), "nc did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        let socket = if moved {
            let to = private.join("charon.vici");
            fs::rename(&bound, &to).unwrap();
            common::must(&format!("chown root: {}", to.display()));
            to
        } else {
            bound
        };
        let mut env = common::env_of(&[
            ("OCF_ROOT", "/usr/lib/ocf"),
            ("OCF_RESOURCE_INSTANCE", "vip-tunnel"),
            ("OCF_RESKEY_CRM_meta_timeout", "5000"),
            ("OCF_RESKEY_tunnel", "rw"),
            ("OCF_RESKEY_vip", VIP),
            ("OCF_RESKEY_ike", "strongswan"),
            ("OCF_RESKEY_auth", "psk"),
        ]);
        for (k, v) in [
            ("OCF_RESKEY_vicisocket", socket.clone()),
            ("OCF_RESKEY_psk_file", psk.clone()),
            ("HA_RSCTMP", tmp.path().join(format!("state{moved}"))),
            (common::RUN_DIR, tmp.path().join(format!("run{moved}"))),
        ] {
            env.insert(k.into(), v.display().to_string());
        }
        let r = common::Run::from(
            common::ocf_command(&agent.path, "start", Some(&ns), &env)
                .output()
                .unwrap(),
        );
        // Whatever reached the server (nc prints it), once it is gone.
        let _ = std::os::unix::net::UnixStream::connect(&socket);
        let t0 = Instant::now();
        while server.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.kill();
        let got = server.wait_with_output().unwrap().stdout;
        assert_eq!(r.code, 6, "start with a user's VICI socket: {}", r.stderr);
        assert!(r.reasons()[0].starts_with("vicisocket: "), "{}", r.stderr);
        let why = if moved {
            "served by uid"
        } else {
            "owned by uid"
        };
        assert!(r.reasons()[0].contains(why), "{}", r.stderr);
        assert!(
            got.is_empty(),
            "the user's server received {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}
