//! Experiments' run directories (the logs, the journal and the metrics
//! file), made by the [`super::launcher`].
//!
//! Creating a directory and four files costs ext4 about as much as the rest
//! of starting an experiment, so the launcher makes up to 8 of them ahead of
//! need, in `experiments/.spares/PID-STARTTIME/` (one directory per launcher),
//! whenever no request and no go is due ([`RunDirs::make_spare`]). Starting an
//! experiment then renames a spare into place and hands its metrics file to
//! the command's user. Without a spare, or if the rename cannot be made (the
//! place is taken), the directory is made in place. A spare that cannot be
//! moved (gone, say) or made (a full disk) pauses spares for 64 starts. A
//! launcher removes its own spares directory when it ends, and those of
//! launchers that are gone.
//!
//! The journal's first line is written here, by the launcher, so the page the
//! supervisor's lines go to is charged to the launcher's memory cgroup, not to
//! the experiment's (see [`super::pool`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::SpawnError;
use super::protocol::Identity;
use crate::output::ExperimentFiles;
use crate::output::journal::journal_header;

/// Spares kept ready: enough for a burst of starts between two idle moments.
const SPARES: usize = 8;

/// Name of the spares directory, beside the experiments' directories (not a
/// number, so never an experiment's).
const SPARES_DIR: &str = ".spares";

/// An experiment's log and journal files, created and open (the journal
/// holding its header line), for its supervisor.
#[derive(Debug)]
pub struct RunFiles {
    /// Standard output's log, open for appending.
    pub stdout: File,
    /// Standard error's log, open for appending.
    pub stderr: File,
    /// The run journal, open for writing.
    pub journal: File,
}

impl RunFiles {
    /// Creates the experiment directory `dir` and its files in place: the
    /// logs and the journal (held open for the shim) and the metrics file
    /// the command appends to, which belongs to the command's user (`who`).
    pub fn create(dir: &Path, who: Option<&Identity>) -> Result<RunFiles, SpawnError> {
        let files = ExperimentFiles::new_in(dir);
        // Traversable (not listable) by the experiment's user, who writes
        // its metrics file.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&files.dir)
            .map_err(SpawnError::file("create", &files.dir))?;
        let metrics = create_file(
            &files.metrics(),
            OpenOptions::new().write(true).truncate(true),
        )?;
        if let Some(who) = who {
            hand_to(&metrics, &files.metrics(), who)?;
        }
        Ok(RunFiles {
            stdout: create_file(&files.stdout(), OpenOptions::new().append(true))?,
            stderr: create_file(&files.stderr(), OpenOptions::new().append(true))?,
            journal: journal_with_header(&files.journal(), true)?,
        })
    }
}

fn create_file(path: &Path, options: &mut OpenOptions) -> Result<File, SpawnError> {
    options
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(SpawnError::file("create", path))
}

/// Creates the run journal at `path` (emptied first if `truncate`) with
/// its first line written, and returns it open after that line. Written
/// here, its first page is charged to the launcher's memory cgroup: the
/// supervisor's lines, which usually fit in that page, then leave nothing
/// in the slot's memory when the experiment ends, and the slot stays fit
/// for the next one (see `cgroup::spares`).
fn journal_with_header(path: &Path, truncate: bool) -> Result<File, SpawnError> {
    let mut journal = create_file(path, OpenOptions::new().write(true).truncate(truncate))?;
    journal
        .write_all(journal_header().as_bytes())
        .map_err(SpawnError::file("write", path))?;
    Ok(journal)
}

/// Gives the metrics file `file` (at `path`) to `who`.
fn hand_to(file: &File, path: &Path, who: &Identity) -> Result<(), SpawnError> {
    crate::sys::fs::change_owner(file, who.uid, who.gid).map_err(|source| SpawnError::Owner {
        path: path.to_path_buf(),
        user: who.name.clone(),
        source,
    })
}

/// A run directory made ahead, with its files open.
#[derive(Debug)]
struct Spare {
    dir: PathBuf,
    files: RunFiles,
    metrics: File,
}

impl Spare {
    fn make(dir: PathBuf) -> Result<Spare, SpawnError> {
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map_err(SpawnError::file("create", &dir))?;
        let files = ExperimentFiles { dir };
        let metrics = create_file(&files.metrics(), OpenOptions::new().write(true))?;
        let stdout = create_file(&files.stdout(), OpenOptions::new().append(true))?;
        let stderr = create_file(&files.stderr(), OpenOptions::new().append(true))?;
        let journal = journal_with_header(&files.journal(), false)?;
        Ok(Spare {
            dir: files.dir,
            files: RunFiles {
                stdout,
                stderr,
                journal,
            },
            metrics,
        })
    }
}

/// The launcher's run directories: spares made ahead and taken at starts.
///
/// Each launcher makes its spares in a directory of its own,
/// `.spares/PID-STARTTIME`, and removes only that one when it ends, and
/// those of launchers that are gone: a launcher replaced while it still
/// runs (it stopped answering, say) never removes the other's.
#[derive(Debug, Default)]
pub struct RunDirs {
    /// `experiments/.spares`, once a start has shown where the experiments'
    /// directories are.
    spares_root: Option<PathBuf>,
    /// This launcher's directory in it, once made.
    own: Option<PathBuf>,
    /// Whether the directories of launchers that are gone were removed.
    swept: bool,
    ready: Vec<Spare>,
    /// Names the next spare.
    made: u64,
    /// Starts so far.
    starts: u64,
    /// After a failure, no spare is made before this many starts.
    paused_until: Option<u64>,
}

/// Starts without spares after making or moving one failed (a full disk,
/// say), before they are tried again.
const RETRY_AFTER_STARTS: u64 = 64;

impl RunDirs {
    /// The files of the experiment whose directory is `dir`, for the
    /// command's user `who`: a spare moved there, or else made in place.
    pub fn take(&mut self, dir: &Path, who: Option<&Identity>) -> Result<RunFiles, SpawnError> {
        self.starts += 1;
        if self.spares_root.is_none()
            && let Some(parent) = dir.parent()
        {
            self.spares_root = Some(parent.join(SPARES_DIR));
        }
        let Some(spare) = self.ready.pop() else {
            return RunFiles::create(dir, who);
        };
        match std::fs::rename(&spare.dir, dir) {
            Ok(()) => {}
            // Something in the way (rename(2) replaces nothing but an empty
            // directory) is reported by the in-place path, as without
            // spares; the spare stays for the next start.
            Err(err) if place_taken(&err) => {
                self.ready.push(spare);
                return RunFiles::create(dir, who);
            }
            Err(err) => {
                self.pause(&format!(
                    "cannot move {} to {}: {err}",
                    spare.dir.display(),
                    dir.display()
                ));
                return RunFiles::create(dir, who);
            }
        }
        if let Some(who) = who {
            hand_to(&spare.metrics, &ExperimentFiles::new_in(dir).metrics(), who)?;
        }
        Ok(spare.files)
    }

    /// Whether a spare is still to be made (see [`make_spare`](Self::make_spare)).
    pub fn wants_spare(&self) -> bool {
        self.spares_root.is_some()
            && self.ready.len() < SPARES
            && self.paused_until.is_none_or(|until| self.starts >= until)
    }

    /// Makes one spare. A failure is reported, and spares are tried again
    /// only after `RETRY_AFTER_STARTS` starts (which make their
    /// directories in place meanwhile).
    pub fn make_spare(&mut self) {
        if !self.wants_spare() {
            return;
        }
        let made = self.own_dir().and_then(|own| {
            self.made += 1;
            Spare::make(own.join(self.made.to_string()))
        });
        match made {
            Ok(spare) => {
                self.paused_until = None;
                self.ready.push(spare);
            }
            Err(err) => self.pause(&err),
        }
    }

    /// This launcher's spares directory, made if need be (the first time,
    /// with those of launchers that are gone removed).
    fn own_dir(&mut self) -> Result<PathBuf, SpawnError> {
        if let Some(own) = &self.own {
            return Ok(own.clone());
        }
        let root = self
            .spares_root
            .clone()
            .ok_or(SpawnError::NoExperimentsDir)?;
        let me = std::process::id();
        let own = root.join(format!(
            "{me}-{}",
            crate::sys::procfs::process_start_time(me).unwrap_or(0)
        ));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&own)
            .map_err(SpawnError::file("create", &own))?;
        if !self.swept {
            self.swept = true;
            remove_orphans(&root, &own);
        }
        self.own = Some(own.clone());
        Ok(own)
    }

    /// Drops the spares after a failure and makes none for a while.
    fn pause(&mut self, why: &dyn std::fmt::Display) {
        eprintln!(
            "labbench launcher: spare run directories paused for {RETRY_AFTER_STARTS} starts: {why}"
        );
        self.paused_until = Some(self.starts + RETRY_AFTER_STARTS);
        self.ready.clear();
        if let Some(own) = self.own.take() {
            let _ = remove_all(&own);
        }
    }

    /// Removes this launcher's spares (when it ends).
    pub fn clear(&mut self) {
        self.ready.clear();
        if let Some(own) = self.own.take()
            && let Err(err) = remove_all(&own)
        {
            eprintln!("labbench launcher: {err}");
        }
        // The spares directory itself goes once no launcher uses it.
        if let Some(root) = &self.spares_root {
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// Whether a rename failed because something is in the target's place.
fn place_taken(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EEXIST | libc::ENOTEMPTY | libc::ENOTDIR | libc::EISDIR)
    )
}

/// Removes from `root` the spares directories of launchers that are gone
/// (named `PID-STARTTIME` after them; anything else in it is left over too).
fn remove_orphans(root: &Path, own: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, start)| Some((pid.parse().ok()?, start.parse().ok()?)));
        let alive =
            owner.is_some_and(|(pid, start)| crate::sys::procfs::process_running(pid, start));
        if path != own && !alive {
            let _ = remove_all(&path);
        }
    }
}

fn remove_all(path: &Path) -> Result<(), SpawnError> {
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(SpawnError::file("remove", path)(err))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    fn experiments_dir() -> (tempfile::TempDir, PathBuf) {
        let data = tempfile::tempdir().expect("tempdir");
        let experiments = data.path().join("experiments");
        std::fs::create_dir(&experiments).expect("experiments");
        (data, experiments)
    }

    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| entries.count())
    }

    /// A spare becomes the experiment's directory: the same files, modes
    /// and open descriptors as one made in place, and the launcher's
    /// spares go when it ends.
    #[test]
    fn a_spare_moves_into_place_with_its_files_open() {
        let (_data, experiments) = experiments_dir();
        let mut dirs = RunDirs::default();
        assert!(!dirs.wants_spare(), "no spare before a start shows where");

        let first = experiments.join("1");
        let mut files = dirs.take(&first, None).expect("made in place");
        files.stdout.write_all(b"one\n").expect("write");
        assert!(dirs.wants_spare());
        while dirs.wants_spare() {
            dirs.make_spare();
        }
        let spares = experiments.join(SPARES_DIR);
        let own = dirs.own.clone().expect("its own directory");
        assert_eq!(own.parent(), Some(spares.as_path()));
        assert_eq!(count(&own), SPARES);
        assert_eq!(mode(&spares), 0o700);

        let second = experiments.join("2");
        let mut files = dirs.take(&second, None).expect("a spare");
        assert!(dirs.wants_spare(), "one fewer");
        assert_eq!(count(&own), SPARES - 1);
        files.stdout.write_all(b"out\n").expect("write");
        files.stderr.write_all(b"err\n").expect("write");
        files.journal.write_all(b"exit 0\n").expect("write");
        let at = ExperimentFiles::new_in(&second);
        let read = |path: PathBuf| std::fs::read_to_string(path).expect("read");
        assert_eq!(read(at.stdout()), "out\n");
        assert_eq!(read(at.stderr()), "err\n");
        assert_eq!(read(at.journal()), format!("{}exit 0\n", journal_header()));
        assert_eq!(read(at.metrics()), "");
        // The same modes as made in place (both under the same umask).
        let in_place = ExperimentFiles::new_in(&first);
        assert_eq!(mode(&second), mode(&first));
        assert_eq!(
            mode(&second) & 0o066,
            0,
            "others may pass through, not list"
        );
        for (spare, made) in [
            (at.stdout(), in_place.stdout()),
            (at.stderr(), in_place.stderr()),
            (at.journal(), in_place.journal()),
            (at.metrics(), in_place.metrics()),
        ] {
            assert_eq!(mode(&spare), mode(&made), "{}", spare.display());
            assert_eq!(mode(&spare) & 0o077, 0, "{}", spare.display());
        }
        assert_eq!(read(in_place.journal()), journal_header());
        // Appending, as the logs must be: a write after a seek still lands last.
        files.stdout.rewind().expect("seek");
        files.stdout.write_all(b"more\n").expect("write");
        let mut all = String::new();
        File::open(at.stdout())
            .expect("open")
            .read_to_string(&mut all)
            .expect("read");
        assert_eq!(all, "out\nmore\n");

        dirs.clear();
        assert!(!spares.exists(), "spares removed");
        assert!(second.join("stdout.log").exists(), "experiments stay");
    }

    /// Something in the experiment's place is reported as without spares,
    /// and the spare stays for the next start.
    #[test]
    fn a_taken_place_is_reported_and_keeps_the_spare() {
        let (_data, experiments) = experiments_dir();
        let mut dirs = RunDirs::default();
        dirs.take(&experiments.join("1"), None)
            .expect("made in place");
        dirs.make_spare();
        let blocked = experiments.join("2");
        std::fs::write(&blocked, b"in the way").expect("file");
        let err = dirs.take(&blocked, None).expect_err("a file is in the way");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot create {}", blocked.display())),
            "{err}"
        );
        assert_eq!(std::fs::read(&blocked).expect("file"), b"in the way");
        assert_eq!(dirs.ready.len(), 1, "the spare stays");
        dirs.take(&experiments.join("3"), None).expect("the spare");
        assert!(dirs.ready.is_empty());
        assert!(experiments.join("3").join("journal").exists());
    }

    /// Spares that cannot be moved (gone, here) are dropped, starts make
    /// their directories in place, and spares are tried again later.
    #[test]
    fn spares_that_cannot_be_moved_are_dropped_for_a_while() {
        let (_data, experiments) = experiments_dir();
        let mut dirs = RunDirs::default();
        dirs.take(&experiments.join("1"), None)
            .expect("made in place");
        while dirs.wants_spare() {
            dirs.make_spare();
        }
        let own = dirs.own.clone().expect("its own directory");
        std::fs::remove_dir_all(&own).expect("spares gone");
        dirs.take(&experiments.join("2"), None)
            .expect("made in place");
        assert!(experiments.join("2").join("journal").exists());
        assert!(dirs.ready.is_empty(), "the other spares are dropped too");
        for id in 3..=2 + RETRY_AFTER_STARTS {
            assert!(!dirs.wants_spare(), "paused at start {id}");
            dirs.take(&experiments.join(id.to_string()), None)
                .expect("made in place");
        }
        assert!(dirs.wants_spare(), "tried again");
        dirs.make_spare();
        assert_eq!(dirs.ready.len(), 1);
    }

    /// A launcher removes the spares of launchers that are gone (and
    /// anything else left there), never those of one that still runs.
    #[test]
    fn only_the_spares_of_launchers_that_are_gone_are_removed() {
        let (_data, experiments) = experiments_dir();
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = other.id();
        let started = crate::sys::procfs::process_start_time(pid).expect("start time");
        let spares = experiments.join(SPARES_DIR);
        let running = spares.join(format!("{pid}-{started}"));
        let gone = spares.join(format!("{pid}-{}", started + 1));
        let unknown = spares.join("7");
        for dir in [&running, &gone, &unknown] {
            std::fs::create_dir_all(dir.join("1")).expect("left over");
            std::fs::write(dir.join("1").join("stdout.log"), b"x").expect("file");
        }
        let mut dirs = RunDirs::default();
        dirs.take(&experiments.join("1"), None)
            .expect("made in place");
        dirs.make_spare();
        assert!(running.exists(), "a running launcher's spares stay");
        assert!(!gone.exists() && !unknown.exists(), "left overs removed");
        assert_eq!(dirs.ready.len(), 1);
        dirs.clear();
        assert!(running.exists() && spares.exists(), "still in use");
        other.kill().expect("kill");
        other.wait().expect("reap");
    }

    /// The metrics file of a spare is handed to the command's user.
    #[test]
    fn the_metrics_file_goes_to_the_commands_user() {
        if !crate::sys::process::is_root() {
            eprintln!("skipped: needs root to hand files to another user");
            return;
        }
        let (_data, experiments) = experiments_dir();
        let who = Identity {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        };
        let mut dirs = RunDirs::default();
        dirs.take(&experiments.join("1"), Some(&who))
            .expect("in place");
        dirs.make_spare();
        dirs.take(&experiments.join("2"), Some(&who))
            .expect("a spare");
        for id in ["1", "2"] {
            let dir = experiments.join(id);
            let meta = std::fs::metadata(dir.join("metrics.jsonl")).expect("metrics");
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "experiment {id}");
            let log = std::fs::metadata(dir.join("stdout.log")).expect("log");
            assert_eq!(log.uid(), 0, "the logs stay root's");
        }
    }
}
