//! Logging the way Pacemaker's agents do (ocf_log in ocf-shellfuncs):
//! - HA_LOGFACILITY set and not "none" → syslog with that facility, tagged `vipsec(<instance>)`;
//! - HA_LOGFILE set → lines appended there;
//! - stderr when it is a terminal, or when nothing else is configured;
//! - debug lines only when HA_debug is set and not 0.
//!
//! Secrets never get here: nothing that holds one implements Display with its content.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

pub struct LogSettings {
    pub instance: String,
    pub facility: Option<String>,
    pub logfile: Option<String>,
    pub debug: bool,
}

impl LogSettings {
    pub fn from_env(instance: &str, get: impl Fn(&str) -> Option<String>) -> LogSettings {
        LogSettings {
            instance: instance.to_string(),
            facility: get("HA_LOGFACILITY").filter(|f| !f.is_empty() && f != "none"),
            logfile: get("HA_LOGFILE").filter(|f| !f.is_empty()),
            debug: get("HA_debug").is_some_and(|d| !d.is_empty() && d != "0"),
        }
    }
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct HaLogger {
    tag: String,
    syslog: Option<Mutex<Syslog>>,
    file: Option<Mutex<File>>,
    stderr: bool,
}

impl Log for HaLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARNING",
            Level::Info => "INFO",
            Level::Debug | Level::Trace => "DEBUG",
        };
        let msg = record.args().to_string();
        // Logging must never fail an action: errors writing a log line are dropped.
        if let Some(s) = &self.syslog {
            if let Ok(mut s) = s.lock() {
                let line = format!("{level}: {msg}");
                let _ = match record.level() {
                    Level::Error => s.err(line),
                    Level::Warn => s.warning(line),
                    Level::Info => s.info(line),
                    _ => s.debug(line),
                };
            }
        }
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                let _ = writeln!(
                    f,
                    "{now} {}[{}]: {level}: {msg}",
                    self.tag,
                    std::process::id()
                );
            }
        }
        // The final error is printed as the ocf-exit-reason line; do not say it twice.
        if self.stderr && record.target() != "exit" {
            let _ = writeln!(std::io::stderr().lock(), "{}: {level}: {msg}", self.tag);
        }
    }

    fn flush(&self) {}
}

pub fn init(settings: &LogSettings) {
    let tag = format!("vipsec({})", settings.instance);
    let syslog = settings.facility.as_deref().and_then(|f| {
        let facility = syslog::Facility::from_str(f).unwrap_or(syslog::Facility::LOG_DAEMON);
        let formatter = syslog::Formatter3164 {
            facility,
            hostname: None,
            process: tag.clone(),
            pid: std::process::id(),
        };
        syslog::unix(formatter).ok().map(Mutex::new)
    });
    let file = settings.logfile.as_deref().and_then(|path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    });
    let stderr = std::io::stderr().is_terminal() || (syslog.is_none() && file.is_none());
    let logger = HaLogger {
        tag,
        syslog,
        file,
        stderr,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(if settings.debug {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
    }
}
