//! The command line, built from the same parameter table as meta-data: every parameter is
//! a flag of the same name, and its help is the meta-data text.

use clap::{Arg, ArgAction, Command};

use crate::params::Agent;

pub const ACTIONS: &[(&str, &str)] = &[
    ("start", "Bring the tunnel up where the VIP lives"),
    (
        "stop",
        "Take the tunnel down (and bring up fallbacktunnel, if set)",
    ),
    (
        "monitor",
        "Report running (0), cleanly stopped (7) or failed (1)",
    ),
    (
        "validate-all",
        "Check the parameters and this node's setup without changing anything",
    ),
    (
        "reload-agent",
        "Apply changed reloadable parameters to a running resource",
    ),
];

fn param_args(agent: Agent) -> Vec<Arg> {
    agent
        .params()
        .iter()
        .map(|p| {
            let mut long = format!(
                "{}.\n\n{}\n\n[env: OCF_RESKEY_{}]",
                p.shortdesc, p.longdesc, p.name
            );
            if !p.default.is_empty() {
                long.push_str(&format!(" [default: {}]", p.default));
            }
            if p.required {
                long.push_str(" [required]");
            }
            Arg::new(p.name)
                .long(p.name)
                .value_name(p.name)
                .help(p.shortdesc)
                .long_help(long)
                .help_heading("Resource parameters")
        })
        .collect()
}

fn context_args() -> Vec<Arg> {
    vec![
        Arg::new("instance")
            .long("instance")
            .value_name("ID")
            .help("Resource instance (OCF_RESOURCE_INSTANCE); default: the instance whose state records this tunnel, else the tunnel name"),
        Arg::new("timeout")
            .long("timeout")
            .value_name("DURATION")
            .help("Time the whole action may take, e.g. 20s or 20000 (ms) (OCF_RESKEY_CRM_meta_timeout)"),
    ]
}

/// The action subcommands of one agent (start, stop, monitor, …, meta-data).
fn action_commands(agent: Agent) -> Vec<Command> {
    let mut subs = Vec::new();
    for (name, about) in ACTIONS {
        let mut sub = Command::new(*name)
            .about(*about)
            .args(param_args(agent))
            .args(context_args());
        if *name == "monitor" {
            sub = sub
                .arg(
                    Arg::new("check-level")
                        .long("check-level")
                        .value_name("N")
                        .help("Monitor depth: 0 (default), 10, 20 (OCF_CHECK_LEVEL)"),
                )
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("Print the report as JSON"),
                );
        }
        subs.push(sub);
    }
    subs.push(
        Command::new("meta-data").about("Print the OCF meta-data (XML)").arg(
            Arg::new("ocf-version")
                .long("ocf-version")
                .value_name("X.Y")
                .help("OCF API dialect: 1.0 (DTD-valid, default) or 1.1 (reloadable, reload-agent)"),
        ),
    );
    subs
}

/// `vipsec ACTION …` is ocf:vipsec:ipsec; `vipsec mesh ACTION …` is ocf:vipsec:mesh.
pub fn command() -> Command {
    Command::new("vipsec")
        .version(env!("CARGO_PKG_VERSION"))
        .about("IPsec tunnels for Pacemaker clusters: the OCF agents ocf:vipsec:ipsec and ocf:vipsec:mesh, by hand")
        .long_about(
            "vipsec manages the IPsec tunnel that follows a virtual IP (ocf:vipsec:ipsec: vipsec \
ACTION) and host-to-host tunnels between cluster nodes (ocf:vipsec:mesh: vipsec mesh ACTION). \
Pacemaker runs it as /usr/lib/ocf/resource.d/vipsec/{ipsec,mesh} ACTION with OCF_RESKEY_* \
parameters; by hand it takes the same parameters as flags. Exit codes are those of the OCF \
Resource Agent API.",
        )
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .subcommands(action_commands(Agent::Ipsec))
        .subcommand(
            Command::new("mesh")
                .about("ocf:vipsec:mesh by hand: tunnels from this node to every peer")
                .subcommand_required(true)
                .subcommands(action_commands(Agent::Mesh)),
        )
        .subcommand(
            Command::new("vip")
                .about("Tell whether the VIP is configured on this node, and on which interface")
                .arg(Arg::new("vip").long("vip").value_name("VIP").help("The address to look for"))
                .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print the answer as JSON")),
        )
        .subcommand(
            Command::new("check-dns")
                .about("Check that a peer's name securely (DNSSEC) resolves to the address it uses")
                .arg(Arg::new("peer").long("peer").value_name("NAME").help("The peer's DNS name"))
                .arg(Arg::new("address").long("address").value_name("IP").help("The address the peer uses"))
                .arg(Arg::new("resolver").long("resolver").value_name("ADDRESS[:PORT] ...").help("Resolvers to ask, space- or comma-separated (default: every nameserver of /etc/resolv.conf)"))
                .arg(Arg::new("dnssec-anchor").long("dnssec-anchor").value_name("FILE").help("Trust anchor: DNSKEY lines (default /usr/share/dns/root.key)"))
                .arg(Arg::new("timeout").long("timeout").value_name("DURATION").help("Time the check may take (default 10s)"))
                .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("Print the verdict as JSON")),
        )
        .subcommand(Command::new("usage").about("Print the OCF usage line"))
}
