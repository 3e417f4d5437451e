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
    /// Under require: named peers now refused (or not resolved) and the addresses they
    /// had, whose traffic stays blocked both ways (kernel::guard's hold) instead of going
    /// in clear. Released when the peer comes back, leaves the list, or the mesh stops.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub listed_as: String,
    pub address: IpAddr,
}

impl MeshState {
    /// The remote ends whose traffic stays blocked, as guard::hold wants them.
    pub fn blocked_ends(&self) -> Vec<(IpAddr, u8)> {
        let mut ends: Vec<(IpAddr, u8)> = self
            .blocked
            .iter()
            .map(|b| (b.address, guard::host_len(b.address)))
            .collect();
        ends.sort();
        ends.dedup();
        ends
    }
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
    /// `previous`: the running mesh's state. A named peer whose lookup gets no answer now
    /// (a DNS outage, not a refusal) keeps the addresses it had there: an outage must not
    /// drop a pair's protection, nor cut Corosync's traffic to it. Under require, one
    /// that gets no conn now (refused, unresolvable) stays blocked at the addresses it
    /// had: never nothing, which would let its traffic go in clear.
    pub fn plan(
        &self,
        master: Option<&Secret>,
        listing: PeerListing,
        previous_state: Option<&MeshState>,
    ) -> Result<MeshState> {
        let previous = previous_state.map(|s| &s.plan);
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
        if let (Some(prev), Policy::Require) = (previous_state, self.cfg.policy) {
            state.blocked = still_blocked(prev, &state.plan);
        }
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
            blocked: Vec::new(),
        }
    }

    /// The policies vipsec keeps itself on the mesh's local addresses (see
    /// kernel::guard): this node's own SSH both ways (exclude_ssh; any policy but
    /// disable), and under `require` the inbound guard. Returns the addresses and rules.
    ///
    /// Replies can only be told by their ports: the source port of the service asked
    /// (22, a name server's), to a port of the kernel's ephemeral range that no local
    /// socket listens on (read now: a service started later is carved out at the next
    /// monitor). Never "from port 22 (or 53) to anything": that reaches every service.
    pub fn guard_rules(&self, plan: &MeshPlan) -> (Vec<IpAddr>, Vec<guard::Rule>) {
        if self.cfg.policy == Policy::Disable {
            return (Vec::new(), Vec::new());
        }
        let require = self.cfg.policy == Policy::Require;
        let locals: Vec<IpAddr> = plan.locals().into_iter().collect();
        let (lo, hi, reserved) = crate::kernel::sockets::ephemeral_ports();
        let reply_ports = |proto: u8, local: IpAddr| {
            let mut taken = crate::kernel::sockets::open_ports(proto, local);
            taken.extend(&reserved);
            guard::port_blocks(lo, hi, &taken)
        };
        // Each name server from the port it answers on: resolv.conf's on 53, resolver='s
        // on theirs.
        let mut servers: Vec<std::net::SocketAddr> = crate::dns::system_nameservers()
            .into_iter()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
            .collect();
        servers.extend(self.cfg.resolver.iter().copied());
        let mut rules = Vec::new();
        for &local in &locals {
            let same = |a: &IpAddr| a.is_ipv4() == local.is_ipv4();
            let any = if local.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            };
            let tcp_replies = reply_ports(guard::IPPROTO_TCP, local);
            let first = rules.len();
            if self.cfg.exclude_ssh {
                // This node's SSH to anyone, another node included, in clear: out to port
                // 22, and the replies back.
                let mut out = guard::Rule::allow_proto(any, guard::IPPROTO_TCP, 0, 22);
                (out.src, out.src_len, out.dst, out.dst_len, out.out) =
                    (local, guard::host_len(local), any, 0, true);
                rules.push(out);
                for &block in &tcp_replies {
                    rules.push(guard::Rule::allow_replies(
                        any,
                        0,
                        local,
                        guard::IPPROTO_TCP,
                        22,
                        block,
                    ));
                }
            }
            for r in &mut rules[first..] {
                r.tier = guard::Tier::Pass;
            }
            if !require {
                continue;
            }
            let tier = self.ike.guard_tier();
            let first = rules.len();
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
            let udp_replies = reply_ports(guard::IPPROTO_UDP, local);
            for server in servers.iter().filter(|s| same(&s.ip())) {
                for (proto, blocks) in [
                    (guard::IPPROTO_UDP, &udp_replies),
                    (guard::IPPROTO_TCP, &tcp_replies),
                ] {
                    for &block in blocks {
                        rules.push(guard::Rule::allow_replies(
                            server.ip(),
                            guard::host_len(server.ip()),
                            local,
                            proto,
                            server.port(),
                            block,
                        ));
                    }
                }
            }
            if self.cfg.exclude_ssh {
                // Incoming SSH (sshd); its replies leave by the IKE daemon's ssh-in conn.
                rules.push(guard::Rule::allow_proto(local, guard::IPPROTO_TCP, 0, 22));
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
            for r in &mut rules[first..] {
                r.tier = tier;
            }
        }
        let mut seen = std::collections::HashSet::new();
        rules.retain(|r| seen.insert(r.clone()));
        (locals, rules)
    }

    /// Brings the policies of `guard_rules` in line with `plan` (removes what the policy
    /// no longer wants). A diff: cheap when nothing changed.
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
            log::info!("guard: {added} policies added, {removed} removed");
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

/// The named peers `plan` skips that `previous` had addresses for (conns, or a block),
/// at those addresses: each address once, none that `plan` has a conn to.
fn still_blocked(previous: &MeshState, plan: &MeshPlan) -> Vec<Blocked> {
    let had = previous
        .plan
        .peers
        .iter()
        .map(|p| (&p.listed_as, p.address))
        .chain(previous.blocked.iter().map(|b| (&b.listed_as, b.address)));
    let mut blocked: Vec<Blocked> = Vec::new();
    for (name, address) in had {
        let skipped = plan.skipped.iter().any(|s| &s.peer == name);
        let planned = plan.peers.iter().any(|p| p.address == address);
        let seen = blocked.iter().any(|b| b.address == address);
        if skipped && !planned && !seen && name.parse::<IpAddr>().is_err() {
            log::warn!("peer {name}: no conn now; its traffic to {address} stays blocked");
            blocked.push(Blocked {
                listed_as: name.clone(),
                address,
            });
        }
    }
    blocked
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
