//! The launcher: a small helper process (`labbench __launcher`) that the
//! daemon starts once and asks to fork each experiment's [`super::shim`].
//!
//! Forking the launcher, which never grows, costs far less than starting a
//! new program or forking the daemon: no dynamic loading, no copy of the
//! daemon's page tables. The launcher holds the write end of each new shim's
//! "go" pipe until the daemon has recorded the start and says go; if the
//! daemon goes away first, the launcher exits, the pipes close and the shims
//! that never got go exit without running anything. Shims that got go run on
//! (reparented) and record their end in their journal, which a restarted
//! daemon reads. The launcher ignores SIGCHLD, so its children never linger
//! as zombies; the daemon learns of ends through pidfds.
//!
//! Protocol on the socket (the launcher's stdin): frames of a little-endian
//! u32 length and a JSON [`Request`]; a [`Spawn`](Request::Spawn) gets one
//! [`Reply`], the others none.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::local::ExperimentFiles;
use super::shim::{ShimArgs, fds, run_shim};

/// Largest frame either side accepts (commands and environments are far smaller).
const MAX_FRAME: u32 = 16 << 20;

/// What the daemon asks of the launcher.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// Fork a shim that waits for go.
    Spawn(ShimArgs),
    /// Let shim `pid` run its command.
    Go { pid: u32 },
    /// Shim `pid` will not be told go: close its pipe (it exits).
    Abort { pid: u32 },
}

/// The launcher's answer to a spawn.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Spawned { pid: u32 },
    Failed { error: String },
}

/// The daemon's side: starts the launcher on first use and again if it died.
#[derive(Debug)]
pub struct Launcher {
    program: PathBuf,
    connection: Mutex<Option<Connection>>,
}

/// The socket to the current launcher and the shims it forked that wait for go.
#[derive(Debug)]
struct Connection {
    stream: UnixStream,
    waiting: std::collections::HashSet<u32>,
}

/// How long the daemon waits for the launcher to answer before replacing it.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Launcher {
    /// A launcher run from `program` (the labbench binary), started lazily.
    pub fn new(program: PathBuf) -> Launcher {
        Launcher {
            program,
            connection: Mutex::new(None),
        }
    }

    fn start(&self) -> std::io::Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        // No uid/gid/pre_exec: std uses posix_spawn (no copy of the daemon).
        let child = Command::new(&self.program)
            .arg("__launcher")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .spawn()?;
        // The daemon reaps it (as every orphan) when it ends.
        drop(child);
        ours.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(ours)
    }

    /// Starts the launcher now if none runs, so that the first experiment
    /// does not wait for it to load.
    pub fn prepare(&self) -> Result<(), String> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if connection.is_none() {
            *connection = Some(self.connect()?);
        }
        Ok(())
    }

    fn connect(&self) -> Result<Connection, String> {
        let stream = self
            .start()
            .map_err(|e| format!("cannot start the launcher: {e}"))?;
        Ok(Connection {
            stream,
            waiting: Default::default(),
        })
    }

    /// Forks a shim for `args`, waiting for go; returns its pid.
    pub fn spawn(&self, args: ShimArgs) -> Result<u32, String> {
        // Encoded first: a request too large to send is refused without
        // touching the connection (the shims it has forked stay usable).
        let frame = encode_frame(&Request::Spawn(args)).map_err(|e| e.to_string())?;
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let mut last_error = String::new();
        // A launcher that died or stopped answering is replaced once.
        for _ in 0..2 {
            let current = match connection.as_mut() {
                Some(current) => current,
                None => connection.insert(self.connect()?),
            };
            let answer = current
                .stream
                .write_all(&frame)
                .and_then(|()| read_frame::<Reply>(&mut current.stream));
            match answer {
                Ok(Some(Reply::Spawned { pid })) => {
                    current.waiting.insert(pid);
                    return Ok(pid);
                }
                Ok(Some(Reply::Failed { error })) => return Err(error),
                Ok(None) => last_error = "the launcher exited".into(),
                Err(e) => last_error = format!("the launcher failed: {e}"),
            }
            *connection = None;
        }
        Err(last_error)
    }

    /// Lets shim `pid` run its command. Fails if the launcher that forked
    /// it is gone (the shim then exits without running anything).
    pub fn go(&self, pid: u32) -> Result<(), String> {
        self.send(pid, Request::Go { pid })
    }

    /// Drops shim `pid` without running its command.
    pub fn abort(&self, pid: u32) {
        let _ = self.send(pid, Request::Abort { pid });
    }

    fn send(&self, pid: u32, request: Request) -> Result<(), String> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let current = connection
            .as_mut()
            .filter(|c| c.waiting.contains(&pid))
            .ok_or_else(|| "its launcher is gone".to_string())?;
        current.waiting.remove(&pid);
        let sent = encode_frame(&request).and_then(|frame| current.stream.write_all(&frame));
        sent.map_err(|e| {
            *connection = None;
            format!("the launcher failed: {e}")
        })
    }
}

/// The launcher process (`labbench __launcher`): serves the daemon on the
/// socket it was given as stdin until the daemon goes away. Returns the exit code.
pub fn serve_stdin() -> i32 {
    match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => serve(UnixStream::from(fd)),
        Err(e) => {
            eprintln!("labbench launcher: no socket on stdin: {e}");
            1
        }
    }
}

fn serve(mut connection: UnixStream) -> i32 {
    // Shims are reaped by the kernel (each shim resets this for its command).
    crate::sys::set_signal_ignored(libc::SIGCHLD, true);
    // Every command's stdin.
    let null = match std::fs::File::open("/dev/null") {
        Ok(null) => null,
        Err(e) => {
            eprintln!("labbench launcher: cannot open /dev/null: {e}");
            return 1;
        }
    };
    let mut waiting: HashMap<u32, std::fs::File> = HashMap::new();
    loop {
        let request = match read_frame::<Request>(&mut connection) {
            Ok(Some(request)) => request,
            // The daemon is gone: dropping the pipes ends the waiting shims.
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("labbench launcher: {e}");
                return 1;
            }
        };
        match request {
            Request::Spawn(args) => {
                let reply = match fork_shim(&args, &null) {
                    Ok((pid, go)) => {
                        waiting.insert(pid, go);
                        Reply::Spawned { pid }
                    }
                    Err(error) => Reply::Failed { error },
                };
                if let Err(e) = write_frame(&mut connection, &reply) {
                    eprintln!("labbench launcher: {e}");
                    return 1;
                }
            }
            Request::Go { pid } => {
                if let Some(mut go) = waiting.remove(&pid) {
                    let _ = go.write_all(b"go\n");
                }
            }
            Request::Abort { pid } => {
                waiting.remove(&pid);
            }
        }
    }
}

/// Forks a shim whose stdout and stderr are the experiment's logs, whose
/// stdin is a fresh pipe and whose other descriptors are the [`fds`] (the
/// journal, created here, and `null`); returns its pid and the pipe's write end.
fn fork_shim(args: &ShimArgs, null: &std::fs::File) -> Result<(u32, std::fs::File), String> {
    let files = ExperimentFiles {
        dir: args.dir.clone(),
    };
    let open_log = |path: PathBuf| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let stdout = open_log(files.stdout())?;
    let stderr = open_log(files.stderr())?;
    let journal = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(files.journal())
        .map_err(|e| format!("cannot create {}: {e}", files.journal().display()))?;
    let (go_read, go_write) = crate::sys::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    match crate::sys::fork_single_threaded() {
        Err(e) => Err(format!("cannot fork the supervisor: {e}")),
        Ok(Some(pid)) => Ok((pid, go_write)),
        Ok(None) => {
            // The child: keep only stdin (go), stdout and stderr (the logs).
            let code = std::panic::catch_unwind(|| {
                crate::sys::set_signal_ignored(libc::SIGCHLD, false);
                let placed = [
                    (go_read.as_fd(), 0),
                    (stdout.as_fd(), 1),
                    (stderr.as_fd(), 2),
                    (journal.as_fd(), fds::JOURNAL),
                    (null.as_fd(), fds::NULL),
                ];
                // Lifted above the targets first, so that placing one never
                // overwrites a source still to be placed.
                let Ok(lifted) = placed
                    .iter()
                    .map(|(fd, target)| Ok((crate::sys::dup_above(*fd, fds::NULL + 1)?, *target)))
                    .collect::<std::io::Result<Vec<_>>>()
                else {
                    return 125;
                };
                for (fd, target) in &lifted {
                    if crate::sys::dup_onto(fd.as_fd(), *target).is_err() {
                        return 125;
                    }
                }
                drop(lifted);
                // A shim that kept its siblings' go pipes could keep them
                // waiting forever: better not to run at all.
                if !crate::sys::close_descriptors_from(fds::NULL as u32 + 1) {
                    return 125;
                }
                run_shim(args)
            })
            .unwrap_or(125);
            crate::sys::exit_now(code)
        }
    }
}

fn write_frame<T: Serialize>(stream: &mut UnixStream, value: &T) -> std::io::Result<()> {
    stream.write_all(&encode_frame(value)?)
}

/// A frame: the body's length (u32, little-endian) and the JSON body.
fn encode_frame<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
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
fn read_frame<T: DeserializeOwned>(stream: &mut UnixStream) -> std::io::Result<Option<T>> {
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
