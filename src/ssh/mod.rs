//! The embedded SSH server: host key, public-key authentication, channels.
//!
//! Owns the SSH protocol edge: who the key belongs to (asking the service),
//! connection and session limits, and routing a channel to the interactive
//! interface (pty + shell) or to a command (exec). Must not decide
//! permissions or format command output: `lab` and `cli` do.
//!
//! Bounds at the edge: a pty larger than 500×300 is clamped; a command's
//! stdin is read up to `server.max_stdin_bytes`, and input arriving faster
//! than the command reads it ends the command with an error, with nothing
//! half-done; output to clients waits for the client's SSH window and
//! interactive frames are drawn only when the client has taken the previous
//! one, so a stalled client never grows the server's memory. The
//! connection and session limits (`server.*` in `config/labbench.toml`) and
//! the penalties of addresses whose connections never log in are counted in
//! the private `limits` module.

mod channel_io;
mod handler;
pub mod hostkey;
mod limits;

pub use handler::{ConnectionHandler, ServerShared};
pub use hostkey::{HostKey, generate_ed25519, load_or_create_host_key, write_private_key};
pub use limits::{ConnectionLimits, LimitSettings, Refusal, StartupSlot};
