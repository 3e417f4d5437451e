//! The validated parameters of an `ocf:vipsec:ipsec` resource.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::{
    absolute_path, check_directory, list_items, parse_host_address, read_secret_file, required,
    ConnName, IkeDaemon, Mode, RawParams, Secret, PSK_MIN_BYTES,
};
use crate::error::{Error, Result};
use crate::ike::{ConnAuth, ConnDef, ConnMode, DeadPeer, Identity, Install, Remote, Shunt};

use crate::params::DEFAULT_CONFDIR;

/// The validated parameters of an `ocf:vipsec:ipsec` resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpsecConfig {
    pub tunnel: ConnName,
    pub vip: IpAddr,
    pub confdir: PathBuf,
    pub fallbacktunnel: Option<ConnName>,
    pub ike: IkeDaemon,
    pub auth: Auth,
    pub psk_file: Option<PathBuf>,
    pub peer_id: Option<Identity>,
    pub mode: Mode,
    /// `None`: require when peer_id is a DNS name (@name) or auth=cert.
    pub dnssec: Option<crate::dns::DnssecMode>,
    pub dnssec_anchor: PathBuf,
    /// Empty: every nameserver of /etc/resolv.conf.
    pub resolver: Vec<std::net::SocketAddr>,
    /// Known clients the daemon initiates toward at start (in the order given).
    pub clients: Vec<KnownClient>,
}

/// A client of the VIP known in advance: it gets a conn of its own (the tunnel's, with
/// that one far end) so the daemon can initiate toward it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KnownClient {
    pub address: IpAddr,
    /// `<tunnel>-to-<address>` (an IPv6 address's ':' written '-').
    pub conn: ConnName,
}

/// More known clients than this would keep the daemon busy for the start's whole timeout.
pub const CLIENTS_MAX: usize = 256;

/// `clients`: unicast addresses of the VIP's family, none twice, not the VIP itself.
fn parse_clients(tunnel: &ConnName, vip: IpAddr, text: &str) -> Result<Vec<KnownClient>> {
    let mut clients: Vec<KnownClient> = Vec::new();
    for token in list_items(text) {
        let addr = parse_host_address("clients", token)?;
        let why_not = if addr == vip {
            Some("is the VIP itself".to_string())
        } else if addr.is_ipv4() != vip.is_ipv4() {
            Some(format!(
                "is not of the VIP's address family ({vip}): the daemon could not reach it from the VIP"
            ))
        } else if addr.is_loopback() {
            Some("is a loopback address".to_string())
        } else if clients.iter().any(|c| c.address == addr) {
            Some("is listed twice".to_string())
        } else {
            None
        };
        if let Some(why) = why_not {
            return Err(Error::configured("clients", format!("{addr} {why}")));
        }
        let conn = ConnName::parse(
            "clients",
            &format!("{tunnel}-to-{}", addr.to_string().replace(':', "-")),
        )?;
        clients.push(KnownClient {
            address: addr,
            conn,
        });
    }
    if clients.len() > CLIENTS_MAX {
        return Err(Error::configured(
            "clients",
            format!(
                "lists {} addresses; at most {CLIENTS_MAX} are supported",
                clients.len()
            ),
        ));
    }
    Ok(clients)
}

/// Where the tunnel's conn comes from, and how a generated one authenticates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// The conn is defined in confdir (ocf:heartbeat:ipsec's way).
    Existing,
    /// vipsec generates it; pre-shared key from psk_file.
    Psk,
    /// vipsec generates it; this NSS certificate nickname.
    Cert(String),
}

/// An IKE identity: `@NAME`, an address or a certificate DN (`O=…, CN=…`); `%any` (any
/// identity) is the same as leaving it unset.
fn parse_ike_id(param: &str, value: &str) -> Result<Option<Identity>> {
    let value = value.trim();
    if value.len() > 255
        || value.starts_with('-')
        || value
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '#')
    {
        return Err(Error::configured(
            param,
            format!("{value:?} is not a usable IKE identity"),
        ));
    }
    if value == "%any" {
        return Ok(None);
    }
    if let Some(name) = value.strip_prefix('@') {
        let name = name.trim_start_matches('@');
        if !name.is_empty() && !name.contains(char::is_whitespace) {
            return Ok(Some(Identity::Fqdn(name.to_string())));
        }
    } else if let Ok(addr) = value.parse::<IpAddr>() {
        return Ok(Some(Identity::Address(addr)));
    } else if value.contains('=') && !value.starts_with('%') {
        return well_formed_dn(param, value).map(|()| Some(Identity::Dn(value.to_string())));
    }
    Err(Error::configured(
        param,
        format!("{value:?} is neither @NAME, an IP address nor a certificate DN (O=…, CN=…)"),
    ))
}

/// A DN the daemons and vipsec read alike: RFC 4514, every attribute a type name or OID
/// with a value. libreswan also reads `,,` as an escaped comma, so `O=,, CN=a` is one
/// attribute to pluto and two to RFC 4514: such ambiguities are refused, not guessed.
fn well_formed_dn(param: &str, value: &str) -> Result<()> {
    let attribute_type = |t: &str| {
        let descr = t.starts_with(|c: char| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let oid = t
            .split('.')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        descr || oid
    };
    match crate::ike::spec::rdns(value) {
        Some(pairs)
            if !pairs.is_empty()
                && pairs.iter().all(|(t, v)| attribute_type(t) && !v.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(Error::configured(
            param,
            format!("{value:?} is not a well-formed certificate DN (TYPE=value, separated by commas, RFC 4514)"),
        )),
    }
}

impl IpsecConfig {
    /// Checks that depend only on the values: the same answer on every node.
    pub fn parse(raw: &RawParams) -> Result<IpsecConfig> {
        let tunnel = ConnName::parse("tunnel", required(raw, "tunnel")?)?;
        let vip = parse_host_address("vip", required(raw, "vip")?)?;
        let confdir = absolute_path("confdir", raw.get("confdir").unwrap_or(DEFAULT_CONFDIR))?;
        let fallbacktunnel = raw
            .get("fallbacktunnel")
            .map(|v| ConnName::parse("fallbacktunnel", v))
            .transpose()?;
        if fallbacktunnel.as_ref() == Some(&tunnel) {
            return Err(Error::configured(
                "fallbacktunnel",
                format!("is the same conn as tunnel ({tunnel}); name a different conn or unset it"),
            ));
        }
        let ike = IkeDaemon::parse(raw)?;
        let auth = match raw.get("auth") {
            None => Auth::Existing,
            Some("psk") => Auth::Psk,
            Some("cert") => Auth::Cert(ike.required_cert(raw)?),
            Some(other) => {
                return Err(Error::configured(
                    "auth",
                    format!("{other:?} is not psk, cert or empty"),
                ))
            }
        };
        let psk_file = raw
            .get("psk_file")
            .map(|p| absolute_path("psk_file", p))
            .transpose()?;
        match (&auth, &psk_file) {
            (Auth::Psk, None) => {
                return Err(Error::configured(
                    "psk_file",
                    "auth=psk needs the file that holds the key",
                ))
            }
            (Auth::Existing | Auth::Cert(_), Some(_)) => {
                return Err(Error::configured(
                    "psk_file",
                    "is only used with auth=psk; unset one of them",
                ))
            }
            _ => {}
        }
        if raw.get("cert").is_some() && !matches!(auth, Auth::Cert(_)) {
            return Err(Error::configured(
                "cert",
                "is only used with auth=cert; unset one of them",
            ));
        }
        let peer_id = raw
            .get("peer_id")
            .map(|id| parse_ike_id("peer_id", id))
            .transpose()?
            .flatten();
        let mode = match raw.get("mode").unwrap_or("transport") {
            "transport" => Mode::Transport,
            "tunnel" => Mode::Tunnel,
            other => {
                return Err(Error::configured(
                    "mode",
                    format!("{other:?} is not transport or tunnel"),
                ))
            }
        };
        if auth == Auth::Existing {
            for name in ["peer_id", "mode", "clients"] {
                if raw.get(name).is_some() {
                    return Err(Error::configured(
                        name,
                        "only applies to a conn vipsec generates (auth=psk or auth=cert); the conn in confdir sets its own",
                    ));
                }
            }
        }
        let clients = parse_clients(&tunnel, vip, raw.get("clients").unwrap_or(""))?;
        let dnssec = raw
            .get("dnssec")
            .map(|v| crate::dns::DnssecMode::parse("dnssec", v))
            .transpose()?;
        // DNSSEC checks a name the peers present: peer_id=@NAME, or their certificates'.
        // Without either, `require` would be silently empty: refused, not ignored.
        let names_a_host = matches!(peer_id, Some(Identity::Fqdn(_)));
        if dnssec == Some(crate::dns::DnssecMode::Require)
            && !names_a_host
            && !matches!(auth, Auth::Cert(_))
        {
            return Err(Error::configured(
                "dnssec",
                match auth {
                    Auth::Existing => "require has nothing to check: the conn in confdir is not generated (set auth=psk with peer_id=@NAME, or auth=cert; or unset dnssec)",
                    _ => "require has nothing to check: auth=psk names no host without peer_id=@NAME (set it, or use auth=cert, or unset dnssec)",
                },
            ));
        }
        Ok(IpsecConfig {
            clients,
            tunnel,
            vip,
            confdir,
            fallbacktunnel,
            ike,
            auth,
            psk_file,
            peer_id,
            mode,
            dnssec,
            dnssec_anchor: absolute_path(
                "dnssec_anchor",
                raw.get("dnssec_anchor")
                    .unwrap_or(crate::dns::DEFAULT_ANCHOR),
            )?,
            resolver: raw
                .get("resolver")
                .map(|v| crate::dns::parse_resolvers("resolver", v))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The DNS name the peers must present (`peer_id=@name`), if any.
    pub fn peer_name(&self) -> Option<&str> {
        match &self.peer_id {
            Some(Identity::Fqdn(name)) => Some(name),
            _ => None,
        }
    }

    /// The conns vipsec generates (auth=psk or cert): first the road-warrior conn (the VIP
    /// as the local end, any peer, fail-closed, dead peers forgotten: they come back by
    /// connecting), then one per known client, the same toward that client alone (the
    /// daemon prefers it for that client's own exchanges, and can initiate it).
    pub fn generated_conns(&self) -> Vec<ConnDef> {
        let auth = match &self.auth {
            Auth::Existing => return Vec::new(),
            Auth::Psk => ConnAuth::Psk {
                local: Identity::Address(self.vip),
                remote: self.peer_id.clone(),
            },
            Auth::Cert(nickname) => ConnAuth::Cert {
                nickname: nickname.clone(),
                remote: self.peer_id.clone(),
            },
        };
        let road_warrior = ConnDef {
            name: self.tunnel.to_string(),
            local: self.vip,
            remote: Remote::Any,
            local_subnet: None,
            remote_subnet: None,
            local_port: None,
            remote_port: None,
            mode: match self.mode {
                Mode::Transport => ConnMode::Transport,
                Mode::Tunnel => ConnMode::Tunnel,
            },
            auth,
            on_failure: Shunt::Drop,
            while_negotiating: Shunt::Drop,
            install: Install::Listen,
            dead_peer: DeadPeer::Forget,
            retry_forever: false,
            // Host to host, no source IP, no subnets: the default updown script has
            // nothing to do for these conns, yet pluto waits for it (three runs per
            // instance) before it answers anyone else. Under emulation that was 1.4-2.5 s
            // per client SA on the VIP's node (0.01 s with it disabled, as in the mesh),
            // which every other client's exchange queued behind during a failover.
            updown: false,
            initial_contact: false,
            priority: None,
        };
        // A known client's conn has the template's identity: peer_id when set (the daemon
        // enforces it), else whatever certificate of the CA. Binding it to the client's
        // address would keep nothing out: another certificate of the CA, presented from
        // that address, is taken by the template above, which admits any client by
        // design; there the monitor's DNSSEC check catches it (check_peer_names).
        let known = self.clients.iter().map(|client| ConnDef {
            name: client.conn.to_string(),
            remote: Remote::Host(client.address),
            initial_contact: true,
            ..road_warrior.clone()
        });
        std::iter::once(road_warrior.clone()).chain(known).collect()
    }

    /// The conns that carry this tunnel's peers: the tunnel's own and the known clients'.
    pub fn is_tunnel_conn(&self, conn: &str) -> bool {
        conn == self.tunnel.as_str() || self.clients.iter().any(|c| c.conn.as_str() == conn)
    }

    /// The address of the known client whose conn this is: a conn toward one address,
    /// whose SAs the daemon may report without it (libreswan's plain conns).
    pub fn known_client_of(&self, conn: &str) -> Option<IpAddr> {
        self.clients
            .iter()
            .find(|c| c.conn.as_str() == conn)
            .map(|c| c.address)
    }

    /// The DNSSEC mode in force: the parameter, else require when a peer is identified by
    /// name or certificate.
    pub fn dnssec_mode(&self) -> crate::dns::DnssecMode {
        self.dnssec.unwrap_or(
            if self.peer_name().is_some() || matches!(self.auth, Auth::Cert(_)) {
                crate::dns::DnssecMode::Require
            } else {
                crate::dns::DnssecMode::Off
            },
        )
    }

    /// The pre-shared key, read (and checked) only when it is needed.
    pub fn load_psk(&self) -> Result<Option<Secret>> {
        match (&self.auth, &self.psk_file) {
            (Auth::Psk, Some(path)) => read_secret_file("psk_file", path, PSK_MIN_BYTES).map(Some),
            _ => Ok(None),
        }
    }

    /// Checks of this node's files: they can differ between nodes, so a probe treats a
    /// failure here as "not running here" rather than as a cluster-wide configuration error.
    pub fn check_local(&self) -> Result<()> {
        if self.ike.uses_confdir() {
            check_directory("confdir", &self.confdir)?;
        }
        if let Auth::Cert(cert) = &self.auth {
            self.ike.check_cert_file(cert)?;
        }
        Ok(())
    }
}
