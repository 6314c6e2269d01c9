//! The daemon's side: runs the helper as a child and reads its parts.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Part, Request};

/// Most bytes of one answer line besides the diff (hash listings of large
/// directories dominate).
const LINE_SLACK: u64 = 64 << 20;

/// Runs `program __provenance` on `request`, handing each part to
/// `on_part` as it arrives; past `timeout` the helper is killed and an
/// error says what was missing.
pub fn run_helper(
    program: &Path,
    request: &Request,
    timeout: Duration,
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
        .spawn()
        .map_err(|e| format!("cannot start the provenance helper: {e}"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err("the provenance helper has no pipes".into());
    };
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
    outcome
}
