//! Standard input for commands that read it (`key add NAME < key.pub`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Where a command's standard input comes from.
#[derive(Debug)]
pub enum StdinSource {
    /// Nothing (reads see end of input at once).
    Empty,
    /// Chunks from an SSH channel; the sender is dropped at EOF. The flag is
    /// raised when input came faster than it was read and some was refused.
    Channel(mpsc::Receiver<Bytes>, Arc<AtomicBool>),
    /// The local process's standard input.
    Process,
    /// Fixed bytes (tests).
    Bytes(Vec<u8>),
    /// None for a command that must not read any (the SSH server runs those
    /// that [answer at once](super::LabCommand::answers_at_once) before their
    /// input arrives): reading is an error, never a silent empty input.
    NotRead,
}

impl StdinSource {
    /// Reads everything up to end of input; more than `limit` bytes is an error.
    pub async fn read_all(&mut self, limit: usize) -> Result<Vec<u8>, String> {
        let too_large = || format!("standard input is larger than the limit of {limit} bytes");
        match self {
            StdinSource::Empty => Ok(Vec::new()),
            StdinSource::NotRead => {
                Err("this command was run without its standard input (a labbench bug: please report it)".into())
            }
            StdinSource::Bytes(bytes) => {
                if bytes.len() > limit {
                    return Err(too_large());
                }
                Ok(std::mem::take(bytes))
            }
            StdinSource::Channel(rx, overflow) => {
                let mut out = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    if out.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&chunk);
                }
                if overflow.load(Ordering::Acquire) {
                    return Err(format!(
                        "standard input arrived faster than it could be read; nothing was done (limit {limit} bytes)"
                    ));
                }
                Ok(out)
            }
            StdinSource::Process => {
                use tokio::io::AsyncReadExt;
                let mut out = Vec::new();
                let mut reader = tokio::io::stdin().take(limit as u64 + 1);
                reader
                    .read_to_end(&mut out)
                    .await
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                if out.len() > limit {
                    return Err(too_large());
                }
                Ok(out)
            }
        }
    }
}
