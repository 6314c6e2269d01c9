//! Experiments' run directories (the logs, the journal and the metrics
//! file), made by the [`super::launcher`].
//!
//! Creating a directory and four files costs ext4 about as much as the rest
//! of starting an experiment, so the launcher makes them ahead of need, in
//! a spares directory next to the experiments' ones, whenever it has no
//! request waiting ([`RunDirs::make_spare`]). Starting an experiment then
//! renames a spare into place and hands its metrics file to the command's
//! user. Without a spare, or if the rename cannot be made (the place is
//! taken), the directory is made in place as before.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::journal::JOURNAL_HEADER;
use super::local::ExperimentFiles;
use super::shim::Identity;

/// Spares kept ready: enough for a burst of starts between two idle moments.
const SPARES: usize = 8;

/// Name of the spares directory, beside the experiments' directories (not a
/// number, so never an experiment's).
const SPARES_DIR: &str = ".spares";

/// An experiment's log and journal files, created and open (the journal
/// empty), for its supervisor.
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
    pub fn create(dir: &Path, who: Option<&Identity>) -> Result<RunFiles, String> {
        let files = ExperimentFiles::new_in(dir);
        // Traversable (not listable) by the experiment's user, who writes
        // its metrics file.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&files.dir)
            .map_err(|err| format!("cannot create {}: {err}", files.dir.display()))?;
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

fn create_file(path: &Path, options: &mut OpenOptions) -> Result<File, String> {
    options
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Creates the run journal at `path` (emptied first if `truncate`) with
/// its first line written, and returns it open after that line. Written
/// here, its first page is charged to the launcher's memory cgroup: the
/// supervisor's lines, which usually fit in that page, then leave nothing
/// in the slot's memory when the experiment ends, and the slot stays fit
/// for the next one (see `cgroup::spares`).
fn journal_with_header(path: &Path, truncate: bool) -> Result<File, String> {
    let mut journal = create_file(path, OpenOptions::new().write(true).truncate(truncate))?;
    journal
        .write_all(JOURNAL_HEADER.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(journal)
}

/// Gives the metrics file `file` (at `path`) to `who`.
fn hand_to(file: &File, path: &Path, who: &Identity) -> Result<(), String> {
    // SAFETY: fchown on a descriptor `file` keeps open for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fchown(file.as_raw_fd(), who.uid, who.gid) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(format!(
            "cannot hand {} to {}: {err}",
            path.display(),
            who.name
        ));
    }
    Ok(())
}

/// A run directory made ahead, with its files open.
#[derive(Debug)]
struct Spare {
    dir: PathBuf,
    files: RunFiles,
    metrics: File,
}

impl Spare {
    fn make(dir: PathBuf) -> Result<Spare, String> {
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
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
#[derive(Debug, Default)]
pub struct RunDirs {
    /// Where spares are made, once an experiment has shown where the
    /// experiments' directories are.
    spares_dir: Option<PathBuf>,
    /// Whether `spares_dir` has been cleared of an earlier launcher's spares
    /// and made anew.
    prepared: bool,
    ready: Vec<Spare>,
    /// Names the next spare.
    made: u64,
    /// Set once making a spare failed: no more are tried.
    failed: bool,
}

impl RunDirs {
    /// The files of the experiment whose directory is `dir`, for the
    /// command's user `who`: a spare moved there, or else made in place.
    pub fn take(&mut self, dir: &Path, who: Option<&Identity>) -> Result<RunFiles, String> {
        if self.spares_dir.is_none()
            && let Some(parent) = dir.parent()
        {
            self.spares_dir = Some(parent.join(SPARES_DIR));
        }
        let Some(spare) = self.ready.pop() else {
            return RunFiles::create(dir, who);
        };
        // rename(2) replaces nothing but an empty directory; anything else
        // in the way is reported by the in-place path, as without spares.
        if std::fs::rename(&spare.dir, dir).is_err() {
            self.ready.push(spare);
            return RunFiles::create(dir, who);
        }
        if let Some(who) = who {
            hand_to(&spare.metrics, &ExperimentFiles::new_in(dir).metrics(), who)?;
        }
        Ok(spare.files)
    }

    /// Whether a spare is still to be made (see [`make_spare`](Self::make_spare)).
    pub fn wants_spare(&self) -> bool {
        self.spares_dir.is_some() && !self.failed && self.ready.len() < SPARES
    }

    /// Makes one spare (the first time, clears what an earlier launcher
    /// left). A failure is reported once, and then no spare is made again:
    /// starts make their directories in place.
    pub fn make_spare(&mut self) {
        let Some(spares_dir) = self.spares_dir.clone().filter(|_| self.wants_spare()) else {
            return;
        };
        let made = self.prepare(&spares_dir).and_then(|()| {
            self.made += 1;
            Spare::make(spares_dir.join(self.made.to_string()))
        });
        match made {
            Ok(spare) => self.ready.push(spare),
            Err(err) => {
                eprintln!("labbench launcher: no spare run directories: {err}");
                self.failed = true;
            }
        }
    }

    fn prepare(&mut self, spares_dir: &Path) -> Result<(), String> {
        if self.prepared {
            return Ok(());
        }
        remove_spares(spares_dir)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(spares_dir)
            .map_err(|err| format!("cannot create {}: {err}", spares_dir.display()))?;
        self.prepared = true;
        Ok(())
    }

    /// Removes the spares (when the launcher ends).
    pub fn clear(&mut self) {
        self.ready.clear();
        if let Some(spares_dir) = self.spares_dir.as_deref().filter(|_| self.prepared)
            && let Err(err) = remove_spares(spares_dir)
        {
            eprintln!("labbench launcher: {err}");
        }
    }
}

fn remove_spares(spares_dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(spares_dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {err}", spares_dir.display()))
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

    /// A spare becomes the experiment's directory: the same files, modes
    /// and open descriptors as one made in place, and the spares directory
    /// goes when the launcher ends.
    #[test]
    fn a_spare_moves_into_place_with_its_files_open() {
        let data = tempfile::tempdir().expect("tempdir");
        let experiments = data.path().join("experiments");
        std::fs::create_dir(&experiments).expect("experiments");
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
        assert_eq!(std::fs::read_dir(&spares).expect("spares").count(), SPARES);
        assert_eq!(mode(&spares), 0o700);

        let second = experiments.join("2");
        let mut files = dirs.take(&second, None).expect("a spare");
        assert!(dirs.wants_spare(), "one fewer");
        assert_eq!(
            std::fs::read_dir(&spares).expect("spares").count(),
            SPARES - 1
        );
        files.stdout.write_all(b"out\n").expect("write");
        files.stderr.write_all(b"err\n").expect("write");
        files.journal.write_all(b"exit 0\n").expect("write");
        let at = ExperimentFiles::new_in(&second);
        assert_eq!(
            std::fs::read_to_string(at.stdout()).expect("stdout"),
            "out\n"
        );
        assert_eq!(
            std::fs::read_to_string(at.stderr()).expect("stderr"),
            "err\n"
        );
        assert_eq!(
            std::fs::read_to_string(at.journal()).expect("journal"),
            format!("{JOURNAL_HEADER}exit 0\n")
        );
        assert_eq!(std::fs::read_to_string(at.metrics()).expect("metrics"), "");
        assert_eq!(mode(&second), 0o711);
        for file in [at.stdout(), at.stderr(), at.journal(), at.metrics()] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
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
        let data = tempfile::tempdir().expect("tempdir");
        let experiments = data.path().join("experiments");
        std::fs::create_dir(&experiments).expect("experiments");
        let mut dirs = RunDirs::default();
        dirs.take(&experiments.join("1"), None)
            .expect("made in place");
        dirs.make_spare();
        let blocked = experiments.join("2");
        std::fs::write(&blocked, b"in the way").expect("file");
        let err = dirs.take(&blocked, None).expect_err("a file is in the way");
        assert!(
            err.starts_with(&format!("cannot create {}", blocked.display())),
            "{err}"
        );
        assert_eq!(std::fs::read(&blocked).expect("file"), b"in the way");
        assert_eq!(dirs.ready.len(), 1, "the spare stays");
        dirs.take(&experiments.join("3"), None).expect("the spare");
        assert!(dirs.ready.is_empty());
        assert!(experiments.join("3").join("journal").exists());
    }

    /// A later launcher clears what an earlier one left among the spares.
    #[test]
    fn an_earlier_launchers_spares_are_cleared() {
        let data = tempfile::tempdir().expect("tempdir");
        let experiments = data.path().join("experiments");
        let left = experiments.join(SPARES_DIR).join("7");
        std::fs::create_dir_all(&left).expect("left over");
        std::fs::write(left.join("stdout.log"), b"x").expect("file");
        let mut dirs = RunDirs::default();
        dirs.take(&experiments.join("1"), None)
            .expect("made in place");
        dirs.make_spare();
        assert!(!left.exists(), "the earlier spare is gone");
        assert_eq!(dirs.ready.len(), 1);
    }

    /// The metrics file of a spare is handed to the command's user.
    #[test]
    fn the_metrics_file_goes_to_the_commands_user() {
        if !crate::sys::is_root() {
            eprintln!("skipped: needs root to hand files to another user");
            return;
        }
        let data = tempfile::tempdir().expect("tempdir");
        let experiments = data.path().join("experiments");
        std::fs::create_dir(&experiments).expect("experiments");
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
            let meta = std::fs::metadata(experiments.join(id).join("metrics.jsonl")).expect("m");
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "experiment {id}");
            let log = std::fs::metadata(experiments.join(id).join("stdout.log")).expect("log");
            assert_eq!(log.uid(), 0, "the logs stay root's");
        }
    }
}
