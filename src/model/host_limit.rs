//! Caps on what a Unix user runs on the host outside the queue.

use serde::{Deserialize, Serialize};

/// A Unix user's cap outside the queue (`None`: not capped there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLimit {
    /// CPU cores.
    pub cpus: Option<f64>,
    /// Memory, bytes.
    pub memory_bytes: Option<u64>,
}

impl HostLimit {
    /// These caps, with `fallback`'s where these set none.
    pub fn or(&self, fallback: &HostLimit) -> HostLimit {
        HostLimit {
            cpus: self.cpus.or(fallback.cpus),
            memory_bytes: self.memory_bytes.or(fallback.memory_bytes),
        }
    }

    /// Whether it caps anything.
    pub fn caps(&self) -> bool {
        self.cpus.is_some() || self.memory_bytes.is_some()
    }
}
