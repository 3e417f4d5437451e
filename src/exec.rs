//! Child processes with a deadline. Every external call the agent makes goes through
//! here, so none can outlive the action's timeout: at the deadline the child is killed
//! and the action reports which command hung.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// stderr if there is any, else stdout: what the command said about its failure.
    pub fn complaint(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        // The last lines carry the error; keep the reason to one readable line.
        let tail = &lines[lines.len().saturating_sub(3)..];
        tail.join(" / ")
    }
}

/// Runs `program args…` with no stdin, capturing output, killed at `deadline`.
/// Arguments must never contain secrets: argv is world-readable in /proc.
pub fn run<S: AsRef<OsStr>>(program: &OsStr, args: &[S], deadline: Instant) -> Result<Output> {
    let shown = || {
        let mut s = program.to_string_lossy().into_owned();
        for a in args {
            s.push(' ');
            s.push_str(&a.as_ref().to_string_lossy());
        }
        s
    };
    log::debug!("running {}", shown());
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Generic(format!("cannot run {}: {e}", shown())))?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let mut sleep = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Generic(format!(
                    "{} did not finish within the action's timeout and was killed",
                    shown()
                )));
            }
            Ok(None) => {
                std::thread::sleep(sleep.min(deadline.saturating_duration_since(Instant::now())));
                sleep = (sleep * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::Generic(format!("waiting for {}: {e}", shown()))),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let status = status.code().unwrap_or(128 + 9);
    log::debug!("{} exited {status}", shown());
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// The first executable called `name` on `path` (a PATH-style list).
pub fn find_in_path(name: &str, path: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let out = run(
            OsStr::new("sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            deadline,
        )
        .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.complaint(), "err");
    }

    #[test]
    fn a_hanging_child_is_killed_at_the_deadline() {
        let t0 = Instant::now();
        let e = run(
            OsStr::new("sleep"),
            &["10"],
            t0 + Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(e.reason().contains("sleep 10 did not finish"), "{e}");
    }

    #[test]
    fn path_lookup() {
        assert!(find_in_path("sh", "/nonexistent:/bin:/usr/bin").is_some());
        assert!(find_in_path("no-such-program-here", "/bin:/usr/bin").is_none());
    }
}
