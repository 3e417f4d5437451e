//! DNSSEC-checked names: a peer's name must resolve, with a validated (secure) answer, to
//! the address it uses. hickory-resolver validates from a trust anchor; insecure (unsigned
//! zone), bogus (bad or expired signatures, wrong anchor), missing names and a resolver
//! that does not answer in time are all refusals. Both families are asked; a family with
//! no records is not an error by itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::Resolver;
use serde::Serialize;

use crate::error::{Error, Result};

pub const DEFAULT_ANCHOR: &str = "/usr/share/dns/root.key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnssecMode {
    Off,
    Log,
    Require,
}

impl DnssecMode {
    pub fn parse(param: &str, v: &str) -> Result<DnssecMode> {
        match v {
            "off" => Ok(DnssecMode::Off),
            "log" => Ok(DnssecMode::Log),
            "require" => Ok(DnssecMode::Require),
            _ => Err(Error::configured(
                param,
                format!("{v:?} is not off, log or require"),
            )),
        }
    }
}

/// `address[:port]` of the resolver to ask (IPv6 as `[addr]:port`).
pub fn parse_resolver(param: &str, v: &str) -> Result<SocketAddr> {
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Ok(sa);
    }
    v.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| Error::configured(param, format!("{v:?} is not address[:port]")))
}

/// What was found for one name.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub name: String,
    /// Every address returned, both families.
    pub addresses: Vec<IpAddr>,
    /// Every returned record validated to the trust anchor.
    pub secure: bool,
    /// Why the answer cannot be trusted, if it cannot.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub name: String,
    pub address: IpAddr,
    pub accepted: bool,
    pub secure: bool,
    pub addresses: Vec<IpAddr>,
    pub reason: String,
}

pub struct Checker {
    rt: tokio::runtime::Runtime,
    resolver: Resolver<TokioRuntimeProvider>,
    /// The same server, no validation: what dnssec=log falls back to.
    unvalidated: Resolver<TokioRuntimeProvider>,
    /// Answers reused within one invocation.
    cache: BTreeMap<String, Answer>,
}

impl Checker {
    pub fn new(anchor: &Path, server: Option<SocketAddr>, deadline: Instant) -> Result<Checker> {
        let anchors = TrustAnchors::from_file(anchor).map_err(|e| {
            Error::configured("dnssec_anchor", format!("{}: {e}", anchor.display()))
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Generic(format!("cannot start the resolver runtime: {e}")))?;
        let sa = match server {
            Some(sa) => sa,
            None => system_resolver()?,
        };
        let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
        for c in &mut ns.connections {
            c.port = sa.port();
        }
        let budget = deadline.saturating_duration_since(Instant::now());
        let builder = |validate: bool| {
            let mut b = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns.clone()]),
                TokioRuntimeProvider::default(),
            );
            let opts = b.options_mut();
            opts.validate = validate;
            opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
            opts.timeout = budget
                .min(Duration::from_secs(5))
                .max(Duration::from_millis(200));
            opts.attempts = 1;
            b
        };
        let resolver = builder(true)
            .with_trust_anchor(Arc::new(anchors))
            .build()
            .map_err(|e| Error::Generic(format!("cannot build the resolver: {e}")))?;
        let unvalidated = builder(false)
            .build()
            .map_err(|e| Error::Generic(format!("cannot build the resolver: {e}")))?;
        Ok(Checker {
            rt,
            resolver,
            unvalidated,
            cache: BTreeMap::new(),
        })
    }

    /// Looks up every name (A and AAAA, all concurrently), each bounded by `deadline`.
    pub fn lookup_all(&mut self, names: &[String], deadline: Instant) -> Vec<Answer> {
        let todo: Vec<String> = names
            .iter()
            .filter(|n| !self.cache.contains_key(*n))
            .cloned()
            .collect();
        let resolver = &self.resolver;
        let budget = deadline.saturating_duration_since(Instant::now());
        let answers: Vec<Answer> = self.rt.block_on(async {
            let lookups = todo.iter().map(|name| async move {
                match tokio::time::timeout(budget, lookup(resolver, name)).await {
                    Ok(a) => a,
                    Err(_) => Answer {
                        name: name.clone(),
                        addresses: Vec::new(),
                        secure: false,
                        problem: Some(format!("the resolver did not answer within {budget:?}")),
                    },
                }
            });
            futures_util::future::join_all(lookups).await
        });
        for a in answers {
            self.cache.insert(a.name.clone(), a);
        }
        names
            .iter()
            .filter_map(|n| self.cache.get(n).cloned())
            .collect()
    }

    /// The addresses the server gives for `name` without any validation (dnssec=log).
    pub fn lookup_unvalidated(&self, name: &str, deadline: Instant) -> Vec<IpAddr> {
        let budget = deadline.saturating_duration_since(Instant::now());
        self.rt
            .block_on(async { tokio::time::timeout(budget, lookup(&self.unvalidated, name)).await })
            .map(|a| a.addresses)
            .unwrap_or_default()
    }

    /// The rule: a secure answer that contains `address`.
    pub fn check(&mut self, name: &str, address: IpAddr, deadline: Instant) -> Verdict {
        let answer = self.lookup_all(&[name.to_string()], deadline).remove(0);
        verdict(&answer, address)
    }
}

pub fn verdict(answer: &Answer, address: IpAddr) -> Verdict {
    let (accepted, reason) = match &answer.problem {
        Some(p) => (false, p.clone()),
        None if !answer.addresses.contains(&address) => (
            false,
            format!(
                "{} securely resolves to {}, not to {address}",
                answer.name,
                answer
                    .addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        None => (
            true,
            format!("{} securely resolves to {address}", answer.name),
        ),
    };
    Verdict {
        name: answer.name.clone(),
        address,
        accepted,
        secure: answer.secure,
        addresses: answer.addresses.clone(),
        reason,
    }
}

async fn lookup(resolver: &Resolver<TokioRuntimeProvider>, name: &str) -> Answer {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let (v4, v6) = futures_util::join!(
        resolver.lookup(fqdn.as_str(), RecordType::A),
        resolver.lookup(fqdn.as_str(), RecordType::AAAA)
    );
    let mut addresses = Vec::new();
    let mut insecure = false;
    let mut problems = Vec::new();
    let mut nx = 0;
    for result in [v4, v6] {
        match result {
            Ok(lookup) => {
                for record in lookup.answers() {
                    let ip = match &record.data {
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::AAAA(a) => IpAddr::V6(a.0),
                        _ => continue,
                    };
                    if record.proof != Proof::Secure {
                        insecure = true;
                    }
                    if !addresses.contains(&ip) {
                        addresses.push(ip);
                    }
                }
            }
            Err(e) if e.is_nx_domain() => nx += 1,
            // No records of this family (NODATA): not an error by itself.
            Err(e) if e.is_no_records_found() => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    let problem = if !problems.is_empty() {
        Some(format!(
            "DNSSEC validation or lookup failed: {}",
            problems.join("; ")
        ))
    } else if nx > 0 {
        Some(format!("{name} does not exist"))
    } else if addresses.is_empty() {
        Some(format!("{name} has no A or AAAA records"))
    } else if insecure {
        Some(format!(
            "{name}'s answer is not DNSSEC-validated (insecure)"
        ))
    } else {
        None
    };
    Answer {
        name: name.to_string(),
        secure: problem.is_none(),
        addresses,
        problem,
    }
}

/// Every `nameserver` of /etc/resolv.conf.
pub fn system_nameservers() -> Vec<IpAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .collect()
}

/// The first `nameserver` of /etc/resolv.conf.
fn system_resolver() -> Result<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| {
            Error::configured(
                "resolver",
                "no nameserver in /etc/resolv.conf; set resolver",
            )
        })
}

/// Where the trust anchor comes from when `dnssec_anchor` is unset.
pub fn default_anchor() -> PathBuf {
    PathBuf::from(DEFAULT_ANCHOR)
}
