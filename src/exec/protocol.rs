//! What the daemon, the launcher and the supervisors say to each other:
//! the launcher's requests and replies and a supervisor's experiment
//! ([`ShimArgs`]), as length-prefixed JSON frames over Unix sockets; the
//! descriptors a supervisor is handed ([`fds`]); and the fixed-size end
//! report a kept supervisor writes to the daemon's ends pipe.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest frame either side accepts (commands and environments are far smaller).
pub const MAX_FRAME: u32 = 16 << 20;

/// What the daemon asks of the launcher.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Request {
    /// Fork a shim that waits for go.
    Spawn(ShimArgs),
    /// Hand reusable shim `pid`, idle, its next experiment (it waits for go).
    Reuse { pid: u32, args: ShimArgs },
    /// Reusable shim `pid` gets no more experiments: close its socket (it exits).
    Retire { pid: u32 },
    /// Let shim `pid` run its command.
    Go { pid: u32 },
    /// Shim `pid` will not be told go: close its pipe (it exits).
    Abort { pid: u32 },
}

/// The launcher's answer to a spawn.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Reply {
    Spawned { pid: u32 },
    Failed { error: String },
}

/// What the shim runs, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimArgs {
    /// The experiment's id (in the end report of a reusable shim).
    pub id: u64,
    /// The experiment's directory (logs, journal).
    pub dir: PathBuf,
    /// Where the command runs.
    pub workdir: PathBuf,
    /// The Unix identity to take on (when the daemon runs as root).
    pub identity: Option<Identity>,
    /// The command.
    pub argv: Vec<String>,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    /// Whether the shim stays for further experiments of the same identity
    /// (only in a cgroup slot of its own; see the module's text).
    pub reusable: bool,
}

/// A Unix user, looked up by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The account's name (for messages).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// All its groups.
    pub groups: Vec<u32>,
}

/// Descriptors the launcher hands every shim besides stdin (the control
/// socket), stdout and stderr (the logs).
pub mod fds {
    /// The run journal, created by the launcher (with its header line) and
    /// open for writing after it.
    pub const JOURNAL: i32 = 3;
    /// `/dev/null`, the command's stdin.
    pub const NULL: i32 = 4;
    /// The write end of the daemon's ends pipe (see [`super::END_REPORT_LEN`]).
    pub const ENDS: i32 = 5;
}

/// Length of an end report: the shim's pid (u32) and the experiment's id
/// (u64), little-endian. Shorter than `PIPE_BUF`, so written at once.
pub const END_REPORT_LEN: usize = 12;

/// An end report of shim `pid` for experiment `id`.
pub fn end_report(pid: u32, id: u64) -> [u8; END_REPORT_LEN] {
    let mut report = [0u8; END_REPORT_LEN];
    report[..4].copy_from_slice(&pid.to_le_bytes());
    report[4..].copy_from_slice(&id.to_le_bytes());
    report
}

/// The shim's pid and the experiment's id in an end report.
pub fn parse_end_report(report: &[u8; END_REPORT_LEN]) -> (u32, u64) {
    let mut pid = [0u8; 4];
    let mut id = [0u8; 8];
    pid.copy_from_slice(&report[..4]);
    id.copy_from_slice(&report[4..]);
    (u32::from_le_bytes(pid), u64::from_le_bytes(id))
}

pub(super) fn write_frame<T: Serialize>(stream: &mut UnixStream, value: &T) -> std::io::Result<()> {
    stream.write_all(&encode_frame(value)?)
}

/// A frame: the body's length (u32, little-endian) and the JSON body.
pub(super) fn encode_frame<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "the command and its environment are too large to start ({} bytes)",
                body.len()
            ))
        })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads one frame; `None` at a clean end of stream.
pub(super) fn read_frame<T: DeserializeOwned>(
    stream: &mut UnixStream,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes")));
    }
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(std::io::Error::other)
}
