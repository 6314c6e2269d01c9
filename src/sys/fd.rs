//! Descriptors: pipes, waiting for one to be readable (blocking or through
//! the async runtime), and the descriptors a forked child keeps or a
//! process inherited.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A pipe whose ends are closed on exec and non-blocking: (read end, write end).
pub fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::PipeFlags;
    Ok(rustix::pipe::pipe_with(
        PipeFlags::CLOEXEC | PipeFlags::NONBLOCK,
    )?)
}

/// Waits until `fd` is readable or `timeout` passes; `true` when readable.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    let mut polled = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut polled, Some(&timeout)) {
            Ok(ready) => return Ok(ready > 0),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `fd` registered with the Tokio runtime (which must be running), to be
/// awaited until readable.
pub fn async_readable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    use tokio::io::{Interest, unix::AsyncFd};
    // SAFETY: an OwnedFd is open, stays the same descriptor for as long as
    // the AsyncFd owns it, and is closed only when dropped with it.
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
    Ok(registered?)
}

/// Takes ownership of descriptors `fds`, which this process inherited
/// open, and marks them close-on-exec so that programs started later do
/// not inherit them (`None` for one that is not open).
///
/// # Safety
///
/// `fds` are distinct, and nothing else in this process owns or uses any
/// of them, now or later.
#[allow(unsafe_code)]
pub unsafe fn take_inherited<const N: usize>(fds: [RawFd; N]) -> [Option<OwnedFd>; N] {
    fds.map(|fd| {
        // SAFETY: F_SETFD only changes the descriptor's flags, and fails
        // unless it is open (the C library's fcntl: rustix's needs one
        // known to be open); by the caller's promise nothing else owns it.
        unsafe {
            (libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) >= 0)
                .then(|| OwnedFd::from_raw_fd(fd))
        }
    })
}

/// Gives this process, a forked child about to run something else, the
/// descriptors it is to have: each of `placed` at its target number (kept
/// across exec), and none other from `close_from` up. The sources are
/// first lifted to `close_from` or above, so that placing one never
/// overwrites a source still to be placed.
///
/// # Safety
///
/// `close_from` is above every target, and nothing in this process uses a
/// target or a descriptor from `close_from` up as its own afterwards, nor
/// drops an owner of one: the child runs other code and then ends with
/// [`super::process::exit_now`].
#[allow(unsafe_code)]
pub unsafe fn place_descriptors(
    placed: &[(BorrowedFd<'_>, RawFd)],
    close_from: RawFd,
) -> io::Result<()> {
    let lifted = placed
        .iter()
        .map(|(fd, target)| Ok((rustix::io::fcntl_dupfd_cloexec(fd, close_from)?, *target)))
        .collect::<io::Result<Vec<_>>>()?;
    // SAFETY: by the caller's promise, what dup2 replaces at the targets
    // and what is closed from `close_from` up is no one's; the lifted
    // copies are closed (dropped) first.
    unsafe {
        for (fd, target) in &lifted {
            if libc::dup2(fd.as_raw_fd(), *target) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        drop(lifted);
        if libc::syscall(libc::SYS_close_range, close_from as u32, u32::MAX, 0) != 0 {
            // Before Linux 5.9: close what /proc lists.
            for fd in open_descriptors()? {
                if fd >= close_from {
                    libc::close(fd);
                }
            }
        }
    }
    Ok(())
}

/// The descriptors open in this process, as `/proc/self/fd` lists them
/// (the listing's own among them, closed by the time this returns).
fn open_descriptors() -> io::Result<Vec<RawFd>> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_is_readable_once_written() {
        let (reader, writer) = nonblocking_pipe().expect("pipe");
        assert!(!wait_readable(reader.as_fd(), Duration::ZERO).expect("poll"));
        std::fs::File::from(writer).write_all(b"x").expect("write");
        assert!(wait_readable(reader.as_fd(), Duration::from_secs(5)).expect("poll"));
        let mut byte = [0u8; 1];
        std::fs::File::from(reader)
            .read_exact(&mut byte)
            .expect("read");
        assert_eq!(&byte, b"x");
        assert!(open_descriptors().expect("listed").contains(&0));
    }
}
