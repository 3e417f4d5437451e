//! The parameter tables. Everything about a parameter lives in its row: the CLI flag,
//! the `OCF_RESKEY_*` name, meta-data, the README table and which checks apply to it.
//! Adding a parameter is adding a row (and, if it needs one, a check in config.rs).

/// The resource types this binary implements, one parameter table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// `ocf:vipsec:ipsec`: the road-warrior tunnel that follows a VIP.
    Ipsec,
    /// `ocf:vipsec:mesh`: host-to-host tunnels to every peer, run as a clone.
    Mesh,
}

impl Agent {
    pub fn from_type(name: &str) -> Option<Agent> {
        match name {
            "ipsec" => Some(Agent::Ipsec),
            "mesh" => Some(Agent::Mesh),
            _ => None,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            Agent::Ipsec => "ipsec",
            Agent::Mesh => "mesh",
        }
    }

    pub fn params(self) -> &'static [Param] {
        match self {
            Agent::Ipsec => IPSEC,
            Agent::Mesh => MESH,
        }
    }

    pub fn shortdesc(self) -> &'static str {
        match self {
            Agent::Ipsec => "IPsec road-warrior tunnel that follows a virtual IP",
            Agent::Mesh => "IPsec between this node and every peer (a full mesh)",
        }
    }

    pub fn longdesc(self) -> &'static str {
        match self {
            Agent::Ipsec => {
                "Manages the IPsec tunnel (a libreswan or, with ike=strongswan, a strongSwan \
conn) whose local end is a virtual IP address. \
Colocate it with the VIP and order it after the VIP: start loads the conn and makes the IKE daemon \
serve the VIP, stop takes the conn down and deletes it (and brings up fallbacktunnel, \
if set, toward the VIP's new home). Monitor tells running (0), cleanly stopped (7) and \
failed (1) apart, and detects the VIP by exact address over netlink. A drop-in \
replacement for ocf:heartbeat:ipsec: the parameters tunnel, vip, confdir and \
fallbacktunnel mean the same."
            }
            Agent::Mesh => {
                "Encrypts the traffic between this node's regular addresses and every peer's, \
host to host in transport mode, with one conn per peer (libreswan, or strongSwan with \
ike=strongswan; one mesh may mix both). Meant to run as a clone \
on every node, with the same peer list everywhere (a node skips its own addresses). Per-pair \
keys are derived with HKDF-SHA256 from one master secret, or peers authenticate with \
certificates. policy=use is fail-open, require fail-closed, disable removes the kernel \
policies only. SSH and ICMP stay outside the policy unless told otherwise. Monitor reports \
0 when every peer's policies are in place and SAs are up, 190 (degraded) when some peers \
have no SA, 1 when conns or policies are missing, 7 when stopped. reload-agent applies a \
changed peer list without touching unchanged peers."
            }
        }
    }

    /// Actions with their advised timeouts, as meta-data advertises them.
    pub fn actions(self) -> &'static [ActionSpec] {
        match self {
            Agent::Ipsec => IPSEC_ACTIONS,
            Agent::Mesh => MESH_ACTIONS,
        }
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
/// Where charon's VICI plugin listens unless strongswan.conf says otherwise.
pub const DEFAULT_VICISOCKET: &str = "/var/run/charon.vici";
pub const DEFAULT_COROSYNC_CONF: &str = "/etc/corosync/corosync.conf";
pub const DEFAULT_COROSYNC_AUTHKEY: &str = "/etc/corosync/authkey";

/// The same for both agents.
const DNSSEC_ANCHOR: Param = Param {
    name: "dnssec_anchor",
    kind: ParamType::String,
    default: crate::dns::DEFAULT_ANCHOR,
    required: false,
    unique: false,
    reloadable: false,
    shortdesc: "DNSSEC trust anchor (a file of DNSKEY lines)",
    longdesc: "The keys validation starts from: every DNSKEY of the anchored zone, one \
per line. Default: the DNS root key from dns-root-data.",
};

/// The same for both agents: which IKE daemon, and where strongSwan's listens.
const IKE: Param = Param {
    name: "ike",
    kind: ParamType::String,
    default: "libreswan",
    required: false,
    unique: false,
    reloadable: false,
    shortdesc: "IKE daemon: libreswan or strongswan",
    longdesc: "The IKE daemon that negotiates the tunnels. libreswan (the default): pluto, \
driven through its control socket (ctlsocket). strongswan: charon, driven over its VICI \
socket (vicisocket) only; generated conns and keys are given to charon over VICI and never \
written to swanctl's configuration. ctlsocket and confdir belong to libreswan, vicisocket \
to strongswan.",
};

const VICISOCKET: Param = Param {
    name: "vicisocket",
    kind: ParamType::String,
    default: DEFAULT_VICISOCKET,
    required: false,
    unique: false,
    reloadable: false,
    shortdesc: "charon's VICI socket (ike=strongswan)",
    longdesc: "Path of the VICI socket of the charon instance that owns the tunnels \
(strongswan.conf's charon.plugins.vici.socket), so several charons can run side by side. \
Only with ike=strongswan.",
};

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
node: such a conn comes up once the VIP has left this node (a detached waiter, for up to \
120 s), and start takes it down again. Must differ from tunnel.",
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
    IKE,
    VICISOCKET,
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
        longdesc: "Absolute path of a file (owned by root, mode 0600 or stricter, not a symlink) whose content, at least 20 \
bytes, is the pre-shared key. vipsec copies it, hex-encoded, to a 0600 file under \
/run/vipsec (tmpfs: never on a disk, gone after a reboot) that \
confdir/vipsec-<instance>.secrets links to for pluto (/etc/ipsec.secrets includes \
/etc/ipsec.d/*.secrets), and removes both at stop. The key never appears on a command \
line or in a log.",
    },
    Param {
        name: "cert",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "This node's certificate (auth=cert)",
        longdesc: "Nickname, in pluto's NSS database, of the certificate (with its private \
key) this end presents; the local identity is taken from it (leftid=%fromcert). Its key \
type (RSA or ECDSA, from pluto) sets leftauth/rightauth: peers present the same type. A \
certificate pluto does not have is refused at start with 5. With ike=strongswan: the path \
of the certificate file (PEM or DER), given to charon in the conn; its private key and the \
CA are charon's own credentials (swanctl --load-creds).",
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
    Param {
        name: "clients",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Addresses of the VIP's known clients (generated conn)",
        longdesc: "IPv4 or IPv6 addresses of the VIP's family, separated by spaces or commas, \
at most 256: clients of the VIP known in advance (e.g. the other nodes of a deployment). \
Each gets a conn of its own (the generated conn toward that address, named \
<tunnel>-to-<address>), and start, once the VIP is served, has the IKE daemon initiate it \
(asynchronously, with INITIAL_CONTACT, so the client drops the SAs it still had with the \
VIP's previous node): after a failover they have an SA again within one IKE exchange \
instead of waiting for their own retransmissions or dead peer detection. A listed client \
that is down delays nothing. Clients not listed connect as usual. Only with auth=psk or \
auth=cert.",
    },
    Param {
        name: "dnssec",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "DNSSEC for the peers' names: off, log or require",
        longdesc: "Every connected peer identified by a DNS name must connect from an \
address that name resolves to, with a DNSSEC-validated answer: with peer_id=@NAME that \
NAME; with auth=cert (and no such peer_id) the name in the identity the peer's certificate \
gave it (an @FQDN, or the CN of its DN). Monitor checks it and, with require, deletes the \
SA of a peer that fails (and reports failure); log only logs it. Default: require when \
peer_id is a name or auth=cert, else off.",
    },
    DNSSEC_ANCHOR,
    Param {
        name: "resolver",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Resolvers to ask, address[:port] ...",
        longdesc: "The DNS servers asked for the peers' names, address[:port] (IPv6 as \
[address]:port), space- or comma-separated, at most 8 (they need not validate: vipsec \
does). Asked together, as resolv.conf's are: one that is down does not hold the answer up. \
Default: every nameserver of /etc/resolv.conf.",
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

pub const MESH_PEERS_MAX: usize = 4096;

pub const MESH: &[Param] = &[
    Param {
        name: "peers",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: true,
        shortdesc: "The mesh's nodes: addresses and/or DNS names",
        longdesc: "IPv4 and IPv6 addresses and/or DNS names of every node of the mesh, \
separated by spaces or commas; at most 4096 addresses. This node's own addresses are \
skipped, so the same list serves every node. A name stands for all its addresses. Unset: \
Corosync's nodes, followed as the cluster changes: a member's addresses as the running \
Corosync reports them (runtime.members), else the addresses its nodelist entry writes \
(from the running Corosync, else from corosync_conf), else its names, resolved under the \
dnssec rules of named peers.",
    },
    Param {
        name: "local_address",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "This node's address in the mesh (one per family)",
        longdesc: "The local end of every tunnel, at most one IPv4 and one IPv6 address. \
Default: for each peer, the source address the kernel would use to reach it (a route \
lookup over rtnetlink).",
    },
    Param {
        name: "auth",
        kind: ParamType::String,
        default: "psk",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "How peers authenticate: psk or cert",
        longdesc: "psk: every pair gets its own pre-shared key, derived from secret_file. \
cert: this node presents the NSS certificate named by cert and accepts the peers' \
certificates (identities from the certificates).",
    },
    Param {
        name: "secret_file",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: true,
        shortdesc: "Master secret of the mesh (auth=psk)",
        longdesc: "Absolute path of a file (owned by root, mode 0600 or stricter, not a symlink, at least 32 bytes) holding \
the mesh's master secret, the same on every node. Each pair's key is HKDF-SHA256 of it and \
the sorted pair of addresses; a new master secret (then reload) rekeys every pair. The \
derived keys go, hex-encoded, to a 0600 file under /run/vipsec that \
confdir/vipsec-<instance>.secrets links to. Unset: the \
master secret is derived (HKDF-SHA256, a context of its own) from corosync_authkey.",
    },
    Param {
        name: "cert",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "This node's certificate (auth=cert)",
        longdesc: "Nickname, in pluto's NSS database, of this node's certificate with its \
private key; peers then authenticate by the names in their certificates, with the same key \
type (RSA or ECDSA) as this one. With ike=strongswan: the path of the certificate file \
(PEM or DER); its private key and the CA are charon's own credentials (swanctl \
--load-creds).",
    },
    Param {
        name: "policy",
        kind: ParamType::String,
        default: "use",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "require, use or disable",
        longdesc: "use: encrypt when an SA can be had, else send in clear (fail-open). \
require: traffic to or from a peer without an SA is dropped (fail-closed). disable: the \
conns stay loaded but no kernel policy is installed (the quick off switch). Roll out with \
use on every node first, check that monitor reports every peer up, then switch to \
require: traffic is never cut.",
    },
    Param {
        name: "exclude_ssh",
        kind: ParamType::Boolean,
        default: "true",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Leave SSH (TCP port 22) outside the policy",
        longdesc: "true (the default) keeps SSH between the nodes working whatever happens \
to IKE, so operators are never locked out.",
    },
    Param {
        name: "exclude_icmp",
        kind: ParamType::Boolean,
        default: "true",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Leave ICMP outside the policy",
        longdesc: "true (the default) keeps ping, path MTU discovery and neighbour \
discovery working whatever happens to IKE.",
    },
    Param {
        name: "secure_ports",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Ports that are always encrypted, even with policy=use",
        longdesc: "Space- or comma-separated ports, as PORT (TCP) or tcp/PORT, udp/PORT, \
sctp/PORT: traffic to or from these ports of a peer is dropped unless it is encrypted, \
whatever policy says.",
    },
    Param {
        name: "forward_subnets",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Forwarded (container) subnets, by node: NODE=SUBNET ...",
        longdesc: "Subnets whose traffic a node forwards (containers, VMs), as \
space-separated NODE=SUBNET entries (e.g. 192.0.2.1=10.88.1.0/24), the same list on every \
node. Each pair then also gets tunnel-mode conns between its subnets and addresses, so \
forwarded traffic is encrypted too (the kernel's forward policies come with them).",
    },
    Param {
        name: "clear_from",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: true,
        shortdesc: "Hosts or networks that may still send clear text (policy=require)",
        longdesc: "With policy=require, clear text addressed to this node's mesh address \
is dropped unless it comes from a peer (until that peer's first SA; after it, only ESP), \
is excluded SSH/ICMP, or comes from these space-separated addresses or networks \
(e.g. 192.0.2.200 198.51.100.0/24): fencing devices, NTP servers, monitoring. The name \
servers (resolver, /etc/resolv.conf) may answer this node's queries (from their own port, \
to a port no socket listens on). IKE is never affected. Other addresses of the node (a VIP, another network) are not guarded.",
    },
    Param {
        name: "dnssec",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "DNSSEC for peers given by name: off, log or require",
        longdesc: "require: a peer given by name gets a conn only if its A/AAAA answers are \
DNSSEC-validated (secure) from dnssec_anchor; insecure, bogus, expired, missing names and a \
silent resolver mean no conn (monitor reports the peer, degraded). log: such peers are \
logged and used anyway. off: the system resolver, unchecked. With auth=cert, monitor \
also requires every established SA's certificate name to securely resolve to that peer's \
address (require: the SA is deleted and the peer reported, degraded). Default: require \
when a peer is given by name or auth=cert, else off.",
    },
    DNSSEC_ANCHOR,
    Param {
        name: "resolver",
        kind: ParamType::String,
        default: "",
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Resolvers to ask, address[:port] ...",
        longdesc: "The DNS servers asked for peers' names, address[:port] (IPv6 as \
[address]:port), space- or comma-separated, at most 8 (they need not validate: vipsec \
does). Asked together, as resolv.conf's are: one that is down does not hold the answer up. \
Default: every nameserver of /etc/resolv.conf.",
    },
    Param {
        name: "corosync_conf",
        kind: ParamType::String,
        default: DEFAULT_COROSYNC_CONF,
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Corosync configuration to take the peers from",
        longdesc: "Read for the nodelist when peers is unset and Corosync is not running \
(when it runs, its members and live nodelist are read with corosync-cmapctl).",
    },
    Param {
        name: "corosync_authkey",
        kind: ParamType::String,
        default: DEFAULT_COROSYNC_AUTHKEY,
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Corosync cluster key to derive the master secret from",
        longdesc: "Used when secret_file is unset: the cluster key pcs puts on every node \
(mode 0400 or 0600, at least 32 bytes). Rotating it (pcs cluster authkey corosync) rekeys \
the mesh at the next reload.",
    },
    Param {
        name: "confdir",
        kind: ParamType::String,
        default: DEFAULT_CONFDIR,
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "Directory pluto reads *.secrets from",
        longdesc: "The pair keys go to confdir/vipsec-<instance>.secrets; pluto's secrets \
file must include confdir/*.secrets (the stock /etc/ipsec.secrets includes \
/etc/ipsec.d/*.secrets).",
    },
    Param {
        name: "ctlsocket",
        kind: ParamType::String,
        default: DEFAULT_CTLSOCKET,
        required: false,
        unique: false,
        reloadable: false,
        shortdesc: "pluto control socket",
        longdesc: "Path of the control socket of the pluto instance that carries the mesh, \
passed as --ctlsocket to every libreswan command.",
    },
    IKE,
    VICISOCKET,
];

const MESH_ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "start",
        timeout: "60s",
        interval: None,
        depth: None,
        ocf_1_1: false,
    },
    ActionSpec {
        name: "stop",
        timeout: "60s",
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
        name: "reload-agent",
        timeout: "60s",
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
        for agent in [Agent::Ipsec, Agent::Mesh] {
            check_table(agent.params());
        }
    }

    fn check_table(params: &[Param]) {
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
                !p.required || p.default.is_empty(),
                "{} required with a default",
                p.name
            );
        }
    }

    #[test]
    fn readme_parameter_tables_match_the_tables() {
        let readme = include_str!("../README.md");
        for agent in [Agent::Ipsec, Agent::Mesh] {
            let table = markdown_table(agent);
            assert!(
                readme.contains(&table),
                "README.md's ocf:vipsec:{} parameter table is out of date; it must read:\n{table}",
                agent.type_name()
            );
        }
    }
}
