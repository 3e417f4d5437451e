//! ocf:vipsec:ipsec in a real Pacemaker cluster, managed with pcs, the way TripleO used
//! ocf:heartbeat:ipsec: an IPaddr2 VIP, the tunnel colocated with it and ordered after it.

mod common;
use common::cluster::{Cluster, NODE};
use common::*;
use std::time::Duration;

const VIP: &str = "192.0.2.100";

/// One cluster at a time: they share /var/lib/pacemaker.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn vip_tunnel_lives_and_recovers_under_pacemaker() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    install_agent();
    let ns = Netns::new("pk");
    ns.veth("v0", "v1", true);
    ns.ip("addr add 192.0.2.1/24 dev v0");
    let tmp = tempfile::tempdir().unwrap();
    let mut pluto = Pluto::start(&ns, &tmp.path().join("pluto"));
    pluto.add_conn_file("rw.conf", &Lab::road_warrior_conn("rw", VIP));
    pluto.add_conn_file("rw-back.conf", "conn rw-back\n\tleft=192.0.2.1\n\tright=192.0.2.100\n\tauthby=secret\n\tikev2=yes\n\tauto=ignore\n");
    let cluster = Cluster::start(&ns, &tmp.path().join("cluster"));
    let minute = Duration::from_secs(60);

    cluster.must(&format!("pcs resource create vip ocf:heartbeat:IPaddr2 ip={VIP} cidr_netmask=24 nic=v0 op monitor interval=5s"));
    cluster.must(&format!(
        "pcs resource create tun ocf:vipsec:ipsec tunnel=rw vip={VIP} fallbacktunnel=rw-back confdir={} ctlsocket={} op monitor interval=2s --disabled",
        pluto.confdir.display(),
        pluto.ctlsocket.display()
    ));
    cluster.must("pcs constraint colocation add tun with vip INFINITY");
    cluster.must("pcs constraint order vip then tun");
    // Created disabled, enabled once constrained: else the cluster may start it before
    // the VIP (and ban it from the node when that start fails).
    cluster.must("pcs resource enable tun");
    cluster.wait_role("vip", "Started", minute);
    cluster.wait_role("tun", "Started", minute);
    let oriented = |p: &Pluto| p.oriented("rw");
    assert!(
        oriented(&pluto),
        "pluto does not have rw oriented under the cluster"
    );
    assert!(
        cluster
            .run("crm_mon -1")
            .contains("tun\t(ocf:vipsec:ipsec):\t Started node1")
            || cluster.resource("tun").0 == "Started"
    );

    // pcs resource disable/enable stop and start it.
    cluster.must("pcs resource disable tun");
    cluster.wait_role("tun", "Stopped", minute);
    let status = pluto.whack("--status");
    assert!(!status.contains("\"rw\":"), "rw still loaded after disable");
    assert!(
        status.contains("\"rw-back\":"),
        "stop did not bring up the fallback tunnel:\n{status}"
    );
    cluster.must("pcs resource enable tun");
    cluster.wait_role("tun", "Started", minute);
    assert!(oriented(&pluto));

    // Standby moves everything off the node (stop), unstandby brings it back.
    cluster.must(&format!("pcs node standby {NODE}"));
    cluster.wait_role("tun", "Stopped", minute);
    cluster.wait_role("vip", "Stopped", minute);
    assert!(!pluto.whack("--status").contains("\"rw\":"));
    cluster.must(&format!("pcs node unstandby {NODE}"));
    cluster.wait_role("tun", "Started", minute);
    assert!(oriented(&pluto));
    assert_eq!(cluster.fail_count("tun"), 0);

    // pluto dies behind the cluster's back and comes back empty (as systemd would restart
    // it): the recurring monitor notices, the cluster recovers the resource.
    pluto.kill();
    std::thread::sleep(Duration::from_millis(500));
    pluto.restart();
    cluster.wait_for("the monitor failure to be counted", minute, |c| {
        c.fail_count("tun") >= 1
    });
    cluster.wait_role("tun", "Started", minute);
    cluster.wait_for("rw to be oriented again", minute, |_| oriented(&pluto));
    let failed_ops = cluster.run("crm_mon -1");
    assert!(
        // Pacemaker 2.1 says 'error', 3.0 'Error occurred'; the reason is vipsec's.
        failed_ops.contains("Failed Resource Actions")
            && failed_ops.contains("tun 2s-interval monitor on node1 returned '")
            && failed_ops
                .contains("(tunnel rw is not loaded in pluto (pluto was restarted since start)"),
        "{failed_ops}"
    );

    cluster.must("pcs resource cleanup tun");
    cluster.wait_role("tun", "Started", minute);
    assert_eq!(cluster.fail_count("tun"), 0);
}

/// `pcs resource create mesh ocf:vipsec:mesh clone` with no parameters: peers from the
/// running Corosync, key from /etc/corosync/authkey, the distribution's pluto.
#[test]
fn zero_config_mesh_clone_under_pacemaker() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    install_agent();
    if std::os::unix::net::UnixStream::connect(distro_path("/run/pluto/pluto.ctl")).is_ok() {
        println!("skipped: a pluto already listens on /run/pluto/pluto.ctl on this machine; this test starts its own there");
        return;
    }
    let mesh_entry = distro_path("/usr/lib/ocf/resource.d/vipsec/mesh");
    let _ = std::fs::remove_file(&mesh_entry);
    std::os::unix::fs::symlink(INSTALLED_AGENT, &mesh_entry).unwrap();
    // The cluster key pcs would have distributed; made here if the machine has none.
    struct Authkey(bool);
    impl Drop for Authkey {
        fn drop(&mut self) {
            if self.0 {
                let _ = std::fs::remove_file(distro_path("/etc/corosync/authkey"));
            }
        }
    }
    let authkey = distro_path("/etc/corosync/authkey");
    let made = !authkey.exists();
    if made {
        let key: Vec<u8> = (0..256u32).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&authkey, key).unwrap();
        std::fs::set_permissions(
            &authkey,
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )
        .unwrap();
    }
    let _authkey = Authkey(made);
    let ns = Netns::new("pz");
    let tmp = tempfile::tempdir().unwrap();
    let _pluto = Pluto::start_system(&ns, &tmp.path().join("pluto"));
    let cluster = Cluster::start(&ns, &tmp.path().join("cluster"));
    let minute = Duration::from_secs(60);
    cluster.must("pcs resource create mesh ocf:vipsec:mesh clone");
    cluster.wait_role("mesh", "Started", minute);
    // Monitors clean: a one-node cluster has no peer to encrypt to.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(cluster.resource("mesh"), ("Started".to_string(), false));
    assert_eq!(cluster.fail_count("mesh"), 0);
    // It says where the peers and the key came from: the running Corosync (its member's
    // address), the cluster key.
    let state = cluster.must("cat /run/resource-agents/vipsec-mesh*.state");
    assert!(
        state.contains("\"peer_source\": \"corosync-runtime\""),
        "{state}"
    );
    assert!(
        state.contains("\"listed\": [\n    \"node1: 127.0.0.1 (corosync-member)\"\n  ]"),
        "{state}"
    );
    assert!(
        state.contains("\"key_source\": \"corosync authkey\""),
        "{state}"
    );
    cluster.must("pcs resource disable mesh-clone");
    cluster.wait_role("mesh", "Stopped", minute);
    let _ = std::fs::remove_file(&mesh_entry);
}
