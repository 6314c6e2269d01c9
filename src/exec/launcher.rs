//! The launcher: a small helper process (`labbench __launcher`) that the
//! daemon starts once and asks to fork each experiment's [`super::shim`].
//!
//! Forking the launcher, which never grows, costs far less than starting a
//! new program or forking the daemon: no dynamic loading, no copy of the
//! daemon's page tables. The launcher holds its end of each shim's control
//! socket; it says go there once the daemon has recorded the start. If the
//! daemon goes away first, the launcher exits, the sockets close and the
//! shims that never got go exit without running anything. Shims that got go
//! run on (reparented) and record their end in their journal, which a
//! restarted daemon reads. The launcher ignores SIGCHLD, so its children
//! never linger as zombies; the daemon learns of ends through pidfds, and
//! of the ends of reusable shims' experiments through the ends pipe (the
//! launcher's stdout, handed to every shim).
//!
//! The launcher also creates each experiment's directory and files, off the
//! daemon's thread, from spares it makes ahead ([`super::rundirs`]). A reusable shim's next experiment goes down its control
//! socket, with the experiment's log and journal files attached
//! ([`super::fdpass`]); the daemon records the start meanwhile and reads
//! the answer after ([`Launcher::hand_over`]).
//!
//! Protocol on the socket (the launcher's stdin): frames of a little-endian
//! u32 length and a JSON `Request`; a `Spawn` or `Reuse` gets one `Reply`,
//! in order, the others none.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::error::{LaunchError, SpawnError};
use super::protocol::{Reply, Request, ShimArgs, encode_frame, fds, read_frame, write_frame};
use super::rundirs::{RunDirs, RunFiles};
use super::shim::run_shim;

/// The daemon's side: starts the launcher on first use and again if it died.
#[derive(Debug)]
pub struct Launcher {
    program: PathBuf,
    connection: Mutex<Option<Connection>>,
    /// The ends pipe's write end, handed to every launcher (and its shims).
    ends_writer: Option<OwnedFd>,
    /// Its read end, until the runner takes it.
    ends_reader: Mutex<Option<OwnedFd>>,
}

/// The socket to the current launcher and the shims it forked that wait for go.
#[derive(Debug)]
struct Connection {
    stream: UnixStream,
    waiting: std::collections::HashSet<u32>,
    /// Shims handed an experiment whose answers are still to be read, in
    /// the order they were sent (see [`Launcher::hand_over`]).
    unanswered: std::collections::VecDeque<u32>,
    /// Answers read ahead of their turn (before a spawn's, say).
    answers: HashMap<u32, Result<(), LaunchError>>,
}

impl Connection {
    /// Reads the answers still due (the launcher has sent them, or will).
    fn read_answers(&mut self) -> std::io::Result<()> {
        while let Some(pid) = self.unanswered.front().copied() {
            let answer = match read_frame::<Reply>(&mut self.stream)? {
                Some(Reply::Spawned { .. }) => {
                    self.waiting.insert(pid);
                    Ok(())
                }
                Some(Reply::Failed { error }) => Err(LaunchError::Refused(error)),
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            };
            self.unanswered.pop_front();
            self.answers.insert(pid, answer);
        }
        Ok(())
    }
}

/// How long the launcher waits for a supervisor to take a message.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the daemon waits for the launcher to answer before replacing it.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Launcher {
    /// A launcher run from `program` (the labbench binary), started lazily.
    pub fn new(program: PathBuf) -> Launcher {
        // Non-blocking: a shim never waits to report; a full pipe loses the
        // report, and the daemon finds the end in the journal instead.
        let (ends_reader, ends_writer) = match crate::sys::fd::nonblocking_pipe() {
            Ok((reader, writer)) => (Some(reader), Some(writer)),
            Err(e) => {
                tracing::warn!("no ends pipe ({e}): supervisors are not reused");
                (None, None)
            }
        };
        Launcher {
            program,
            connection: Mutex::new(None),
            ends_writer,
            ends_reader: Mutex::new(ends_reader),
        }
    }

    /// The read end of the ends pipe, on which reusable shims report each
    /// experiment's end ([`super::protocol::end_report`]); `None` once taken,
    /// or if there is none (then no shim may be reusable).
    pub fn take_ends(&self) -> Option<OwnedFd> {
        self.ends_reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether shims may be kept for further experiments (their ends can
    /// be reported).
    pub fn can_reuse(&self) -> bool {
        self.ends_writer.is_some()
    }

    fn start(&self) -> std::io::Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        let ends = match &self.ends_writer {
            Some(writer) => Stdio::from(writer.try_clone()?),
            None => Stdio::null(),
        };
        // No uid/gid/pre_exec: std uses posix_spawn (no copy of the daemon).
        let child = Command::new(&self.program)
            .arg("__launcher")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(ends)
            .spawn()?;
        // The daemon reaps it (as every orphan) when it ends.
        drop(child);
        ours.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(ours)
    }

    /// Starts the launcher now if none runs, so that the first experiment
    /// does not wait for it to load.
    pub fn prepare(&self) -> Result<(), LaunchError> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if connection.is_none() {
            *connection = Some(self.connect()?);
        }
        Ok(())
    }

    fn connect(&self) -> Result<Connection, LaunchError> {
        let stream = self
            .start()
            .map_err(|e| LaunchError::Start(e.to_string()))?;
        Ok(Connection {
            stream,
            waiting: Default::default(),
            unanswered: Default::default(),
            answers: Default::default(),
        })
    }

    /// Forks a shim for `args`, waiting for go; returns its pid.
    pub fn spawn(&self, args: ShimArgs) -> Result<u32, LaunchError> {
        // Encoded first: a request too large to send is refused without
        // touching the connection (the shims it has forked stay usable).
        let frame =
            encode_frame(&Request::Spawn(args)).map_err(|e| LaunchError::Request(e.to_string()))?;
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let mut last_error = LaunchError::Exited;
        // A launcher that died or stopped answering is replaced once.
        for _ in 0..2 {
            let current = match connection.as_mut() {
                Some(current) => current,
                None => connection.insert(self.connect()?),
            };
            // Answers to earlier hand-overs come first.
            let answer = current
                .read_answers()
                .and_then(|()| current.stream.write_all(&frame))
                .and_then(|()| read_frame::<Reply>(&mut current.stream));
            match answer {
                Ok(Some(Reply::Spawned { pid })) => {
                    current.waiting.insert(pid);
                    return Ok(pid);
                }
                Ok(Some(Reply::Failed { error })) => return Err(LaunchError::Refused(error)),
                Ok(None) => last_error = LaunchError::Exited,
                Err(e) => last_error = LaunchError::Broken(e.to_string()),
            }
            *connection = None;
        }
        Err(last_error)
    }

    /// Hands idle reusable shim `pid` the experiment `args`: the launcher
    /// creates its files and sends them, and the shim then waits for go.
    /// Returns once asked, without waiting for the answer, so the daemon
    /// can record the start meanwhile; [`handed_over`](Self::handed_over)
    /// tells how it went, and must be asked once for each hand-over.
    pub fn hand_over(&self, pid: u32, args: &ShimArgs) -> Result<(), LaunchError> {
        let frame = encode_frame(&Request::Reuse {
            pid,
            args: args.clone(),
        })
        .map_err(|e| LaunchError::Request(e.to_string()))?;
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let current = connection.as_mut().ok_or(LaunchError::NotRunning)?;
        match current.stream.write_all(&frame) {
            Ok(()) => {
                current.unanswered.push_back(pid);
                Ok(())
            }
            Err(e) => {
                *connection = None;
                Err(LaunchError::Broken(e.to_string()))
            }
        }
    }

    /// Whether shim `pid` took the experiment [handed over](Self::hand_over)
    /// to it (then it waits for go). Fails if the launcher could not create
    /// the experiment's files, or does not hold that shim (it died, or the
    /// launcher was replaced).
    pub fn handed_over(&self, pid: u32) -> Result<(), LaunchError> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let current = connection.as_mut().ok_or(LaunchError::Gone)?;
        if !current.answers.contains_key(&pid)
            && let Err(e) = current.read_answers()
        {
            *connection = None;
            return Err(LaunchError::Broken(e.to_string()));
        }
        current
            .answers
            .remove(&pid)
            .unwrap_or(Err(LaunchError::NotHandedOver))
    }

    /// Reusable shim `pid` gets no more experiments (it exits when idle).
    pub fn retire(&self, pid: u32) {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = connection.as_mut() {
            current.waiting.remove(&pid);
            let sent = encode_frame(&Request::Retire { pid })
                .and_then(|frame| current.stream.write_all(&frame));
            if sent.is_err() {
                *connection = None;
            }
        }
    }

    /// Lets shim `pid` run its command. Fails if the launcher that forked
    /// it is gone (the shim then exits without running anything).
    pub fn go(&self, pid: u32) -> Result<(), LaunchError> {
        self.send(pid, Request::Go { pid })
    }

    /// Drops shim `pid` without running its command.
    pub fn abort(&self, pid: u32) {
        let _ = self.send(pid, Request::Abort { pid });
    }

    fn send(&self, pid: u32, request: Request) -> Result<(), LaunchError> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let current = connection
            .as_mut()
            .filter(|c| c.waiting.contains(&pid))
            .ok_or(LaunchError::Gone)?;
        current.waiting.remove(&pid);
        let sent = encode_frame(&request).and_then(|frame| current.stream.write_all(&frame));
        sent.map_err(|e| {
            *connection = None;
            LaunchError::Broken(e.to_string())
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

/// A shim as the launcher holds it.
struct HeldShim {
    /// The launcher's end of its control socket.
    control: UnixStream,
    /// Whether it waits for go.
    waiting: bool,
    /// Whether it stays for further experiments.
    reusable: bool,
}

fn serve(mut connection: UnixStream) -> i32 {
    // Shims are reaped by the kernel (each shim resets this for its command).
    crate::sys::process::set_signal_ignored(libc::SIGCHLD, true);
    // The daemon's ends pipe (or /dev/null), handed to every shim.
    // SAFETY: the launcher writes nothing to its stdout: the descriptor is
    // `ends`' alone.
    #[allow(unsafe_code)]
    let [ends] = unsafe { crate::sys::fd::take_inherited([1]) };
    // Every command's stdin.
    let null = match std::fs::File::open("/dev/null") {
        Ok(null) => null,
        Err(e) => {
            eprintln!("labbench launcher: cannot open /dev/null: {e}");
            return 1;
        }
    };
    let mut shims: HashMap<u32, HeldShim> = HashMap::new();
    let mut dirs = RunDirs::default();
    let code = serve_requests(&mut connection, &mut shims, &mut dirs, &null, ends.as_ref());
    dirs.clear();
    code
}

/// Serves the daemon's requests until it goes away; makes spare run
/// directories whenever no request waits. Returns the exit code.
fn serve_requests(
    connection: &mut UnixStream,
    shims: &mut HashMap<u32, HeldShim>,
    dirs: &mut RunDirs,
    null: &std::fs::File,
    ends: Option<&OwnedFd>,
) -> i32 {
    loop {
        // Not while a supervisor waits for go: that comes next.
        while dirs.wants_spare()
            && !shims.values().any(|shim| shim.waiting)
            && crate::sys::fd::wait_readable(connection.as_fd(), std::time::Duration::ZERO)
                .is_ok_and(|waiting| !waiting)
        {
            dirs.make_spare();
        }
        let request = match read_frame::<Request>(connection) {
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
                let reusable = args.reusable && ends.is_some();
                let reply = match fork_shim(&args, dirs, null, ends) {
                    Ok((pid, control)) => {
                        let shim = HeldShim {
                            control,
                            waiting: true,
                            reusable,
                        };
                        shims.insert(pid, shim);
                        Reply::Spawned { pid }
                    }
                    Err(error) => Reply::Failed {
                        error: error.to_string(),
                    },
                };
                if let Err(e) = write_frame(connection, &reply) {
                    eprintln!("labbench launcher: {e}");
                    return 1;
                }
            }
            Request::Reuse { pid, args } => {
                let reply = match hand_over(shims.get_mut(&pid), &args, dirs) {
                    Ok(()) => Reply::Spawned { pid },
                    Err(error) => {
                        shims.remove(&pid);
                        Reply::Failed {
                            error: error.to_string(),
                        }
                    }
                };
                if let Err(e) = write_frame(connection, &reply) {
                    eprintln!("labbench launcher: {e}");
                    return 1;
                }
            }
            Request::Go { pid } => {
                if let Some(shim) = shims.get_mut(&pid).filter(|s| s.waiting) {
                    let told = shim.control.write_all(b"go\n").is_ok();
                    shim.waiting = false;
                    if !(told && shim.reusable) {
                        shims.remove(&pid);
                    }
                }
            }
            Request::Abort { pid } | Request::Retire { pid } => {
                shims.remove(&pid);
            }
        }
    }
}

/// Sends idle reusable `shim` the experiment `args` with its files.
fn hand_over(
    shim: Option<&mut HeldShim>,
    args: &ShimArgs,
    dirs: &mut RunDirs,
) -> Result<(), SpawnError> {
    let shim = shim
        .filter(|s| s.reusable && !s.waiting)
        .ok_or(SpawnError::NoIdleSupervisor)?;
    let files = dirs.take(&args.dir, args.identity.as_ref())?;
    let frame = encode_frame(args).map_err(SpawnError::Encode)?;
    let attached = [
        files.stdout.as_fd(),
        files.stderr.as_fd(),
        files.journal.as_fd(),
    ];
    super::fdpass::send_with_fds(&mut shim.control, &frame, &attached)
        .map_err(SpawnError::SupervisorGone)?;
    shim.waiting = true;
    Ok(())
}

/// Forks a shim whose stdout and stderr are the experiment's logs, whose
/// stdin is its control socket and whose other descriptors are the [`fds`]
/// (the journal, created here, `null` and the ends pipe); returns its pid
/// and the launcher's end of the socket.
fn fork_shim(
    args: &ShimArgs,
    dirs: &mut RunDirs,
    null: &std::fs::File,
    ends: Option<&OwnedFd>,
) -> Result<(u32, UnixStream), SpawnError> {
    let RunFiles {
        stdout,
        stderr,
        journal,
    } = dirs.take(&args.dir, args.identity.as_ref())?;
    let (ours, theirs) = UnixStream::pair().map_err(|e| SpawnError::ControlSocket("make", e))?;
    // A supervisor that stopped reading (stopped by its user, say) must not
    // hold up the launcher, and every start with it: sends to it time out.
    ours.set_write_timeout(Some(SEND_TIMEOUT))
        .map_err(|e| SpawnError::ControlSocket("set up", e))?;
    // SAFETY: the launcher (`labbench __launcher`, which serves from the
    // start of `main`) starts no thread: it has one.
    #[allow(unsafe_code)]
    let forked = unsafe { crate::sys::process::fork_single_threaded() };
    match forked {
        Err(e) => Err(SpawnError::Fork(e)),
        Ok(Some(pid)) => Ok((pid, ours)),
        Ok(None) => {
            // The child: keep only stdin (control), stdout and stderr (the
            // logs) and the `fds`.
            let code = std::panic::catch_unwind(|| {
                crate::sys::process::set_signal_ignored(libc::SIGCHLD, false);
                let mut placed = vec![
                    (theirs.as_fd(), 0),
                    (stdout.as_fd(), 1),
                    (stderr.as_fd(), 2),
                    (journal.as_fd(), fds::JOURNAL),
                    (null.as_fd(), fds::NULL),
                ];
                placed.extend(ends.map(|fd| (fd.as_fd(), fds::ENDS)));
                // A shim that kept its siblings' control sockets could keep
                // them waiting forever: better not to run at all.
                // SAFETY: this child uses no other descriptor than the
                // placed ones, whose owners here are never dropped: it
                // ends with exit_now.
                #[allow(unsafe_code)]
                let kept = unsafe { crate::sys::fd::place_descriptors(&placed, fds::ENDS + 1) };
                if kept.is_err() {
                    return 125;
                }
                run_shim(args)
            })
            .unwrap_or(125);
            crate::sys::process::exit_now(code)
        }
    }
}
