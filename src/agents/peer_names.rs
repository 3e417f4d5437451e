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
    pub name: String,
    /// How the name is quoted in messages (`@NAME` for a peer_id).
    pub shown: String,
}

pub struct Refusal {
    pub address: IpAddr,
    /// "peer A presented N, but …; its IKE SA #S was deleted"
    pub what: String,
}

#[derive(Default)]
pub struct Outcome {
    pub refused: Vec<Refusal>,
    /// dnssec=log: failures kept, as warnings.
    pub tolerated: Vec<String>,
}

/// Looks every claimed name up (concurrently, answers reused) and judges each claim;
/// under require, disconnects the peers that fail.
pub fn judge(
    ike: &dyn IkeBackend,
    anchor: &Path,
    resolver: Option<SocketAddr>,
    mode: DnssecMode,
    mut claims: Vec<Claim>,
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
    let names: Vec<String> = claims.iter().map(|c| c.name.clone()).collect();
    checker.lookup_all(&names, deadline);
    let mut deleted = BTreeSet::new();
    for c in claims {
        let verdict = checker.check(&c.name, c.address, deadline);
        if verdict.accepted {
            continue;
        }
        let what = format!(
            "peer {} presented {}, but {}",
            c.address, c.shown, verdict.reason
        );
        if mode == DnssecMode::Require {
            if deleted.insert(c.ike_serial) {
                ike.delete_state(c.ike_serial, deadline)?;
            }
            outcome.refused.push(Refusal {
                address: c.address,
                what: format!("{what}; its IKE SA #{} was deleted", c.ike_serial),
            });
        } else {
            outcome.tolerated.push(format!("{what} (dnssec=log: kept)"));
        }
    }
    Ok(outcome)
}
