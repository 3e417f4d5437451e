//! A real DNS server for tests: Debian's named on 127.0.0.1 (high port) serving zones
//! signed at test time (one tampered after signing, one with expired signatures) and an
//! unsigned one, all delegated from a signed parent `test.` (DS records for the signed
//! zones, none for the unsigned one: a validated chain proves it unsigned), with the
//! zones' keys as trust anchor (and a wrong anchor).

use super::*;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Named {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub anchor: PathBuf,
    pub wrong_anchor: PathBuf,
    netns: Option<String>,
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    // A port free for both UDP and TCP on 127.0.0.1.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if port > 20000 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Zones signed with other algorithms than the main zone's (ECDSA P-256, NSEC), and one
/// with NSEC3: (zone, dnssec-keygen algorithm, dnssec-signzone options). Each holds
/// `host` at 192.0.2.60 and `other` at 192.0.2.61.
pub const OTHER_ZONES: &[(&str, &str, &str)] = &[
    ("rsa.test", "RSASHA256 -b 2048", ""),
    ("ed25519.test", "ED25519", ""),
    ("p384.test", "ECDSAP384SHA384", ""),
    ("nsec3.test", "ECDSAP256SHA256", "-3 - -H 0"),
];

fn sign(dir: &Path, zone: &str, body: &str, extra: &str) -> String {
    sign_with(dir, zone, "ECDSAP256SHA256", body, extra)
}

fn sign_with(dir: &Path, zone: &str, alg: &str, body: &str, extra: &str) -> String {
    let keys = dir.join(format!("keys-{zone}"));
    std::fs::create_dir_all(&keys).unwrap();
    let k = keys.display();
    must(&format!("cd {k} && dnssec-keygen -q -a {alg} -f KSK -n ZONE {zone} >/dev/null && dnssec-keygen -q -a {alg} -n ZONE {zone} >/dev/null"));
    let zonefile = format!(
        "$TTL 300\n@ IN SOA ns.{zone}. admin.{zone}. 1 3600 600 86400 300\n@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n{body}"
    );
    std::fs::write(keys.join("zone"), zonefile).unwrap();
    must(&format!("cd {k} && cat zone K*.key > tosign && dnssec-signzone -q -K . -o {zone} -N INCREMENT {extra} -f signed tosign >/dev/null"));
    must(&format!("grep -h DNSKEY {k}/K*.key | grep -v '^;'"))
}

impl Named {
    pub fn start() -> Named {
        Named::start_in(None)
    }

    /// named on 127.0.0.1 of `netns` (the host's when None).
    pub fn start_in(netns: Option<&Netns>) -> Named {
        Named::start_on(netns, "127.0.0.1")
    }

    /// named on `listen` (an IPv4 address of `netns`), on a port of its own.
    pub fn start_on(netns: Option<&Netns>, listen: &str) -> Named {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let many: String = (1..=100)
            .map(|i| format!("p{i} IN A 198.51.100.{i}\n"))
            .collect();
        let mut anchor = sign(
            d,
            "example.test",
            &format!("good IN A 192.0.2.10\ngood IN AAAA 2001:db8::10\nelsewhere IN A 192.0.2.99\nv6only IN AAAA 2001:db8::20\ntamper IN A 192.0.2.30\nn1 IN A 192.0.2.1\nn2 IN A 192.0.2.2\nn3 IN A 192.0.2.3\nclient IN A 192.0.2.41\nimpostor IN A 192.0.2.99\nalias IN CNAME good\n{many}"),
            "",
        );
        anchor.push_str(&sign(
            d,
            "expired.test",
            "host IN A 192.0.2.50\n",
            "-P -s 20200101000000 -e 20200201000000",
        ));
        let mut other_zones = String::new();
        for (zone, alg, extra) in OTHER_ZONES {
            anchor.push_str(&sign_with(
                d,
                zone,
                alg,
                "host IN A 192.0.2.60\nother IN A 192.0.2.61\n",
                extra,
            ));
            other_zones.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{}/keys-{zone}/signed\"; }};\n",
                d.display()
            ));
        }
        // Tamper with one record after signing: its signature no longer matches.
        let signed = d.join("keys-example.test/signed");
        let text = std::fs::read_to_string(&signed).unwrap();
        assert!(text.contains("192.0.2.30"));
        std::fs::write(&signed, text.replace("192.0.2.30", "192.0.2.31")).unwrap();
        // The parent: a delegation (with DS, from each child's key-signing key) to every
        // signed zone, and one without DS to unsigned.test — its NSEC proves no DS there.
        let mut parent = String::new();
        for zone in ["example.test", "expired.test", "unsigned.test"]
            .into_iter()
            .chain(OTHER_ZONES.iter().map(|z| z.0))
        {
            parent.push_str(&format!(
                "{zone}. IN NS ns.{zone}.\nns.{zone}. IN A 127.0.0.1\n"
            ));
            if zone != "unsigned.test" {
                parent.push_str(&must(&format!(
                    "cd {}/keys-{zone} && for k in K*.key; do grep -q 'DNSKEY 257' $k && dnssec-dsfromkey -2 $k; done; true",
                    d.display()
                )));
                parent.push('\n');
            }
        }
        anchor.push_str(&sign(d, "test", &parent, ""));
        std::fs::write(d.join("unsigned.zone"), "$TTL 300\n@ IN SOA ns.unsigned.test. a.unsigned.test. 1 3600 600 86400 300\n@ IN NS ns.unsigned.test.\nns IN A 127.0.0.1\nhost IN A 192.0.2.40\nn3 IN A 192.0.2.3\n").unwrap();
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
            "options {{ directory \"{dir}\"; listen-on port {port} {{ {listen}; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; pid-file none; }};\n\
zone \"test\" {{ type primary; file \"{dir}/keys-test/signed\"; }};\n\
zone \"example.test\" {{ type primary; file \"{dir}/keys-example.test/signed\"; }};\n\
zone \"expired.test\" {{ type primary; file \"{dir}/keys-expired.test/signed\"; }};\n\
zone \"unsigned.test\" {{ type primary; file \"{dir}/unsigned.zone\"; }};\n{other_zones}",
            dir = d.display()
        );
        std::fs::write(d.join("named.conf"), conf).unwrap();
        let mut cmd = match netns {
            Some(ns) => ns.host_cmd("named"),
            None => Command::new("named"),
        };
        let child = cmd
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
            netns: netns.map(|n| n.name.clone()),
        };
        let t0 = Instant::now();
        let prefix = named
            .netns
            .as_ref()
            .map(|n| format!("ip netns exec {n} "))
            .unwrap_or_default();
        while !sh(&format!("{prefix}dig +short +time=1 +tries=1 -p {port} @{listen} good.example.test A | grep -q 192.0.2.10")).status.success() {
            assert!(t0.elapsed() < Duration::from_secs(15), "named did not come up:\n{}", std::fs::read_to_string(named.dir.path().join("named.log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
        named
    }

    /// Removes `owner`'s records from the signed `zone`, signs it again with its own keys
    /// and has named load it: a secure NXDOMAIN from then on. (named on 127.0.0.1.)
    pub fn remove_records(&self, zone: &str, owner: &str) {
        let keys = self.dir.path().join(format!("keys-{zone}"));
        let text = std::fs::read_to_string(keys.join("zone")).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{owner} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            kept.lines().count() < text.lines().count(),
            "{owner} not in {zone}"
        );
        // A higher serial, so named sees a new zone.
        std::fs::write(keys.join("zone"), kept.replacen(" 1 3600 ", " 7 3600 ", 1)).unwrap();
        must(&format!("cd {} && cat zone K*.key > tosign && dnssec-signzone -q -K . -o {zone} -N INCREMENT -f signed tosign >/dev/null", keys.display()));
        must(&format!("kill -HUP {}", self.child.id()));
        let prefix = self
            .netns
            .as_ref()
            .map(|n| format!("ip netns exec {n} "))
            .unwrap_or_default();
        let t0 = Instant::now();
        while !must(&format!(
            "{prefix}dig +time=1 +tries=1 -p {} @127.0.0.1 {owner}.{zone} A || true",
            self.port
        ))
        .contains("NXDOMAIN")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "named did not reload {zone}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn check(
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

/// How the hostile resolver rewrites an answer.
#[derive(Clone)]
pub enum Forgery {
    /// Answers for `.0` also carry the records (with their signatures) the real server
    /// gives for `.1`: another member of the zone's own, validly signed RRset.
    AppendRecordsOf(&'static str, &'static str),
    /// Answers for `.0` start with an unsigned CNAME to `.1`, followed by `.1`'s real,
    /// signed records.
    UnsignedCname(&'static str, &'static str),
    /// Answers for `.0` lose every RRSIG (in every section): the records
    /// are the real ones, but nothing proves it — an attacker who can damage answers but
    /// not forge them.
    StripSignatures(&'static str),
}

/// A resolver between vipsec and the real named that forges answers (the README says a
/// resolver need not validate: vipsec must not trust it). UDP only, on 127.0.0.1 of the
/// host or of a namespace (with the named it forwards to); stops on drop.
pub struct HostileResolver {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileResolver {
    pub fn start(upstream: u16, forgeries: Vec<Forgery>) -> HostileResolver {
        HostileResolver::start_in(None, upstream, forgeries)
    }

    pub fn start_in(
        netns: Option<&Netns>,
        upstream: u16,
        forgeries: Vec<Forgery>,
    ) -> HostileResolver {
        use hickory_resolver::proto::op::{Edns, Message, Query};
        use hickory_resolver::proto::rr::{rdata::CNAME, Name, RData, Record};
        let netns = netns.map(|n| format!("/var/run/netns/{}", n.name));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let ask = move |bytes: &[u8]| -> Option<Vec<u8>> {
            let up = UdpSocket::bind("127.0.0.1:0").ok()?;
            up.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            up.send_to(bytes, ("127.0.0.1", upstream)).ok()?;
            let mut buf = vec![0u8; 65535];
            let n = up.recv(&mut buf).ok()?;
            buf.truncate(n);
            Some(buf)
        };
        // The real server's answer records (with RRSIGs) for NAME of the query's type.
        let records_of = move |name: &str, query: &Query| -> Vec<Record> {
            let mut m = Message::query();
            m.metadata.id = 4242;
            m.add_query(Query::query(
                Name::from_ascii(name).unwrap(),
                query.query_type(),
            ));
            let mut edns = Edns::new();
            edns.set_dnssec_ok(true).set_max_payload(4096);
            m.set_edns(edns);
            ask(&m.to_vec().unwrap())
                .and_then(|r| Message::from_vec(&r).ok())
                .map(|r| r.answers)
                .unwrap_or_default()
        };
        let thread = std::thread::spawn(move || {
            // This thread (and the sockets it opens) in the namespace: setns is per thread.
            if let Some(path) = netns {
                let file = std::fs::File::open(path).unwrap();
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            }
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            tx.send(sock.local_addr().unwrap().port()).unwrap();
            let mut buf = vec![0u8; 65535];
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Some(reply) = ask(&buf[..n]) else {
                    continue;
                };
                let (Ok(query), Ok(mut answer)) =
                    (Message::from_vec(&buf[..n]), Message::from_vec(&reply))
                else {
                    let _ = sock.send_to(&reply, from);
                    continue;
                };
                if let Some(q) = query.queries.first().cloned() {
                    let asked = q
                        .name()
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    for f in &forgeries {
                        match f {
                            Forgery::AppendRecordsOf(target, other) if asked == *target => {
                                let extra = records_of(other, &q);
                                answer.answers.extend(extra);
                            }
                            Forgery::UnsignedCname(target, other) if asked == *target => {
                                let cname = Record::from_rdata(
                                    q.name().clone(),
                                    300,
                                    RData::CNAME(CNAME(
                                        Name::from_ascii(format!("{other}.")).unwrap(),
                                    )),
                                );
                                let mut forged = vec![cname];
                                forged.extend(records_of(other, &q));
                                answer.answers = forged;
                            }
                            Forgery::StripSignatures(target) if asked == *target => {
                                answer.answers.retain(|r| !r.record_type().is_rrsig());
                                answer.authorities.retain(|r| !r.record_type().is_rrsig());
                                answer.additionals.retain(|r| !r.record_type().is_rrsig());
                            }
                            _ => {}
                        }
                    }
                }
                let bytes = answer.to_vec().unwrap_or(reply);
                let _ = sock.send_to(&bytes, from);
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the hostile resolver is listening");
        HostileResolver {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostileResolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
