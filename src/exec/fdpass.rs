//! Sending open descriptors with a message over a Unix stream socket
//! (`SCM_RIGHTS`): the launcher hands a kept supervisor the log and
//! journal files of its next experiment this way.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 4;

/// Room for a control message holding [`MAX_FDS`] descriptors (in u64s,
/// so that it is aligned as `cmsghdr` needs).
const CMSG_WORDS: usize = 16;

/// Writes all of `bytes` to `stream`, the descriptors `fds` attached to the
/// first byte (the receiver gets them with its first read of this message).
pub fn send_with_fds(
    stream: &mut UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    assert!(fds.len() <= MAX_FDS && !bytes.is_empty());
    let raw: Vec<libc::c_int> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut control = [0u64; CMSG_WORDS];
    let payload = std::mem::size_of_val(raw.as_slice()) as u32;
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below points into
    // `iov`, `control` and `raw`, which outlive the sendmsg call, and the
    // control buffer is large and aligned enough for CMSG_SPACE(payload)
    // (checked by the assertion).
    #[allow(unsafe_code)]
    let sent = unsafe {
        let space = libc::CMSG_SPACE(payload) as usize;
        assert!(space <= std::mem::size_of_val(&control));
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !raw.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
                raw.len(),
            );
        }
        loop {
            let n = libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break n;
            }
        }
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The descriptors went with the first part; the rest is plain bytes.
    stream.write_all(&bytes[sent as usize..])
}

/// Reads up to `buf.len()` bytes from `stream`, and the descriptors sent
/// with them (opened close-on-exec). `Ok((0, _))` at the end of the stream.
pub fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as in `send_with_fds`; the kernel writes at most
    // msg_controllen bytes of control data into `control` and at most
    // `buf.len()` bytes into `buf`. Each descriptor found in an SCM_RIGHTS
    // message is new to this process and owned by nothing else.
    #[allow(unsafe_code)]
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = loop {
            let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break n;
            }
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut fds = Vec::new();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(std::io::Error::other(
                "more descriptors were sent than one message may carry",
            ));
        }
        Ok((n as usize, fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_travel_with_the_first_bytes() {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        let mut file = tempfile::tempfile().expect("file");
        file.write_all(b"sent along").expect("write");
        let message = vec![7u8; 300_000];
        let sender = std::thread::spawn(move || {
            send_with_fds(&mut a, &message, &[file.as_fd()]).expect("send");
        });
        let mut head = [0u8; 4];
        let (n, fds) = recv_with_fds(&b, &mut head).expect("recv");
        assert_eq!((n, fds.len()), (4, 1));
        let mut rest = vec![0u8; 300_000 - 4];
        b.read_exact(&mut rest).expect("rest");
        assert!(rest.iter().all(|x| *x == 7));
        sender.join().expect("sender");
        let mut received = std::fs::File::from(fds.into_iter().next().expect("fd"));
        received.rewind().expect("rewind");
        let mut text = String::new();
        received.read_to_string(&mut text).expect("read");
        assert_eq!(text, "sent along");
        // Plain bytes carry no descriptors; the end of the stream reads as 0.
        drop(b.write_all(b"x"));
        let (mut c, d) = UnixStream::pair().expect("pair");
        c.write_all(b"go").expect("go");
        drop(c);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_with_fds(&d, &mut buf).expect("recv");
        assert_eq!((n, fds.len()), (2, 0));
        assert_eq!(recv_with_fds(&d, &mut buf).expect("end").0, 0);
    }
}
