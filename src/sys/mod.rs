//! Small facts about the operating system that need a libc call.

pub mod accounts;

/// Kernel clock ticks per second (the unit of CPU times in `/proc`).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; no memory is shared.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Size of a memory page in bytes (the unit of RSS in `/proc/PID/stat`).
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value; no memory is shared.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// Sends `signal` to process `pid` (errors, e.g. an already gone process, are ignored).
pub fn kill(pid: i32, signal: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: kill only sends a signal; a positive pid never means "every process".
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Sends `signal` to every process in process group `pgid`.
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal to the given group (never to all: pgid > 1).
    #[allow(unsafe_code)]
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Starts a new session with the calling process as its leader.
pub fn new_session() -> std::io::Result<()> {
    // SAFETY: setsid changes only the calling process's session.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setsid() };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A handler that does nothing: the signal interrupts, and is gone.
extern "C" fn ignore_signal(_signal: libc::c_int) {}

/// Sets up a supervisor's signals so that the commands it starts begin as
/// from a login shell: no signal blocked and every signal at its default
/// action (whatever the daemon's own starter blocked or ignored, such as
/// SIGINT for a background job), so that a command's handler for SIGTERM
/// runs. SIGTERM, SIGINT, SIGHUP and SIGPIPE get a handler that does
/// nothing (system calls restart): the supervisor outlives the stop
/// signals sent to its command to record how it ended, and a caught
/// signal reverts to its default action in a command at exec, where an
/// ignored or blocked one would be passed on.
pub fn reset_signals_for_commands() {
    const CAUGHT: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE];
    // SAFETY: every sigaction and sigset_t is initialised (zeroed, then
    // sigemptyset) before use; the handler installed touches nothing; the
    // calls change only this process's signal dispositions and this
    // (single) thread's mask. Signals the C library reserves refuse the
    // change, which is ignored.
    #[allow(unsafe_code)]
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        let mut caught: libc::sigaction = std::mem::zeroed();
        caught.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        caught.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut caught.sa_mask);
        for signal in 1..=libc::SIGRTMAX() {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let action = if CAUGHT.contains(&signal) {
                &caught
            } else {
                &default
            };
            libc::sigaction(signal, action, std::ptr::null_mut());
        }
        let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(none.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut());
    }
}

/// Makes this process the reaper of orphaned descendants (so daemonising
/// experiment processes are still reaped and accounted by the daemon).
pub fn become_subreaper() -> bool {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag on this process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    rc == 0
}

/// Reaps any exited children without blocking (orphans adopted as subreaper).
pub fn reap_orphans() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG only collects exit statuses.
        #[allow(unsafe_code)]
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

/// Start time (clock ticks after boot) of process `pid`, if it exists.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = proc_stat(pid)?;
    crate::monitor::parse_stat(&stat).map(|s| s.start_time)
}

/// `/proc/PID/stat`, read into a 1 KiB buffer (two reads: the line, then
/// the end of the file; its size is unknown to `stat`, so a plain read of
/// the file takes six, growing its buffer from 32 bytes).
pub fn proc_stat(pid: u32) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut stat = vec![0u8; 1024];
    let mut len = 0;
    loop {
        if len == stat.len() {
            stat.resize(len * 2, 0);
        }
        match file.read(&mut stat[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    stat.truncate(len);
    Some(stat)
}

/// Kills process `pid` if it is still the one started at `start_time` (see
/// [`process_running`]): one that exited may have given its pid to another.
pub fn kill_if_same(pid: u32, start_time: u64) {
    if process_running(pid, start_time) {
        kill(pid as i32, libc::SIGKILL);
    }
}

/// Whether process `pid` is alive (not a zombie) and, when `start_time` is
/// not 0, is the same process that started then (pids are reused).
pub fn process_running(pid: u32, start_time: u64) -> bool {
    let Some(stat) = proc_stat(pid) else {
        return false;
    };
    let state = stat
        .iter()
        .rposition(|&b| b == b')')
        .and_then(|close| stat.get(close + 2))
        .copied();
    let same = start_time == 0
        || crate::monitor::parse_stat(&stat).is_some_and(|s| s.start_time == start_time);
    same && !matches!(state, Some(b'Z') | Some(b'X') | None)
}

/// Resident memory of every process in session `sid`, bytes (the
/// watchdog's measure of an experiment when no cgroup confines it).
pub fn session_rss(sid: u32) -> u64 {
    let page = page_size();
    let mut total = 0;
    for_session(sid, |_, rss_pages| total += rss_pages * page);
    total
}

/// Sends `signal` to every process in session `sid` but `spared` (an
/// experiment's supervisor, when no cgroup confines it). A process that
/// started a session of its own escapes.
pub fn signal_session(sid: u32, signal: i32, spared: Option<u32>) {
    if sid <= 1 {
        return;
    }
    for_session(sid, |pid, _| {
        if Some(pid) != spared {
            kill(pid as i32, signal);
        }
    });
}

/// Calls `each(pid, resident pages)` for every process in session `sid`.
fn for_session(sid: u32, mut each: impl FnMut(u32, u64)) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(stat) = proc_stat(pid) else {
            continue;
        };
        if let Some(fields) = crate::monitor::parse_stat(&stat)
            && fields.session == sid
        {
            each(pid, fields.rss_pages);
        }
    }
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Whether the Unix identity `uid`, `gid`, `groups` may enter and list
/// directory `dir`, as the kernel decides for that identity (modes, ACLs,
/// every directory on the way). As root the question is asked on a thread
/// of its own that takes on the identity (its own credentials only: the
/// raw system calls, unlike the C library's, change the calling thread
/// alone) and then ends; otherwise it is answered for this process.
pub fn may_enter_as(dir: &std::path::Path, uid: u32, gid: u32, groups: &[u32]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let can_enter = move || {
        // SAFETY: `path` is NUL-terminated and lives across the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::access(path.as_ptr(), libc::R_OK | libc::X_OK) };
        rc == 0
    };
    if !is_root() {
        return can_enter();
    }
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let asked = std::thread::Builder::new()
        .name("labbench-access".into())
        .spawn(move || {
            // SAFETY: `groups` is valid for its length; each call changes
            // only this thread's credentials (raw system calls), and the
            // thread ends after the one question.
            #[allow(unsafe_code)]
            let became = unsafe {
                libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) == 0
                    && libc::syscall(libc::SYS_setresgid, gid, gid, gid) == 0
                    && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
            };
            became && can_enter()
        });
    asked.ok().and_then(|t| t.join().ok()).unwrap_or(false)
}

/// Takes on a Unix identity resolved beforehand: supplementary `groups`,
/// then the group, then the user (which cannot be undone). Reads no file.
pub fn become_identity(uid: u32, gid: u32, groups: &[u32]) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: `groups` is a valid slice for its length; these calls change
    // only the credentials of the calling process.
    #[allow(unsafe_code)]
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setgid(gid as libc::gid_t))?;
        check(libc::setuid(uid as libc::uid_t))?;
    }
    Ok(())
}

/// Bytes an unprivileged user could still write on the filesystem of `path`.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `path` is NUL-terminated.
    #[allow(unsafe_code)]
    let (rc, stat) = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut stat), stat)
    };
    // Both are u64 here; other targets have narrower types.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    (rc == 0).then(|| blocks.saturating_mul(size))
}

/// Raises the soft limit of open files to the hard limit; returns the limit in force.
pub fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    #[allow(unsafe_code)]
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if got != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max.min(1 << 20),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        #[allow(unsafe_code)]
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        if set == 0 {
            return raised.rlim_cur as usize;
        }
    }
    limit.rlim_cur as usize
}

/// Free and total bytes of the file system holding `path`.
pub fn filesystem_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `stat` is a plain C struct that statvfs fills; an all-zero value is valid.
    #[allow(unsafe_code)]
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    let block = stat.f_frsize;
    Some((stat.f_bavail * block, stat.f_blocks * block))
}

/// A pidfd for process `pid`: readable once the process has ended
/// (Linux 5.3+). Works for processes that are not our children.
pub fn pidfd_open(pid: u32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    #[allow(unsafe_code)]
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until `fd` is readable or `timeout` passes; `true` when readable.
pub fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: `poll` is one valid pollfd that lives across the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::poll(&mut poll, 1, millis) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A pipe whose ends are closed on exec and non-blocking: (read end, write end).
pub fn nonblocking_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    #[allow(unsafe_code)]
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes descriptor `target` (0, 1 or 2) a copy of `fd` (kept across exec).
pub fn dup_onto(fd: std::os::fd::BorrowedFd<'_>, target: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 only changes this process's descriptor table.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A duplicate of `fd` numbered `min` or higher.
pub fn dup_above(
    fd: std::os::fd::BorrowedFd<'_>,
    min: i32,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: F_DUPFD_CLOEXEC only adds a descriptor to this process's table.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `rc` is a new descriptor that nothing else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(rc) })
}

/// Closes every descriptor from `lowest` up (used in a freshly forked child,
/// which must not keep its parent's other descriptors); false if it could
/// not tell which are open.
pub fn close_descriptors_from(lowest: u32) -> bool {
    // SAFETY: close_range only closes descriptors; the caller owns none of
    // them any more (a forked child that is about to run something else).
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_close_range, lowest, u32::MAX, 0) };
    if rc == 0 {
        return true;
    }
    // Before Linux 5.9: close what /proc lists.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let open: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= lowest as i32)
        .collect();
    for fd in open {
        // SAFETY: as above; an already closed descriptor only yields EBADF.
        #[allow(unsafe_code)]
        unsafe {
            libc::close(fd);
        }
    }
    true
}

/// Takes ownership of descriptor `fd`, which this process inherited open,
/// and marks it close-on-exec so that programs started later do not inherit
/// it (`None` if it is not open).
pub fn take_inherited_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_SETFD only changes the descriptor's flags (and fails if it is not open).
    #[allow(unsafe_code)]
    let open = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } >= 0;
    // SAFETY: the descriptor is open and, by the caller's contract, owned
    // by nothing else in this process.
    #[allow(unsafe_code)]
    open.then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Sets how this process handles `signal`: its default action, or ignored.
/// Children inherit ignored signals across exec, so a forked helper resets
/// what its parent ignored before running a command.
pub fn set_signal_ignored(signal: i32, ignore: bool) {
    let action = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: installing SIG_IGN or SIG_DFL runs no handler code.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(signal, action);
    }
}

/// Forks the calling process: `Some(pid)` in the parent, `None` in the child.
///
/// Only for a single-threaded caller (the launcher): the child of a
/// multi-threaded process may not allocate.
pub fn fork_single_threaded() -> std::io::Result<Option<u32>> {
    // SAFETY: the caller is single-threaded, so the child has a consistent
    // copy of the whole process (no lock is held by a thread that is gone).
    #[allow(unsafe_code)]
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

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_plausible() {
        assert!(super::clock_ticks_per_second() >= 1.0);
        assert!(super::page_size() >= 4096);
    }

    #[test]
    fn access_is_decided_for_the_identity_asked_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).expect("mkdir");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let me = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        assert!(super::may_enter_as(&closed, 0, 0, &[0]) || me.is_ok_and(|u| u != 0));
        assert!(!super::may_enter_as(&dir.path().join("missing"), 0, 0, &[]));
        if super::is_root() {
            // Root's own checks pass everything; another identity's do not.
            assert!(!super::may_enter_as(&closed, 65534, 65534, &[65534]));
            assert!(super::may_enter_as(
                std::path::Path::new("/tmp"),
                65534,
                65534,
                &[]
            ));
            // The daemon's own credentials are untouched.
            assert!(super::may_enter_as(&closed, 0, 0, &[0]));
        }
    }

    #[test]
    fn free_space_is_known_for_existing_paths_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(super::free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert_eq!(super::free_bytes(&dir.path().join("missing")), None);
    }
}
