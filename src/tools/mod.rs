//! The commands that are not agent verbs: questions a user asks by hand.

pub mod check_dns;
pub mod vip;
