//! blake3 hashes of declared files and directories, parallel over files,
//! with a cache keyed by what identifies a file's content (size, mtime,
//! ctime, inode, device) so an unchanged dataset is not read again.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{CachedHash, FileDigest};

/// What hashing a set of declared paths gave.
#[derive(Debug, Default)]
pub struct Hashed {
    /// One digest per declared path, in order.
    pub digests: Vec<FileDigest>,
    /// Files read now, for the cache.
    pub fresh: Vec<CachedHash>,
    /// Files whose cached hash was used.
    pub cache_hits: u64,
    /// Bytes read.
    pub hashed_bytes: u64,
}

/// One file to hash and what became of it.
struct Job {
    path: PathBuf,
    result: Option<Result<(CachedHash, bool), String>>,
}

/// Hashes each of `paths` (resolved under `workdir`): a file by its
/// content, a directory by its files' relative paths, sizes and hashes
/// (at most `max_files` of them, in path order; symbolic links to
/// directories inside are not followed). `cache` entries whose identity
/// matches are used instead of reading.
pub fn hash_all(
    workdir: &Path,
    paths: &[PathBuf],
    cache: &[CachedHash],
    max_files: usize,
    workers: usize,
) -> Hashed {
    let cache: HashMap<&Path, &CachedHash> = cache.iter().map(|c| (c.path.as_path(), c)).collect();
    // Each declared path's files, as indices into `jobs`.
    let mut plans: Vec<Result<Plan, String>> = Vec::new();
    let mut jobs: Vec<Mutex<Job>> = Vec::new();
    for declared in paths {
        let full = super::resolve(workdir, declared);
        plans.push(plan(&full, max_files).map(|(plan, files)| {
            let first = jobs.len();
            jobs.extend(
                files
                    .into_iter()
                    .map(|path| Mutex::new(Job { path, result: None })),
            );
            Plan { first, ..plan }
        }));
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, 16).min(jobs.len().max(1)) {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let Ok(mut job) = job.lock() else { return };
                    job.result = Some(hash_file(&job.path, &cache));
                }
            });
        }
    });
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter_map(|j| j.into_inner().ok())
        .collect();
    let mut hashed = Hashed::default();
    for (declared, plan) in paths.iter().zip(plans) {
        let digest = match plan {
            Err(why) => FileDigest {
                path: declared.clone(),
                directory: false,
                bytes: 0,
                files: 0,
                blake3: None,
                error: Some(why),
            },
            Ok(plan) => digest_of(declared, &plan, &jobs, &mut hashed),
        };
        hashed.digests.push(digest);
    }
    hashed
}

/// What a declared path is and which files it has.
struct Plan {
    root: PathBuf,
    directory: bool,
    first: usize,
    count: usize,
    /// More files than the most hashed: none was.
    too_many: bool,
}

fn plan(full: &Path, max_files: usize) -> Result<(Plan, Vec<PathBuf>), String> {
    let meta = std::fs::metadata(full).map_err(|e| e.to_string())?;
    if !meta.is_dir() && !meta.is_file() {
        return Err("not a regular file or a directory".into());
    }
    if !meta.is_dir() {
        let plan = Plan {
            root: full.to_path_buf(),
            directory: false,
            first: 0,
            count: 1,
            too_many: false,
        };
        return Ok((plan, vec![full.to_path_buf()]));
    }
    let mut files = Vec::new();
    let mut dirs = vec![full.to_path_buf()];
    // The walk stops past the most files hashed: a directory of millions
    // (or `/`) is not listed whole.
    'walk: while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
                files.push(entry.path());
                if files.len() > max_files {
                    break 'walk;
                }
            }
        }
    }
    let too_many = files.len() > max_files;
    if too_many {
        // Which files the walk met first is the file system's order: no
        // hash of a part of it would mean anything.
        files.clear();
    }
    files.sort();
    let plan = Plan {
        root: full.to_path_buf(),
        directory: true,
        first: 0,
        count: files.len(),
        too_many,
    };
    Ok((plan, files))
}

/// Opens `path` (so the caller proves it may read it), then uses the
/// cached hash when its identity is unchanged, else reads it. The flag
/// says whether it was read.
fn hash_file(
    path: &Path,
    cache: &HashMap<&Path, &CachedHash>,
) -> Result<(CachedHash, bool), String> {
    let file: File = super::open_regular(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let mtime_ns = super::mtime_ns(&meta);
    let ctime_ns = meta
        .ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec());
    let mut entry = CachedHash {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns,
        ctime_ns,
        blake3: String::new(),
    };
    if let Some(known) = cache.get(path)
        && (
            known.dev,
            known.ino,
            known.size,
            known.mtime_ns,
            known.ctime_ns,
        ) == (
            entry.dev,
            entry.ino,
            entry.size,
            entry.mtime_ns,
            entry.ctime_ns,
        )
    {
        entry.blake3 = known.blake3.clone();
        return Ok((entry, false));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file).map_err(|e| e.to_string())?;
    entry.blake3 = hasher.finalize().to_hex().to_string();
    Ok((entry, true))
}

fn digest_of(declared: &Path, plan: &Plan, jobs: &[Job], hashed: &mut Hashed) -> FileDigest {
    let mut digest = FileDigest {
        path: declared.to_path_buf(),
        directory: plan.directory,
        bytes: 0,
        files: plan.count as u64,
        blake3: None,
        error: None,
    };
    let mut listing = blake3::Hasher::new();
    let mut failed = Vec::new();
    let mut single = None;
    for job in &jobs[plan.first..plan.first + plan.count] {
        match &job.result {
            Some(Ok((entry, read))) => {
                digest.bytes += entry.size;
                if *read {
                    hashed.hashed_bytes += entry.size;
                    hashed.fresh.push(entry.clone());
                } else {
                    hashed.cache_hits += 1;
                }
                let relative = job.path.strip_prefix(&plan.root).unwrap_or(&job.path);
                listing.update(relative.as_os_str().as_encoded_bytes());
                listing.update(&[0]);
                listing.update(entry.blake3.as_bytes());
                listing.update(format!("\0{}\n", entry.size).as_bytes());
                single = Some(entry.blake3.clone());
            }
            Some(Err(why)) => failed.push(format!("{}: {why}", job.path.display())),
            None => failed.push(format!("{}: not hashed", job.path.display())),
        }
    }
    if !failed.is_empty() {
        digest.error = Some(format!(
            "{} of {} files unreadable (first: {})",
            failed.len(),
            plan.count,
            failed[0]
        ));
        return digest;
    }
    digest.blake3 = if plan.directory {
        Some(listing.finalize().to_hex().to_string())
    } else {
        single
    };
    if plan.too_many {
        digest.blake3 = None;
        digest.error = Some(
            "more files than notebook.max_hashed_files: not hashed (declare a smaller directory, or raise the limit)".into(),
        );
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_are_hashed_and_a_change_changes_the_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data/sub")).expect("mkdir");
        std::fs::write(dir.path().join("data/a.csv"), "x,y\n1,2\n").expect("write");
        std::fs::write(dir.path().join("data/sub/b.csv"), "z\n").expect("write");
        let paths = vec![PathBuf::from("data/a.csv"), PathBuf::from("data")];
        let first = hash_all(dir.path(), &paths, &[], 100, 2);
        let file = &first.digests[0];
        assert_eq!(
            file.blake3.as_deref(),
            Some(blake3::hash(b"x,y\n1,2\n").to_hex().as_str())
        );
        assert_eq!((file.bytes, file.files, file.directory), (8, 1, false));
        let tree = &first.digests[1];
        assert_eq!((tree.bytes, tree.files, tree.directory), (10, 2, true));
        assert_eq!(first.hashed_bytes, 18);

        std::fs::write(dir.path().join("data/sub/b.csv"), "w\n").expect("write");
        let second = hash_all(dir.path(), &paths, &first.fresh, 100, 2);
        assert_eq!(second.digests[0].blake3, file.blake3, "unchanged file");
        assert_ne!(second.digests[1].blake3, tree.blake3, "changed directory");
        assert_eq!(second.cache_hits, 2, "a.csv twice from the cache");
        assert_eq!(second.hashed_bytes, 2, "only b.csv read again");
    }

    #[test]
    fn an_unchanged_file_is_not_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big"), vec![7u8; 1 << 20]).expect("write");
        let paths = vec![PathBuf::from("big")];
        let first = hash_all(dir.path(), &paths, &[], 10, 1);
        assert_eq!((first.cache_hits, first.hashed_bytes), (0, 1 << 20));
        let again = hash_all(dir.path(), &paths, &first.fresh, 10, 1);
        assert_eq!((again.cache_hits, again.hashed_bytes), (1, 0));
        assert_eq!(again.digests, first.digests);
        // An entry whose identity differs from the file's is not used.
        let mut lying = first.fresh.clone();
        lying[0].mtime_ns += 1;
        let reread = hash_all(dir.path(), &paths, &lying, 10, 1);
        assert_eq!(
            reread.hashed_bytes,
            1 << 20,
            "a changed mtime reads it again"
        );
    }

    #[test]
    fn missing_paths_and_too_many_files_are_said() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("many")).expect("mkdir");
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("many/{i}")), "x").expect("write");
        }
        let paths = vec![PathBuf::from("nope"), PathBuf::from("many")];
        let hashed = hash_all(dir.path(), &paths, &[], 3, 2);
        assert!(hashed.digests[0].blake3.is_none());
        assert!(
            hashed.digests[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("No such file"))
        );
        assert!(hashed.digests[1].blake3.is_none());
        assert!(
            hashed.digests[1]
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("more files than notebook.max_hashed_files")),
            "{:?}",
            hashed.digests[1]
        );
        assert_eq!(hashed.hashed_bytes, 0, "nothing of it was read");
    }

    #[test]
    fn devices_and_fifos_are_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zeros")).expect("symlink");
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .expect("mkfifo")
                .success()
        );
        let paths = vec![PathBuf::from("zeros"), PathBuf::from("fifo")];
        let hashed = hash_all(dir.path(), &paths, &[], 10, 2);
        for d in &hashed.digests {
            assert!(d.blake3.is_none(), "{d:?}");
            assert_eq!(
                d.error.as_deref(),
                Some("not a regular file or a directory")
            );
        }
    }
}
