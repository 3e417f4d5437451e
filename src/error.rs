//! One error type for the whole agent: each variant is an OCF exit code and carries the
//! one-line reason that ends up after `ocf-exit-reason:` on stderr.

use std::fmt;

/// Exit codes of the OCF Resource Agent API 1.1.
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const ERR_GENERIC: i32 = 1;
    pub const ERR_ARGS: i32 = 2;
    pub const ERR_UNIMPLEMENTED: i32 = 3;
    pub const ERR_PERM: i32 = 4;
    pub const ERR_INSTALLED: i32 = 5;
    pub const ERR_CONFIGURED: i32 = 6;
    pub const NOT_RUNNING: i32 = 7;
    pub const DEGRADED: i32 = 190;
}

/// All of the OCF codes, whether or not an action uses them yet.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 1: the resource failed (or an action could not complete).
    Generic(String),
    /// 2: invalid or excess arguments (command line).
    Args(String),
    /// 3: the action is not implemented.
    Unimplemented(String),
    /// 4: insufficient privilege.
    Perm(String),
    /// 5: a required program is not installed.
    Installed(String),
    /// 6: the configuration (instance parameters) is wrong.
    Configured(String),
    /// 7: cleanly stopped (monitor only).
    NotRunning(String),
    /// 190: running, but degraded (monitor only).
    Degraded(String),
}

impl Error {
    pub fn code(&self) -> i32 {
        match self {
            Error::Generic(_) => code::ERR_GENERIC,
            Error::Args(_) => code::ERR_ARGS,
            Error::Unimplemented(_) => code::ERR_UNIMPLEMENTED,
            Error::Perm(_) => code::ERR_PERM,
            Error::Installed(_) => code::ERR_INSTALLED,
            Error::Configured(_) => code::ERR_CONFIGURED,
            Error::NotRunning(_) => code::NOT_RUNNING,
            Error::Degraded(_) => code::DEGRADED,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Error::Generic(r)
            | Error::Args(r)
            | Error::Unimplemented(r)
            | Error::Perm(r)
            | Error::Installed(r)
            | Error::Configured(r)
            | Error::NotRunning(r)
            | Error::Degraded(r) => r,
        }
    }

    /// The OCF name of the exit code, as the spec and `crm_mon` spell it.
    pub fn code_name(&self) -> &'static str {
        code_name(self.code())
    }

    /// A reason naming the parameter it is about.
    pub fn configured(param: &str, what: impl fmt::Display) -> Error {
        Error::Configured(format!("{param}: {what}"))
    }
}

pub fn code_name(code: i32) -> &'static str {
    match code {
        code::SUCCESS => "OCF_SUCCESS",
        code::ERR_GENERIC => "OCF_ERR_GENERIC",
        code::ERR_ARGS => "OCF_ERR_ARGS",
        code::ERR_UNIMPLEMENTED => "OCF_ERR_UNIMPLEMENTED",
        code::ERR_PERM => "OCF_ERR_PERM",
        code::ERR_INSTALLED => "OCF_ERR_INSTALLED",
        code::ERR_CONFIGURED => "OCF_ERR_CONFIGURED",
        code::NOT_RUNNING => "OCF_NOT_RUNNING",
        code::DEGRADED => "OCF_DEGRADED",
        _ => "unknown",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exactly one line, whatever a child process put into the reason.
        let one_line: String = self
            .reason()
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        write!(f, "{one_line} ({})", self.code_name())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_ocf_api() {
        assert_eq!(Error::Generic(String::new()).code(), 1);
        assert_eq!(Error::Args(String::new()).code(), 2);
        assert_eq!(Error::Unimplemented(String::new()).code(), 3);
        assert_eq!(Error::Perm(String::new()).code(), 4);
        assert_eq!(Error::Installed(String::new()).code(), 5);
        assert_eq!(Error::Configured(String::new()).code(), 6);
        assert_eq!(Error::NotRunning(String::new()).code(), 7);
        assert_eq!(Error::Degraded(String::new()).code(), 190);
    }

    #[test]
    fn display_is_one_line_with_the_code_name() {
        let e = Error::Generic("pluto said:\nline one\n\n  line two  ".into());
        assert_eq!(
            e.to_string(),
            "pluto said: / line one / line two (OCF_ERR_GENERIC)"
        );
    }
}
