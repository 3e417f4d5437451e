//! The parameter tables. Everything about a parameter lives in its row: the CLI flag,
//! the `OCF_RESKEY_*` name, meta-data, the README table and which checks apply to it.
//! Adding a parameter is adding a row (and, if it needs one, a check in config.rs).

/// The resource types this binary implements, one parameter table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// `ocf:vipsec:ipsec`: the road-warrior tunnel that follows a VIP.
    Ipsec,
}

impl Agent {
    pub fn from_type(name: &str) -> Option<Agent> {
        match name {
            "ipsec" => Some(Agent::Ipsec),
            _ => None,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            Agent::Ipsec => "ipsec",
        }
    }

    pub fn params(self) -> &'static [Param] {
        match self {
            Agent::Ipsec => IPSEC,
        }
    }

    pub fn shortdesc(self) -> &'static str {
        match self {
            Agent::Ipsec => "IPsec road-warrior tunnel that follows a virtual IP",
        }
    }

    pub fn longdesc(self) -> &'static str {
        match self {
            Agent::Ipsec => {
                "Manages the libreswan tunnel (conn) whose local end is a virtual IP address. \
Colocate it with the VIP and order it after the VIP: start loads the conn and makes pluto \
listen on the VIP, stop takes the conn down and deletes it (and brings up fallbacktunnel, \
if set, toward the VIP's new home). Monitor tells running (0), cleanly stopped (7) and \
failed (1) apart, and detects the VIP by exact address over netlink. A drop-in \
replacement for ocf:heartbeat:ipsec: the parameters tunnel, vip, confdir and \
fallbacktunnel mean the same."
            }
        }
    }

    /// Actions with their advised timeouts, as meta-data advertises them.
    pub fn actions(self) -> &'static [ActionSpec] {
        IPSEC_ACTIONS
    }
}

/// The OCF content types (the DTD's list).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Boolean,
    Time,
}

impl ParamType {
    pub fn ocf_name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Time => "time",
        }
    }
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamType,
    /// Empty: no default.
    pub default: &'static str,
    pub required: bool,
    pub unique: bool,
    /// OCF 1.1: a change is applied by reload-agent instead of a restart.
    pub reloadable: bool,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
}

#[derive(Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    pub timeout: &'static str,
    pub interval: Option<&'static str>,
    pub depth: Option<&'static str>,
    /// Only advertised to a resource manager speaking OCF 1.1 or later.
    pub ocf_1_1: bool,
}

pub const DEFAULT_CONFDIR: &str = "/etc/ipsec.d/";
pub const DEFAULT_CTLSOCKET: &str = "/run/pluto/pluto.ctl";

pub const IPSEC: &[Param] = &[
    Param {
        name: "tunnel",
        kind: ParamType::String,
        default: "",
        required: true,
        unique: true,
        reloadable: false,
        shortdesc: "Tunnel (conn) name",
        longdesc: "Name of the libreswan conn this resource brings up where the VIP lives and \
down where it does not. The conn is defined in a *.conf file under confdir. Letters, digits, \
'.', '_' and '-' only.",
    },
    Param {
        name: "vip",
        kind: ParamType::String,
        default: "",
        required: true,
        unique: true,
        reloadable: false,
        shortdesc: "Virtual IP address the tunnel uses",
        longdesc: "The virtual IP address (IPv4 or IPv6, without a prefix length) that is the \
local end of the tunnel. It is local when exactly this address is configured on an \
interface of this node; IPv6 addresses still in duplicate address detection do not count.",
    },
    Param {
        name: "confdir",
        kind: ParamType::String,
        default: DEFAULT_CONFDIR,
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Directory of the tunnel configurations",
        longdesc: "Directory whose *.conf files define the conn named by tunnel (and \
fallbacktunnel). Must exist and be a directory.",
    },
    Param {
        name: "fallbacktunnel",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: true,
        reloadable: true,
        shortdesc: "Tunnel to bring up when this one goes down",
        longdesc: "Name of a conn that stop initiates (asynchronously, inside pluto) after \
taking the main tunnel down, typically this node's own tunnel toward the VIP on its new \
node. Must differ from tunnel.",
    },
    Param {
        name: "ctlsocket",
        kind: ParamType::String,
        default: DEFAULT_CTLSOCKET,
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "pluto control socket",
        longdesc: "Path of the control socket of the pluto instance that owns the tunnel, \
passed as --ctlsocket to every libreswan command, so several pluto instances can run side \
by side.",
    },
    Param {
        name: "auth",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Generate the conn: psk or cert",
        longdesc: "Empty (the default): the conn named by tunnel comes from confdir, as with \
ocf:heartbeat:ipsec. psk or cert: vipsec generates the conn itself (VIP as the local end, \
right=%any, IKEv2 only, AES-GCM with DH 19/31, dead-peer detection, failureshunt=drop) \
into a private file under /run/vipsec, authenticated by the key in psk_file or by the \
NSS certificate named by cert.",
    },
    Param {
        name: "psk_file",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "File holding the pre-shared key (auth=psk)",
        longdesc: "Absolute path of a file (mode 0600 or stricter) whose content, at least 20 \
bytes, is the pre-shared key. vipsec copies it, hex-encoded, into \
confdir/vipsec-<instance>.secrets (mode 0600; /etc/ipsec.secrets includes \
/etc/ipsec.d/*.secrets) for pluto, and removes that file at stop. The key never \
appears on a command line or in a log.",
    },
    Param {
        name: "cert",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "NSS nickname of this node's certificate (auth=cert)",
        longdesc: "Nickname, in pluto's NSS database, of the certificate (with its private \
key) this end presents; the local identity is taken from it (leftid=%fromcert).",
    },
    Param {
        name: "peer_id",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Identity the peers must present (generated conn)",
        longdesc: "The IKE identity required of the remote end (rightid), e.g. \
@client.example.com, an address, or a certificate DN. Default: any identity the \
authentication accepts (with certificates: the one in the peer's certificate).",
    },
    Param {
        name: "mode",
        kind: ParamType::String,
        default: "transport",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "IPsec mode of a generated conn: transport or tunnel",
        longdesc: "transport (the default) encrypts host-to-host traffic between the VIP and \
each peer; tunnel encapsulates it in ESP tunnel mode.",
    },
];

const IPSEC_ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "start",
        timeout: "30s",
        interval: None,
        depth: None,
        ocf_1_1: false,
    },
    ActionSpec {
        name: "stop",
        timeout: "30s",
        interval: None,
        depth: None,
        ocf_1_1: false,
    },
    ActionSpec {
        name: "monitor",
        timeout: "20s",
        interval: Some("10s"),
        depth: Some("0"),
        ocf_1_1: false,
    },
    ActionSpec {
        name: "monitor",
        timeout: "20s",
        interval: Some("60s"),
        depth: Some("10"),
        ocf_1_1: false,
    },
    ActionSpec {
        name: "reload-agent",
        timeout: "20s",
        interval: None,
        depth: None,
        ocf_1_1: true,
    },
    ActionSpec {
        name: "validate-all",
        timeout: "20s",
        interval: None,
        depth: None,
        ocf_1_1: false,
    },
    ActionSpec {
        name: "meta-data",
        timeout: "5s",
        interval: None,
        depth: None,
        ocf_1_1: false,
    },
    ActionSpec {
        name: "usage",
        timeout: "5s",
        interval: None,
        depth: None,
        ocf_1_1: false,
    },
];

/// The README's parameter table for one agent, in Markdown (a test keeps README in step).
#[cfg(test)]
pub fn markdown_table(agent: Agent) -> String {
    let mut out = String::from(
        "| parameter | required | default | reloadable | description |\n|---|---|---|---|---|\n",
    );
    for p in agent.params() {
        let default = if p.default.is_empty() {
            String::new()
        } else {
            format!("`{}`", p.default)
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            p.name,
            if p.required { "yes" } else { "no" },
            default,
            if p.reloadable { "yes" } else { "no" },
            p.longdesc.replace('|', "\\|").replace('*', "\\*"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid_env_suffixes() {
        let params = Agent::Ipsec.params();
        for (i, p) in params.iter().enumerate() {
            assert!(
                p.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                p.name
            );
            assert!(
                params[i + 1..].iter().all(|q| q.name != p.name),
                "duplicate {}",
                p.name
            );
            assert!(
                !(p.required && !p.default.is_empty()),
                "{} required with a default",
                p.name
            );
        }
    }

    #[test]
    fn readme_parameter_table_matches_the_table() {
        let readme = include_str!("../README.md");
        let table = markdown_table(Agent::Ipsec);
        assert!(
            readme.contains(&table),
            "README.md's ocf:vipsec:ipsec parameter table is out of date; it must read:\n{table}"
        );
    }
}
