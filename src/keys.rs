//! Per-pair keys for the mesh, derived with HKDF-SHA256 (RFC 5869) from one master secret:
//! both ends of a pair derive the same key (the pair's identities are sorted), every pair's
//! key differs, and a new master secret rekeys every pair.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::config::Secret;

/// Domain separation: these keys are for nothing but vipsec's mesh.
const SALT: &[u8] = b"vipsec mesh v1";

/// The pre-shared key of the pair {a, b} (order does not matter).
pub fn pair_psk(master: &Secret, a: &str, b: &str) -> Secret {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut info = Vec::with_capacity(32 + lo.len() + hi.len());
    info.extend_from_slice(b"vipsec mesh pair psk\0");
    info.extend_from_slice(lo.as_bytes());
    info.push(0);
    info.extend_from_slice(hi.as_bytes());
    derive(master, &info)
}

/// The mesh's master secret when none is configured: derived from the Corosync cluster key
/// with a context of its own, so the IPsec keys are never the Corosync key itself, and
/// rotating the cluster key rekeys the mesh at the next reload.
pub fn master_from_corosync_authkey(authkey: &Secret) -> Secret {
    let hk = Hkdf::<Sha256>::new(Some(SALT), authkey.expose());
    let mut okm = vec![0u8; 32];
    hk.expand(
        b"vipsec mesh master secret from the corosync authkey",
        &mut okm,
    )
    .expect("HKDF output length is valid");
    Secret::from_bytes(okm)
}

/// A short public fingerprint of the master secret (not the secret, nor any pair key), so
/// reload can tell that the secret changed without storing it.
pub fn fingerprint(master: &Secret) -> String {
    derive(master, b"vipsec mesh fingerprint").expose()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn derive(master: &Secret, info: &[u8]) -> Secret {
    let hk = Hkdf::<Sha256>::new(Some(SALT), master.expose());
    let mut okm = vec![0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit: this cannot fail.
    hk.expand(info, &mut okm)
        .expect("HKDF output length is valid");
    Secret::from_bytes(okm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &Secret) -> String {
        s.expose().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn master() -> Secret {
        Secret::from_bytes(b"vipsec test master secret 0123456789abcdef".to_vec())
    }

    // Known answers computed independently (Python's hmac/hashlib, RFC 5869 by hand).
    #[test]
    fn known_answer_vectors() {
        let m = master();
        assert_eq!(
            hex(&pair_psk(&m, "192.0.2.1", "192.0.2.2")),
            "064a0881b4f73b875cf521f161b6649ceadaee3ab933928ed460b687e71a69d9"
        );
        assert_eq!(
            hex(&pair_psk(&m, "192.0.2.1", "192.0.2.3")),
            "92a86f5d925e96b23bbb1593fd53cff1c29b2f08cb6526d33b7f490d4f708752"
        );
        assert_eq!(
            hex(&pair_psk(&m, "2001:db8::1", "192.0.2.1")),
            "4b1c4d3a3143668990fdbab164a2912833606d98293aed94bff2ba3bc67fdcda"
        );
        assert_eq!(fingerprint(&m), "d3c5f1dc6ca73aed");
    }

    #[test]
    fn master_from_the_cluster_key() {
        // Known answers computed independently (Python's hmac/hashlib).
        let authkey = Secret::from_bytes((0..=255u8).collect());
        let m = master_from_corosync_authkey(&authkey);
        assert_eq!(
            hex(&m),
            "84551d92ceef564115910904b8418adf11351c5a568ae9033d80e15023ab1123"
        );
        assert_ne!(
            m.expose(),
            &authkey.expose()[..32],
            "never the cluster key itself"
        );
        let other = Secret::from_bytes(
            (0..=255u8)
                .map(|i| i.wrapping_mul(7).wrapping_add(3))
                .collect(),
        );
        assert_eq!(
            hex(&master_from_corosync_authkey(&other)),
            "daab71e79651f41a48889f325e29a8833d922204f51599c89e254a6ed1776366"
        );
    }

    #[test]
    fn both_ends_agree_and_pairs_differ() {
        let m = master();
        let nodes = [
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "2001:db8::1",
            "2001:db8::2",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in nodes.iter().enumerate() {
            for b in &nodes[i + 1..] {
                assert_eq!(hex(&pair_psk(&m, a, b)), hex(&pair_psk(&m, b, a)));
                assert!(
                    seen.insert(hex(&pair_psk(&m, a, b))),
                    "two pairs share a key"
                );
            }
        }
        let other = Secret::from_bytes(b"another master secret, 0123456789abcdef".to_vec());
        assert_ne!(
            hex(&pair_psk(&m, "192.0.2.1", "192.0.2.2")),
            hex(&pair_psk(&other, "192.0.2.1", "192.0.2.2"))
        );
        assert_ne!(fingerprint(&m), fingerprint(&other));
    }
}
