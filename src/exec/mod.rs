//! Executors: running experiments on this host (and later through Slurm).
//!
//! Owns starting, confining (cgroups, sessions), watching and stopping
//! experiment processes, and their log files. Must not decide who may do
//! what or in which order: the service and the scheduler do.

pub mod cgroup;
pub mod gpu_use;
pub mod journal;
pub mod local;
pub mod logs;
pub mod runner;

pub use local::{ExperimentFiles, LaunchContext, ShimArgs, run_shim};
pub use runner::{RunnerSettings, run};
