//! Property: every parser of text vipsec does not write itself returns on any input — no
//! panic, no hang. Real samples (captured daemon output, Corosync files, DNs, parameter
//! values, state files, /proc tables) are mutated by a seeded generator: bytes flipped,
//! structural characters and long numbers inserted, pieces cut and repeated. A bounded
//! run in the suite; `fuzz/` runs the same entry points under libFuzzer for millions.

use std::time::{Duration, Instant};

use vipsec::fuzzing::TARGETS;

/// Real inputs per target, to mutate from.
fn seeds(target: &str) -> Vec<&'static str> {
    match target {
        "daemon_output" => vec![
            "rw\u{0}000 \"rw\": 192.0.2.10...%any; unrouted; eroute owner: #0\n000 \"rw\":     oriented; my_ip=unset;\n000 #1: \"rw\"[1] 192.0.2.3:500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); newest;\n000 #2: \"rw\"[1] 192.0.2.3:500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); IKE SA #1;\n",
            "vip\0\"vip\"[1]: 192.0.2.100[@vip]...192.0.2.3[@client]; unrouted;\n\"vip\"[1]:   host: oriented; local: 192.0.2.100; remote: 192.0.2.3; established IKE SA: #2;\n\"vip\"[1]:   routing: routed-tunnel; established Child SA: #3;\n\"vip\":   host: oriented; local: 192.0.2.100; remote: %any;\n",
            "rw\u{0}006 #2: \"rw\"[1] 192.0.2.3, type=ESP, add_time=1764576000, inBytes=84, outBytes=84, maxBytes=2^63B, id='O=vipsec lab, CN=c.lab.test'\n000 #2: \"rw\"[1] 192.0.2.3:500 STATE_V2_ESTABLISHED_CHILD_SA; IKE SA #1;\n",
            "vip\u{0}000 End certificate \"vip\" - SN: 0x33\n000   subject: O=t, CN=a.example\n000   256 bit(other): has private key\n002 loading secrets from \"/etc/ipsec.d/x.secrets\"\nLibreswan 5.2\n",
            "nope\0no connection or alias named \"nope\"'\n",
        ],
        "corosync" => vec![
            "totem {\n version: 2\n}\nnodelist {\n node {\n  name: n1\n  nodeid: 1\n  ring0_addr: 192.0.2.1\n  ring1_addr: 2001:db8::1 # second ring\n }\n}\n",
            "nodelist.node.0.name (str) = n1\nnodelist.node.0.ring0_addr (str) = 192.0.2.1\nnodelist.node.1.ring0_addr (str) = node2.example.com\n",
        ],
        "identities" => vec![
            "O=vipsec lab, CN=c.lab.test",
            "'C=CA, ST=Ontario, CN=east.testing.libreswan.org, E=a@b.c'",
            r"O=x\, CN=evil.example, CN=b.example.com",
            "O=\"x, CN=y\"+CN=b.example.com",
            "@@c.lab.test",
            "2001:db8::3",
            "192.0.2.1 node2.example.com, 2001:db8::7",
        ],
        "parameters" => vec![
            "tunnel=rw\nvip=192.0.2.100\nauth=psk\npsk_file=/etc/k\npeer_id=@client.example.com\nmode=tunnel\ndnssec=require\nresolver=192.0.2.53:53\n",
            "peers=192.0.2.1 192.0.2.2 n3.example.com\npolicy=require\nsecure_ports=5432 udp/5405\nforward_subnets=192.0.2.1=10.88.1.0/24\nclear_from=198.51.100.0/24\nexclude_ssh=false\n",
            "20000",
            "[2001:db8::53]:5353",
        ],
        "state_files" => vec![
            r#"{"format":1,"instance":"mesh","plan":{"peers":[{"address":"192.0.2.2","local":"192.0.2.1","listed_as":"192.0.2.2","conns":["vm-192.0.2.2"]}],"skipped":[],"pass_conns":["vm-pass-192.0.2.1-icmp"]},"daemon_instance":4,"started_at":1}"#,
            r#"{"format":1,"instance":"vip-tunnel","tunnel":"rw","vip":"192.0.2.100","fallbacktunnel":null,"ctlsocket":"/run/pluto/pluto.ctl","confdir":"/etc/ipsec.d","daemon_instance":7,"started_at":1}"#,
            r#"[{"ike_serial":2,"address":"192.0.2.3","name":"c.example.com"}]"#,
        ],
        // VICI packets as charon sends them: a list-sa event (one IKE SA with its
        // Child SA), a command response, a refusal.
        "vici" => vec![
            "\u{7}\u{7}list-sa\u{1}\u{4}pair\u{3}\u{8}uniqueid\u{0}\u{1}3\u{3}\u{5}state\u{0}\u{b}ESTABLISHED\u{3}\u{9}remote-id\u{0}\u{9}192.0.2.2\u{1}\u{9}child-sas\u{1}\u{6}pair-4\u{3}\u{5}state\u{0}\u{9}INSTALLED\u{4}\u{8}local-ts\u{5}\u{0}\u{c}192.0.2.1/32\u{6}\u{2}\u{2}\u{2}",
            "\u{1}\u{3}\u{7}success\u{0}\u{3}yes\u{3}\u{6}daemon\u{0}\u{6}charon\u{3}\u{7}version\u{0}\u{5}5.9.8",
            "\u{1}\u{3}\u{7}success\u{0}\u{2}no\u{3}\u{6}errmsg\u{0}\u{c}unknown conn",
            "\u{5}",
        ],
        "proc_net" => vec![
            "Num       RefCount Protocol Flags    Type St Inode Path\n00000000795aced3: 00000002 00000000 00010000 0001 01 40178 /run/pluto/pluto.ctl\n",
            "  sl  local_address rem_address   st\n   0: 0A0200C0:01F4 00000000:0000 07\n   1: 00000000000000000000000001000000:1194 00000000000000000000000000000000:0000 07\n",
        ],
        _ => vec![""],
    }
}

/// xorshift64*: a seeded generator, so a failure is the same input every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"[",
    b"]",
    b":",
    b"; ",
    b"#",
    b"\\",
    b"=",
    b", ",
    b"+",
    b"\n",
    b"\0",
    b"{",
    b"}",
    b"'",
    b"@",
    b"%any",
    b"CN=",
    b"host: ",
    b"established IKE SA: #",
    b"remote: ",
    b"18446744073709551616",
    b"-1",
    b"::",
    b"255.255.255.255",
    b"\xff\xfe",
    b"\\2C",
    b"ring0_addr: ",
    b"nodelist.node.9.ring0_addr (str) = ",
    b"/",
    b"0x",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (at + rng.below(32)).min(v.len());
                v.drain(at..end);
            }
            3 if !v.is_empty() => {
                // Repeat a piece (long lines, many sections).
                let start = rng.below(v.len());
                let end = (start + rng.below(64)).min(v.len());
                let piece = v[start..end].to_vec();
                for _ in 0..rng.below(20) {
                    v.splice(at..at, piece.iter().copied());
                }
            }
            4 => v.truncate(at),
            _ => v.insert(at, rng.next() as u8),
        }
    }
    v
}

#[test]
fn every_parser_returns_on_mutated_real_inputs() {
    let per_target: usize = std::env::var("VIPSEC_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for (name, parse) in TARGETS {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        let seeds = seeds(name);
        let t0 = Instant::now();
        let mut slowest = Duration::ZERO;
        for _ in 0..per_target {
            let seed = seeds[rng.below(seeds.len())].as_bytes();
            let input = mutate(&mut rng, seed);
            let one = Instant::now();
            parse(&input);
            slowest = slowest.max(one.elapsed());
        }
        // No hang: inputs of a few kilobytes take microseconds (a second allows for a
        // loaded machine scheduling the test out).
        assert!(
            slowest < Duration::from_secs(1),
            "{name}: one input took {slowest:?}"
        );
        println!(
            "{name}: {per_target} mutated inputs in {:?}, slowest {slowest:?}",
            t0.elapsed()
        );
    }
}
