//! Collection: reads the operating system and publishes immutable snapshots.
//!
//! Owns sampling the host (and later per-user and GPU use). Must not draw,
//! format for users or touch the store directly.

mod host;

pub use host::{HostSampler, HostSnapshot, spawn_host_sampler};
