//! The kernel's IPsec state (XFRM policies and SAs) over netlink: the truth about a
//! tunnel, whatever the IKE daemon believes.

use std::net::IpAddr;
use std::time::Instant;

use futures_util::TryStreamExt;
use netlink_packet_xfrm::{
    Address, XfrmAttrs, AF_INET, XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL, XFRM_POLICY_ALLOW,
    XFRM_POLICY_FWD, XFRM_POLICY_IN, XFRM_POLICY_OUT,
};
use serde::Serialize;

use super::block_on_until;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// in | out | fwd
    pub dir: &'static str,
    /// Selector, as "address/prefix".
    pub src: String,
    pub dst: String,
    /// IP protocol of the selector (0: any).
    pub proto: u8,
    /// allow | block
    pub action: &'static str,
    /// The SA endpoints the policy requires (tunnel or transport template), if any.
    pub tmpl: Vec<Template>,
    /// Lower wins; vipsec's own guard policies are known by theirs (kernel::guard).
    pub priority: u32,
    #[serde(skip)]
    pub sel_src: (IpAddr, u8),
    #[serde(skip)]
    pub sel_dst: (IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub mode: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sa {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: String,
    pub proto: u8,
    pub mode: &'static str,
    pub reqid: u32,
    /// Keys installed (an algorithm is set). A larval SA (SPI allocated during a
    /// negotiation) has none and carries no traffic.
    pub established: bool,
    pub bytes: u64,
    pub packets: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct XfrmView {
    pub policies: Vec<Policy>,
    pub sas: Vec<Sa>,
}

fn ip(addr: &Address, family: u16) -> IpAddr {
    if family == AF_INET {
        IpAddr::V4(addr.to_ipv4())
    } else {
        IpAddr::V6(addr.to_ipv6())
    }
}

fn mode(m: u8) -> &'static str {
    match m {
        XFRM_MODE_TRANSPORT => "transport",
        XFRM_MODE_TUNNEL => "tunnel",
        _ => "other",
    }
}

/// Every policy and SA of this network namespace.
pub fn dump(deadline: Instant) -> Result<XfrmView> {
    block_on_until("reading XFRM policies and SAs", deadline, async move {
        let nl_err =
            |e: xfrmnetlink::Error| Error::Generic(format!("XFRM netlink dump failed: {e}"));
        let (conn, handle, _) = xfrmnetlink::new_connection()
            .map_err(|e| Error::Generic(format!("cannot open an XFRM netlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        let mut view = XfrmView::default();

        let mut policies = handle.policy().get_dump().execute();
        while let Some(msg) = policies.try_next().await.map_err(nl_err)? {
            let info = &msg.user_policy_info;
            let fam = info.selector.family;
            let sel_src = (ip(&info.selector.saddr, fam), info.selector.prefixlen_s);
            let sel_dst = (ip(&info.selector.daddr, fam), info.selector.prefixlen_d);
            let tmpl = msg
                .nlas
                .iter()
                .filter_map(|a| match a {
                    XfrmAttrs::Template(t) => Some(t),
                    _ => None,
                })
                .flatten()
                .map(|t| Template {
                    src: ip(&t.saddr, t.family),
                    dst: ip(&t.id.daddr, t.family),
                    proto: t.id.proto,
                    mode: mode(t.mode),
                })
                .collect();
            view.policies.push(Policy {
                dir: match info.direction {
                    XFRM_POLICY_IN => "in",
                    XFRM_POLICY_OUT => "out",
                    XFRM_POLICY_FWD => "fwd",
                    _ => "socket",
                },
                src: format!("{}/{}", sel_src.0, sel_src.1),
                dst: format!("{}/{}", sel_dst.0, sel_dst.1),
                proto: info.selector.proto,
                action: if info.action == XFRM_POLICY_ALLOW {
                    "allow"
                } else {
                    "block"
                },
                tmpl,
                priority: info.priority,
                sel_src,
                sel_dst,
            });
        }

        let mut states = handle.state().get_dump().execute();
        while let Some(msg) = states.try_next().await.map_err(nl_err)? {
            let info = &msg.user_sa_info;
            let established = msg.nlas.iter().any(|a| {
                matches!(
                    a,
                    XfrmAttrs::EncryptionAlg(_)
                        | XfrmAttrs::EncryptionAlgAead(_)
                        | XfrmAttrs::AuthenticationAlg(_)
                        | XfrmAttrs::AuthenticationAlgTrunc(_)
                )
            });
            view.sas.push(Sa {
                src: ip(&info.saddr, info.family),
                dst: ip(&info.id.daddr, info.family),
                spi: format!("0x{:08x}", u32::from_be(info.id.spi)),
                proto: info.id.proto,
                mode: mode(info.mode),
                reqid: info.reqid,
                established,
                bytes: info.lifetime_cur.bytes,
                packets: info.lifetime_cur.packets,
            });
        }
        conn.abort();
        Ok(view)
    })
}

impl XfrmView {
    /// The policies and SAs that have `addr` as an endpoint: in a selector as a host
    /// address, or in a template, or as an SA's source or destination.
    pub fn involving(&self, addr: IpAddr) -> XfrmView {
        let host = |(a, len): (IpAddr, u8)| {
            a == addr && u32::from(len) == if addr.is_ipv4() { 32 } else { 128 }
        };
        XfrmView {
            policies: self
                .policies
                .iter()
                .filter(|p| {
                    host(p.sel_src)
                        || host(p.sel_dst)
                        || p.tmpl.iter().any(|t| t.src == addr || t.dst == addr)
                })
                .cloned()
                .collect(),
            sas: self
                .sas
                .iter()
                .filter(|s| s.src == addr || s.dst == addr)
                .cloned()
                .collect(),
        }
    }
}
