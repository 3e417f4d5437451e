//! DNSSEC checks against a real signed zone: Debian's named on 127.0.0.1 (high port),
//! zones signed at test time with dnssec-keygen/dnssec-signzone, the zones' own keys as
//! trust anchor. Each case asserts the verdict and the exit code of `vipsec check-dns`.

mod common;
use common::*;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Named {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    anchor: PathBuf,
    wrong_anchor: PathBuf,
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    // A port free for both UDP and TCP on 127.0.0.1.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if port > 20000 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn sign(dir: &Path, zone: &str, body: &str, extra: &str) -> String {
    let keys = dir.join(format!("keys-{zone}"));
    std::fs::create_dir_all(&keys).unwrap();
    let k = keys.display();
    must(&format!("cd {k} && dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -n ZONE {zone} >/dev/null && dnssec-keygen -q -a ECDSAP256SHA256 -n ZONE {zone} >/dev/null"));
    let zonefile = format!(
        "$TTL 300\n@ IN SOA ns.{zone}. admin.{zone}. 1 3600 600 86400 300\n@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n{body}"
    );
    std::fs::write(keys.join("zone"), zonefile).unwrap();
    must(&format!("cd {k} && cat zone K*.key > tosign && dnssec-signzone -q -K . -o {zone} -N INCREMENT {extra} -f signed tosign >/dev/null"));
    must(&format!("grep -h DNSKEY {k}/K*.key | grep -v '^;'"))
}

impl Named {
    fn start() -> Named {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut anchor = sign(
            d,
            "example.test",
            "good IN A 192.0.2.10\ngood IN AAAA 2001:db8::10\nelsewhere IN A 192.0.2.99\nv6only IN AAAA 2001:db8::20\ntamper IN A 192.0.2.30\n",
            "",
        );
        anchor.push_str(&sign(
            d,
            "expired.test",
            "host IN A 192.0.2.50\n",
            "-P -s 20200101000000 -e 20200201000000",
        ));
        // Tamper with one record after signing: its signature no longer matches.
        let signed = d.join("keys-example.test/signed");
        let text = std::fs::read_to_string(&signed).unwrap();
        assert!(text.contains("192.0.2.30"));
        std::fs::write(&signed, text.replace("192.0.2.30", "192.0.2.31")).unwrap();
        std::fs::write(d.join("unsigned.zone"), "$TTL 300\n@ IN SOA ns.unsigned.test. a.unsigned.test. 1 3600 600 86400 300\n@ IN NS ns.unsigned.test.\nns IN A 127.0.0.1\nhost IN A 192.0.2.40\n").unwrap();
        let anchor_path = d.join("anchor.key");
        std::fs::write(&anchor_path, &anchor).unwrap();
        // A well-formed anchor for a key the zone does not use.
        let other = d.join("other");
        std::fs::create_dir_all(&other).unwrap();
        must(&format!(
            "cd {} && dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -n ZONE example.test >/dev/null",
            other.display()
        ));
        let wrong = must(&format!(
            "grep -h DNSKEY {}/K*.key | grep -v '^;'",
            other.display()
        ));
        let wrong_anchor = d.join("wrong.key");
        std::fs::write(&wrong_anchor, wrong).unwrap();

        let port = free_port();
        let conf = format!(
            "options {{ directory \"{dir}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; pid-file none; }};\n\
zone \"example.test\" {{ type primary; file \"{dir}/keys-example.test/signed\"; }};\n\
zone \"expired.test\" {{ type primary; file \"{dir}/keys-expired.test/signed\"; }};\n\
zone \"unsigned.test\" {{ type primary; file \"{dir}/unsigned.zone\"; }};\n",
            dir = d.display()
        );
        std::fs::write(d.join("named.conf"), conf).unwrap();
        let child = Command::new("named")
            .args(["-g", "-u", "root", "-n", "1", "-c"])
            .arg(d.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("named.log")).unwrap())
            .spawn()
            .expect("named (bind9) is installed");
        let named = Named {
            child,
            port,
            anchor: anchor_path,
            wrong_anchor,
            dir,
        };
        let t0 = Instant::now();
        while !sh(&format!("dig +short +time=1 +tries=1 -p {port} @127.0.0.1 good.example.test A | grep -q 192.0.2.10")).status.success() {
            assert!(t0.elapsed() < Duration::from_secs(15), "named did not come up:\n{}", std::fs::read_to_string(named.dir.path().join("named.log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        named
    }

    fn check(
        &self,
        name: &str,
        address: &str,
        anchor: &Path,
        resolver: Option<String>,
    ) -> (Run, serde_json::Value) {
        let resolver = resolver.unwrap_or_else(|| format!("127.0.0.1:{}", self.port));
        let run = Run::from(
            Command::new(vipsec_bin())
                .args([
                    "check-dns",
                    "--json",
                    "--timeout",
                    "3s",
                    "--peer",
                    name,
                    "--address",
                    address,
                    "--resolver",
                    &resolver,
                ])
                .arg("--dnssec-anchor")
                .arg(anchor)
                .output()
                .unwrap(),
        );
        let v = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
        (run, v)
    }
}

#[test]
fn verdicts_against_a_signed_zone() {
    let named = Named::start();
    let a = named.anchor.clone();
    let cases: &[(&str, &str, &str, &Path, bool, &str)] = &[
        (
            "secure and matching",
            "good.example.test",
            "192.0.2.10",
            &a,
            true,
            "securely resolves to 192.0.2.10",
        ),
        (
            "secure, IPv6 peer with AAAA",
            "good.example.test",
            "2001:db8::10",
            &a,
            true,
            "securely resolves",
        ),
        (
            "secure, only AAAA records",
            "v6only.example.test",
            "2001:db8::20",
            &a,
            true,
            "securely resolves",
        ),
        (
            "secure but the address differs",
            "elsewhere.example.test",
            "192.0.2.10",
            &a,
            false,
            "securely resolves to 192.0.2.99, not to 192.0.2.10",
        ),
        (
            "unsigned zone",
            "host.unsigned.test",
            "192.0.2.40",
            &a,
            false,
            "",
        ),
        (
            "expired signatures",
            "host.expired.test",
            "192.0.2.50",
            &a,
            false,
            "",
        ),
        (
            "record tampered after signing",
            "tamper.example.test",
            "192.0.2.31",
            &a,
            false,
            "",
        ),
        (
            "wrong trust anchor",
            "good.example.test",
            "192.0.2.10",
            &named.wrong_anchor,
            false,
            "",
        ),
        (
            "name does not exist",
            "nope.example.test",
            "192.0.2.10",
            &a,
            false,
            "",
        ),
    ];
    for (what, name, addr, anchor, accepted, says) in cases {
        let (run, v) = named.check(name, addr, anchor, None);
        assert_eq!(run.code, if *accepted { 0 } else { 1 }, "{what}: {run:?}");
        assert_eq!(v["accepted"], *accepted, "{what}: {run:?}");
        assert!(
            v["reason"].as_str().unwrap_or("").contains(says),
            "{what}: {run:?}"
        );
        if !accepted {
            assert_eq!(run.reasons().len(), 1, "{what}: {run:?}");
        }
    }
    // Every address of both families is reported.
    let (_, v) = named.check("good.example.test", "192.0.2.10", &a, None);
    assert_eq!(
        v["addresses"],
        serde_json::json!(["192.0.2.10", "2001:db8::10"])
    );
    assert_eq!(v["secure"], true);
}

#[test]
fn a_resolver_that_does_not_answer_is_refused_in_time() {
    let named = Named::start();
    // A UDP port nobody answers on.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let t0 = Instant::now();
    let (run, v) = named.check(
        "good.example.test",
        "192.0.2.10",
        &named.anchor,
        Some(format!("127.0.0.1:{port}")),
    );
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(v["accepted"], false);
}

#[test]
fn check_dns_is_fast_on_a_warm_local_server() {
    let named = Named::start();
    let mut times = Vec::new();
    for _ in 0..15 {
        let t0 = Instant::now();
        let (run, _) = named.check("good.example.test", "192.0.2.10", &named.anchor, None);
        times.push(t0.elapsed());
        assert_eq!(run.code, 0);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("check-dns median over 15 runs: {median:?}");
    assert!(median < Duration::from_millis(200), "median {median:?}");
}
