//! DNSSEC checks against a real signed zone: Debian's named on 127.0.0.1 (high port),
//! zones signed at test time with dnssec-keygen/dnssec-signzone, the zones' own keys as
//! trust anchor. Each case asserts the verdict and the exit code of `vipsec check-dns`, and
//! whether it is a validated no or a "cannot tell" (only a validated answer may say no).

mod common;
use common::named::Named;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn verdicts_against_a_signed_zone() {
    let named = Named::start();
    let a = named.anchor.clone();
    // (what, name, address, anchor, accepted, cannot tell, what the reason says)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a Path, bool, bool, &'a str);
    let cases: &[Case] = &[
        (
            "secure and matching",
            "good.example.test",
            "192.0.2.10",
            &a,
            true,
            false,
            "securely resolves to 192.0.2.10",
        ),
        (
            "secure, IPv6 peer with AAAA",
            "good.example.test",
            "2001:db8::10",
            &a,
            true,
            false,
            "securely resolves",
        ),
        (
            "secure, only AAAA records",
            "v6only.example.test",
            "2001:db8::20",
            &a,
            true,
            false,
            "securely resolves",
        ),
        (
            "secure but the address differs",
            "elsewhere.example.test",
            "192.0.2.10",
            &a,
            false,
            false,
            "securely resolves to 192.0.2.99, not to 192.0.2.10",
        ),
        (
            "unsigned zone",
            "host.unsigned.test",
            "192.0.2.40",
            &a,
            false,
            false,
            "proven unsigned",
        ),
        (
            "expired signatures",
            "host.expired.test",
            "192.0.2.50",
            &a,
            false,
            true,
            "",
        ),
        (
            "record tampered after signing",
            "tamper.example.test",
            "192.0.2.31",
            &a,
            false,
            true,
            "",
        ),
        (
            "wrong trust anchor",
            "good.example.test",
            "192.0.2.10",
            &named.wrong_anchor,
            false,
            true,
            "",
        ),
        (
            "name does not exist",
            "nope.example.test",
            "192.0.2.10",
            &a,
            false,
            false,
            "",
        ),
    ];
    for (what, name, addr, anchor, accepted, cannot_tell, says) in cases {
        let (run, v) = named.check(name, addr, anchor, None);
        assert_eq!(run.code, if *accepted { 0 } else { 1 }, "{what}: {run:?}");
        assert_eq!(v["accepted"], *accepted, "{what}: {run:?}");
        assert_eq!(v["inconclusive"], *cannot_tell, "{what}: {run:?}");
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

/// Zones signed with RSA/SHA-256, Ed25519 and ECDSA P-384, and one with NSEC3 denial:
/// a matching name is accepted, a name securely resolving elsewhere refused (a no, not an
/// unanswered question), a name that does not exist refused.
#[test]
fn other_algorithms_and_nsec3_are_validated() {
    let named = Named::start();
    let a = named.anchor.clone();
    for (zone, alg, _) in common::named::OTHER_ZONES {
        let host = format!("host.{zone}");
        let (run, v) = named.check(&host, "192.0.2.60", &a, None);
        assert_eq!(
            (run.code, &v["accepted"]),
            (0, &serde_json::json!(true)),
            "{zone} ({alg}): {run:?}"
        );
        assert_eq!(v["secure"], true, "{zone}: {run:?}");
        let (run, v) = named.check(&format!("other.{zone}"), "192.0.2.60", &a, None);
        assert_eq!(run.code, 1, "{zone}: {run:?}");
        assert_eq!(v["inconclusive"], false, "{zone}: {run:?}");
        assert!(
            v["reason"]
                .as_str()
                .unwrap_or("")
                .contains("securely resolves to 192.0.2.61, not to 192.0.2.60"),
            "{zone}: {run:?}"
        );
        let (run, v) = named.check(&format!("nope.{zone}"), "192.0.2.60", &a, None);
        assert_eq!(
            (run.code, &v["accepted"]),
            (1, &serde_json::json!(false)),
            "{zone}: {run:?}"
        );
        assert!(
            v["reason"]
                .as_str()
                .unwrap_or("")
                .contains("does not exist"),
            "{zone}: {run:?}"
        );
    }
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

/// Several resolvers, as resolv.conf lists them: the first one silent, the real one
/// after it: the answer comes from the one that answers, well within the budget.
#[test]
fn a_silent_first_resolver_does_not_hold_the_answer_up() {
    let named = Named::start();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let list = format!(
        "127.0.0.1:{}, 127.0.0.1:{}",
        silent.local_addr().unwrap().port(),
        named.port
    );
    let t0 = Instant::now();
    let (run, v) = named.check("good.example.test", "192.0.2.10", &named.anchor, Some(list));
    let took = t0.elapsed();
    assert_eq!(
        (run.code, &v["accepted"]),
        (0, &serde_json::json!(true)),
        "{run:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // A list with a word that is not an address: one line naming the parameter, 6.
    let (run, _) = named.check(
        "good.example.test",
        "192.0.2.10",
        &named.anchor,
        Some(format!("127.0.0.1:{} ns.example.test", named.port)),
    );
    assert_eq!(run.code, 6, "{run:?}");
    assert!(run.stderr.contains("resolver"), "{run:?}");
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

#[test]
fn a_hundred_names_are_checked_concurrently_within_a_second() {
    let named = Named::start();
    let deadline = Instant::now() + Duration::from_secs(10);
    let resolver = [format!("127.0.0.1:{}", named.port).parse().unwrap()];
    let mut checker = vipsec::dns::Checker::new(&named.anchor, &resolver, deadline).unwrap();
    let names: Vec<String> = (1..=100).map(|i| format!("p{i}.example.test")).collect();
    let t0 = Instant::now();
    let answers = checker.lookup_all(&names, deadline);
    let took = t0.elapsed();
    println!("100 names checked in {took:?}");
    assert_eq!(answers.len(), 100);
    for (i, a) in answers.iter().enumerate() {
        assert!(a.secure && a.problem.is_none(), "{a:?}");
        assert_eq!(
            a.addresses,
            vec![format!("198.51.100.{}", i + 1)
                .parse::<std::net::IpAddr>()
                .unwrap()]
        );
    }
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Answers are reused within one invocation.
    let t1 = Instant::now();
    assert!(checker
        .lookup_all(&names, deadline)
        .iter()
        .all(|a| a.secure));
    assert!(t1.elapsed() < Duration::from_millis(50));
}

/// A resolver on the path forges answers: vipsec must judge only the records that answer
/// the question asked, along a chain that is secure at every link.
#[test]
fn a_hostile_resolver_cannot_lend_a_name_another_hosts_records() {
    use common::named::{Forgery, HostileResolver};
    let named = Named::start();
    let hostile = HostileResolver::start(
        named.port,
        vec![
            // impostor.example.test's own, validly signed A (192.0.2.99) added to every
            // answer for good.example.test.
            Forgery::AppendRecordsOf("good.example.test", "impostor.example.test"),
            // client.example.test answered with a forged, unsigned CNAME to impostor.
            Forgery::UnsignedCname("client.example.test", "impostor.example.test"),
        ],
    );
    let via = Some(format!("127.0.0.1:{}", hostile.port));
    let a = &named.anchor;
    // The extra records are really there and really signed (dig through the forger).
    let dig = common::must(&format!(
        "dig +dnssec +norec -p {} @127.0.0.1 good.example.test A",
        hostile.port
    ));
    assert!(
        dig.contains("impostor.example.test.")
            && dig.contains("192.0.2.99")
            && dig.contains("RRSIG"),
        "{dig}"
    );
    let (r, v) = named.check("good.example.test", "192.0.2.99", a, via.clone());
    assert_eq!(r.code, 1, "another host's record was accepted: {v}");
    assert_eq!(v["accepted"], false, "{v}");
    assert!(!v["addresses"].to_string().contains("192.0.2.99"), "{v}");
    // The real answer still stands.
    let (r, v) = named.check("good.example.test", "192.0.2.10", a, via.clone());
    assert_eq!(r.code, 0, "{v} {}", r.stderr);
    // An unsigned CNAME does not make the impostor's address the client's.
    let (r, v) = named.check("client.example.test", "192.0.2.99", a, via.clone());
    assert_eq!(r.code, 1, "{v}");
    // A CNAME that is part of the signed zone is followed: alias -> good.
    let (r, v) = named.check("alias.example.test", "192.0.2.10", a, via);
    assert_eq!(r.code, 0, "{v} {}", r.stderr);
}

/// An on-path resolver strips the signatures (it can damage answers, not forge them):
/// the records are the real ones, but nothing proves them, so `check-dns` says "cannot
/// tell" — neither accepted nor refused — for a name that resolves to the address, one
/// that resolves elsewhere and one that does not exist. The same questions asked of the
/// real server get their validated answers.
#[test]
fn a_resolver_that_strips_signatures_gets_cannot_tell_not_no() {
    use common::named::{Forgery, HostileResolver};
    let named = Named::start();
    let hostile = HostileResolver::start(
        named.port,
        vec![
            Forgery::StripSignatures("good.example.test"),
            Forgery::StripSignatures("elsewhere.example.test"),
            Forgery::StripSignatures("nope.example.test"),
        ],
    );
    let via = Some(format!("127.0.0.1:{}", hostile.port));
    let a = &named.anchor;
    // The forger really strips them: the records come, no RRSIG with them.
    let dig = common::must(&format!(
        "dig +dnssec +norec -p {} @127.0.0.1 good.example.test A",
        hostile.port
    ));
    assert!(
        dig.contains("192.0.2.10") && !dig.contains("RRSIG"),
        "{dig}"
    );
    for (name, addr, says_directly) in [
        (
            "good.example.test",
            "192.0.2.10",
            "securely resolves to 192.0.2.10",
        ),
        ("elsewhere.example.test", "192.0.2.10", "not to 192.0.2.10"),
        ("nope.example.test", "192.0.2.10", "does not exist"),
    ] {
        let (r, v) = named.check(name, addr, a, via.clone());
        assert_eq!(r.code, 1, "{name}: {v} {}", r.stderr);
        assert_eq!(
            (&v["accepted"], &v["inconclusive"]),
            (&serde_json::json!(false), &serde_json::json!(true)),
            "{name}: a stripped answer was taken as a verdict: {v}"
        );
        assert_eq!(r.reasons().len(), 1, "{name}: {r:?}");
        let (_, v) = named.check(name, addr, a, None);
        assert_eq!(v["inconclusive"], false, "{name}: {v}");
        assert!(
            v["reason"].as_str().unwrap_or("").contains(says_directly),
            "{name}: {v}"
        );
    }
    // Names it leaves alone still validate through it.
    let (r, v) = named.check("alias.example.test", "192.0.2.10", a, via);
    assert_eq!(r.code, 0, "{v} {}", r.stderr);
}
