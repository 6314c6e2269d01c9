//! Why the executor could not start or release an experiment. The launcher's
//! own reasons (files it could not make, a fork that failed) come from
//! another process and stay its words.

/// A failure of the launcher (`labbench __launcher`) as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// It could not be started.
    #[error("cannot start the launcher: {0}")]
    Start(String),
    /// Writing to it or reading from it failed (it is replaced next time).
    #[error("the launcher failed: {0}")]
    Broken(String),
    /// It closed its end (it is replaced next time).
    #[error("the launcher exited")]
    Exited,
    /// None runs, so nothing was handed over.
    #[error("no launcher runs")]
    NotRunning,
    /// The launcher that held this supervisor is gone.
    #[error("its launcher is gone")]
    Gone,
    /// This supervisor was never handed an experiment.
    #[error("it was never handed over")]
    NotHandedOver,
    /// The request could not be encoded (too large to send).
    #[error("{0}")]
    Request(String),
    /// The launcher could not do it, in its words.
    #[error("{0}")]
    Refused(String),
}

/// Why an experiment could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The owner's Unix account could not be found or looked up.
    #[error("{0}")]
    Account(String),
    /// Its cgroup could not be made.
    #[error("cannot create the experiment's cgroup: {0}")]
    Cgroup(std::io::Error),
    /// Its supervisor could not be moved into its cgroup.
    #[error("cannot confine the experiment: {0}")]
    Confine(std::io::Error),
    /// A kept supervisor's cgroup slot could not be set for it.
    #[error("its cgroup could not be renewed: {0}")]
    Renew(std::io::Error),
    /// The launcher failed.
    #[error(transparent)]
    Launcher(#[from] LaunchError),
}

/// Why the launcher could not make an experiment's files or fork its
/// supervisor (sent to the daemon in these words).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A file or directory could not be made, written or removed.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was done: `create`, `write`, `remove`.
        action: &'static str,
        /// On what.
        path: std::path::PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The metrics file could not be given to the command's user.
    #[error("cannot hand {} to {user}: {source}", path.display())]
    Owner {
        /// The file.
        path: std::path::PathBuf,
        /// The command's user.
        user: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// No experiments directory is known yet (nothing was started).
    #[error("no experiments directory yet")]
    NoExperimentsDir,
    /// No idle kept supervisor has that pid.
    #[error("no such idle supervisor")]
    NoIdleSupervisor,
    /// The experiment could not be encoded for its supervisor.
    #[error("{0}")]
    Encode(std::io::Error),
    /// The control socket could not be made or set up.
    #[error("cannot {0} a control socket: {1}")]
    ControlSocket(&'static str, std::io::Error),
    /// fork failed.
    #[error("cannot fork the supervisor: {0}")]
    Fork(std::io::Error),
    /// The kept supervisor did not take its experiment.
    #[error("the supervisor is gone: {0}")]
    SupervisorGone(std::io::Error),
}

impl SpawnError {
    /// A failure to `action` (create, write, remove) `path`.
    pub fn file(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> SpawnError {
        let path = path.to_path_buf();
        move |source| SpawnError::File {
            action,
            path,
            source,
        }
    }
}
