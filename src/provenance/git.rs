//! The git state of a working directory, through `git` run as the owner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{first_line, run};
use super::sources::strip_credentials;
use crate::model::GitState;

/// Longest any one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of a small answer (a name, a commit, a status listing).
const SMALL: u64 = 16 << 20;

/// Why no git state was captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    /// `git` is not installed.
    Missing,
    /// git refused or failed; its message.
    Failed(String),
}

/// Runs git for one working tree.
struct Git<'a> {
    program: PathBuf,
    dir: &'a Path,
    env: Vec<(&'static str, String)>,
}

impl Git<'_> {
    fn run(&self, args: &[&str], cap: u64) -> Result<super::process::Ran, GitError> {
        // Nothing the repository configures may run a program or write:
        // no fsmonitor hook, no external diff, no optional index locks.
        let mut all = vec![
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.pager=cat",
            "--no-optional-locks",
        ];
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(&self.program, &all, self.dir, &env, cap, GIT_TIMEOUT).map_err(GitError::Failed)
    }

    /// The trimmed output of a command that succeeded, else `None`.
    fn answer(&self, args: &[&str]) -> Result<Option<String>, GitError> {
        let ran = self.run(args, SMALL)?;
        Ok(ran
            .ok
            .then(|| String::from_utf8_lossy(&ran.stdout).trim().to_string())
            .filter(|s| !s.is_empty()))
    }
}

/// Where `git` is: the first of `PATH`'s directories that has it.
fn find_git(path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join("git"))
        .find(|candidate| candidate.is_file())
}

/// The git state of `workdir` and its diff against HEAD (cut at
/// `diff_cap` bytes, with a last line saying so); `Ok(None)` when it is
/// not in a repository. `home` is the owner's (git reads its
/// configuration there).
pub fn capture(
    workdir: &Path,
    home: &Path,
    diff_cap: u64,
    untracked_cap: usize,
) -> Result<Option<(GitState, String)>, GitError> {
    // Most runs outside a repository cost a look up the tree, not a git.
    if !workdir
        .ancestors()
        .any(|d| d.join(".git").symlink_metadata().is_ok())
    {
        return Ok(None);
    }
    let path = "/usr/local/bin:/usr/bin:/bin";
    let program = find_git(path).ok_or(GitError::Missing)?;
    let git = Git {
        program,
        dir: workdir,
        env: vec![
            ("PATH", path.to_string()),
            ("HOME", home.to_string_lossy().into_owned()),
            ("LC_ALL", "C".into()),
            ("GIT_TERMINAL_PROMPT", "0".into()),
            ("GIT_OPTIONAL_LOCKS", "0".into()),
        ],
    };
    let top = git.run(&["rev-parse", "--show-toplevel"], SMALL)?;
    if !top.ok {
        let why = first_line(&top.stderr).unwrap_or_else(|| "git failed".into());
        if why.contains("not a git repository") {
            // git says the same of a repository it may not read.
            return match workdir
                .ancestors()
                .find(|d| d.join(".git").symlink_metadata().is_ok())
            {
                Some(dir) => Err(GitError::Failed(format!(
                    "{}: a repository its owner cannot read",
                    dir.display()
                ))),
                None => Ok(None),
            };
        }
        if why.contains("dubious ownership") {
            return Err(GitError::Failed(
                "the repository belongs to another user; git refuses it (safe.directory)".into(),
            ));
        }
        return Err(GitError::Failed(why));
    }
    let root = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim());
    let repository = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let commit = git.answer(&["rev-parse", "--verify", "-q", "HEAD"])?;
    let branch = git.answer(&["symbolic-ref", "--short", "-q", "HEAD"])?;
    let remote = match git.answer(&["remote"])? {
        Some(names) => {
            let name = names
                .lines()
                .find(|n| *n == "origin")
                .or_else(|| names.lines().next())
                .unwrap_or("origin")
                .to_string();
            git.answer(&["remote", "get-url", &name])?
                .map(|url| strip_credentials(&url))
        }
        None => None,
    };
    let status = git.run(
        &["status", "--porcelain=v1", "-z", "--untracked-files=normal"],
        SMALL,
    )?;
    if !status.ok {
        return Err(GitError::Failed(
            first_line(&status.stderr).unwrap_or_else(|| "git status failed".into()),
        ));
    }
    let mut dirty = false;
    let mut untracked = Vec::new();
    let mut untracked_truncated = false;
    let mut entries = status.stdout.split(|b| *b == 0).filter(|e| !e.is_empty());
    while let Some(entry) = entries.next() {
        dirty = true;
        let (code, name) = entry.split_at(entry.len().min(3));
        if code.starts_with(b"??") {
            if untracked.len() < untracked_cap {
                untracked.push(String::from_utf8_lossy(name).into_owned());
            } else {
                untracked_truncated = true;
            }
        } else if code.first() == Some(&b'R') || code.first() == Some(&b'C') {
            // A rename's original name follows as an entry of its own.
            entries.next();
        }
    }
    let diff = if commit.is_some() {
        git.run(
            &[
                "diff",
                "HEAD",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
            ],
            diff_cap,
        )?
    } else {
        git.run(
            &["diff", "--no-color", "--no-ext-diff", "--no-textconv"],
            diff_cap,
        )?
    };
    let mut text = String::from_utf8_lossy(&diff.stdout).into_owned();
    if diff.truncated {
        text.push_str(&format!(
            "\n[labbench: diff cut at {} bytes]\n",
            diff.stdout.len()
        ));
    }
    Ok(Some((
        GitState {
            repository,
            root,
            remote,
            branch,
            commit,
            dirty,
            diff_bytes: diff.stdout.len() as u64,
            diff_truncated: diff.truncated,
            untracked,
            untracked_truncated,
        },
        text,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .expect("sh")
            .success();
        assert!(ok, "{script}");
    }

    #[test]
    fn a_dirty_repository_gives_commit_branch_remote_diff_and_untracked_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("churn-model");
        std::fs::create_dir(&repo).expect("mkdir");
        sh(
            &repo,
            "git init -q -b main && git config user.email a@b && git config user.name a \
             && git remote add origin https://ana:tok3n@git.example/lab/churn.git \
             && echo one > train.py && git add train.py && git commit -qm one \
             && echo two >> train.py && echo x > notes.txt",
        );
        let (state, diff) = capture(&repo, dir.path(), 1 << 20, 10)
            .expect("captured")
            .expect("a repository");
        assert_eq!(state.repository, "churn-model");
        assert_eq!(state.branch.as_deref(), Some("main"));
        assert_eq!(state.commit.as_ref().map(String::len), Some(40));
        assert_eq!(
            state.remote.as_deref(),
            Some("https://git.example/lab/churn.git")
        );
        assert!(state.dirty);
        assert_eq!(state.untracked, vec!["notes.txt"]);
        assert!(diff.contains("+two"), "{diff}");
        assert!(!state.diff_truncated);
    }

    #[test]
    fn a_long_diff_is_cut_with_a_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        sh(
            dir.path(),
            "git init -q && git config user.email a@b && git config user.name a \
             && seq 1 10 > f && git add f && git commit -qm one && seq 1 100000 > f",
        );
        let (state, diff) = capture(dir.path(), dir.path(), 1000, 10)
            .expect("captured")
            .expect("a repository");
        assert!(state.diff_truncated && state.diff_bytes == 1000);
        assert!(
            diff.ends_with("[labbench: diff cut at 1000 bytes]\n"),
            "{diff}"
        );
    }

    #[test]
    fn a_directory_outside_any_repository_has_no_git_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(capture(dir.path(), dir.path(), 1000, 10), Ok(None));
    }
}
