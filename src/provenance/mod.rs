//! Provenance capture: what an experiment's code, data and environment
//! were, read as its owner's Unix user.
//!
//! The daemon never reads a user's repository or data itself (it runs as
//! root): [`capture::run_helper`] starts `labbench __provenance`, which
//! takes on the owner's identity before it reads anything ([`helper`]), so
//! a repository or file the owner cannot read stays unread and is recorded
//! as such. The helper answers with one JSON line per [`Part`]: first the
//! code and environment (git state and diff, interpreters, dependency
//! files, data sources), then the hashes of the declared files, so the
//! quick part is kept even when hashing a large dataset runs out of time.
//!
//! - [`git`]: `git` run as the owner (its hooks and fsmonitor off; a
//!   repository owned by someone else is refused by git itself, as
//!   `safe.directory` says, and recorded so).
//! - [`hashing`]: blake3 of declared files and directories, parallel over
//!   files; a file whose size, mtime, inode and device are those of the
//!   cache entry the daemon sends is not read again (it is still opened,
//!   so a file the owner may no longer read is not vouched for).
//! - [`deps`]: the dependency set from the project's own files.
//! - [`interpreters`]: python, R, julia and java on the experiment's PATH.
//! - [`sources`]: data-source URLs, credentials removed.
//!
//! This module knows nothing of the service or the store: the runner
//! calls it and hands the parts to the service.

pub mod capture;
pub mod deps;
pub mod git;
pub mod hashing;
pub mod helper;
pub mod interpreters;
mod process;
pub mod sources;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{CachedHash, FileDigest, GitState, Interpreter, Package, Skipped};

/// When in an experiment's life the capture is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// At its start: code, environment and inputs.
    Start,
    /// At its end: outputs.
    End,
}

/// Whom the helper becomes before reading anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// All groups.
    pub groups: Vec<u32>,
    /// Home directory (git reads its configuration there).
    pub home: PathBuf,
}

/// Bounds of one capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most bytes of `git diff HEAD` kept.
    pub diff_bytes: u64,
    /// Most files hashed per declared directory.
    pub files: usize,
    /// Most packages recorded.
    pub packages: usize,
    /// Most untracked file names recorded.
    pub untracked: usize,
    /// Threads hashing files.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            diff_bytes: 1 << 20,
            files: 100_000,
            packages: 10_000,
            untracked: 1000,
            workers: 4,
        }
    }
}

/// What the daemon asks the helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// What to capture.
    pub phase: Phase,
    /// Whom to become; `None` when the daemon is not root.
    pub owner: Option<Owner>,
    /// The experiment's working directory.
    pub workdir: PathBuf,
    /// The experiment's `PATH`.
    pub path: String,
    /// The environment the experiment was given with `--env`.
    pub env: Vec<(String, String)>,
    /// Files and directories to hash (inputs at the start, outputs at the
    /// end), as declared (relative to `workdir` or absolute).
    pub files: Vec<PathBuf>,
    /// Hashes known of those files and of the files under those
    /// directories.
    pub cache: Vec<CachedHash>,
    /// Interpreter versions known from earlier captures in this working
    /// directory (a version is asked again when its program changed).
    #[serde(default)]
    pub known_interpreters: Vec<ProbedInterpreter>,
    /// Bounds.
    pub limits: Limits,
}

/// The code and environment an experiment started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code {
    /// The git state, when in a repository.
    pub git: Option<GitState>,
    /// `git diff HEAD`, cut at the limit (with a last line saying so).
    pub diff: Option<String>,
    /// Interpreters found.
    pub interpreters: Vec<Interpreter>,
    /// Packages declared or installed.
    pub packages: Vec<Package>,
    /// Dependency files read.
    pub dependency_files: Vec<String>,
    /// Data sources named.
    pub sources: Vec<String>,
    /// What was not captured.
    pub skipped: Vec<Skipped>,
    /// The interpreters' programs as found, for the next capture.
    #[serde(default)]
    pub probed: Vec<ProbedInterpreter>,
}

/// An interpreter's version and what identified its program then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbedInterpreter {
    /// The interpreter as found.
    pub interpreter: Interpreter,
    /// Its program's size, bytes.
    pub size: u64,
    /// Its program's modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// One line of the helper's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "lowercase")]
pub enum Part {
    /// The code and the environment.
    Code(Box<Code>),
    /// Hashes of the declared files.
    Files {
        /// Each declared path's digest.
        digests: Vec<FileDigest>,
        /// Files read now (to be cached).
        hashed: Vec<CachedHash>,
        /// Files whose cached hash was used.
        cache_hits: u64,
        /// Bytes read.
        hashed_bytes: u64,
    },
    /// The helper could not work at all.
    Failed {
        /// Why.
        why: String,
    },
}

/// `path` as the experiment sees it: relative paths are under `workdir`.
pub fn resolve(workdir: &std::path::Path, path: &std::path::Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workdir.join(path)
    }
}

/// A file's modification time in nanoseconds since the epoch (what
/// identifies its content, with its size, inode and device).
pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// Opens `path` for reading only if it is a regular file: a FIFO, a
/// device or a socket (a symbolic link to `/dev/zero`, or to the helper's
/// own output) would block or never end. Opened without blocking and
/// without taking a terminal, then checked.
pub(crate) fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}
