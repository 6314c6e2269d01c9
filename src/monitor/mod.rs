//! Collection: reads the operating system and GPUs and publishes immutable snapshots.
//!
//! Owns sampling the host, per-uid use from `/proc`, GPU readings (NVML or a
//! replayed recording) and the windowed peaks built from them. Must not draw
//! or format for users; it writes only usage buckets to the store.
//!
//! How use is measured:
//!
//! - Every `monitor.sample_ms` (1 s) it reads every process in `/proc`,
//!   those started outside labbench included, and sums per Unix uid: CPU
//!   (time consumed since the previous sweep, in cores), resident memory
//!   (RSS, so shared pages count in each process that maps them) and process
//!   counts. Kernel threads are left out; processes that start and end
//!   between two sweeps are not seen. Uids are named through NSS, and each
//!   user's history is kept by uid, whatever the account is called.
//! - Host totals (CPU, memory, swap, load, uptime) come from sysinfo; free
//!   disk from the data directory's file system.
//! - GPUs come from NVML, the NVIDIA driver's library, loaded at run time (the
//!   code is in every build); without a driver the Dashboard says "no GPUs
//!   detected" and why. Per-process GPU memory and utilisation are mapped to
//!   users through the owner of `/proc/PID`. A user's GPU figure is GPUs'
//!   worth of work kept busy: their processes' SM utilisation summed (1.0 =
//!   one GPU fully busy); where the driver gives no per-process figure, a
//!   GPU's utilisation is split among the processes on it. The host's GPU
//!   figure is the number of busy GPUs. `replay:FILE` replays a recording
//!   (one JSON sample per line) for demos and tests.
//! - Peaks: each user and the host keep 1-second points for the last hour in
//!   memory and 1-minute and 1-hour buckets (count, max and sum of each
//!   metric) in the store (`usage_1m`, kept `monitor.keep_minutes_days`;
//!   `usage_1h`, kept `monitor.keep_hours_days`). Buckets keep the maximum,
//!   so a two-second burst still shows in the 7-day peak. The 1m and 1h
//!   windows come from the 1-second points (exact p95), 24h and 7d from the
//!   1-minute buckets (p95 over minute means). Means and p95 of 1h/24h/7d are
//!   recomputed once a minute; their maxima include the current minute at
//!   once. The buckets still open are saved every 10 s and when the daemon
//!   stops, so a `kill -9` loses at most 10 s of peaks.
//!
//! Per-experiment figures come from each experiment's cgroup, through the
//! queue (see [`crate::exec`]).

mod collector;
mod gpu;
mod host;
pub mod idle;
pub mod penalty;
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
pub use procfs::{ProcSampler, ProcSweep, ProcessUse, UidUse};
pub use series::{Bucket, ClosedBucket, METRICS, Metric, Series, Usage, Window, WindowStats};
pub use uids::UidNames;
