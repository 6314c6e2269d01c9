//! Executors: running experiments on this host (and later through Slurm).
//!
//! Owns starting, confining (cgroups, sessions), watching and stopping
//! experiment processes, and their log files. Must not decide who may do
//! what or in which order: the service and the scheduler do.
//!
//! It knows nothing of the service: the [`runner`](crate::runner) drives it.
//! What the daemon, the launcher and the supervisors say to each other is in
//! [`protocol`], the failures in [`error`]; a daemon's kept supervisors
//! ([`pool::Pool`]) and cgroups ([`cgroup::Slots`]) are values it owns and
//! hands over in the [`LaunchContext`], not process-wide state.
//!
//! How an experiment runs: the runner prepares its cgroup ([`cgroup`]),
//! then asks the [`launcher`] (`labbench __launcher`, a small helper process
//! the daemon starts once) to create the experiment's directory and files
//! ([`rundirs`]) and fork its supervisor ([`shim`]), with stdout and stderr
//! going straight to `DATA_DIR/experiments/ID/{stdout,stderr}.log`; on cgroup
//! v1 a supervisor kept idle in its slot runs it instead ([`pool`]). The
//! supervisor waits until the daemon has moved it into the cgroup and durably
//! recorded the start, then becomes the owner's Unix user and runs the
//! command, noting in the experiment's [`journal`](crate::output::journal)
//! how far each log has grown and, at the end, the exit status. No process sits between the experiment
//! and its log files.
//!
//! Output, write times and status so survive a restart of the daemon: after
//! `kill -9` the experiments keep running, and the restarted daemon
//! re-attaches to them by pid and cgroup and records their end. A supervisor
//! that had not been told to go yet exits without running anything, and its
//! experiment is queued again; the supervisor notes in the journal that the
//! command starts before it starts it, so a run is never repeated.
//! `cargo bench --bench restarts` checks this under 50 `kill -9`.

pub mod cgroup;
pub mod error;
pub mod fdpass;
pub mod gpu_use;
pub mod launcher;
pub mod local;
pub mod pool;
pub mod protocol;
pub mod rundirs;
pub mod shim;

pub use error::{ExecError, LaunchError};
pub use launcher::Launcher;
pub use local::LaunchContext;
pub use protocol::ShimArgs;
