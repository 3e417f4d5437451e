//! The DNSSEC rule for connected peers, shared by the VIP tunnel's and the mesh's
//! monitors: every peer that claims a DNS name (peer_id=@NAME, or its certificate's name)
//! must be connected from an address that name securely resolves to.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dns::{Checker, DnssecMode};
use crate::error::Result;
use crate::ike::IkeBackend;

/// One connected peer's claim.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    /// The IKE SA carrying the peer (deleted if the claim is refused under require).
    pub ike_serial: u64,
    pub address: IpAddr,
    /// The host name claimed; `None` when the identity names no host (an address, an
    /// e-mail name, a DN without a single host-name CN): nothing DNSSEC could confirm.
    pub name: Option<String>,
    /// How the identity is quoted in messages (`@NAME` for a peer_id).
    pub shown: String,
    /// The daemon's print of the identity reads as a name or not, depending on how it is
    /// read (`PeerIdentity::ambiguous`): not a no, a "cannot tell".
    pub ambiguous: bool,
}

/// How long a peer that validated stays trusted while DNS cannot tell (no answer, or one
/// that does not validate): a day after its last recorded validation. Long enough to ride
/// out a resolver outage or an attacker damaging answers across IKE rekeys (hours), short
/// enough that a name moved elsewhere in the meantime is not honoured for days; the
/// monitor says degraded (190) the whole time, so someone is told.
pub const TRUSTED_WITHOUT_DNS: Duration = Duration::from_secs(24 * 3600);

/// A validation newer than this is not recorded again: most monitors find the same peers,
/// and the file need not be rewritten every time.
const RECORD_EVERY: u64 = 60;

/// A peer whose name validated, remembered by what it is — the identity it presented,
/// the name, the address it connected from — and when, not by the IKE SA that carried it:
/// a rekey or a reconnect of the same peer during a DNS outage keeps it; a lookup that
/// says no does not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Validated {
    /// The identity as presented (`@NAME`, a DN).
    pub identity: String,
    pub name: String,
    pub address: IpAddr,
    /// When DNSSEC last confirmed it, seconds since the epoch.
    pub at: u64,
}

impl Validated {
    fn is(&self, other: &Validated) -> bool {
        (&self.identity, &self.name, self.address) == (&other.identity, &other.name, other.address)
    }
}

/// The peers that validated, kept beside the instance's state (removed with it at stop).
fn validated_before(store: &crate::state::StateStore) -> Vec<Validated> {
    std::fs::read_to_string(store.sibling(crate::state::VALIDATED_PEERS))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn remember_validated(store: &crate::state::StateStore, validated: &[Validated]) {
    let path = store.sibling(crate::state::VALIDATED_PEERS);
    let text = serde_json::to_string(validated).unwrap_or_default();
    if let Err(e) = crate::state::write_atomic(&path, text.as_bytes(), 0o600) {
        log::warn!("{}", e.reason());
    }
}

pub struct Refusal {
    pub address: IpAddr,
    /// "peer A presented N, but …; its IKE SA #S was deleted"
    pub what: String,
}

#[derive(Default)]
pub struct Outcome {
    /// DNS said no: the peer is not who it claims to be.
    pub refused: Vec<Refusal>,
    /// dnssec=log: failures kept, as warnings.
    pub tolerated: Vec<String>,
    /// DNS did not answer: peers that validated before are kept, new ones are
    /// disconnected until it answers (fail closed). Not this node's failure: degraded.
    pub unverified: Vec<String>,
    /// The claims that stand now (accepted, or kept from before): the next monitor's
    /// `validated_before`.
    pub validated: Vec<Validated>,
}

/// Looks every claimed name up (concurrently, answers reused) and judges each claim;
/// under require, disconnects the peers that fail. The claims that stand are remembered
/// beside the instance's state for the next monitor (a DNS outage keeps them).
pub fn judge(
    ike: &dyn IkeBackend,
    store: &crate::state::StateStore,
    anchor: &Path,
    resolver: &[SocketAddr],
    mode: DnssecMode,
    claims: Vec<Claim>,
    deadline: Instant,
) -> Result<Outcome> {
    let earlier = validated_before(store);
    let now = crate::state::now_secs();
    let outcome = judge_claims(ike, anchor, resolver, mode, claims, &earlier, now, deadline)?;
    // Written only when it changed: most monitors find the same peers.
    if outcome.validated != earlier {
        remember_validated(store, &outcome.validated);
    }
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
fn judge_claims(
    ike: &dyn IkeBackend,
    anchor: &Path,
    resolver: &[SocketAddr],
    mode: DnssecMode,
    mut claims: Vec<Claim>,
    validated_before: &[Validated],
    now: u64,
    deadline: Instant,
) -> Result<Outcome> {
    // One IKE SA may carry several Child SAs: one verdict each.
    claims.sort();
    claims.dedup();
    let mut outcome = Outcome::default();
    if claims.is_empty() || mode == DnssecMode::Off {
        return Ok(outcome);
    }
    let mut checker = Checker::new(anchor, resolver, deadline)?;
    let names: Vec<String> = claims.iter().filter_map(|c| c.name.clone()).collect();
    checker.lookup_all(&names, deadline);
    let mut deleted = BTreeSet::new();
    for c in claims {
        if c.name.is_none() && c.ambiguous {
            cannot_tell(
                ike,
                mode,
                &mut deleted,
                &mut outcome,
                &c,
                validated_before,
                now,
                deadline,
            )?;
            continue;
        }
        let Some(name) = c.name.clone() else {
            // Under require, a peer is who DNSSEC says it is: one whose identity names
            // no host is refused, not waved through.
            let what = format!(
                "peer {} presented {}, which names no host DNSSEC could confirm",
                c.address, c.shown
            );
            refuse(ike, mode, &mut deleted, &mut outcome, &c, what, deadline)?;
            continue;
        };
        let verdict = checker.check(&name, c.address, deadline);
        let this = Validated {
            identity: c.shown.clone(),
            name,
            address: c.address,
            at: now,
        };
        let before = validated_before.iter().find(|v| v.is(&this));
        // Several SAs of one peer: one record.
        if outcome.validated.iter().any(|v| v.is(&this)) {
            continue;
        }
        if verdict.accepted {
            outcome.validated.push(match before {
                Some(b) if now.saturating_sub(b.at) < RECORD_EVERY => b.clone(),
                _ => this,
            });
            continue;
        }
        let what = format!(
            "peer {} presented {}, but {}",
            c.address, c.shown, verdict.reason
        );
        let trusted = before.filter(|b| still_trusted(b, now));
        if let (true, Some(b)) = (verdict.inconclusive, trusted) {
            outcome.unverified.push(format!(
                "peer {} ({}) could not be checked again ({}); kept: it validated before ({} s ago; trusted without DNS for {} h)",
                c.address,
                c.shown,
                verdict.reason,
                now.saturating_sub(b.at),
                TRUSTED_WITHOUT_DNS.as_secs() / 3600
            ));
            outcome.validated.push(b.clone());
            continue;
        }
        if verdict.inconclusive && mode == DnssecMode::Require {
            if deleted.insert(c.ike_serial) {
                ike.delete_state(c.ike_serial, deadline)?;
            }
            outcome.unverified.push(format!(
                "{what}; its IKE SA #{} was deleted until DNS answers",
                c.ike_serial
            ));
            continue;
        }
        refuse(ike, mode, &mut deleted, &mut outcome, &c, what, deadline)?;
    }
    Ok(outcome)
}

/// A peer that validated at `v.at` is trusted without DNS until TRUSTED_WITHOUT_DNS
/// later (a clock set back counts as no time passed).
fn still_trusted(v: &Validated, now: u64) -> bool {
    now.saturating_sub(v.at) <= TRUSTED_WITHOUT_DNS.as_secs()
}

/// A claim whose identity vipsec cannot read unambiguously: like a DNS answer that does
/// not come, it is no refusal. A peer that presented the same identity from the same
/// address and validated within TRUSTED_WITHOUT_DNS stays, a new one is disconnected under require until it
/// presents an identity with one reading, and dnssec=log keeps it with a warning.
#[allow(clippy::too_many_arguments)]
fn cannot_tell(
    ike: &dyn IkeBackend,
    mode: DnssecMode,
    deleted: &mut BTreeSet<u64>,
    outcome: &mut Outcome,
    c: &Claim,
    validated_before: &[Validated],
    now: u64,
    deadline: Instant,
) -> Result<()> {
    let what = format!(
        "peer {} presented {}, which may or may not name a host (its DN is printed without escapes)",
        c.address, c.shown
    );
    let earlier = validated_before
        .iter()
        .find(|v| v.identity == c.shown && v.address == c.address && still_trusted(v, now));
    if let Some(v) = earlier {
        outcome
            .unverified
            .push(format!("{what}; kept: it validated before as {}", v.name));
        outcome.validated.push(v.clone());
        return Ok(());
    }
    if mode != DnssecMode::Require {
        outcome.tolerated.push(format!("{what} (dnssec=log: kept)"));
        return Ok(());
    }
    if deleted.insert(c.ike_serial) {
        ike.delete_state(c.ike_serial, deadline)?;
    }
    outcome.unverified.push(format!(
        "{what}; its IKE SA #{} was deleted: present an FQDN identity (a DNS SAN)",
        c.ike_serial
    ));
    Ok(())
}

/// A claim DNS said no to: under require its IKE SA is deleted (once per SA) and the
/// peer refused; under log it is kept, with a warning.
fn refuse(
    ike: &dyn IkeBackend,
    mode: DnssecMode,
    deleted: &mut BTreeSet<u64>,
    outcome: &mut Outcome,
    c: &Claim,
    what: String,
    deadline: Instant,
) -> Result<()> {
    if mode != DnssecMode::Require {
        outcome.tolerated.push(format!("{what} (dnssec=log: kept)"));
        return Ok(());
    }
    if deleted.insert(c.ike_serial) {
        ike.delete_state(c.ike_serial, deadline)?;
    }
    outcome.refused.push(Refusal {
        address: c.address,
        what: format!("{what}; its IKE SA #{} was deleted", c.ike_serial),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(identity: &str, address: &str, at: u64) -> Validated {
        Validated {
            identity: identity.into(),
            name: "client.example.test".into(),
            address: address.parse().unwrap(),
            at,
        }
    }

    /// A peer is who it presented and where from, whatever SA carried it and whenever it
    /// validated; it is trusted without DNS for TRUSTED_WITHOUT_DNS, not a second more.
    #[test]
    fn a_validated_peer_is_what_it_is_for_a_bounded_time() {
        let bound = TRUSTED_WITHOUT_DNS.as_secs();
        let then = v("@client.example.test", "192.0.2.41", 1_000);
        assert!(then.is(&v("@client.example.test", "192.0.2.41", 9_999)));
        assert!(!then.is(&v("@client.example.test", "192.0.2.42", 1_000)));
        assert!(!then.is(&v("@impostor.example.test", "192.0.2.41", 1_000)));
        assert!(still_trusted(&then, 1_000 + bound));
        assert!(!still_trusted(&then, 1_000 + bound + 1));
        // A clock set back is no time passed, not a negative age.
        assert!(still_trusted(&then, 10));
    }
}
