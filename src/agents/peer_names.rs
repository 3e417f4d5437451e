//! The DNSSEC rule for connected peers, shared by the VIP tunnel's and the mesh's
//! monitors: every peer that claims a DNS name (peer_id=@NAME, or its certificate's name)
//! must be connected from an address that name securely resolves to.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Instant;

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

/// A connected peer whose name validated: kept through a later DNS outage (a lookup
/// that gets no answer does not disconnect it; one that says no does).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Validated {
    pub ike_serial: u64,
    pub address: IpAddr,
    pub name: String,
}

/// The peers that validated at the last monitor, kept beside the instance's state.
fn validated_before(store: &crate::state::StateStore) -> Vec<Validated> {
    std::fs::read_to_string(store.sibling("validated"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn remember_validated(store: &crate::state::StateStore, validated: &[Validated]) {
    let path = store.sibling("validated");
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
    let outcome = judge_claims(ike, anchor, resolver, mode, claims, &earlier, deadline)?;
    // Written only when it changed: most monitors find the same peers.
    if outcome.validated != earlier {
        remember_validated(store, &outcome.validated);
    }
    Ok(outcome)
}

fn judge_claims(
    ike: &dyn IkeBackend,
    anchor: &Path,
    resolver: &[SocketAddr],
    mode: DnssecMode,
    mut claims: Vec<Claim>,
    validated_before: &[Validated],
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
            ike_serial: c.ike_serial,
            address: c.address,
            name,
        };
        if verdict.accepted {
            outcome.validated.push(this);
            continue;
        }
        let what = format!(
            "peer {} presented {}, but {}",
            c.address, c.shown, verdict.reason
        );
        if verdict.inconclusive && validated_before.contains(&this) {
            outcome.unverified.push(format!(
                "peer {} ({}) could not be checked again ({}); kept: it validated before",
                c.address, c.shown, verdict.reason
            ));
            outcome.validated.push(this);
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

/// A claim whose identity vipsec cannot read unambiguously: like a DNS answer that does
/// not come, it is no refusal. A peer on the same IKE SA that validated before stays (its
/// identity cannot have changed), a new one is disconnected under require until it
/// presents an identity with one reading, and dnssec=log keeps it with a warning.
fn cannot_tell(
    ike: &dyn IkeBackend,
    mode: DnssecMode,
    deleted: &mut BTreeSet<u64>,
    outcome: &mut Outcome,
    c: &Claim,
    validated_before: &[Validated],
    deadline: Instant,
) -> Result<()> {
    let what = format!(
        "peer {} presented {}, which may or may not name a host (its DN is printed without escapes)",
        c.address, c.shown
    );
    let earlier = validated_before
        .iter()
        .find(|v| v.ike_serial == c.ike_serial && v.address == c.address);
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
