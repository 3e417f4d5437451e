//! Property: every parser of input vipsec does not write itself returns on any input — no
//! panic, no hang — and holds no more memory than its input justifies (no length field is
//! trusted before the bytes it announces are there). Two kinds of input: real samples
//! (captured daemon output, Corosync files, DNs, parameter values, state files, /proc
//! tables, VICI packets and conn files, DNS answers) mutated by a seeded generator —
//! bytes flipped, structural characters and long numbers inserted, pieces cut and
//! repeated — and arbitrary bytes from proptest. A bounded run in the suite; `fuzz/` runs
//! the same entry points under libFuzzer for millions (tests/fuzz.sh, docs/fuzzing.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use vipsec::fuzzing::{Target, TARGETS};
use vipsec::ike::vici::{self, Message};

/// Counts the bytes each thread holds, and the most it held since `measured` started:
/// the tests run in parallel threads, each measuring its own parser.
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn held(delta: isize) {
    let _ = HELD.try_with(|h| {
        h.set(h.get() + delta);
        let _ = PEAK.try_with(|p| p.set(p.get().max(h.get())));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        held(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        held(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        held(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most memory `parse` held at once, beyond what was held before.
fn peak_of(parse: Target, input: &[u8]) -> usize {
    let before = HELD.with(Cell::get);
    PEAK.with(|p| p.set(before));
    parse(input);
    (PEAK.with(Cell::get) - before).max(0) as usize
}

/// What a parser may hold for an input of `len` bytes: a copy or two of the text, the
/// structures built from it (a few words per byte at worst: a VICI element of three bytes
/// becomes a name, a value and an entry), and a fixed allowance for the work itself
/// (serde_json's and the resolver types' buffers, error messages).
fn bound(len: usize) -> usize {
    const PER_INPUT_BYTE: usize = 96;
    const FIXED: usize = 64 << 10;
    PER_INPUT_BYTE * len + FIXED
}

/// Real inputs per target, to mutate from.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let framed = |ms: &[Message]| vici::write_framed(ms).unwrap();
    let encoded = |m: &Message| {
        let mut b = Vec::new();
        m.encode(&mut b).unwrap();
        b
    };
    // A list-sa event as charon 5.9 sends it: an IKE SA of conn rw with a Child SA.
    let list_sa = Message::new().with_section(
        "rw",
        Message::new()
            .with("uniqueid", "7")
            .with("state", "ESTABLISHED")
            .with("remote-host", "192.0.2.3")
            .with("remote-id", "CN=c.example.com, O=x\\, CN=v.example")
            .with_section(
                "child-sas",
                Message::new().with_section(
                    "rw-12",
                    Message::new()
                        .with("uniqueid", "12")
                        .with("state", "INSTALLED")
                        .with_list("local-ts", ["192.0.2.100/32"]),
                ),
            ),
    );
    let list_conn = Message::new().with_section(
        "rw",
        Message::new()
            .with_list("local_addrs", ["192.0.2.100"])
            .with_list("remote_addrs", ["%any"]),
    );
    let text = |v: Vec<&str>| v.into_iter().map(|s| s.as_bytes().to_vec()).collect();
    match target {
        // A conn file of the strongSwan backend: the key ids, then a load-conn message.
        "vici_state" => vec![
            framed(&[
                Message::new().with_list("ids", ["mesh-0", "mesh-1"]),
                list_conn.clone(),
            ]),
            framed(&[Message::new()]),
        ],
        // The conn asked about, a NUL, then the events as one message.
        "charon_status" => vec![
            [b"rw\0".as_slice(), &encoded(&list_sa)].concat(),
            [b"rw\0".as_slice(), &encoded(&list_conn)].concat(),
        ],
        // The question's name, then three bytes a record (owner, type and proof, data):
        // a secure CNAME from the question to b.example, b.example's secure A record, an
        // insecure AAAA of the question.
        "dns_answers" => vec![vec![0, 0, 2, 1, 1, 0, 9, 0, 5, 4]],
        other => text(seeds_text(other)),
    }
}

/// Real inputs that are text.
fn seeds_text(target: &str) -> Vec<&'static str> {
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
        let mut most = 0f64;
        for _ in 0..per_target {
            let seed = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, seed);
            let one = Instant::now();
            let peak = peak_of(*parse, &input);
            slowest = slowest.max(one.elapsed());
            assert!(
                peak <= bound(input.len()),
                "{name}: {peak} bytes held for an input of {}: {:?}",
                input.len(),
                String::from_utf8_lossy(&input)
            );
            most = most.max(peak as f64 / bound(input.len()) as f64);
        }
        // No hang: inputs of a few kilobytes take microseconds (a second allows for a
        // loaded machine scheduling the test out).
        assert!(
            slowest < Duration::from_secs(1),
            "{name}: one input took {slowest:?}"
        );
        println!(
            "{name}: {per_target} mutated inputs in {:?}, slowest {slowest:?}, most memory {:.0}% of the bound",
            t0.elapsed(),
            most * 100.0
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Any bytes at all, every parser: it returns, within its memory bound.
    #[test]
    fn every_parser_returns_within_its_bound_on_any_bytes(
        input in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        for (name, parse) in TARGETS {
            let peak = peak_of(*parse, &input);
            prop_assert!(peak <= bound(input.len()), "{}: {} bytes held for {} of input", name, peak, input.len());
        }
    }
}
