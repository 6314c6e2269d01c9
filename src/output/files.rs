//! Where an experiment's output lives: its directory under
//! `DATA_DIR/experiments/ID`, its two logs, its journal and its metrics.

use std::path::{Path, PathBuf};

/// One of an experiment's two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// Its name for people and JSON: `stdout`, `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Files of one experiment in the data directory.
#[derive(Debug, Clone)]
pub struct ExperimentFiles {
    /// The experiment's directory.
    pub dir: PathBuf,
}

impl ExperimentFiles {
    /// The files of experiment `id` under `data_dir/experiments`.
    pub fn new(data_dir: &Path, id: u64) -> ExperimentFiles {
        ExperimentFiles {
            dir: data_dir.join("experiments").join(id.to_string()),
        }
    }

    /// The files of the experiment whose directory is `dir`.
    pub fn new_in(dir: &Path) -> ExperimentFiles {
        ExperimentFiles {
            dir: dir.to_path_buf(),
        }
    }

    /// Captured standard output.
    pub fn stdout(&self) -> PathBuf {
        self.dir.join("stdout.log")
    }

    /// Captured standard error.
    pub fn stderr(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }

    /// A log by stream.
    pub fn log(&self, stream: Stream) -> PathBuf {
        match stream {
            Stream::Stdout => self.stdout(),
            Stream::Stderr => self.stderr(),
        }
    }

    /// The run journal the shim writes (write times of the logs, exit status).
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// Metrics the experiment appends (`$LABBENCH_METRICS`).
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
}
