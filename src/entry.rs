//! From argv and the environment to an exit code: parse the invocation (OCF or CLI),
//! validate once, run the action, print the outcome the OCF way.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agents::ipsec::config::IpsecConfig;
use crate::agents::ipsec::{self, Env as IpsecEnv};
use crate::agents::mesh::config::MeshConfig;
use crate::agents::mesh::{self, MeshEnv};
use crate::agents::{Printing, Verb};
use crate::config::IkeDaemon;
use crate::config::{self, Context, RawParams, DEFAULT_STATE_DIR};
use crate::error::{Error, Result};
use crate::ike::libreswan::Libreswan;
use crate::ike::strongswan::Strongswan;
use crate::ike::IkeBackend;
use crate::logging::{self, LogSettings};

use crate::metadata::{self, OcfVersion};
use crate::params::Agent;
use crate::state::StateStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Monitor,
    ValidateAll,
    MetaData,
    ReloadAgent,
    Usage,
    Vip,
    CheckDns,
}

impl Action {
    fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "monitor" => Action::Monitor,
            "validate-all" => Action::ValidateAll,
            "meta-data" => Action::MetaData,
            // "reload" is what OCF 1.0 managers (and ocf:heartbeat:ipsec users) call.
            "reload-agent" | "reload" => Action::ReloadAgent,
            "usage" | "help" => Action::Usage,
            _ => return None,
        })
    }

    /// The agent verb this action is (meta-data, usage and the tools are not).
    fn verb(self) -> Option<Verb> {
        Some(match self {
            Action::Start => Verb::Start,
            Action::Stop => Verb::Stop,
            Action::Monitor => Verb::Monitor,
            Action::ValidateAll => Verb::ValidateAll,
            Action::ReloadAgent => Verb::ReloadAgent,
            Action::MetaData | Action::Usage | Action::Vip | Action::CheckDns => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::ValidateAll => "validate-all",
            Action::MetaData => "meta-data",
            Action::ReloadAgent => "reload-agent",
            Action::Usage => "usage",
            Action::Vip => "vip",
            Action::CheckDns => "check-dns",
        }
    }
}

/// What was asked, before validation.
struct Invocation {
    agent: Agent,
    action: Action,
    raw: RawParams,
    unknown_params: Vec<String>,
    instance: Option<String>,
    timeout: Option<String>,
    interval: Option<String>,
    check_level: Option<String>,
    json: bool,
    ocf_version: OcfVersion,
    by_hand: bool,
}

/// No core dump and no ptrace by other users of this process: it holds keys (a release
/// build aborts on panic, which would otherwise dump them to disk). Inherited by the
/// fallback waiter; children exec'd later reset dumpability but not the core limit.
pub fn keep_secrets_in() {
    use nix::sys::resource::{setrlimit, Resource};
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("vipsec: cannot turn core dumps off (prctl): {e}");
    }
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        eprintln!("vipsec: cannot turn core dumps off (RLIMIT_CORE): {e}");
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn main(mut args: Vec<OsString>, env: BTreeMap<String, String>) -> i32 {
    let started = Instant::now();
    // A stop's detached fallback waiter (agents/ipsec/fallback.rs) is this binary again,
    // with one argument in front.
    let fallback_waiter = args
        .get(1)
        .is_some_and(|a| a == ipsec::fallback::WAITER_ARG);
    if fallback_waiter {
        args.remove(1);
    }
    let prefix = env
        .get("OCF_EXIT_REASON_PREFIX")
        .cloned()
        .unwrap_or_else(|| "ocf-exit-reason:".into());
    let invoked = args
        .first()
        .and_then(|a| {
            Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    // `vipsec ocf TYPE ACTION` is the same as invoking the TYPE entry: what a shim in
    // resource.d runs where a symlink cannot be packaged.
    let shim_agent = match args.get(1).and_then(|a| a.to_str()) {
        Some("ocf") => args
            .get(2)
            .and_then(|t| t.to_str())
            .and_then(Agent::from_type),
        _ => None,
    };
    let parsed = match (Agent::from_type(&invoked), shim_agent) {
        (Some(agent), _) => from_ocf(agent, &args[1..], &env),
        (None, Some(agent)) => from_ocf(agent, &args[3..], &env),
        (None, None) => from_cli(&args, &env),
    };
    let inv = match parsed {
        Ok(Some(inv)) => inv,
        Ok(None) => return 0, // --help / --version printed
        Err(e) => return fail(&prefix, &e),
    };
    match execute(&inv, &env, started, fallback_waiter) {
        Ok(()) => 0,
        Err(e @ Error::NotRunning(_)) => e.code(),
        Err(e) => {
            log::error!(target: "exit", "{}: {}", inv.action.name(), e);
            fail(&prefix, &e)
        }
    }
}

fn fail(prefix: &str, e: &Error) -> i32 {
    let _ = writeln!(std::io::stderr(), "{prefix}{e}");
    e.code()
}

fn usage_text(agent: Agent) -> String {
    format!(
        "usage: {} {{start|stop|monitor|validate-all|meta-data|reload-agent|usage}}\n\n\
Expects the OCF environment (OCF_RESKEY_tunnel, OCF_RESKEY_vip, ...). \
By hand: vipsec ACTION --tunnel NAME --vip ADDRESS (vipsec --help).\n",
        agent.type_name()
    )
}

/// `args`: what follows the agent's name (the action first).
fn from_ocf(
    agent: Agent,
    args: &[OsString],
    env: &BTreeMap<String, String>,
) -> Result<Option<Invocation>> {
    // The action is the sole argument; the OCF API says to ignore any others.
    let Some(action_name) = args.first().map(|a| a.to_string_lossy().into_owned()) else {
        print!("{}", usage_text(agent));
        return Err(Error::Args("no action given".into()));
    };
    let action = match Action::from_name(&action_name) {
        Some(Action::Vip) | None => {
            return Err(Error::Unimplemented(format!(
                "action {action_name:?} is not implemented by ocf:vipsec:{}",
                agent.type_name()
            )))
        }
        Some(a) => a,
    };
    let (raw, unknown_params) = RawParams::from_env(agent, env);
    Ok(Some(Invocation {
        agent,
        action,
        raw,
        unknown_params,
        instance: env.get("OCF_RESOURCE_INSTANCE").cloned(),
        timeout: env.get("OCF_RESKEY_CRM_meta_timeout").cloned(),
        interval: env.get("OCF_RESKEY_CRM_meta_interval").cloned(),
        check_level: env.get("OCF_CHECK_LEVEL").cloned(),
        json: false,
        ocf_version: OcfVersion::from_env(
            env.get("OCF_RA_VERSION_MAJOR").map(String::as_str),
            env.get("OCF_RA_VERSION_MINOR").map(String::as_str),
        ),
        by_hand: false,
    }))
}

fn from_cli(args: &[OsString], env: &BTreeMap<String, String>) -> Result<Option<Invocation>> {
    let matches = match crate::cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    Ok(None)
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | ErrorKind::MissingSubcommand => {
                    let _ = e.print();
                    Err(Error::Args("no action given; see vipsec --help".into()))
                }
                ErrorKind::InvalidSubcommand => {
                    Err(Error::Unimplemented(first_line(&e.to_string())))
                }
                _ => Err(Error::Args(first_line(&e.to_string()))),
            };
        }
    };
    let Some((name, sub)) = matches.subcommand() else {
        return Err(Error::Args("no action given; see vipsec --help".into()));
    };
    let (agent, name, sub) = match (name, sub.subcommand()) {
        ("mesh", Some((action, sub))) => (Agent::Mesh, action, sub),
        _ => (Agent::Ipsec, name, sub),
    };
    let action = if name == "vip" {
        Action::Vip
    } else if name == "check-dns" {
        Action::CheckDns
    } else {
        Action::from_name(name).ok_or_else(|| Error::Unimplemented(format!("action {name:?}")))?
    };
    let mut raw = RawParams::default();
    let get = |id: &str| sub.try_get_one::<String>(id).ok().flatten().cloned();
    for p in agent.params() {
        if let Some(v) = get(p.name) {
            raw.set(p.name, v);
        }
    }
    if action == Action::Vip {
        if let Some(v) = get("vip") {
            raw.set("vip", v);
        }
    }
    if action == Action::CheckDns {
        for (flag, key) in [
            ("peer", "peer"),
            ("address", "address"),
            ("resolver", "resolver"),
            ("dnssec-anchor", "dnssec_anchor"),
        ] {
            if let Some(v) = get(flag) {
                raw.set(key, v);
            }
        }
    }
    let ocf_version = match get("ocf-version") {
        Some(v) => {
            let (major, minor) = v.split_once('.').unwrap_or((v.as_str(), "0"));
            OcfVersion::from_env(Some(major), Some(minor))
        }
        None => OcfVersion::from_env(
            env.get("OCF_RA_VERSION_MAJOR").map(String::as_str),
            env.get("OCF_RA_VERSION_MINOR").map(String::as_str),
        ),
    };
    Ok(Some(Invocation {
        agent,
        action,
        raw,
        unknown_params: Vec::new(),
        instance: get("instance"),
        timeout: get("timeout"),
        // By hand, monitor behaves as a recurring monitor, not as a probe.
        interval: Some("1".into()),
        check_level: get("check-level"),
        json: sub
            .try_get_one::<bool>("json")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false),
        ocf_version,
        by_hand: true,
    }))
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

fn default_timeout(agent: Agent, action: Action) -> Duration {
    agent
        .actions()
        .iter()
        .find(|a| a.name == action.name())
        .and_then(|a| humantime::parse_duration(a.timeout).ok())
        .unwrap_or(Duration::from_secs(20))
}

fn execute(
    inv: &Invocation,
    env: &BTreeMap<String, String>,
    started: Instant,
    fallback_waiter: bool,
) -> Result<()> {
    match inv.action {
        Action::MetaData => {
            print!("{}", metadata::render(inv.agent, inv.ocf_version));
            return Ok(());
        }
        Action::Usage => {
            print!("{}", usage_text(inv.agent));
            return Ok(());
        }
        _ => {}
    }
    // Before any value is used, by an agent or a tool.
    inv.raw.refuse_control_characters()?;
    let timeout = match &inv.timeout {
        Some(t) => config::parse_duration_ms("timeout (OCF_RESKEY_CRM_meta_timeout)", t)?,
        None => default_timeout(inv.agent, inv.action),
    };
    // Finish a little before the resource manager would kill us, so we can still report.
    let margin = (timeout / 10).min(Duration::from_secs(2));
    // A timeout beyond what the clock can add is no deadline at all (a year is plenty).
    let deadline = started
        .checked_add(timeout.saturating_sub(margin))
        .unwrap_or_else(|| started + Duration::from_secs(365 * 86400));

    if inv.action == Action::Vip {
        logging::init(&LogSettings::from_env("vip", |k| env.get(k).cloned()));
        return crate::tools::vip::run(&inv.raw, inv.json, deadline);
    }
    if inv.action == Action::CheckDns {
        logging::init(&LogSettings::from_env("check-dns", |k| env.get(k).cloned()));
        return crate::tools::check_dns::run(&inv.raw, inv.json, deadline);
    }

    // Logging is tagged with the instance, which may need the tunnel name: parse first,
    // and log the validation outcome once logging is up.
    let parsed = match inv.agent {
        Agent::Ipsec => IpsecConfig::parse(&inv.raw).map(AgentConfig::Ipsec),
        Agent::Mesh => MeshConfig::parse(&inv.raw).map(AgentConfig::Mesh),
    };
    let state_dir = PathBuf::from(
        env.get("HA_RSCTMP")
            .map(String::as_str)
            .unwrap_or(DEFAULT_STATE_DIR),
    );
    let instance = inv
        .instance
        .clone()
        .filter(|i| !i.is_empty())
        .or_else(|| match parsed.as_ref().ok()? {
            AgentConfig::Ipsec(cfg) => {
                let tunnel = cfg.tunnel.as_str();
                inv.by_hand
                    .then(|| StateStore::find_instance_by_tunnel(&state_dir, tunnel))
                    .flatten()
                    .or_else(|| Some(tunnel.to_string()))
            }
            AgentConfig::Mesh(_) => Some("mesh".to_string()),
        })
        .unwrap_or_else(|| "vipsec".into());
    logging::init(&LogSettings::from_env(&instance, |k| env.get(k).cloned()));
    for name in &inv.unknown_params {
        log::warn!(
            "ignoring unknown parameter {name:?} (OCF_RESKEY_{name}): ocf:vipsec:{} does not use it",
            inv.agent.type_name()
        );
    }
    let cfg = parsed?;
    let interval = match inv.interval.as_deref() {
        None => None,
        Some(i) => Some(config::parse_duration_ms(
            "OCF_RESKEY_CRM_meta_interval",
            i,
        )?)
        .filter(|d| !d.is_zero()),
    };
    let ctx = Context {
        instance,
        interval,
        check_level: inv
            .check_level
            .as_deref()
            .map(config::parse_check_level)
            .transpose()?
            .unwrap_or(0),
        state_dir,
        pretend_binaries_missing: env
            .get("OCF_TESTER_FAIL_HAVE_BINARY")
            .is_some_and(|v| v == "1"),
    };
    let ike_daemon = match &cfg {
        AgentConfig::Ipsec(c) => &c.ike,
        AgentConfig::Mesh(c) => &c.ike,
    };
    let run_dir = Path::new(config::RUN_DIR);
    // ocf-tester's "binaries missing" check never turns a stop into a no-op: a stop
    // always takes down what it can find.
    let pretend_missing = ctx.pretend_binaries_missing && inv.action != Action::Stop;
    let ike: Box<dyn IkeBackend> = match ike_daemon {
        IkeDaemon::Libreswan { ctlsocket } => Box::new(Libreswan::new(
            env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH),
            ctlsocket,
            run_dir,
            pretend_missing,
        )),
        IkeDaemon::Strongswan { vicisocket } => {
            Box::new(Strongswan::new(vicisocket, run_dir, pretend_missing))
        }
    };
    let ike = ike.as_ref();
    let store = StateStore::new(&ctx.state_dir, &ctx.instance);
    log::debug!("{} (timeout {timeout:?})", inv.action.name());
    let Some(verb) = inv.action.verb() else {
        return Ok(());
    };
    let printing = match (inv.by_hand, inv.json) {
        (false, _) => Printing::Quiet,
        (true, false) => Printing::Text,
        (true, true) => Printing::Json,
    };
    let result = match &cfg {
        AgentConfig::Ipsec(cfg) => ipsec::run(
            verb,
            printing,
            fallback_waiter,
            &IpsecEnv {
                cfg,
                ctx: &ctx,
                ike,
                store,
                deadline,
            },
        ),
        AgentConfig::Mesh(cfg) => mesh::run(
            verb,
            printing,
            &MeshEnv {
                cfg,
                path_env: env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH),
                ctx: &ctx,
                ike,
                store,
                deadline,
            },
        ),
    };
    result.inspect(|()| {
        if inv.by_hand && inv.action != Action::Monitor {
            println!("{}: ok", inv.action.name());
        }
    })
}

enum AgentConfig {
    Ipsec(IpsecConfig),
    Mesh(MeshConfig),
}
