//! DNSSEC-checked names: a peer's name must resolve, with a validated (secure) answer, to
//! the address it uses. hickory-resolver validates from a trust anchor. Only a validated
//! answer may say no: a secure NXDOMAIN or NODATA, secure records that do not hold the
//! address, or a zone a validated chain proves unsigned (an insecure delegation). Anything
//! else — a bogus answer (signatures stripped, expired, made with a key the chain does not
//! lead to), one that cannot be verified, a timeout, SERVFAIL, REFUSED, an I/O error — is
//! "cannot tell" (inconclusive): an on-path attacker who can damage answers but not forge
//! them must not be able to make every node refuse its peers. Both families are asked; a
//! family with no records is not an error by itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
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

/// More resolvers than this is a mistake (resolv.conf itself keeps three).
pub const RESOLVERS_MAX: usize = 8;

/// The resolvers to ask: one or more `address[:port]` (IPv6 as `[addr]:port`), separated
/// by spaces or commas. Several are asked as resolv.conf's are: one that is down or slow
/// does not make the others' answers wait.
pub fn parse_resolvers(param: &str, v: &str) -> Result<Vec<SocketAddr>> {
    let servers = v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| parse_resolver(param, w))
        .collect::<Result<Vec<_>>>()?;
    if servers.is_empty() {
        return Err(Error::configured(param, "empty: give address[:port]"));
    }
    if servers.len() > RESOLVERS_MAX {
        return Err(Error::configured(
            param,
            format!("{} resolvers; at most {RESOLVERS_MAX}", servers.len()),
        ));
    }
    Ok(servers)
}

fn parse_resolver(param: &str, v: &str) -> Result<SocketAddr> {
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
    /// The addresses of the families whose answer validated to the trust anchor: what a
    /// peer's address may be accepted against even when the other family could not be
    /// checked.
    pub validated: Vec<IpAddr>,
    /// Every returned record validated to the trust anchor.
    pub secure: bool,
    /// Why the answer cannot be trusted, if it cannot.
    pub problem: Option<String>,
    /// No validated answer said no, and none said yes: the resolver did not answer, or
    /// what it gave could not be validated (bogus, unverifiable). The name was neither
    /// confirmed nor refused.
    #[serde(default)]
    pub inconclusive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub name: String,
    pub address: IpAddr,
    pub accepted: bool,
    /// Not accepted because DNS did not answer, rather than because it said no.
    pub inconclusive: bool,
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
    /// `servers` empty: every nameserver of /etc/resolv.conf.
    pub fn new(anchor: &Path, servers: &[SocketAddr], deadline: Instant) -> Result<Checker> {
        let anchors = TrustAnchors::from_file(anchor).map_err(|e| {
            Error::configured("dnssec_anchor", format!("{}: {e}", anchor.display()))
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Generic(format!("cannot start the resolver runtime: {e}")))?;
        let servers = match servers {
            [] => system_resolvers()?,
            given => given.to_vec(),
        };
        let name_servers: Vec<NameServerConfig> = servers
            .iter()
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect();
        let budget = deadline.saturating_duration_since(Instant::now());
        let builder = |validate: bool| {
            let mut b = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers.clone()),
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
                        validated: Vec::new(),
                        secure: false,
                        problem: Some(format!("the resolver did not answer within {budget:?}")),
                        inconclusive: true,
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
        // A family that validated holds the address: what the other one did changes
        // nothing.
        _ if answer.validated.contains(&address) => (
            true,
            format!("{} securely resolves to {address}", answer.name),
        ),
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
        inconclusive: !accepted && answer.inconclusive,
        secure: answer.secure,

        addresses: answer.addresses.clone(),
        reason,
    }
}

async fn lookup(resolver: &Resolver<TokioRuntimeProvider>, name: &str) -> Answer {
    use hickory_resolver::net::{DnsError, NetError};
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
    let mut validated = Vec::new();
    let mut insecure = false;
    // Why a family's answer cannot be judged: neither a yes nor a no.
    let mut unknown = Vec::new();
    let mut nx = 0;
    let question = Name::from_ascii(&fqdn).ok();
    for result in [v4, v6] {
        match result {
            Ok(lookup) => {
                let Some(question) = &question else {
                    unknown.push(format!("{name:?} is not a DNS name"));
                    continue;
                };
                match bound_addresses(question, lookup.answers()) {
                    Ok((ips, proof)) => {
                        match proof {
                            Proof::Secure => validated.extend(ips.clone()),
                            // Only a validated chain (no DS at a signed parent) says so.
                            Proof::Insecure => insecure = true,
                            Proof::Bogus | Proof::Indeterminate => unknown.push(format!(
                                "the records of {name} could not be validated ({proof})"
                            )),
                        }
                        for ip in ips {
                            if !addresses.contains(&ip) {
                                addresses.push(ip);
                            }
                        }
                    }
                    Err(e) => unknown.push(e),
                }
            }
            // NoRecordsFound is only returned once its denial validated (or its zone is
            // proven unsigned); an unproven one comes back as DnssecBogus or Nsec.
            Err(e) if e.is_nx_domain() => nx += 1,
            // No records of this family (NODATA): not an error by itself.
            Err(e) if e.is_no_records_found() => {}
            Err(NetError::Dns(DnsError::Nsec {
                proof: Proof::Insecure,
                ..
            })) => insecure = true,
            Err(NetError::Dns(DnsError::DnssecBogus)) => unknown.push(
                "the answer is bogus (signatures missing, expired, or not made by the keys the chain leads to)"
                    .into(),
            ),
            // Unverifiable, unanswered, refused, garbled: cannot tell.
            Err(e) => unknown.push(e.to_string()),
        }
    }
    validated.sort();
    validated.dedup();
    let problem = if !unknown.is_empty() {
        Some(format!(
            "DNSSEC validation or lookup could not tell: {}",
            unknown.join("; ")
        ))
    } else if nx > 0 {
        Some(format!("{name} does not exist"))
    } else if insecure {
        Some(format!(
            "{name}'s zone is proven unsigned: its answer is not DNSSEC-validated (insecure)"
        ))
    } else if addresses.is_empty() {
        Some(format!("{name} has no A or AAAA records"))
    } else {
        None
    };
    Answer {
        name: name.to_string(),
        secure: problem.is_none(),
        addresses,
        validated,
        // A validated no from one family still leaves the other's doubt: no means no only
        // when every family's answer was judged.
        inconclusive: !unknown.is_empty(),
        problem,
    }
}

/// The addresses an answer gives for `question`, and the weakest DNSSEC proof of the
/// records they rest on (Secure > Insecure > Bogus > Indeterminate). Only records owned by the question count, or by the end of a chain
/// of CNAMEs that starts at it (each link a record of the answer, each secure): a
/// resolver that adds another name's records — even validly signed ones of the same zone
/// — cannot make the question resolve to them.
pub fn bound_addresses(
    question: &Name,
    records: &[Record],
) -> std::result::Result<(Vec<IpAddr>, Proof), String> {
    const MAX_CHAIN: usize = 8;
    let mut owner = question.clone();
    let mut proof = Proof::Secure;
    for _ in 0..=MAX_CHAIN {
        // (the link, its target) of every CNAME owned by the name reached so far.
        let cnames: Vec<(&Record, &Name)> = records
            .iter()
            .filter(|r| r.name == owner)
            .filter_map(|r| match &r.data {
                RData::CNAME(target) => Some((r, &target.0)),
                _ => None,
            })
            .collect();
        match cnames.as_slice() {
            [] => {
                let mut ips = Vec::new();
                for r in records.iter().filter(|r| r.name == owner) {
                    let ip = match &r.data {
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::AAAA(a) => IpAddr::V6(a.0),
                        _ => continue,
                    };
                    proof = proof.min(r.proof);
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                for r in records.iter().filter(|r| r.name != owner) {
                    if matches!(r.data, RData::A(_) | RData::AAAA(_)) {
                        log::debug!(
                            "{question}: ignoring {} {:?}, not on the question's chain",
                            r.name,
                            r.data
                        );
                    }
                }
                return Ok((ips, proof));
            }
            [(link, target)] => {
                proof = proof.min(link.proof);
                owner = (*target).clone();
            }
            _ => return Err(format!("{owner} has several CNAMEs in the answer")),
        }
    }
    Err(format!(
        "{question}: a chain of more than {MAX_CHAIN} CNAMEs"
    ))
}

/// Every `nameserver` of /etc/resolv.conf.
pub fn system_nameservers() -> Vec<IpAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .collect()
}

/// Every `nameserver` of /etc/resolv.conf, on port 53.
fn system_resolvers() -> Result<Vec<SocketAddr>> {
    let servers: Vec<SocketAddr> = system_nameservers()
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        return Err(Error::configured(
            "resolver",
            "no nameserver in /etc/resolv.conf; set resolver",
        ));
    }
    Ok(servers)
}

/// Where the trust anchor comes from when `dnssec_anchor` is unset.
pub fn default_anchor() -> PathBuf {
    PathBuf::from(DEFAULT_ANCHOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, TXT};

    fn rec(owner: &str, data: RData, secure: bool) -> Record {
        let mut r = Record::from_rdata(Name::from_ascii(owner).unwrap(), 300, data);
        r.proof = if secure {
            Proof::Secure
        } else {
            Proof::Insecure
        };
        r
    }
    fn a(owner: &str, ip: &str, secure: bool) -> Record {
        rec(owner, RData::A(A(ip.parse().unwrap())), secure)
    }
    fn cname(owner: &str, target: &str, secure: bool) -> Record {
        rec(
            owner,
            RData::CNAME(CNAME(Name::from_ascii(target).unwrap())),
            secure,
        )
    }
    fn bound(
        question: &str,
        records: &[Record],
    ) -> std::result::Result<(Vec<String>, bool), String> {
        bound_addresses(&Name::from_ascii(question).unwrap(), records).map(|(ips, p)| {
            (
                ips.iter().map(ToString::to_string).collect(),
                p == Proof::Secure,
            )
        })
    }

    #[test]
    fn only_the_questions_records_count() {
        let good = a("good.example.", "192.0.2.10", true);
        // A member of the zone adds its own validly signed record to the answer.
        let evil = a("evil.example.", "192.0.2.66", true);
        assert_eq!(
            bound("good.example.", &[good.clone(), evil.clone()]),
            Ok((vec!["192.0.2.10".into()], true))
        );
        assert_eq!(
            bound("good.example.", std::slice::from_ref(&evil)),
            Ok((vec![], true))
        );
        // Owner names compare without regard to case.
        assert_eq!(
            bound("GOOD.Example.", &[good, evil]),
            Ok((vec!["192.0.2.10".into()], true))
        );
        // Other types at the name are not addresses.
        let txt = rec(
            "good.example.",
            RData::TXT(TXT::new(vec!["192.0.2.66".into()])),
            true,
        );
        assert_eq!(bound("good.example.", &[txt]), Ok((vec![], true)));
        let v6 = rec(
            "good.example.",
            RData::AAAA(AAAA("2001:db8::10".parse().unwrap())),
            true,
        );
        assert_eq!(
            bound("good.example.", &[v6]),
            Ok((vec!["2001:db8::10".into()], true))
        );
    }

    /// The weakest proof on the chain is the answer's: a bogus record is not made
    /// "proven unsigned" by an insecure link, nor secure by secure ones.
    #[test]
    fn the_weakest_proof_on_the_chain_is_the_answers() {
        let mut bogus = a("host.example.", "192.0.2.20", true);
        bogus.proof = Proof::Bogus;
        let q = Name::from_ascii("alias.example.").unwrap();
        let insecure_link = cname("alias.example.", "host.example.", false);
        assert_eq!(
            bound_addresses(&q, &[insecure_link.clone(), bogus.clone()]).map(|r| r.1),
            Ok(Proof::Bogus)
        );
        let secure_link = cname("alias.example.", "host.example.", true);
        assert_eq!(
            bound_addresses(&q, &[secure_link, bogus]).map(|r| r.1),
            Ok(Proof::Bogus)
        );
        let target = a("host.example.", "192.0.2.20", true);
        assert_eq!(
            bound_addresses(&q, &[insecure_link, target]).map(|r| r.1),
            Ok(Proof::Insecure)
        );
    }

    #[test]
    fn cname_chains_from_the_question_each_link_secure() {
        let target = a("host.example.", "192.0.2.20", true);
        assert_eq!(
            bound(
                "alias.example.",
                &[
                    cname("alias.example.", "host.example.", true),
                    target.clone()
                ]
            ),
            Ok((vec!["192.0.2.20".into()], true))
        );
        // An unsigned link makes the whole answer insecure.
        assert_eq!(
            bound(
                "alias.example.",
                &[
                    cname("alias.example.", "host.example.", false),
                    target.clone()
                ]
            ),
            Ok((vec!["192.0.2.20".into()], false))
        );
        // A CNAME that does not start at the question is not followed.
        assert_eq!(
            bound(
                "good.example.",
                &[
                    cname("other.example.", "host.example.", true),
                    target.clone()
                ]
            ),
            Ok((vec![], true))
        );
        // The address must belong to the chain's end, not to a name on the way.
        assert_eq!(
            bound(
                "alias.example.",
                &[
                    cname("alias.example.", "host.example.", true),
                    a("alias.example.", "192.0.2.66", true),
                    target
                ]
            ),
            Ok((vec!["192.0.2.20".into()], true))
        );
        assert!(bound(
            "a.example.",
            &[
                cname("a.example.", "b.example.", true),
                cname("a.example.", "c.example.", true)
            ]
        )
        .is_err());
        assert!(bound(
            "a.example.",
            &[
                cname("a.example.", "b.example.", true),
                cname("b.example.", "a.example.", true)
            ]
        )
        .is_err());
    }
}
