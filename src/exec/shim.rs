//! The experiment supervisor ("shim"), forked by the [`super::launcher`]:
//! it waits for "go" on its control socket (stdin), sent once the daemon has
//! moved it into the experiment's cgroup and durably recorded the start. Then
//! it becomes the experiment's Unix user with all its groups (resolved by the
//! daemon through the C library's name service, [`crate::sys::accounts`]: the
//! shim reads no account file), starts a session, enters the working
//! directory (as that user, so its permissions apply), runs the command with
//! the clean environment it was given (see [`super::local`]), notes every
//! [`journal::CHECKPOINT_EVERY`] how far each log has grown and finally the
//! command's exit status (see [`crate::output::journal`]). One thread: it waits on a
//! pidfd of the command between checkpoints.
//!
//! The command starts with no signal blocked or ignored and every signal at
//! its default action, as from a login shell, so a program that traps SIGTERM
//! gets the grace to act on it. The shim catches SIGTERM, SIGINT, SIGHUP and
//! SIGPIPE with a handler that does nothing (a caught signal reverts to its
//! default in the command at exec), so it outlives the stop signals sent to
//! its command and can always record how the command ended.
//!
//! A [reusable](ShimArgs::reusable) shim supervises one experiment at a
//! time but does not exit after it: it says so on the ends pipe
//! ([`fds::ENDS`]: its pid and the experiment's id, one atomic write) and
//! waits for the next experiment of the same user, which the launcher sends
//! on the control socket with its log and journal files attached. It exits
//! when the socket closes (the launcher, or the daemon, went away).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::protocol::{Identity, MAX_FRAME, ShimArgs, end_report, fds};

use crate::output::Stream;
use crate::output::journal::{self, ExitStatus, JournalWriter};

/// Runs the shim (stdin: the control socket; stdout and stderr: the logs;
/// and the descriptors in [`fds`]). Returns the process exit code.
pub fn run_shim(first: &ShimArgs) -> i32 {
    // SAFETY: the launcher placed these for the shim, which uses them
    // through what it takes here alone (its stdin is never read as such).
    #[allow(unsafe_code)]
    let [control, journal, null, ends] =
        unsafe { crate::sys::fd::take_inherited([0, fds::JOURNAL, fds::NULL, fds::ENDS]) };
    let Some(mut control) = control.map(UnixStream::from) else {
        return 125;
    };
    if !told_go(&mut control) {
        // The daemon never said go (it stopped first): nothing ran.
        return 125;
    }
    let Some(journal) = journal else {
        eprintln!("labbench: the run journal was not handed over");
        return 125;
    };
    let null = null.map(File::from);
    let ends = ends.map(File::from);
    // Stop signals are for the command, which starts with none blocked or
    // ignored; the shim stays to record how it ended.
    crate::sys::process::reset_signals_for_commands();
    let (mut code, mut usable) = run_job(first, File::from(journal), null.as_ref(), None);
    let mut last = first.id;
    while first.reusable && usable {
        if let Some(mut ends) = ends.as_ref() {
            // A full or closed pipe loses the report: the daemon then
            // finds the end in the journal at its next tick.
            let _ = ends.write(&end_report(std::process::id(), last));
        }
        let Some((args, journal)) = next_job(&mut control) else {
            break;
        };
        if !told_go(&mut control) {
            break;
        }
        last = args.id;
        (code, usable) = run_job(&args, journal, null.as_ref(), Some(&first.identity));
    }
    code
}

/// Reads "go" from the control socket; false at its end or on anything else.
fn told_go(control: &mut UnixStream) -> bool {
    let mut go = [0u8; 3];
    control.read_exact(&mut go).is_ok() && &go == b"go\n"
}

/// The next experiment sent on the control socket: its arguments and its
/// journal; its logs become stdout and stderr. `None` at the end of the
/// socket or on a malformed message (the shim then exits).
fn next_job(control: &mut UnixStream) -> Option<(ShimArgs, File)> {
    let mut len = [0u8; 4];
    let (n, fds) = super::fdpass::recv_with_fds(control, &mut len).ok()?;
    if n == 0 {
        return None;
    }
    control.read_exact(&mut len[n..]).ok()?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return None;
    }
    let mut body = vec![0; len as usize];
    control.read_exact(&mut body).ok()?;
    let args: ShimArgs = serde_json::from_slice(&body).ok()?;
    let [stdout, stderr, journal]: [std::os::fd::OwnedFd; 3] = fds.try_into().ok()?;
    rustix::stdio::dup2_stdout(stdout).ok()?;
    rustix::stdio::dup2_stderr(stderr).ok()?;
    Some((args, File::from(journal)))
}

/// Runs one experiment to its end and journals how it ended. `settled`:
/// the identity taken on for an earlier experiment (`None` for the first,
/// which takes on its own and starts the session). Returns the exit code
/// and whether the shim may run another.
fn run_job(
    args: &ShimArgs,
    journal: File,
    null: Option<&File>,
    settled: Option<&Option<Identity>>,
) -> (i32, bool) {
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
    .filter_map(|(stream, fd)| Some((stream, File::from(fd.ok()?))))
    .collect();
    let mut journal = JournalWriter::new(journal, logs);
    let mut setup_failed = |what: String, reusable: bool| {
        eprintln!("labbench: {what}");
        journal.exit(ExitStatus::Code(125));
        (125, reusable)
    };
    match settled {
        None => {
            if let Some(id) = &args.identity
                && let Err(e) = crate::sys::process::become_identity(id.uid, id.gid, &id.groups)
            {
                return setup_failed(format!("cannot become {}: {e}", id.name), false);
            }
            if let Err(e) = crate::sys::process::new_session() {
                return setup_failed(format!("cannot start a session: {e}"), false);
            }
        }
        Some(identity) if *identity != args.identity => {
            return setup_failed("this supervisor runs as another user".into(), false);
        }
        Some(_) => {}
    }
    if let Err(e) = std::env::set_current_dir(&args.workdir) {
        return setup_failed(
            format!(
                "cannot enter the working directory {}: {e}",
                args.workdir.display()
            ),
            true,
        );
    }
    let Some((program, rest)) = args.argv.split_first() else {
        return setup_failed("no command".into(), true);
    };
    let path = args
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let stdin = match null.map(File::try_clone) {
        Some(Ok(null)) => Stdio::from(null),
        _ => Stdio::null(),
    };
    // Without this line the daemon takes the command for never started.
    if let Err(e) = journal.started(journal::now_ms()) {
        eprintln!("labbench: cannot write the run journal: {e}");
        journal.exit(ExitStatus::Code(125));
        return (125, true);
    }
    let spawned = Command::new(resolve_program(program, path))
        .args(rest)
        .env_clear()
        .envs(args.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("labbench: cannot run {program}: {e}");
            journal.checkpoint(journal::now_ms());
            journal.exit(ExitStatus::Code(127));
            return (127, true);
        }
    };
    let status = match wait_with_checkpoints(child, &mut journal) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("labbench shim: lost the command: {e}");
            return (125, false);
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let (record, code) = match (status.code(), status.signal()) {
        (Some(code), _) => (ExitStatus::Code(code), code),
        (None, Some(signal)) => (ExitStatus::Signal(signal), 128 + signal),
        (None, None) => (ExitStatus::Code(125), 125),
    };
    journal.exit(record);
    // An idle supervisor holds on to no user's directory.
    let _ = std::env::set_current_dir("/");
    (code, true)
}

/// Waits for the command, taking a checkpoint every
/// [`journal::CHECKPOINT_EVERY`] and a last one when it ends.
fn wait_with_checkpoints(
    mut child: Child,
    journal: &mut JournalWriter,
) -> std::io::Result<std::process::ExitStatus> {
    use std::os::fd::AsFd;
    let every = journal::CHECKPOINT_EVERY;
    match crate::sys::process::pidfd_open(child.id()) {
        Ok(pidfd) => {
            while !crate::sys::fd::wait_readable(pidfd.as_fd(), every)? {
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
