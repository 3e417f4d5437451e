//! One entry point per family of parsers of text vipsec does not write itself — the IKE
//! daemon's output, Corosync's configuration and cmapctl output, identities and DNS
//! names, parameter values, state files read back from disk, the kernel's /proc/net
//! tables, charon's VICI packets. Each takes arbitrary bytes and must return: no panic, no hang. `fuzz/` runs
//! them under libFuzzer (`cargo +nightly fuzz run NAME`); `tests/parsers_never_panic.rs`
//! runs them on mutated real samples in the stable suite.

use crate::config::RawParams;
use crate::ike::SaKind;

/// Splits the input at the first NUL into a short "name" part and the text (so one
/// input can choose both the conn asked about and the output read).
fn split(data: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(data);
    match text.split_once('\0') {
        Some((a, b)) => (a.chars().take(64).collect(), b.to_string()),
        None => ("rw".to_string(), text.into_owned()),
    }
}

/// pluto's output: `--status` (4.x), `--connectionstatus` (5.x), `--showstates`,
/// `--trafficstatus`, `--listcerts`, `--rereadsecrets`.
pub fn daemon_output(data: &[u8]) {
    use crate::ike::libreswan_status as s;
    let (conn, text) = split(data);
    let _ = s::parse_status(&text, &conn);
    let _ = s::parse_connectionstatus(&text, &conn);
    let _ = s::established_peers(&text, &conn, SaKind::Ike);
    let _ = s::established_peers(&text, &conn, SaKind::Child);
    let half = text.len() / 2;
    let (a, b) = match text.is_char_boundary(half) {
        true => text.split_at(half),
        false => (text.as_str(), ""),
    };
    let _ = s::peer_identities(a, b);
    let _ = s::cert_info(&text, &conn);
    let _ = s::secrets_files_loaded(&text);
    let _ = crate::ike::libreswan_conf::Version::parse(&text);
}

/// Corosync: corosync.conf and `corosync-cmapctl -b nodelist.node` output.
pub fn corosync(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::agents::mesh::corosync::parse_conf(&text);
    let _ = crate::agents::mesh::corosync::parse_cmap(&text);
}

/// Identities as daemons print them (DNs per RFC 4514), DNS names, peer lists.
pub fn identities(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(id) = crate::ike::Identity::from_printed(&text) {
        let _ = id.claimed_name();
    }
    let _ = crate::ike::Identity::Dn(text.to_string()).claimed_name();
    let _ = crate::ike::strongswan_status::read_identity(&text);
    let _ = crate::config::parse_dns_name("peer", &text);
    let _ = crate::agents::mesh::config::parse_peer_list("peers", &text);
}

/// Parameter values: `name=value` lines become the raw parameters of both agents.
pub fn parameters(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut raw = RawParams::default();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            raw.set(k, v);
        }
    }
    let _ = crate::agents::ipsec::config::IpsecConfig::parse(&raw);
    let _ = crate::agents::mesh::config::MeshConfig::parse(&raw);
    let _ = crate::config::parse_duration_ms("timeout", &text);
    let _ = crate::config::parse_check_level(&text);
    let _ = crate::config::parse_host_address("vip", &text);
    let _ = crate::dns::parse_resolvers("resolver", &text);
}

/// State files as read back from disk (a crash, a disk, an older vipsec).
pub fn state_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(state) = serde_json::from_str::<crate::agents::mesh::MeshState>(&text) {
        // What the monitor and stop do with a state they read.
        let _ = state.plan.all_conns();
        let _ = state.plan.locals();
        for p in &state.plan.peers {
            let _ = p.main_conn();
        }
    }
    let _ = serde_json::from_str::<crate::agents::ipsec::state::IpsecState>(&text);
    let _ = serde_json::from_str::<Vec<crate::agents::peer_names::Validated>>(&text);
}

/// The kernel's /proc/net/unix and /proc/net/udp{,6} tables.
pub fn proc_net(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::kernel::sockets::parse_unix_listeners(&text).count();
    let _ = crate::kernel::sockets::parse_udp_bound(&text).count();
}

/// charon's VICI packets (what its socket sends back), and bare messages.
pub fn vici(data: &[u8]) {
    let _ = crate::ike::vici::Packet::decode(data);
    let _ = crate::ike::vici::Message::decode(data);
}

/// Every entry point by name (for the fuzz targets and the stable test).
pub type Target = fn(&[u8]);

pub const TARGETS: &[(&str, Target)] = &[
    ("daemon_output", daemon_output),
    ("vici", vici),
    ("corosync", corosync),
    ("identities", identities),
    ("parameters", parameters),
    ("state_files", state_files),
    ("proc_net", proc_net),
];
