//! VIP detection over rtnetlink, in namespaces the test builds: exact addresses only.

mod common;
use common::*;

fn vip(ns: &Netns, addr: &str) -> Run {
    Run::from(
        ns.cmd(vipsec_bin())
            .args(["vip", "--json", "--vip", addr])
            .output()
            .unwrap(),
    )
}

#[track_caller]
fn assert_here(ns: &Netns, addr: &str, iface: &str) {
    let r = vip(ns, addr);
    assert_eq!(
        r.code, 0,
        "{addr} should be local: {} {}",
        r.stdout, r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["local"], true);
    assert_eq!(v["location"]["interface"], iface, "{}", r.stdout);
}

#[track_caller]
fn assert_absent(ns: &Netns, addr: &str) {
    let r = vip(ns, addr);
    assert_eq!(
        r.code, 7,
        "{addr} should not be local: {} {}",
        r.stdout, r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["local"], false);
}

#[test]
fn ipv4_exact_match_and_the_dot_one_trap() {
    let ns = Netns::new("vd");
    ns.veth("v0", "v1", true);
    ns.ip("addr add 192.0.2.1/24 dev v0");
    assert_here(&ns, "192.0.2.1", "v0");
    // A substring match (what ocf:heartbeat:ipsec does with grep) would say yes to these.
    assert_absent(&ns, "192.0.2.10");
    assert_absent(&ns, "192.0.2.100");
    assert_absent(&ns, "92.0.2.1");
    // In the subnet is not on the node.
    assert_absent(&ns, "192.0.2.2");
    ns.ip("addr add 192.0.2.10/32 dev v0");
    assert_here(&ns, "192.0.2.10", "v0");
    // Human output names the interface.
    let r = Run::from(
        ns.cmd(vipsec_bin())
            .args(["vip", "--vip", "192.0.2.10"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        r.stdout.trim(),
        "VIP 192.0.2.10 is configured on this node: v0 (/32)"
    );
}

#[test]
fn vip_on_a_second_interface_and_removed() {
    let ns = Netns::new("vd");
    ns.veth("v0", "v1", true);
    ns.veth("w0", "w1", true);
    ns.ip("addr add 198.51.100.1/24 dev v0");
    ns.ip("addr add 203.0.113.7/24 dev w0");
    assert_here(&ns, "203.0.113.7", "w0");
    assert_here(&ns, "198.51.100.1", "v0");
    ns.ip("addr del 203.0.113.7/24 dev w0");
    assert_absent(&ns, "203.0.113.7");
    // A secondary address on the same interface counts.
    ns.ip("addr add 198.51.100.2/24 dev v0");
    assert_here(&ns, "198.51.100.2", "v0");
}

#[test]
fn ipv6_nodad_tentative_and_exact() {
    let ns = Netns::new("vd");
    ns.veth("v0", "v1", true);
    ns.ip("addr add 2001:db8::1/64 dev v0 nodad");
    assert_here(&ns, "2001:db8::1", "v0");
    assert_here(&ns, "2001:db8:0:0::1", "v0");
    assert_absent(&ns, "2001:db8::10");
    assert_absent(&ns, "2001:db8::");
    // The IPv4 form of a v6 address is not the same address.
    assert_absent(&ns, "0.0.0.1");

    // An interface without carrier keeps new IPv6 addresses tentative: DAD cannot finish,
    // and the kernel will not use them, so neither may we.
    ns.veth("t0", "t1", false);
    ns.ip("addr add 2001:db8:1::5/64 dev t0");
    let flags = must(&format!("ip -n {} -6 addr show dev t0", ns.name));
    assert!(
        flags.contains("tentative"),
        "expected a tentative address:\n{flags}"
    );
    assert_absent(&ns, "2001:db8:1::5");
    // Bring the peer up: DAD completes and the address becomes usable.
    ns.ip("link set t1 up");
    let t0 = std::time::Instant::now();
    while vip(&ns, "2001:db8:1::5").code != 0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "address never left DAD"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_here(&ns, "2001:db8:1::5", "t0");
}

#[test]
fn ipv4_and_ipv6_on_loopback() {
    let ns = Netns::new("vd");
    assert_here(&ns, "127.0.0.1", "lo");
    assert_here(&ns, "::1", "lo");
    assert_absent(&ns, "127.0.0.2");
}

#[test]
fn bad_vip_argument() {
    let ns = Netns::new("vd");
    let r = vip(&ns, "192.0.2.1/32");
    assert_eq!(r.code, 6);
    assert_eq!(r.reasons().len(), 1);
    assert!(r.reasons()[0].starts_with("vip: "), "{}", r.stderr);
}
