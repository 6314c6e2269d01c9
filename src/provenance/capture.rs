//! The daemon's side: runs the helper as a child and reads its parts.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Part, Request};

/// Most bytes of one answer line besides the diff (hash listings of large
/// directories dominate).
const LINE_SLACK: u64 = 64 << 20;

/// Where the helper runs. It runs programs of the user's (git with the
/// repository's configuration, the interpreters on the experiment's
/// `PATH`): they must be held to limits, and nothing they start may
/// outlive the capture.
pub trait Confinement {
    /// Takes in the helper `pid`, which has not read its request yet (so
    /// has done nothing).
    fn enter(&mut self, pid: u32) -> Result<(), String>;
    /// Ends every process the helper left.
    fn end(&mut self);
}

/// No confinement but the helper's own process group, killed at the end
/// (a process that starts a session of its own escapes it).
pub struct ProcessGroup;

impl Confinement for ProcessGroup {
    fn enter(&mut self, _pid: u32) -> Result<(), String> {
        Ok(())
    }

    fn end(&mut self) {}
}

/// Runs `program __provenance` on `request` in `confinement`, handing
/// each part to `on_part` as it arrives; past `timeout` the helper is
/// killed and an error says what was missing. Whatever the helper started
/// is killed when it is done.
pub fn run_helper(
    program: &Path,
    request: &Request,
    timeout: Duration,
    confinement: &mut dyn Confinement,
    mut on_part: impl FnMut(Part),
) -> Result<(), String> {
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let mut child = Command::new(program)
        .arg("__provenance")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the provenance helper: {e}"))?;
    let pid = child.id();
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the provenance helper has no pipes".into());
    };
    // It waits for its whole request before it does anything.
    if let Err(why) = confinement.enter(pid) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("cannot confine the provenance helper: {why}"));
    }
    std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let cap = request.limits.diff_bytes.saturating_mul(2) + LINE_SLACK;
    let (parts, arriving) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match (&mut reader).take(cap).read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) if line.last() == Some(&b'\n') => {
                    let part = serde_json::from_slice::<Part>(&line).map_err(|e| e.to_string());
                    if parts.send(part).is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    let _ = parts.send(Err("an answer longer than allowed".into()));
                    return;
                }
                Err(e) => {
                    let _ = parts.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        match arriving.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(part)) => on_part(part),
            Ok(Err(why)) => break Err(why),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(format!("not done after {}s", timeout.as_secs()));
            }
        }
    };
    if outcome.is_err() {
        let _ = child.kill();
    }
    // The runner may have reaped it already (it reaps orphans): an error
    // here says nothing.
    let _ = child.wait();
    // What it started, and what they started, ends with it.
    crate::sys::process::kill_group(pid, libc::SIGKILL);
    confinement.end();
    outcome
}
