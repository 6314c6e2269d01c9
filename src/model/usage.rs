//! Measured use of the host: one instant ([`Usage`]) and aggregates of
//! samples ([`Bucket`]), as the monitor computes them and the store keeps them.

use serde::{Deserialize, Serialize};

/// The measured quantities, in a fixed order.
pub const METRICS: [&str; 4] = ["cpu_cores", "memory_bytes", "gpus", "gpu_memory_bytes"];

/// Reads one metric out of a [`Usage`].
pub type Metric = fn(&Usage) -> f64;

/// One subject's use at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU cores busy.
    pub cpu_cores: f64,
    /// Memory held, bytes.
    pub memory_bytes: f64,
    /// GPUs with at least one of the subject's processes.
    pub gpus: f64,
    /// GPU memory held, bytes.
    pub gpu_memory_bytes: f64,
}

impl Usage {
    /// The metrics in [`METRICS`] order.
    pub fn to_array(self) -> [f64; 4] {
        [
            self.cpu_cores,
            self.memory_bytes,
            self.gpus,
            self.gpu_memory_bytes,
        ]
    }

    /// Builds a usage from metrics in [`METRICS`] order.
    pub fn from_array(a: [f64; 4]) -> Usage {
        Usage {
            cpu_cores: a[0],
            memory_bytes: a[1],
            gpus: a[2],
            gpu_memory_bytes: a[3],
        }
    }
}

/// An aggregate of samples: their count, per-metric max and sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Samples aggregated.
    pub count: u32,
    /// Largest value of each metric.
    pub max: [f64; 4],
    /// Sum of each metric (mean = sum / count).
    pub sum: [f64; 4],
}

impl Bucket {
    /// Adds one sample.
    pub fn add(&mut self, usage: Usage) {
        let values = usage.to_array();
        for (i, v) in values.into_iter().enumerate() {
            self.max[i] = if self.count == 0 {
                v
            } else {
                self.max[i].max(v)
            };
            self.sum[i] += v;
        }
        self.count += 1;
    }

    /// Folds another bucket in.
    pub fn merge(&mut self, other: &Bucket) {
        if other.count == 0 {
            return;
        }
        for i in 0..4 {
            self.max[i] = if self.count == 0 {
                other.max[i]
            } else {
                self.max[i].max(other.max[i])
            };
            self.sum[i] += other.sum[i];
        }
        self.count += other.count;
    }

    /// Mean of each metric.
    pub fn mean(&self) -> [f64; 4] {
        let n = f64::from(self.count.max(1));
        self.sum.map(|s| s / n)
    }
}

/// A bucket that just closed and should be stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedBucket {
    /// Resolution: 60 or 3600 seconds.
    pub resolution: i64,
    /// Start of the bucket, seconds since the epoch.
    pub start: i64,
    /// The aggregate.
    pub bucket: Bucket,
}
