//! The verbs of `ocf:vipsec:mesh`.

pub mod config;
pub mod corosync;
pub mod monitor;
pub mod plan;
pub mod reload;
pub mod start;
pub mod stop;

use std::net::IpAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{print_json, Printing, Verb};

use crate::agents::mesh::config::{MeshAuth, MeshConfig, PeerSpec, Policy};
use crate::agents::mesh::plan::{resolve_plain, Listed, MeshPlan, Resolved};
use crate::config::{instance_file_stem, read_secret_file, Context, Secret};
use crate::dns::{Checker, DnssecMode};
use crate::error::{Error, Result};
use crate::ike::{GeneratedFiles, IkeBackend};
use crate::kernel::guard;
use crate::keys;
use crate::state::{StateStore, STATE_FORMAT};
use corosync::{PeerSource, AUTHKEY_MIN_BYTES};

pub const MASTER_SECRET_MIN_BYTES: usize = 32;

/// The peers to plan for, where the list came from, and the list as read (each peer with
/// where its address comes from: a change there is a membership change).
pub type PeerListing = (Vec<Listed>, PeerSource, Vec<String>);

pub struct MeshEnv<'a> {
    pub cfg: &'a MeshConfig,
    /// PATH, to find corosync-cmapctl.
    pub path_env: &'a str,
    pub ctx: &'a Context,
    pub ike: &'a dyn IkeBackend,
    pub store: StateStore,
    pub deadline: Instant,
}

/// What a started mesh set up: enough for monitor to check it, reload to diff against
/// it and stop to undo it, without resolving anything again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshState {
    pub format: u32,
    pub instance: String,
    pub plan: MeshPlan,
    pub policy: Policy,
    /// Where the peer list came from, and the list as it was read (to notice changes).
    pub peer_source: PeerSource,
    pub listed: Vec<String>,
    /// secret_file | corosync authkey | certificate
    pub key_source: String,
    /// Fingerprint of the master secret the pair keys came from (not the secret).
    pub key_fingerprint: Option<String>,
    pub daemon_instance: Option<u64>,
    pub started_at: u64,
}

impl MeshEnv<'_> {
    pub fn files(&self) -> GeneratedFiles {
        let stem = format!("vipsec-{}", instance_file_stem(&self.ctx.instance));
        self.ike.generated_files(&stem, &self.cfg.confdir)
    }

    pub fn master(&self) -> Result<Option<Secret>> {
        match &self.cfg.auth {
            MeshAuth::Psk {
                secret_file: Some(file),
            } => read_secret_file("secret_file", file, MASTER_SECRET_MIN_BYTES).map(Some),
            MeshAuth::Psk { secret_file: None } => {
                let authkey = read_secret_file("corosync_authkey", &self.cfg.corosync_authkey, AUTHKEY_MIN_BYTES)
                    .map_err(|e| {
                        Error::Configured(format!(
                            "{} — set secret_file to a 0600 master secret, or create the cluster key (pcs cluster authkey corosync)",
                            e.reason()
                        ))
                    })?;
                Ok(Some(keys::master_from_corosync_authkey(&authkey)))
            }
            MeshAuth::Cert { .. } => Ok(None),
        }
    }

    pub fn key_source(&self) -> &'static str {
        match &self.cfg.auth {
            MeshAuth::Psk {
                secret_file: Some(_),
            } => "secret_file",
            MeshAuth::Psk { secret_file: None } => "corosync authkey",
            MeshAuth::Cert { .. } => "certificate",
        }
    }

    /// The peers to plan for: the parameter, or Corosync's members and nodelist.
    pub fn peer_list(&self) -> Result<PeerListing> {
        match &self.cfg.peers {
            Some(peers) => Ok((
                peers.iter().map(Listed::parameter).collect(),
                PeerSource::Parameter,
                peers.iter().map(ToString::to_string).collect(),
            )),
            None => {
                let cluster =
                    corosync::read(&self.cfg.corosync_conf, self.path_env, self.deadline)?;
                let peers = cluster.peers()?;
                let listed = peers
                    .iter()
                    .map(|p| match p.spec.to_string() {
                        s if s == p.listed_as => format!("{s} ({})", p.origin.as_str()),
                        s => format!("{}: {s} ({})", p.listed_as, p.origin.as_str()),
                    })
                    .collect();
                Ok((peers, cluster.source, listed))
            }
        }
    }

    /// Plans from the current peer list; the state records where it came from.
    /// `previous`: the running mesh's plan. A named peer whose lookup gets no answer now
    /// (a DNS outage, not a refusal) keeps the addresses it had there: an outage must not
    /// drop a pair's protection, nor cut Corosync's traffic to it.
    pub fn plan(
        &self,
        master: Option<&Secret>,
        listing: PeerListing,
        previous: Option<&MeshPlan>,
    ) -> Result<MeshState> {
        let (peers, source, listed) = listing;
        let has_names = peers.iter().any(|p| matches!(p.spec, PeerSpec::Name(_)));
        let mode = self.cfg.dnssec.unwrap_or(
            if has_names || matches!(self.cfg.auth, MeshAuth::Cert { .. }) {
                DnssecMode::Require
            } else {
                DnssecMode::Off
            },
        );
        let mut checker = match (mode, has_names) {
            (DnssecMode::Off, _) | (_, false) => None,
            _ => Some(Checker::new(
                &self.cfg.dnssec_anchor,
                &self.cfg.resolver,
                self.deadline,
            )?),
        };
        let deadline = self.deadline;
        let mut resolve = |names: &[String]| -> Resolved {
            let Some(checker) = checker.as_mut() else {
                return resolve_plain(names, deadline);
            };
            let mut out = Resolved::new();
            for answer in checker.lookup_all(names, deadline) {
                let kept: Vec<std::net::IpAddr> = previous
                    .filter(|_| answer.inconclusive)
                    .map(|p| {
                        p.peers
                            .iter()
                            .filter(|peer| peer.listed_as == answer.name)
                            .map(|peer| peer.address)
                            .collect()
                    })
                    .unwrap_or_default();
                if !kept.is_empty() {
                    log::warn!(
                        "peer {}: {} (keeping its last validated addresses)",
                        answer.name,
                        answer.problem.as_deref().unwrap_or("no answer")
                    );
                    out.push((answer.name.clone(), Ok(kept)));
                    continue;
                }
                match (&answer.problem, mode) {
                    (None, _) => out.push((answer.name.clone(), Ok(answer.addresses.clone()))),
                    (Some(problem), DnssecMode::Require) => {
                        log::warn!("peer {}: refused by DNSSEC: {problem}", answer.name);
                        out.push((
                            answer.name.clone(),
                            Err(format!("refused by DNSSEC: {problem}")),
                        ));
                    }
                    (Some(problem), _) => {
                        // dnssec=log: say so, then use the answer (or, if validation left
                        // none, what the system resolver says).
                        log::warn!(
                            "peer {}: {problem} (dnssec=log: using it anyway)",
                            answer.name
                        );
                        let addrs = if answer.addresses.is_empty() {
                            checker.lookup_unvalidated(&answer.name, deadline)
                        } else {
                            answer.addresses.clone()
                        };
                        if addrs.is_empty() {
                            out.push((
                                answer.name.clone(),
                                Err(format!("does not resolve: {problem}")),
                            ));
                        } else {
                            out.push((answer.name.clone(), Ok(addrs)));
                        }
                    }
                }
            }
            out
        };
        let plan = crate::agents::mesh::plan::build(
            self.cfg,
            &peers,
            source != PeerSource::Parameter,
            &mut resolve,
            self.deadline,
        )?;
        let mut state = self.state(plan, master);
        state.peer_source = source;
        state.listed = listed;
        Ok(state)
    }

    /// Everything start needs from this node, checked without changing anything: the
    /// key, the peer list (from the parameter or Corosync), libreswan.
    pub fn validate(&self) -> Result<(Option<Secret>, PeerListing)> {
        if self.cfg.ike.uses_confdir() {
            crate::config::check_directory("confdir", &self.cfg.confdir)?;
        }
        if let config::MeshAuth::Cert { nickname } = &self.cfg.auth {
            self.cfg.ike.check_cert_file(nickname)?;
        }
        let master = self.master()?;
        let listing = self.peer_list()?;
        self.ike.check_installed()?;
        Ok((master, listing))
    }

    pub fn state(&self, plan: MeshPlan, master: Option<&Secret>) -> MeshState {
        MeshState {
            format: STATE_FORMAT,
            instance: self.ctx.instance.clone(),
            plan,
            policy: self.cfg.policy,
            peer_source: PeerSource::Parameter,
            listed: Vec::new(),
            key_source: self.key_source().to_string(),
            key_fingerprint: master.map(keys::fingerprint),
            daemon_instance: None,
            started_at: crate::state::now_secs(),
        }
    }

    /// The inbound guard a `require` mesh keeps on its local addresses (none otherwise):
    /// see kernel::guard. Returns the guarded addresses and the rules.
    pub fn guard_rules(&self, plan: &MeshPlan) -> (Vec<IpAddr>, Vec<guard::Rule>) {
        if self.cfg.policy != Policy::Require {
            return (Vec::new(), Vec::new());
        }
        let mut servers = crate::dns::system_nameservers();
        servers.extend(self.cfg.resolver.iter().map(|s| s.ip()));
        let locals: Vec<IpAddr> = plan.locals().into_iter().collect();
        let mut rules = Vec::new();
        for &local in &locals {
            let same = |a: &IpAddr| a.is_ipv4() == local.is_ipv4();
            rules.push(guard::Rule::block_all_to(local));
            for peer in plan.peers.iter().filter(|p| p.local == local) {
                rules.push(guard::Rule::allow_from(
                    peer.address,
                    guard::host_len(peer.address),
                    local,
                ));
            }
            for net in self.cfg.clear_from.iter().filter(|n| same(&n.addr)) {
                rules.push(guard::Rule::allow_from(net.addr, net.len, local));
            }
            for &server in servers.iter().filter(|a| same(a)) {
                for proto in [guard::IPPROTO_UDP, guard::IPPROTO_TCP] {
                    rules.push(guard::Rule {
                        src: server,
                        src_len: guard::host_len(server),
                        sport: 53,
                        ..guard::Rule::allow_proto(local, proto, 0, 0)
                    });
                }
            }
            if self.cfg.exclude_ssh {
                rules.push(guard::Rule::allow_proto(local, guard::IPPROTO_TCP, 0, 22));
                rules.push(guard::Rule::allow_proto(local, guard::IPPROTO_TCP, 22, 0));
            }
            let icmp = if local.is_ipv4() {
                guard::IPPROTO_ICMP
            } else {
                guard::IPPROTO_ICMPV6
            };
            if self.cfg.exclude_icmp {
                rules.push(guard::Rule::allow_proto(local, icmp, 0, 0));
            } else if local.is_ipv6() {
                // Without neighbour discovery (ICMPv6 133-137) IPv6 stops working at all.
                for nd_type in 133..=137 {
                    rules.push(guard::Rule::allow_proto(local, icmp, nd_type, 0));
                }
            }
        }
        rules.dedup();
        let tier = self.ike.guard_tier();
        for r in &mut rules {
            r.tier = tier;
        }
        (locals, rules)
    }

    /// Brings the kernel's inbound guard in line with `plan` (removes it unless require).
    pub fn apply_guard(&self, plan: &MeshPlan) -> Result<()> {
        let (mut locals, rules) = self.guard_rules(plan);
        if locals.is_empty() {
            // Nothing to guard: remove whatever a previous require left on these addresses.
            locals = plan.locals().into_iter().collect();
            if locals.is_empty() {
                return Ok(());
            }
        }
        let (added, removed) = guard::apply(&locals, &rules, self.deadline)?;
        if added + removed > 0 {
            log::info!("inbound guard: {added} policies added, {removed} removed");
        }
        Ok(())
    }

    /// Writes the plan's conns (and, with a master secret, every pair's key) for the
    /// IKE daemon.
    pub fn write_conns(
        &self,
        plan: &MeshPlan,
        master: Option<&Secret>,
        files: &GeneratedFiles,
    ) -> Result<()> {
        let conns = plan::conn_defs(self.cfg, plan);
        let keys = master.map(|m| plan::pair_keys(plan, m));
        self.ike
            .write_conns(&conns, keys.as_deref(), files, self.deadline)
    }

    pub fn daemon_not_running(&self) -> Error {
        self.cfg.ike.not_running(self.ike.daemon_name())
    }

    /// Runs one daemon command per conn, a few at a time: with hundreds of peers the
    /// commands' start-up time, not pluto, is what takes long.
    pub fn for_each_conn<'c>(
        &self,
        conns: &[&'c str],
        f: impl Fn(&crate::config::ConnName) -> Result<()> + Sync,
    ) -> Vec<(&'c str, Result<()>)> {
        const WORKERS: usize = 4;
        let chunk = conns.len().div_ceil(WORKERS).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = conns
                .chunks(chunk)
                .map(|part| {
                    let f = &f;
                    scope.spawn(move || {
                        part.iter()
                            .map(|c| {
                                (
                                    *c,
                                    crate::config::ConnName::parse("conn", c).and_then(|n| f(&n)),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }
}

/// Runs one verb.
pub fn run(verb: Verb, printing: Printing, env: &MeshEnv) -> Result<()> {
    match verb {
        Verb::Start => start::run(env),
        Verb::Stop => stop::run(env),
        Verb::ReloadAgent => reload::run(env),
        Verb::ValidateAll => env.validate().map(|_| ()),
        Verb::Monitor => {
            let (report, result) = monitor::run(env);
            match printing {
                Printing::Quiet => {}
                Printing::Json => print_json(&report),
                Printing::Text => {
                    println!("{}: {}", report.state, report.reason);
                    for p in &report.peers {
                        println!(
                            "  {:<40} policy {:<3} SA {:<4} from {}",
                            p.listed_as,
                            if p.policy { "yes" } else { "no" },
                            if p.sa { "up" } else { "down" },
                            p.origin.as_str()
                        );
                    }
                    for s in &report.skipped {
                        println!("  {:<40} skipped: {}", s.peer, s.reason);
                    }
                }
            }
            result
        }
    }
}
