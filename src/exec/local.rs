//! Starting an experiment on this host, through the `__shim` supervisor.
//!
//! The daemon spawns `labbench __shim --dir DIR --workdir W [--user U] -- CMD…`
//! (posix_spawn: no copy of the daemon's memory), with stdout and stderr going
//! straight to log files, moves it into the experiment's cgroups, then tells
//! it to go (one line on its stdin). The shim becomes the experiment's Unix
//! user (with its groups), starts a new session, enters the working
//! directory, runs the command, notes when the logs grow (see
//! [`super::timeline`]), ignores stop signals itself and writes the command's
//! exit status. Output and status so survive a restart of the daemon, and
//! nothing escapes the cgroup.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cgroup::{ExperimentCgroup, Limits};
use super::journal::{self, ExitStatus, JournalWriter, Stream};
use crate::model::{CommandLine, Experiment};

/// Files of one experiment in the data directory.
#[derive(Debug, Clone)]
pub struct ExperimentFiles {
    /// The experiment's directory.
    pub dir: PathBuf,
}

impl ExperimentFiles {
    /// The files of experiment `id` under `data_dir/experiments`.
    pub fn new(data_dir: &Path, id: u64) -> ExperimentFiles {
        ExperimentFiles {
            dir: data_dir.join("experiments").join(id.to_string()),
        }
    }

    /// Captured standard output.
    pub fn stdout(&self) -> PathBuf {
        self.dir.join("stdout.log")
    }

    /// Captured standard error.
    pub fn stderr(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }

    /// A log by stream.
    pub fn log(&self, stream: Stream) -> PathBuf {
        match stream {
            Stream::Stdout => self.stdout(),
            Stream::Stderr => self.stderr(),
        }
    }

    /// The run journal the shim writes (write times of the logs, exit status).
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// Metrics the experiment appends (`$LABBENCH_METRICS`).
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
}

/// A started experiment.
#[derive(Debug)]
pub struct Launched {
    /// The shim's pid (leader of the experiment's session).
    pub pid: u32,
    /// The shim's start time (ticks after boot), to recognise it later.
    pub start_time: u64,
    /// Its cgroups, when confined by them.
    pub cgroup: Option<ExperimentCgroup>,
}

/// Everything `launch` needs besides the experiment.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The labbench binary (for `__shim`).
    pub program: PathBuf,
    /// Whether cgroups (v2 or v1) can be used.
    pub cgroups: bool,
    /// Whether the daemon runs as root (then experiments run as their owner's Unix user).
    pub as_root: bool,
    /// Most processes per experiment.
    pub max_processes: u32,
}

/// Starts an experiment; returns its leader's pid.
pub fn launch(ctx: &LaunchContext, e: &Experiment, gpus: &[u32]) -> Result<Launched, String> {
    let files = ExperimentFiles::new(&ctx.data_dir, e.id);
    // Traversable (not listable) by the experiment's user, who writes its status and metrics.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&files.dir)
        .map_err(|err| format!("cannot create {}: {err}", files.dir.display()))?;
    if let Some(parent) = files.dir.parent() {
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711));
    }
    let open_log = |path: PathBuf| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| format!("cannot open {}: {err}", path.display()))
    };
    let stdout = open_log(files.stdout())?;
    let stderr = open_log(files.stderr())?;
    let account = if ctx.as_root {
        Some(
            crate::sys::passwd_entry(&e.unix_user)
                .ok_or_else(|| format!("unix user {} does not exist on this host", e.unix_user))?,
        )
    } else {
        None
    };
    // The shim (running as the user) writes these files.
    for path in [files.journal(), files.metrics()] {
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
        if let Some(a) = &account {
            std::os::unix::fs::chown(&path, Some(a.uid), Some(a.gid)).map_err(|err| {
                format!("cannot hand {} to {}: {err}", path.display(), e.unix_user)
            })?;
        }
    }

    let cgroup = if ctx.cgroups {
        Some(
            ExperimentCgroup::create(
                &super::cgroup::instance_name(&ctx.data_dir),
                e.id,
                Limits {
                    memory_bytes: e.spec.resources.memory_bytes,
                    cpus: e.spec.resources.cpus,
                    pids: ctx.max_processes,
                },
            )
            .map_err(|err| format!("cannot create the experiment's cgroup: {err}"))?,
        )
    } else {
        None
    };

    // No uid/gid/pre_exec here, so std starts the shim with posix_spawn (no
    // copy of the daemon's page tables); the shim drops to the user itself.
    let mut command = Command::new(&ctx.program);
    command
        .arg("__shim")
        .arg("--dir")
        .arg(&files.dir)
        .arg("--workdir")
        .arg(&e.spec.workdir);
    if account.is_some() {
        command.arg("--user").arg(&e.unix_user);
    }
    command.arg("--");
    match &e.spec.command {
        CommandLine::Argv(argv) => command.args(argv),
        CommandLine::Shell(line) => command.args(["/bin/sh", "-c", line]),
    };
    let home = account
        .as_ref()
        .map(|a| a.home.clone())
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"));
    let visible = gpus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    command
        .env_clear()
        .env(
            "PATH",
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        )
        .env("HOME", &home)
        .env("USER", &e.unix_user)
        .env("LOGNAME", &e.unix_user)
        .env("SHELL", "/bin/sh")
        .env("LANG", "C.UTF-8")
        .env("LABBENCH_EXPERIMENT_ID", e.id.to_string())
        .env("LABBENCH_METRICS", files.metrics())
        .env("CUDA_VISIBLE_DEVICES", &visible)
        .env(
            "NVIDIA_VISIBLE_DEVICES",
            if visible.is_empty() { "none" } else { &visible },
        )
        .envs(e.spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr);
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", e.spec.command.display()))?;
    let pid = child.id();
    let stop = |why: String| {
        crate::sys::kill(pid as i32, libc::SIGKILL);
        if let Some(cg) = &cgroup {
            let _ = cg.remove();
        }
        why
    };
    if let Some(cg) = &cgroup {
        cg.add_process(pid)
            .map_err(|err| stop(format!("cannot confine the experiment: {err}")))?;
    }
    let mut go = child
        .stdin
        .take()
        .ok_or_else(|| stop("no pipe to the shim".into()))?;
    go.write_all(b"go\n")
        .map_err(|err| stop(format!("cannot start the shim: {err}")))?;
    drop(go);
    // The daemon reaps its children as subreaper; the handle is not needed.
    drop(child);
    let start_time = crate::sys::process_start_time(pid).unwrap_or(0);
    Ok(Launched {
        pid,
        start_time,
        cgroup,
    })
}

/// Arguments of `labbench __shim --dir DIR --workdir DIR [--user NAME] -- CMD…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// The experiment's directory (logs, journal).
    pub dir: PathBuf,
    /// Where the command runs.
    pub workdir: PathBuf,
    /// The Unix user to become (when the daemon runs as root).
    pub user: Option<String>,
    /// The command.
    pub argv: Vec<String>,
}

impl ShimArgs {
    /// Parses the arguments after `__shim`; `None` when malformed.
    pub fn parse(args: &[String]) -> Option<ShimArgs> {
        let split = args.iter().position(|a| a == "--")?;
        let (flags, argv) = (&args[..split], &args[split + 1..]);
        let (mut dir, mut workdir, mut user) = (None, None, None);
        for pair in flags.chunks(2) {
            match pair {
                [flag, value] if flag == "--dir" => dir = Some(PathBuf::from(value)),
                [flag, value] if flag == "--workdir" => workdir = Some(PathBuf::from(value)),
                [flag, value] if flag == "--user" => user = Some(value.clone()),
                _ => return None,
            }
        }
        Some(ShimArgs {
            dir: dir?,
            workdir: workdir?,
            user,
            argv: argv.to_vec(),
        })
    }
}

/// The `__shim` supervisor: waits for "go", becomes the experiment's user,
/// starts a session, runs the command while noting when its output grew,
/// records its status. Returns the process exit code.
pub fn run_shim(args: &ShimArgs) -> i32 {
    let files = ExperimentFiles {
        dir: args.dir.clone(),
    };
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() || line.trim() != "go" {
        return 125;
    }
    let mut journal = match JournalWriter::open(
        &files.journal(),
        &[
            (Stream::Stdout, files.stdout()),
            (Stream::Stderr, files.stderr()),
        ],
    ) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("labbench: cannot open the run journal: {e}");
            return 125;
        }
    };
    let mut setup_failed = |what: String| {
        eprintln!("labbench: {what}");
        journal.exit(ExitStatus::Code(125));
        125
    };
    if let Some(user) = &args.user {
        let Some(account) = crate::sys::passwd_entry(user) else {
            return setup_failed(format!("unix user {user} does not exist on this host"));
        };
        if let Err(e) = crate::sys::become_user(user, account.uid, account.gid) {
            return setup_failed(format!("cannot become {user}: {e}"));
        }
    }
    if let Err(e) = crate::sys::new_session() {
        return setup_failed(format!("cannot start a session: {e}"));
    }
    if let Err(e) = std::env::set_current_dir(&args.workdir) {
        return setup_failed(format!(
            "cannot enter the working directory {}: {e}",
            args.workdir.display()
        ));
    }
    let Some((program, rest)) = args.argv.split_first() else {
        return setup_failed("no command".into());
    };
    let spawned = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("labbench: cannot run {program}: {e}");
            journal.checkpoint(journal::now_ms());
            journal.exit(ExitStatus::Code(127));
            return 127;
        }
    };
    // Stop signals are for the command; the shim stays to record how it ended.
    crate::sys::ignore_stop_signals();
    let checkpoints = Checkpoints::start(journal);
    let status = child.wait();
    let mut journal = checkpoints.finish();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            eprintln!("labbench shim: lost the command: {e}");
            return 125;
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let (record, code) = match (status.code(), status.signal()) {
        (Some(code), _) => (ExitStatus::Code(code), code),
        (None, Some(signal)) => (ExitStatus::Signal(signal), 128 + signal),
        (None, None) => (ExitStatus::Code(125), 125),
    };
    if let Some(journal) = journal.as_mut() {
        journal.exit(record);
    }
    code
}

/// The shim's thread that notes when the logs grow.
struct Checkpoints {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<JournalWriter>,
}

impl Checkpoints {
    fn start(mut journal: JournalWriter) -> Checkpoints {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                let done = !matches!(
                    stopped.recv_timeout(journal::CHECKPOINT_EVERY),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                journal.checkpoint(journal::now_ms());
                if done {
                    return journal;
                }
            }
        });
        Checkpoints { stop, thread }
    }

    /// Takes the last checkpoint, ends the thread and hands the journal back.
    fn finish(self) -> Option<JournalWriter> {
        let _ = self.stop.send(());
        self.thread.join().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_arguments_parse_strictly() {
        let args = |text: &str| text.split(' ').map(String::from).collect::<Vec<_>>();
        let parsed = ShimArgs::parse(&args("--dir /d --workdir /w --user ann -- sh -c x"));
        assert_eq!(
            parsed,
            Some(ShimArgs {
                dir: "/d".into(),
                workdir: "/w".into(),
                user: Some("ann".into()),
                argv: args("sh -c x"),
            })
        );
        assert_eq!(
            ShimArgs::parse(&args("--dir /d -- true")),
            None,
            "no workdir"
        );
        assert_eq!(
            ShimArgs::parse(&args("--dir /d --workdir /w true")),
            None,
            "no --"
        );
        assert_eq!(
            ShimArgs::parse(&args("--bogus x --dir /d --workdir /w -- t")),
            None
        );
    }
}
