//! Starting an experiment on this host, through the `__shim` supervisor.
//!
//! The daemon starts `labbench __shim STATUS -- CMD…` as the experiment's Unix
//! user, with stdout and stderr going straight to log files, moves it into
//! the experiment's cgroups, then tells it to go (one line on its stdin). The
//! shim starts a new session, runs the command, ignores stop signals itself
//! and writes the command's exit status to STATUS. Output and status so
//! survive a restart of the daemon, and nothing escapes the cgroup.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cgroup::{ExperimentCgroup, Limits};
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

    /// Where the shim writes the exit status.
    pub fn status(&self) -> PathBuf {
        self.dir.join("status")
    }

    /// Metrics the experiment appends (`$LABBENCH_METRICS`).
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
}

/// How an experiment's leader process ended, as the shim recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// Reads the shim's status file (`exit N` or `signal N`).
pub fn read_status(path: &Path) -> Option<ExitStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    let (kind, value) = text.trim().split_once(' ')?;
    let value: i32 = value.parse().ok()?;
    match kind {
        "exit" => Some(ExitStatus::Code(value)),
        "signal" => Some(ExitStatus::Signal(value)),
        _ => None,
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
    /// Whether cgroups v1 can be used.
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
    // The shim (running as the user) writes these two files.
    for path in [files.status(), files.metrics()] {
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

    let mut command = Command::new(&ctx.program);
    command.arg("__shim").arg(files.status()).arg("--");
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
        .current_dir(&e.spec.workdir)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr);
    if let Some(a) = &account {
        command.uid(a.uid).gid(a.gid);
    }
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

/// The `__shim` supervisor: waits for "go", starts a session, runs the
/// command, records its status. Returns the process exit code.
pub fn run_shim(status_path: &Path, argv: &[String]) -> i32 {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() || line.trim() != "go" {
        return 125;
    }
    if let Err(e) = crate::sys::new_session() {
        eprintln!("labbench shim: cannot start a session: {e}");
        return 125;
    }
    let Some((program, args)) = argv.split_first() else {
        eprintln!("labbench shim: no command");
        return 125;
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("labbench: cannot run {program}: {e}");
            let _ = std::fs::write(status_path, "exit 127\n");
            return 127;
        }
    };
    // Stop signals are for the command; the shim stays to record how it ended.
    crate::sys::ignore_stop_signals();
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("labbench shim: lost the command: {e}");
            return 125;
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let (record, code) = match (status.code(), status.signal()) {
        (Some(code), _) => (format!("exit {code}\n"), code),
        (None, Some(signal)) => (format!("signal {signal}\n"), 128 + signal),
        (None, None) => ("exit 125\n".to_string(), 125),
    };
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(status_path)
        .and_then(|mut f| f.write_all(record.as_bytes()));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_files_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status");
        std::fs::write(&path, "exit 3\n").expect("write");
        assert_eq!(read_status(&path), Some(ExitStatus::Code(3)));
        std::fs::write(&path, "signal 9\n").expect("write");
        assert_eq!(read_status(&path), Some(ExitStatus::Signal(9)));
        std::fs::write(&path, "").expect("write");
        assert_eq!(read_status(&path), None);
    }
}
