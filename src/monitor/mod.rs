//! Collection: reads the operating system and GPUs and publishes immutable snapshots.
//!
//! Owns sampling the host, per-uid use from `/proc`, GPU readings (NVML or a
//! replayed recording) and the windowed peaks built from them. Must not draw
//! or format for users; it writes only usage buckets to the store.

mod collector;
mod gpu;
mod host;
mod procfs;
mod series;
mod uids;

pub use collector::{
    GpuStatus, HOST_SUBJECT, MonitorHandle, MonitorSettings, MonitorState, SPARK_POINTS,
    UsageSnapshot, UserUsage, host_only, measure_once, spawn_monitor,
};
pub use gpu::{
    GpuDevice, GpuProcess, GpuReading, GpuSample, GpuSource, GpuSourceSpec, NoGpu, ReplaySource,
};
pub use host::{HostSampler, HostSnapshot};
pub use procfs::{ProcSampler, ProcSweep, ProcessUse, StatFields, UidUse, parse_stat};
pub use series::{Bucket, ClosedBucket, METRICS, Metric, Series, Usage, Window, WindowStats};
pub use uids::UidNames;
