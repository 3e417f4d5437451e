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

/// The most output kept from one command (libreswan 4's full status with a thousand conns
/// is about 2 MB); the rest is read and dropped, so a runaway child cannot exhaust memory.
const OUTPUT_LIMIT: u64 = 32 << 20;

/// Runs `program args…` with no stdin, capturing output, killed at `deadline`.
/// Arguments must never contain secrets: argv is world-readable in /proc.
///
/// The child leads a process group of its own: at the deadline the whole group is
/// killed, so a wrapper script's grandchildren cannot live on and act later. The caller
/// returns as soon as the child has exited and closed its output: no polling delay.
pub fn run<S: AsRef<OsStr>>(program: &OsStr, args: &[S], deadline: Instant) -> Result<Output> {
    use std::os::unix::process::CommandExt;
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
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Generic(format!("cannot run {}: {e}", shown())))?;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    // Drain both pipes on threads so a chatty child cannot block on a full pipe; each
    // says when its pipe is closed (normally: the child exited).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let reader = |pipe: Option<Box<dyn Read + Send>>, done: std::sync::mpsc::Sender<()>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(p) = pipe {
                let mut p = p.take(OUTPUT_LIMIT);
                let _ = p.read_to_end(&mut bytes);
                let _ = std::io::copy(p.get_mut(), &mut std::io::sink());
            }
            let _ = done.send(());
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out_reader = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        done_tx.clone(),
    );
    let err_reader = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        done_tx,
    );
    let kill_group = |child: &mut std::process::Child| {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    };
    let timed_out = || {
        Error::Generic(format!(
            "{} did not finish within the action's timeout and was killed",
            shown()
        ))
    };
    // Both pipes closed, or the deadline.
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            kill_group(&mut child);
            return Err(timed_out());
        }
    }
    // A child that closed its output may still be exiting.
    let mut sleep = Duration::from_micros(50);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(timed_out());
            }
            Ok(None) => {
                std::thread::sleep(sleep.min(deadline.saturating_duration_since(Instant::now())));
                sleep = (sleep * 2).min(Duration::from_millis(5));
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
    fn a_grandchild_holding_the_output_is_killed_with_its_parent() {
        // The wrapper exits at once, its child keeps stdout open and would act later.
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("acted");
        let t0 = Instant::now();
        let script = format!("(sleep 1; touch {}) & exit 0", mark.display());
        let e = run(
            OsStr::new("sh"),
            &["-c", script.as_str()],
            t0 + Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert!(e.reason().contains("did not finish"), "{e}");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            !mark.exists(),
            "the grandchild survived the deadline and acted"
        );
    }

    #[test]
    fn output_beyond_the_limit_is_dropped_not_kept() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let out = run(
            OsStr::new("sh"),
            &["-c", "head -c 40000000 /dev/zero | tr '\\0' x"],
            deadline,
        )
        .unwrap();
        assert_eq!(out.status, 0);
        assert_eq!(out.stdout.len() as u64, OUTPUT_LIMIT);
    }

    #[test]
    fn path_lookup() {
        assert!(find_in_path("sh", "/nonexistent:/bin:/usr/bin").is_some());
        assert!(find_in_path("no-such-program-here", "/bin:/usr/bin").is_none());
    }
}
