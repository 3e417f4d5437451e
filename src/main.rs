//! The `vipsec` binary; everything it does is in the library (see lib.rs).

fn main() {
    vipsec::entry::keep_secrets_in();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let env: std::collections::BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    std::process::exit(vipsec::entry::main(args, env));
}
