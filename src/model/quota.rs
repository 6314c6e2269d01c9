//! What an admin allows each user at once.

use serde::{Deserialize, Serialize};

/// Per-user limits set by admins (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// Experiments running at once.
    pub max_running: Option<u32>,
    /// CPU cores in use at once.
    pub max_cpus: Option<f64>,
    /// Memory in use at once, bytes.
    pub max_memory_bytes: Option<u64>,
    /// GPUs in use at once.
    pub max_gpus: Option<u32>,
    /// Longest wall-time limit of one experiment, seconds.
    pub max_time_secs: Option<u64>,
    /// Experiments queued at once (`None`: the queue's default).
    #[serde(default)]
    pub max_queued: Option<u32>,
}
