//! Sending open descriptors with a message over a Unix stream socket
//! (`SCM_RIGHTS`): the launcher hands a kept supervisor the log and
//! journal files of its next experiment this way.

use std::io::{IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 4;

/// Room for a control message holding [`MAX_FDS`] descriptors.
const CONTROL_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// Writes all of `bytes` to `stream`, the descriptors `fds` attached to the
/// first byte (the receiver gets them with its first read of this message).
pub fn send_with_fds(
    stream: &mut UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    assert!(fds.len() <= MAX_FDS && !bytes.is_empty());
    let mut space = [MaybeUninit::uninit(); CONTROL_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    // There is room for MAX_FDS (checked above): not refused.
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other("no room for the descriptors"));
    }
    let sent = loop {
        let iov = [IoSlice::new(bytes)];
        match rustix::net::sendmsg(&*stream, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => {}
            sent => break sent?,
        }
    };
    // The descriptors went with the first part; the rest is plain bytes.
    stream.write_all(&bytes[sent..])
}

/// Reads up to `buf.len()` bytes from `stream`, and the descriptors sent
/// with them (opened close-on-exec). `Ok((0, _))` at the end of the stream.
pub fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); CONTROL_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(Errno::INTR) => {}
            received => break received?,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if received.flags.contains(ReturnFlags::CTRUNC) {
        return Err(std::io::Error::other(
            "more descriptors were sent than one message may carry",
        ));
    }
    Ok((received.bytes, fds))
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
