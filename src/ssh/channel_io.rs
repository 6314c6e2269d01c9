//! Writing to an SSH channel with back-pressure and a way out when it closes.
//!
//! Writes go through russh's window-aware writer, so they wait while the
//! client's window is full instead of queueing without bound in the server;
//! every wait also ends when the channel or connection closes.

use russh::ChannelWriteHalf;
use russh::server::Msg;
use tokio::sync::watch;

use crate::cli::CommandOutput;
use crate::tui::FrameSink;

/// SSH extended-data type of standard error.
pub const STDERR: u32 = 1;

/// The output side of one session channel.
pub struct ChannelOutput {
    writer: ChannelWriteHalf<Msg>,
    closed: watch::Receiver<bool>,
    /// Whether the client asked for a pty (then `\n` is sent as `\r\n`).
    pty: bool,
}

impl ChannelOutput {
    /// Wraps a channel's write half; `closed` turns true (or its sender drops) on close.
    pub fn new(writer: ChannelWriteHalf<Msg>, closed: watch::Receiver<bool>, pty: bool) -> Self {
        ChannelOutput {
            writer,
            closed,
            pty,
        }
    }

    /// Whether the client asked for a pty.
    pub fn pty(&self) -> bool {
        self.pty
    }

    async fn send(&mut self, stream: Option<u32>, bytes: Vec<u8>) -> Result<(), ()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let bytes = as_sent(bytes, self.pty);
        let write = async {
            match stream {
                None => self.writer.data_bytes(bytes).await,
                Some(ext) => self.writer.extended_data_bytes(ext, bytes).await,
            }
        };
        let mut closed = self.closed.clone();
        tokio::select! {
            result = write => result.map_err(|_| ()),
            _ = closed.wait_for(|c| *c) => Err(()),
        }
    }

    /// Sends a command's output, its exit status, EOF and close.
    pub async fn finish_command(mut self, output: CommandOutput) {
        if self.send(None, output.stdout).await.is_ok() {
            let _ = self.send(Some(STDERR), output.stderr).await;
        }
        self.exit(output.status).await;
    }

    /// Sends the exit status, EOF and close, so `ssh` returns `status`.
    pub async fn exit(self, status: u32) {
        let _ = self.writer.exit_status(status).await;
        let _ = self.writer.eof().await;
        let _ = self.writer.close().await;
    }
}

impl FrameSink for ChannelOutput {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        // Frames are already terminal sequences; never rewrite them.
        let pty = std::mem::replace(&mut self.pty, false);
        let result = self.send(None, bytes).await;
        self.pty = pty;
        result
    }
}

impl crate::cli::StreamSink for ChannelOutput {
    async fn out(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        self.send(None, bytes).await
    }

    async fn err(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        self.send(Some(STDERR), bytes).await
    }
}

/// Command output as it goes to the client: with a pty, `\n` becomes `\r\n`.
pub fn as_sent(bytes: Vec<u8>, pty: bool) -> Vec<u8> {
    if pty { crlf(&bytes) } else { bytes }
}

/// Replaces bare `\n` with `\r\n` (a pty client does not translate output).
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::crlf;

    #[test]
    fn newlines_become_crlf_once() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
