//! strongSwan's charon behind the IKE seam (`ike=strongswan`), spoken to over VICI only
//! (never swanctl's text).
//!
//! Generated conns live in a file of their own, as the VICI messages that load them
//! (`load-conn`, one per conn, each length-prefixed as on the wire): what charon is given
//! is what the file says, and a stop that lost its state reads the conns' names back from
//! it. Their keys are given to charon at write time over `load-shared` (ids
//! `<instance>-<n>`, listed in the file so that stop can take them back) and written to
//! no file at all.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::libreswan::ensure_private_dir;
use super::spec::{ConnDef, PskEntry};
use super::strongswan_conf::load_conn;
use super::strongswan_status;
use super::vici::{self, Client, Message, Value};
use super::{ConnSource, ConnState, ConnStatus, GeneratedFiles, IkeBackend, PeerIdentity};
use crate::config::ConnName;
use crate::error::{Error, Result};
use crate::state::write_atomic;

/// Where distributions install charon (Debian: /usr/lib/ipsec; Fedora/RHEL:
/// /usr/libexec/strongswan; the systemd flavour on either).
const CHARON_PATHS: &[&str] = &[
    "/usr/lib/ipsec/charon",
    "/usr/libexec/ipsec/charon",
    "/usr/libexec/strongswan/charon",
    "/usr/sbin/charon-systemd",
];

/// The key of the file's first message: the ids of the keys given to charon.
const KEY_IDS: &str = "vipsec-key-ids";

pub struct Strongswan {
    socket: PathBuf,
    run_dir: PathBuf,
    /// ocf-tester's "binaries missing" check: behave as if charon were not installed.
    pretend_missing: bool,
}

impl Strongswan {
    pub fn new(socket: &Path, run_dir: &Path, pretend_missing: bool) -> Strongswan {
        Strongswan {
            socket: socket.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            pretend_missing,
        }
    }

    fn client(&self, deadline: Instant) -> Result<Client> {
        Client::connect(&self.socket, deadline)
    }

    /// The file's messages: the key ids first, then one `load-conn` message per conn.
    fn read_file(file: &Path) -> Result<(Vec<String>, Vec<Message>)> {
        let bytes = std::fs::read(file)
            .map_err(|e| Error::Generic(format!("cannot read {}: {e}", file.display())))?;
        let mut messages = vici::read_framed(&bytes)
            .map_err(|e| {
                Error::Generic(format!(
                    "{} is not a conn file vipsec wrote: {e}",
                    file.display()
                ))
            })?
            .into_iter();
        let ids = messages
            .next()
            .map(|m| m.list(KEY_IDS).iter().map(|s| s.to_string()).collect());
        Ok((ids.unwrap_or_default(), messages.collect()))
    }

    /// Whether a conn file vipsec wrote in this run directory has `name`.
    fn is_generated(&self, name: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(&self.run_dir) else {
            return false;
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "vici"))
            .any(|p| self.generated_conns(&p).iter().any(|c| c == name))
    }

    /// Takes the conn's SAs down, telling its peers (charon keeps them when only the conn
    /// is unloaded), then, when `forget`, the conn, over one connection to charon.
    fn unload_with(c: &mut Client, name: &str, forget: bool, deadline: Instant) -> Result<()> {
        for sa in list_sas(c, Some(name), deadline)?
            .iter()
            .filter_map(|m| m.section(name))
        {
            if let Some(id) = sa.str("uniqueid") {
                terminate_ike(c, id, deadline)?;
            }
        }
        if !forget || !strongswan_status::conn_loaded(&list_conns(c, Some(name), deadline)?, name) {
            return Ok(());
        }
        c.request("unload-conn", Message::new().with("name", name), deadline)
            .map(|_| ())
    }
}

/// charon's conns (`conn`: asked for that one; 5.9 answers with all of them anyway, so
/// callers pick theirs out by name).
fn list_conns(c: &mut Client, conn: Option<&str>, deadline: Instant) -> Result<Vec<Message>> {
    let filter = conn.map_or_else(Message::new, |name| Message::new().with("ike", name));
    c.streamed("list-conns", "list-conn", filter, deadline)
        .map(|(items, _)| items)
}

/// The IKE SAs (with their Child SAs) of `conn`, or of every conn.
fn list_sas(c: &mut Client, conn: Option<&str>, deadline: Instant) -> Result<Vec<Message>> {
    let filter = conn.map_or_else(Message::new, |name| Message::new().with("ike", name));
    c.streamed("list-sas", "list-sa", filter, deadline)
        .map(|(items, _)| items)
}

/// A certificate file's contents, for a conn (charon parses PEM and DER). The largest
/// certificate chains in use stay well under this.
fn read_cert(file: &str) -> std::result::Result<Vec<u8>, String> {
    const LIMIT: u64 = 1 << 20;
    let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, LIMIT + 1), &mut data)
        .map_err(|e| format!("{file}: {e}"))?;
    if data.len() as u64 > LIMIT {
        return Err(format!(
            "{file} is larger than {LIMIT} bytes: not a certificate"
        ));
    }
    Ok(data)
}

/// Takes keys given earlier back from charon, by id (an unknown id is not an error).
fn unload_keys(c: &mut Client, ids: &[String], deadline: Instant) -> Result<()> {
    for id in ids {
        c.request(
            "unload-shared",
            Message::new().with("id", id.as_str()),
            deadline,
        )?;
    }
    Ok(())
}

/// A default for the few trait calls that carry no deadline of their own.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

impl IkeBackend for Strongswan {
    fn daemon_name(&self) -> &'static str {
        "charon"
    }

    fn check_installed(&self) -> Result<()> {
        if !self.pretend_missing && CHARON_PATHS.iter().any(|p| Path::new(p).exists()) {
            Ok(())
        } else {
            Err(Error::Installed(format!(
                "strongSwan's charon is not installed (looked for {})",
                CHARON_PATHS.join(", ")
            )))
        }
    }

    /// charon's own conns come from swanctl's configuration, which swanctl loads into
    /// it (`swanctl --load-all`, as the distribution's service does at start): a conn is
    /// "defined" when charon has it.
    fn conn_defined_in(&self, _confdir: &Path, conn: &ConnName) -> Result<bool> {
        if self.is_generated(conn.as_str()) {
            // Loaded by vipsec (a running resource's generated conn), not by swanctl.
            return Ok(false);
        }
        let deadline = soon();
        let conns = list_conns(&mut self.client(deadline)?, Some(conn.as_str()), deadline)?;
        Ok(strongswan_status::conn_loaded(&conns, conn.as_str()))
    }

    fn definition_words(&self, _confdir: &Path, conn: &ConnName) -> String {
        format!("'{conn}' in swanctl's connections, loaded into charon (swanctl --load-all)")
    }

    fn generated_conns(&self, file: &Path) -> Vec<String> {
        Self::read_file(file)
            .map(|(_, conns)| {
                conns
                    .iter()
                    .flat_map(|m| m.sections().map(|(n, _)| n.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn daemon_instance(&self) -> Option<u64> {
        crate::kernel::sockets::listening_unix_socket(&self.socket)
    }

    fn load(&self, conn: &ConnName, source: ConnSource, deadline: Instant) -> Result<()> {
        match source {
            ConnSource::File(file) => self.load_some(file, &[conn.to_string()], true, deadline),
            ConnSource::Confdir(dir) => {
                if self.conn_defined_in(dir, conn)? {
                    Ok(())
                } else {
                    Err(Error::configured(
                        "tunnel",
                        format!("charon has no conn {conn} (load it with swanctl --load-all)"),
                    ))
                }
            }
        }
    }

    fn generated_files(&self, instance_stem: &str, _secrets_dir: &Path) -> GeneratedFiles {
        let conn = self.run_dir.join(format!("{instance_stem}.vici"));
        // charon is given its keys over VICI: no key file, no secrets include to link;
        // nothing is written under these names (remove_generated tolerates that).
        let keys = conn.with_extension("keys");
        GeneratedFiles {
            conn,
            secrets: keys.clone(),
            keys,
        }
    }

    fn write_conns(
        &self,
        conns: &[ConnDef],
        keys: Option<&[PskEntry]>,
        files: &GeneratedFiles,
        deadline: Instant,
    ) -> Result<()> {
        let stem = files
            .conn
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vipsec".into());
        let keys = keys.unwrap_or(&[]);
        let ids: Vec<String> = (0..keys.len()).map(|i| format!("{stem}-{i}")).collect();
        let mut messages = vec![Message::new().with_list(KEY_IDS, ids.iter().map(String::as_str))];
        for conn in conns {
            messages.push(load_conn(conn, &read_cert).map_err(|e| Error::configured("cert", e))?);
        }
        let out = vici::write_framed(&messages)
            .map_err(|e| Error::Generic(format!("cannot encode a conn for charon: {e}")))?;
        // The keys of the file being replaced (a reload): those not given again go.
        let stale: Vec<String> = Self::read_file(&files.conn)
            .map(|(old, _)| old.into_iter().filter(|id| !ids.contains(id)).collect())
            .unwrap_or_default();
        ensure_private_dir(&self.run_dir)?;
        write_atomic(&files.conn, &out, 0o600)?;
        if keys.is_empty() && stale.is_empty() {
            return Ok(());
        }
        // The keys go to charon now, over the socket; no file holds them. (A restarted
        // charon has lost them, as it has lost the conns: monitor reports the daemon
        // restarted, and the next start gives both again.)
        let mut c = self.client(deadline)?;
        for (id, k) in ids.iter().zip(keys) {
            // A key for any peer: charon looks keys up by both identities, and its own is
            // %any when the peer names none (libreswan clients send no IDr), which only
            // an owner %any matches. A key of a pair names both ends.
            let remote = match &k.remote {
                Some(r) => r.to_string(),
                None => {
                    // charon tries every key whose owners match either identity, so this
                    // one is tried for its other conns' peers too (a mesh on the same
                    // charon): whoever holds it could pass as such a peer.
                    log::warn!(
                        "the key for {} is given to charon for any peer (no peer_id): charon also tries it for its other conns; set peer_id, or use auth=cert, when this charon carries other conns with keys",
                        k.local
                    );
                    "%any".to_string()
                }
            };
            let owners = [k.local.to_string(), remote];
            c.load_shared(id, &owners, &k.key, deadline)?;
        }
        unload_keys(&mut c, &stale, deadline)
    }

    fn load_all(&self, file: &Path, deadline: Instant) -> Result<()> {
        let names = self.generated_conns(file);
        self.load_some(file, &names, true, deadline)
    }

    fn load_some(
        &self,
        file: &Path,
        conns: &[String],
        route: bool,
        deadline: Instant,
    ) -> Result<()> {
        let (_, messages) = Self::read_file(file)?;
        let mut c = self.client(deadline)?;
        for m in messages {
            let Some((name, _)) = m.sections().next() else {
                continue;
            };
            if !conns.iter().any(|c| c == name) {
                continue;
            }
            let name = name.to_string();
            let m = if route { m } else { without_trap(m, &name) };
            c.request("load-conn", m, deadline)
                .map_err(|e| Error::Generic(format!("conn {name}: {}", e.reason())))?;
        }
        Ok(())
    }

    fn remove_generated(&self, files: &GeneratedFiles, deadline: Instant) -> Result<()> {
        if let Ok((ids, conns)) = Self::read_file(&files.conn) {
            let mut c = self.client(deadline)?;
            for m in &conns {
                for (name, _) in m.sections() {
                    Self::unload_with(&mut c, name, true, deadline)?;
                }
            }
            unload_keys(&mut c, &ids, deadline)?;
        }
        for f in [&files.conn, &files.keys] {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Generic(format!(
                        "cannot remove {}: {e}",
                        f.display()
                    )))
                }
            }
        }
        Ok(())
    }

    /// charon follows the kernel's addresses itself.
    fn rescan_addresses(&self, _deadline: Instant) -> Result<()> {
        Ok(())
    }

    fn unload(&self, conn: &ConnName, deadline: Instant) -> Result<()> {
        Self::unload_with(&mut self.client(deadline)?, conn.as_str(), true, deadline)
    }

    /// A conn of swanctl's only loses its SAs: swanctl loaded it, and vipsec could not
    /// load it back. charon negotiates it only where its local address is.
    fn release(&self, conn: &ConnName, deadline: Instant) -> Result<()> {
        Self::unload_with(&mut self.client(deadline)?, conn.as_str(), false, deadline)
    }

    /// charon binds its IKE sockets to the wildcard address, which covers every address
    /// this node has or gets.
    fn listens_for_ike(&self, addr: IpAddr) -> bool {
        use crate::kernel::sockets::{udp_bound_to_any, IKE_PORTS};
        let any: IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        udp_bound_to_any(&[addr, any], &IKE_PORTS)
    }

    /// Ahead of the bypass-lan plugin's pass policies (see guard::Tier).
    fn guard_tier(&self) -> crate::kernel::guard::Tier {
        crate::kernel::guard::Tier::AheadOfPass
    }

    fn fail_open_conns_trap(&self) -> bool {
        false
    }

    fn initiate_async(&self, conn: &ConnName, deadline: Instant) -> Result<()> {
        let mut c = self.client(deadline)?;
        let r = c.request(
            "initiate",
            Message::new()
                .with("child", conn.as_str())
                .with("ike", conn.as_str())
                .with("timeout", "1"),
            deadline,
        );
        match r {
            Ok(_) => Ok(()),
            // The attempt goes on inside charon; only the wait ended.
            Err(e) if e.reason().contains("not established after") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn conn_status(&self, conn: &ConnName, deadline: Instant) -> Result<ConnStatus> {
        let name = conn.as_str();
        let mut c = self.client(deadline)?;
        let conns = list_conns(&mut c, Some(name), deadline)?;
        if !strongswan_status::conn_loaded(&conns, name) {
            return Ok(ConnStatus {
                state: ConnState::Absent,
                sas: Vec::new(),
            });
        }
        let local: Vec<IpAddr> = crate::kernel::addr::local_addresses(deadline)?;
        // Its local end is here, and its far end is not: a conn toward an address of this
        // node (a fallback toward the VIP while the VIP is still here) cannot be
        // negotiated, as pluto will not orient one.
        let here = strongswan_status::conn_local_addrs(&conns, name)
            .iter()
            .any(|a| local.contains(a))
            && !strongswan_status::conn_remote_addrs(&conns, name)
                .iter()
                .any(|a| local.contains(a));
        Ok(ConnStatus {
            state: if here {
                ConnState::Ready
            } else {
                ConnState::Loaded
            },
            sas: strongswan_status::established(&list_sas(&mut c, Some(name), deadline)?, name),
        })
    }

    fn peer_identities(&self, deadline: Instant) -> Result<Vec<PeerIdentity>> {
        let sas = list_sas(&mut self.client(deadline)?, None, deadline)?;
        Ok(strongswan_status::peer_identities(&sas))
    }

    fn delete_state(&self, serial: u64, deadline: Instant) -> Result<()> {
        terminate_ike(&mut self.client(deadline)?, &serial.to_string(), deadline)
    }
}

/// Terminates one IKE SA, telling its peer. An SA that went away between the listing and
/// the terminate (its peer deleted it, or a duplicate was replaced) is what was asked
/// for: charon then answers "no matching SAs", which is not a failure of stop.
fn terminate_ike(c: &mut Client, id: &str, deadline: Instant) -> Result<()> {
    let terminate = Message::new().with("ike-id", id).with("timeout", "-1");
    let Err(refused) = c.request("terminate", terminate, deadline) else {
        return Ok(());
    };
    // Charon's refusal is what is reported unless the SA is seen gone.
    let still = Message::new().with("ike-id", id);
    match c.streamed("list-sas", "list-sa", still, deadline) {
        Ok((left, _)) if left.is_empty() => Ok(()),
        _ => Err(refused),
    }
}

/// The conn as loaded without its trap policies (start_action none): loaded, not routed.
fn without_trap(m: Message, name: &str) -> Message {
    let mut m = m;
    for (k, v) in m.0.iter_mut() {
        if k != name {
            continue;
        }
        let Value::Section(conn) = v else { continue };
        for (ck, cv) in conn.0.iter_mut() {
            if ck != "children" {
                continue;
            }
            let Value::Section(children) = cv else {
                continue;
            };
            for (_, child) in children.0.iter_mut() {
                if let Value::Section(child) = child {
                    for (key, value) in child.0.iter_mut() {
                        if key == "start_action" {
                            *value = Value::Bytes(b"none".to_vec());
                        }
                    }
                }
            }
        }
    }
    m
}
