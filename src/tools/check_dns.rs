//! `vipsec check-dns --peer NAME --address IP`: the DNSSEC verdict the agents would reach.

use std::path::PathBuf;
use std::time::Instant;

use crate::agents::print_json;
use crate::config::{self, RawParams};
use crate::error::{Error, Result};

pub fn run(raw: &RawParams, json: bool, deadline: Instant) -> Result<()> {
    let name = raw
        .get("peer")
        .ok_or_else(|| Error::configured("peer", "required: pass --peer NAME"))?;
    let name = crate::config::parse_dns_name("peer", name)?;
    let address = config::parse_host_address(
        "address",
        raw.get("address")
            .ok_or_else(|| Error::configured("address", "required: pass --address IP"))?,
    )?;
    let resolver = raw
        .get("resolver")
        .map(|r| crate::dns::parse_resolvers("resolver", r))
        .transpose()?
        .unwrap_or_default();
    let anchor = raw
        .get("dnssec_anchor")
        .map(PathBuf::from)
        .unwrap_or_else(crate::dns::default_anchor);
    let mut checker = crate::dns::Checker::new(&anchor, &resolver, deadline)?;
    let v = checker.check(&name, address, deadline);
    if json {
        print_json(&v);
    } else {
        println!(
            "{}: {} (addresses found: {}; chain {})",
            match (v.accepted, v.inconclusive) {
                (true, _) => "accepted",
                // No validated answer said no: what the agents keep a validated peer on.
                (false, true) => "cannot tell",
                (false, false) => "refused",
            },
            v.reason,
            if v.addresses.is_empty() {
                "none".into()
            } else {
                v.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if v.secure {
                "validated"
            } else {
                "not validated"
            }
        );
    }
    if v.accepted {
        Ok(())
    } else {
        Err(Error::Generic(format!("{name}: {}", v.reason)))
    }
}
