//! vipsec: one binary, two ways in. Invoked under its own name it is a command-line tool
//! (`vipsec monitor --vip … --tunnel …`); invoked through an OCF entry such as
//! /usr/lib/ocf/resource.d/vipsec/ipsec it is the resource agent of that type, reading
//! its parameters from OCF_RESKEY_*. Both end in the same validated Config.

mod actions;
mod cli;
mod config;
mod entry;
mod error;
mod exec;
mod ike;
mod kernel;
mod logging;
mod metadata;
mod params;
mod state;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let env: std::collections::BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    std::process::exit(entry::main(args, env));
}
