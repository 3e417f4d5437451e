//! vipsec: a Pacemaker OCF resource agent and VIP tunnel manager for IPsec.
//!
//! One binary, two ways in: invoked under its own name it is a command-line tool
//! (`vipsec monitor --vip … --tunnel …`); invoked through an OCF entry such as
//! /usr/lib/ocf/resource.d/vipsec/ipsec it is the resource agent of that type, reading
//! its parameters from OCF_RESKEY_*. Both end in the same validated configuration.

pub mod agents;
pub mod cli;
pub mod config;
pub mod dns;
pub mod entry;
pub mod error;
pub mod exec;
#[doc(hidden)]
pub mod fuzzing;
pub mod ike;
pub mod kernel;
pub mod keys;
pub mod logging;
pub mod metadata;
pub mod params;
pub mod state;
pub mod tools;
