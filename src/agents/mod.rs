//! The two resource agents, side by side, each with its configuration, state and one
//! file per verb, over the shared domain types (`config`, `ike`, `kernel`, `dns`).

pub mod ipsec;
pub mod mesh;
pub mod peer_names;

/// The OCF actions an agent carries out (meta-data and usage are the entry's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Monitor,
    ValidateAll,
    ReloadAgent,
}

/// What a verb prints besides its exit code: nothing under a resource manager; by hand,
/// the monitor's report as text or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printing {
    Quiet,
    Text,
    Json,
}

pub fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
