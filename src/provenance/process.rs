//! Running a program the helper asks (git, an interpreter) with bounded
//! output and time.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What a program printed and how it ended.
#[derive(Debug)]
pub(crate) struct Ran {
    /// Whether it exited with status 0.
    pub ok: bool,
    /// Its standard output, at most the cap asked.
    pub stdout: Vec<u8>,
    /// Whether its standard output was longer than the cap.
    pub truncated: bool,
    /// The start of its standard error.
    pub stderr: String,
}

/// Most bytes of standard error kept.
const STDERR_KEPT: u64 = 4096;

/// Runs `program args` in `dir` with exactly `env`, keeping `cap` bytes of
/// its output; kills it past `timeout` (an error then).
pub(crate) fn run(
    program: &Path,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
    cap: u64,
    timeout: Duration,
) -> Result<Ran, String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: on a timeout, what it started goes too.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let pid = child.id();
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("no pipes".into());
    };
    let (done, finished) = mpsc::channel();
    let out_done = done.clone();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let read = (&mut stdout).take(cap + 1).read_to_end(&mut kept);
        let truncated = kept.len() as u64 > cap;
        kept.truncate(cap as usize);
        let _ = out_done.send(Out::Stdout(read.map(|_| (kept, truncated))));
    });
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = stderr.take(STDERR_KEPT).read_to_end(&mut kept);
        let _ = done.send(Out::Stderr(String::from_utf8_lossy(&kept).into_owned()));
    });
    let deadline = std::time::Instant::now() + timeout;
    let (mut out, mut err) = (None, None);
    while out.is_none() || err.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match finished.recv_timeout(left) {
            Ok(Out::Stdout(read)) => {
                out = Some(read);
                // Past the cap the rest is not wanted: stop it writing.
                if matches!(out, Some(Ok((_, true)))) {
                    let _ = child.kill();
                }
            }
            Ok(Out::Stderr(text)) => err = Some(text),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} took longer than {timeout:?}",
                    program.display()
                ));
            }
        }
    }
    // The daemon reaps orphans as a subreaper, but the helper is not the
    // daemon: its children are its own to wait for.
    let status = child.wait().map_err(|e| e.to_string());
    // Nothing it left behind (a daemonised child) outlives it.
    crate::sys::process::kill_group(pid, libc::SIGKILL);
    let status = status?;
    let (stdout, truncated) = out
        .unwrap_or_else(|| Ok((Vec::new(), false)))
        .map_err(|e| e.to_string())?;
    Ok(Ran {
        ok: status.success() || truncated,
        stdout,
        truncated,
        stderr: err.unwrap_or_default(),
    })
}

enum Out {
    Stdout(std::io::Result<(Vec<u8>, bool)>),
    Stderr(String),
}

/// The first line of `text` that is not blank, trimmed.
pub(crate) fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}
