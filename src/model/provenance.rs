//! Where an experiment came from: its code (git), its data (hashes of its
//! declared inputs and outputs), its environment (interpreters and the
//! packages its project declares) and the data sources it names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What was captured of an experiment's origins, as its owner's Unix user
/// could read it. Every part is optional: what could not be read is said
/// in `skipped`, never guessed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// When the code and environment were captured (its start), seconds.
    pub captured_at: i64,
    /// The working directory's git state, when it is in a repository.
    #[serde(default)]
    pub git: Option<GitState>,
    /// The declared inputs at the start.
    #[serde(default)]
    pub inputs: Vec<FileDigest>,
    /// The declared outputs at the end.
    #[serde(default)]
    pub outputs: Vec<FileDigest>,
    /// Interpreters found on the experiment's `PATH`.
    #[serde(default)]
    pub interpreters: Vec<Interpreter>,
    /// Packages the project declares or has installed.
    #[serde(default)]
    pub packages: Vec<Package>,
    /// The dependency files read (relative to the project's directory).
    #[serde(default)]
    pub dependency_files: Vec<String>,
    /// Data sources: declared inputs, URLs in `--env` values and the
    /// project's `.labbench.toml`, without credentials.
    #[serde(default)]
    pub sources: Vec<String>,
    /// What was not captured, and why.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Files whose hash was taken from the cache (unchanged size, mtime,
    /// inode and device) rather than read.
    #[serde(default)]
    pub cache_hits: u64,
    /// Bytes read to hash.
    #[serde(default)]
    pub hashed_bytes: u64,
}

/// A git working tree's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    /// The repository's name (its top-level directory's).
    pub repository: String,
    /// Its top-level directory.
    pub root: PathBuf,
    /// The `origin` remote (else the first), credentials removed.
    pub remote: Option<String>,
    /// The branch checked out; `None` when detached.
    pub branch: Option<String>,
    /// The commit checked out; `None` before the first commit.
    pub commit: Option<String>,
    /// Whether tracked files differ from the commit or untracked files exist.
    pub dirty: bool,
    /// Bytes of `git diff HEAD` (the diff itself is kept apart, capped).
    pub diff_bytes: u64,
    /// Whether the diff kept is cut short.
    pub diff_truncated: bool,
    /// Untracked files (not ignored), relative to the root.
    pub untracked: Vec<String>,
    /// Whether there were more untracked files than listed.
    pub untracked_truncated: bool,
}

/// A file or directory's content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// As declared.
    pub path: PathBuf,
    /// Whether it is a directory (hashed over its files' paths and hashes).
    pub directory: bool,
    /// Bytes (of all its files, for a directory).
    pub bytes: u64,
    /// Files hashed (1 for a file).
    pub files: u64,
    /// blake3, hex; `None` when it could not be read.
    pub blake3: Option<String>,
    /// Why it could not be read, or what of it was left out.
    pub error: Option<String>,
}

/// An interpreter and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// `python`, `R`, `julia` or `java`.
    pub name: String,
    /// Where it was found.
    pub path: PathBuf,
    /// The first line it printed for its version.
    pub version: String,
}

/// A package a project depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// `python`, `conda`, `r`, `rust` or `npm`.
    pub ecosystem: String,
    /// Its name, as its ecosystem normalises it (Python: lower case, `-`).
    pub name: String,
    /// The exact version, when pinned, locked or installed.
    pub version: Option<String>,
    /// The constraint declared, when only a range is (`>=1.5,<2`).
    pub constraint: Option<String>,
    /// The file it was read from.
    pub from: String,
}

/// A part of the provenance that was not captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// What: `git`, `input data/x.csv`, `interpreters`, …
    pub what: String,
    /// Why, for people.
    pub why: String,
}

/// A file's hash as last read, and what identified its content then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedHash {
    /// Absolute path.
    pub path: PathBuf,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size, bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch: unlike the mtime,
    /// nobody can set it back after changing the file (0 in entries of
    /// builds before it, which therefore never match).
    #[serde(default)]
    pub ctime_ns: i64,
    /// blake3, hex.
    pub blake3: String,
}

/// Normalises a Python package name the way PEP 503 does: lower case,
/// runs of `-`, `_` and `.` as one `-`.
pub fn normalize_package_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_are_normalised_as_pep_503_says() {
        assert_eq!(normalize_package_name("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize_package_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_package_name("a__-b"), "a-b");
        assert_eq!(normalize_package_name("pandas"), "pandas");
    }

    #[test]
    fn a_record_from_before_provenance_fields_existed_reads() {
        let p: Provenance = serde_json::from_str(r#"{"captured_at":5}"#).expect("reads");
        assert_eq!(p.captured_at, 5);
        assert!(p.git.is_none() && p.packages.is_empty());
    }
}
