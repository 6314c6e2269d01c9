//! The embedded SSH server: host key, public-key authentication, channels.
//!
//! Owns the SSH protocol edge: who the key belongs to (asking the service),
//! connection and session limits, and routing a channel to the interactive
//! interface (pty + shell) or to a command (exec). Must not decide
//! permissions or format command output: `lab` and `cli` do.

mod channel_io;
mod handler;
pub mod hostkey;
mod limits;

pub use handler::{ConnectionHandler, ServerShared};
pub use hostkey::{HostKey, generate_ed25519, load_or_create_host_key, write_private_key};
pub use limits::{ConnectionLimits, LimitSettings, Refusal, StartupSlot};
