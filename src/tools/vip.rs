//! `vipsec vip --vip ADDRESS`: is the VIP on this node, and on which interface?

use std::time::Instant;

use crate::agents::print_json;
use crate::config::{self, RawParams};
use crate::error::{Error, Result};
use crate::kernel::addr::find_local_address;

pub fn run(raw: &RawParams, json: bool, deadline: Instant) -> Result<()> {
    let raw = raw.get("vip").ok_or_else(|| {
        Error::configured("vip", "required parameter is missing; pass --vip ADDRESS")
    })?;
    let vip = config::parse_host_address("vip", raw)?;
    let at = find_local_address(vip, deadline)?;
    if json {
        let v = serde_json::json!({ "vip": vip, "local": at.is_some(), "location": at });
        print_json(&v);
    } else {
        match &at {
            Some(a) => println!(
                "VIP {vip} is configured on this node: {} (/{})",
                a.interface, a.prefix_len
            ),
            None => println!("VIP {vip} is not configured on this node"),
        }
    }
    match at {
        Some(_) => Ok(()),
        None => Err(Error::NotRunning(format!(
            "VIP {vip} is not configured on this node"
        ))),
    }
}
