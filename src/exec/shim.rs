//! The experiment supervisor ("shim"), one per experiment, forked by the
//! [`super::launcher`]: it waits for "go" on its stdin, becomes the
//! experiment's Unix user (with its groups, resolved by the daemon: the shim
//! reads no account file), starts a session, enters the
//! working directory, runs the command with the environment it was given,
//! notes every [`journal::CHECKPOINT_EVERY`] how far each log has grown and
//! finally the command's exit status (see [`super::journal`]). It ignores
//! stop signals itself so that it can always record how the command ended.
//! One thread: it waits on a pidfd of the command between checkpoints.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::journal::{self, ExitStatus, JournalWriter, Stream};

/// What the shim runs, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimArgs {
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

/// Descriptors the launcher hands every shim besides stdin (the "go" pipe),
/// stdout and stderr (the logs).
pub mod fds {
    /// The run journal, created empty by the launcher and open for writing.
    pub const JOURNAL: i32 = 3;
    /// `/dev/null`, the command's stdin.
    pub const NULL: i32 = 4;
}

/// Runs the shim (stdin: the "go" pipe; stdout and stderr: the logs; and
/// the descriptors in [`fds`]). Returns the process exit code.
pub fn run_shim(args: &ShimArgs) -> i32 {
    // Read straight from the pipe (and close it): std's buffered stdin
    // would allocate, and each page this forked process writes is copied.
    let mut go = [0u8; 3];
    let told = crate::sys::take_inherited_fd(0)
        .map(std::fs::File::from)
        .is_some_and(|mut pipe| std::io::Read::read_exact(&mut pipe, &mut go).is_ok());
    if !told || &go != b"go\n" {
        // The daemon never said go (it stopped first): nothing ran.
        return 125;
    }
    let Some(journal) = crate::sys::take_inherited_fd(fds::JOURNAL) else {
        eprintln!("labbench: the run journal was not handed over");
        return 125;
    };
    // The logs are stdout and stderr: checkpoints measure them through duplicates.
    use std::os::fd::AsFd;
    let logs = [
        (
            Stream::Stdout,
            std::io::stdout().as_fd().try_clone_to_owned(),
        ),
        (
            Stream::Stderr,
            std::io::stderr().as_fd().try_clone_to_owned(),
        ),
    ]
    .into_iter()
    .filter_map(|(stream, fd)| Some((stream, std::fs::File::from(fd.ok()?))))
    .collect();
    let mut journal = JournalWriter::new(std::fs::File::from(journal), logs);
    let mut setup_failed = |what: String| {
        eprintln!("labbench: {what}");
        journal.exit(ExitStatus::Code(125));
        125
    };
    if let Some(id) = &args.identity
        && let Err(e) = crate::sys::become_identity(id.uid, id.gid, &id.groups)
    {
        return setup_failed(format!("cannot become {}: {e}", id.name));
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
    let path = args
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let spawned = Command::new(resolve_program(program, path))
        .args(rest)
        .env_clear()
        .envs(args.env.iter().map(|(k, v)| (k, v)))
        .stdin(match crate::sys::take_inherited_fd(fds::NULL) {
            Some(null) => Stdio::from(null),
            None => Stdio::null(),
        })
        .spawn();
    let child = match spawned {
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
    let status = match wait_with_checkpoints(child, &mut journal) {
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
    journal.exit(record);
    code
}

/// Waits for the command, taking a checkpoint every
/// [`journal::CHECKPOINT_EVERY`] and a last one when it ends.
fn wait_with_checkpoints(
    mut child: Child,
    journal: &mut JournalWriter,
) -> std::io::Result<std::process::ExitStatus> {
    use std::os::fd::AsFd;
    let every = journal::CHECKPOINT_EVERY;
    match crate::sys::pidfd_open(child.id()) {
        Ok(pidfd) => {
            while !crate::sys::wait_readable(pidfd.as_fd(), every)? {
                journal.checkpoint(journal::now_ms());
            }
        }
        // Kernels before 5.3: poll the child a little more often.
        Err(_) => {
            let mut last = std::time::Instant::now();
            while child.try_wait()?.is_none() {
                std::thread::sleep(every / 10);
                if last.elapsed() >= every {
                    journal.checkpoint(journal::now_ms());
                    last = std::time::Instant::now();
                }
            }
        }
    }
    let status = child.wait();
    journal.checkpoint(journal::now_ms());
    status
}

/// Where `program` is, searched in `path` as `execvp` would. Given a full
/// path, std starts the command with posix_spawn (it forks instead when it
/// must search a changed PATH itself), which is cheaper. A program that is
/// not found is returned as is, and starting it reports the error.
fn resolve_program(program: &str, path: Option<&str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return PathBuf::from(program);
    }
    path.unwrap_or("/usr/bin:/bin")
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_given_path() {
        let sh = resolve_program("sh", Some("/nonexistent:/bin:/usr/bin"));
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert_eq!(
            resolve_program("./run.sh", Some("/bin")),
            PathBuf::from("./run.sh")
        );
        assert_eq!(
            resolve_program("no-such-program-here", Some("/bin")),
            PathBuf::from("no-such-program-here")
        );
        // A directory of that name is not a program.
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("tool")).expect("mkdir");
        let path = format!("{}:/bin", dir.path().display());
        assert_eq!(resolve_program("tool", Some(&path)), PathBuf::from("tool"));
    }
}
