//! Processes: forking one and ending this one at once, signals and how
//! they are handled, sessions, reaping orphans, pidfds, taking on a Unix
//! identity, and this process's limit of open files.

use std::os::fd::OwnedFd;

use rustix::process::{Pid, Signal};

use super::procfs;

/// Sends `signal` to process `pid` (errors, e.g. an already gone process, are ignored).
pub fn kill(pid: i32, signal: i32) {
    // A pid of 0 or less would mean a process group, or every process.
    if pid <= 0 {
        return;
    }
    if let (Some(pid), Some(signal)) = (Pid::from_raw(pid), Signal::from_named_raw(signal)) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Sends `signal` to every process of process group `pgid` (a group that
/// is gone is ignored).
pub fn kill_group(pgid: u32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    if let (Some(pgid), Some(signal)) = (Pid::from_raw(pgid as i32), Signal::from_named_raw(signal))
    {
        let _ = rustix::process::kill_process_group(pgid, signal);
    }
}

/// Kills process `pid` if it is still the one started at `start_time` (see
/// [`procfs::process_running`]): one that exited may have given its pid to
/// another.
pub fn kill_if_same(pid: u32, start_time: u64) {
    if procfs::process_running(pid, start_time) {
        kill(pid as i32, libc::SIGKILL);
    }
}

/// Sends `signal` to every process in session `sid` but `spared` (an
/// experiment's supervisor, when no cgroup confines it). A process that
/// started a session of its own escapes.
pub fn signal_session(sid: u32, signal: i32, spared: Option<u32>) {
    if sid <= 1 {
        return;
    }
    procfs::for_each_in_session(sid, |pid, _| {
        if Some(pid) != spared {
            kill(pid as i32, signal);
        }
    });
}

/// Starts a new session with the calling process as its leader.
pub fn new_session() -> std::io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// A pidfd for process `pid`: readable once the process has ended
/// (Linux 5.3+). Works for processes that are not our children.
pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(rustix::io::Errno::INVAL)?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Makes this process the reaper of orphaned descendants (so daemonising
/// experiment processes are still reaped and accounted by the daemon).
pub fn become_subreaper() -> bool {
    // The pid only says "set": any sets the flag.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).is_ok()
}

/// Reaps any exited children without blocking (orphans adopted as subreaper).
pub fn reap_orphans() {
    while let Ok(Some(_)) = rustix::process::waitpid(None, rustix::process::WaitOptions::NOHANG) {}
}

/// What a signal does to this process when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Its default action.
    Default,
    /// Nothing; a child keeps it ignored across exec.
    Ignored,
    /// It interrupts (system calls restart) and is gone; a child gets the
    /// default action back at exec.
    Caught,
}

/// A handler that does nothing: the signal interrupts, and is gone.
extern "C" fn ignore_signal(_signal: libc::c_int) {}

/// Gives each of `signals` its disposition and, with `unblock_all`,
/// unblocks every signal for the calling thread. Signals the C library
/// reserves refuse the change, which is ignored.
fn set_dispositions(signals: &[(libc::c_int, Disposition)], unblock_all: bool) {
    let caught = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: every sigaction is zeroed (a valid value) and its mask
    // emptied before use, and the sigset_t is initialised by sigemptyset
    // before it is read; the only handler installed touches nothing. The
    // calls change only this process's signal dispositions and the calling
    // thread's mask.
    #[allow(unsafe_code)]
    unsafe {
        for &(signal, disposition) in signals {
            let mut action: libc::sigaction = std::mem::zeroed();
            (action.sa_sigaction, action.sa_flags) = match disposition {
                Disposition::Default => (libc::SIG_DFL, 0),
                Disposition::Ignored => (libc::SIG_IGN, 0),
                Disposition::Caught => (caught, libc::SA_RESTART),
            };
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        if unblock_all {
            let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut());
        }
    }
}

/// Sets up a supervisor's signals so that the commands it starts begin as
/// from a login shell: no signal blocked and every signal at its default
/// action (whatever the daemon's own starter blocked or ignored, such as
/// SIGINT for a background job), so that a command's handler for SIGTERM
/// runs. SIGTERM, SIGINT, SIGHUP and SIGPIPE get a handler that does
/// nothing (system calls restart): the supervisor outlives the stop
/// signals sent to its command to record how it ended, and a caught
/// signal reverts to its default action in a command at exec, where an
/// ignored or blocked one would be passed on. The supervisor has one
/// thread, whose mask is the one cleared.
pub fn reset_signals_for_commands() {
    const CAUGHT: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE];
    let signals: Vec<_> = (1..=libc::SIGRTMAX())
        .filter(|signal| *signal != libc::SIGKILL && *signal != libc::SIGSTOP)
        .map(|signal| {
            if CAUGHT.contains(&signal) {
                (signal, Disposition::Caught)
            } else {
                (signal, Disposition::Default)
            }
        })
        .collect();
    set_dispositions(&signals, true);
}

/// Sets how this process handles `signal`: its default action, or ignored.
/// Children inherit ignored signals across exec, so a forked helper resets
/// what its parent ignored before running a command.
pub fn set_signal_ignored(signal: i32, ignore: bool) {
    let disposition = if ignore {
        Disposition::Ignored
    } else {
        Disposition::Default
    };
    set_dispositions(&[(signal, disposition)], false);
}

/// Forks the calling process: `Some(pid)` in the parent, `None` in the child.
///
/// # Safety
///
/// The calling process has one thread. The child of a process with more
/// gets a copy of locks that threads now gone may hold (the allocator's
/// among them), so it may only make async-signal-safe calls, which the
/// code it goes on to run does not keep to.
#[allow(unsafe_code)]
pub unsafe fn fork_single_threaded() -> std::io::Result<Option<u32>> {
    // SAFETY: the caller's promise: the child has a consistent copy of the
    // whole process, as no other thread held a lock at the fork.
    let pid = unsafe { libc::fork() };
    match pid {
        p if p < 0 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        p => Ok(Some(p as u32)),
    }
}

/// Ends the process at once with `code`, running no destructors or exit
/// handlers (a forked child must not flush its parent's buffers).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing runs after it.
    #[allow(unsafe_code)]
    unsafe {
        libc::_exit(code)
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Takes on a Unix identity resolved beforehand: supplementary `groups`,
/// then the group, then the user (which cannot be undone). Reads no file
/// but `/proc/self/task`: the system calls change the calling thread
/// alone, so a process with other threads (which would keep their
/// identity) is refused.
pub fn become_identity(uid: u32, gid: u32, groups: &[u32]) -> std::io::Result<()> {
    use rustix::thread::{Gid, Uid};
    let threads = std::fs::read_dir("/proc/self/task").map(Iterator::count);
    if threads.is_ok_and(|n| n > 1) {
        return Err(std::io::Error::other(
            "the process has other threads, which would keep their identity",
        ));
    }
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    rustix::thread::set_thread_groups(&groups)?;
    rustix::thread::set_thread_gid(Gid::from_raw(gid))?;
    rustix::thread::set_thread_uid(Uid::from_raw(uid))?;
    Ok(())
}

/// Raises the soft limit of open files to the hard limit; returns the limit in force.
pub fn raise_open_file_limit() -> usize {
    use rustix::process::{Resource, Rlimit};
    let limit = rustix::process::getrlimit(Resource::Nofile);
    // `None` is no limit.
    let current = limit.current.unwrap_or(u64::MAX);
    let maximum = limit.maximum.unwrap_or(u64::MAX);
    if current < maximum {
        let raised = maximum.min(1 << 20);
        let wanted = Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        };
        if rustix::process::setrlimit(Resource::Nofile, wanted).is_ok() {
            return raised as usize;
        }
    }
    current as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_file_limit_is_at_least_what_it_was() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let limit = super::raise_open_file_limit();
        assert!(limit as u64 >= before.current.unwrap_or(u64::MAX).min(1 << 20));
    }

    #[test]
    fn a_process_with_threads_keeps_its_identity() {
        // Without the listing the identity would be taken on: stop here.
        assert!(std::fs::read_dir("/proc/self/task").is_ok());
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || wait.recv());
        let err = super::become_identity(65534, 65534, &[]).expect_err("refused");
        assert!(err.to_string().contains("other threads"), "{err}");
        drop(done);
        assert!(helper.join().expect("helper").is_err());
    }
}
