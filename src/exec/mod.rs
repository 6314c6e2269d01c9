//! Executors: running experiments on this host (and later through Slurm).
//!
//! Owns starting, confining (cgroups, sessions), watching and stopping
//! experiment processes, and their log files. Must not decide who may do
//! what or in which order: the service and the scheduler do.

pub mod cgroup;
pub mod fdpass;
pub mod gpu_use;
pub mod journal;
pub mod launcher;
pub mod local;
pub mod logs;
pub mod pool;
pub mod rundirs;
pub mod runner;
pub mod shim;

pub use launcher::Launcher;
pub use local::{ExperimentFiles, LaunchContext};
pub use runner::{RunnerSettings, run};
pub use shim::ShimArgs;
