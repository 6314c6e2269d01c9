//! Persistent state in one sled database: trees per entity, versioned records.
//!
//! Owns the on-disk layout (tree names, key encodings, record envelopes, the
//! schema version) and durability (flush before acknowledging). Knows nothing
//! of roles or permissions: the service layer decides who may call what.
//!
//! One file per kind of record: `accounts` (users, keys, quotas),
//! `experiments` (records, the index of unfinished ones, projects),
//! `usage` (closed buckets) and `audit`. The types it keeps are the
//! model's; it imports nothing else of labbench.

mod accounts;
mod audit;
mod budgets;
mod codec;
mod dictionaries;
mod experiments;
mod host_limits;
mod indexes;
mod metrics;
mod metrics_read;
mod notebook;
mod notice;
mod profile;
mod provenance;
mod run_costs;
mod settings;
mod usage;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use host_limits::DEFAULT_KEY as DEFAULT_HOST_LIMIT_KEY;
pub use indexes::IndexedBy;
pub use run_costs::RunCost;

use crate::model::Experiment;

/// Bytes of database pages sled keeps in memory (its default, 1 GiB, let
/// long listings of history grow the daemon for good).
const STORE_CACHE_BYTES: u64 = 16 << 20;

/// Schema version this build reads and writes. 2: records may be packed
/// (`codec.rs`), which a build of version 1 cannot read; a store this
/// build opens is marked 2, so such a build refuses it with a clear error
/// rather than failing on its records. 3: finished runs' costs are kept
/// apart (`run_costs.rs`), which a build of version 2 would not write.
/// 4: metric summaries are kept compact (`metrics_read.rs`) and records
/// may be packed with the store's own dictionaries (`dictionaries.rs`),
/// neither of which a build of version 3 can read.
pub const SCHEMA_VERSION: u32 = 4;

const META_TREE: &str = "meta";
const USERS_TREE: &str = "users";
const KEYS_TREE: &str = "keys";
const AUDIT_TREE: &str = "audit";
const EXPERIMENTS_TREE: &str = "experiments";
const ACTIVE_TREE: &str = "experiments_active";
const QUOTAS_TREE: &str = "quotas";
const BUDGETS_TREE: &str = "budgets";
const PROJECTS_TREE: &str = "projects";
const METRICS_TREE: &str = "metrics";
const COMMENTS_TREE: &str = "comments";
const CONCLUSIONS_TREE: &str = "conclusions";
const METRICS_READ_TREE: &str = "metrics_read";
const PROVENANCE_TREE: &str = "provenance";
const DIFFS_TREE: &str = "diffs";
const DIFF_BLOBS_TREE: &str = "diff_blobs";
const HASH_CACHE_TREE: &str = "hash_cache";
const INDEX_TREE: &str = "experiments_by";
const EXPERIMENT_USE_TREE: &str = "experiment_use";
const RUN_COSTS_TREE: &str = "run_costs_by_minute";
const HOST_LIMITS_TREE: &str = "host_limits";
const DICTIONARIES_TREE: &str = "dictionaries";
const NEXT_EXPERIMENT_KEY: &[u8] = b"next_experiment_id";
const USAGE_1M_TREE: &str = "usage_1m";
const USAGE_1H_TREE: &str = "usage_1h";
const SCHEMA_KEY: &[u8] = b"schema_version";

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually a running `labbench serve`) holds the database.
    #[error(
        "the data directory {0} is in use by another labbench process (a running server holds its lock); stop it, or use `ssh lab@host …` to talk to it"
    )]
    Locked(PathBuf),
    /// The database was written by a newer labbench.
    #[error(
        "the data directory {path} has schema version {found}, newer than this labbench supports ({supported}); upgrade labbench"
    )]
    NewerSchema {
        /// The directory.
        path: PathBuf,
        /// Version on disk.
        found: u32,
        /// Version this build supports.
        supported: u32,
    },
    /// A record could not be decoded.
    #[error("corrupt or unreadable record in tree {tree}: {reason}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An error from sled or the file system.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// The database is closed: reopening it after a failure failed (see
    /// [`Store::recover`]), to be tried again.
    #[error("the database is closed after a write failed; it is reopened once space is free")]
    Closed,
    /// The database could not be reopened: operations held it too long.
    #[error("the database is busy; try again")]
    Busy,
    /// Creating the data directory failed.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The labbench database.
#[derive(Clone)]
pub struct Store {
    /// The open database: replaced by [`Store::recover`] after sled stopped
    /// writing (it does for good once a write has failed, e.g. on a full disk).
    open: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<Trees>>>>,
    /// The unfinished experiments, decoded: the scheduler reads them on every
    /// queue change. Kept in step by `put_experiment` and `import_experiments`
    /// (the only writers of the `experiments_active` index).
    active_cache: std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<u64, Experiment>>>,
    /// Serialises writes of experiments: the record and its index entry are
    /// two writes, which two writers of one experiment must not interleave.
    experiment_writes: std::sync::Arc<std::sync::Mutex<()>>,
    path: PathBuf,
}

/// Longest an open waits for a lock held for a moment (see [`Trees::open`]).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// The database and its trees, as opened.
struct Trees {
    db: sled::Db,
    users: sled::Tree,
    keys: sled::Tree,
    audit: sled::Tree,
    usage_1m: sled::Tree,
    usage_1h: sled::Tree,
    meta: sled::Tree,
    experiments: sled::Tree,
    active: sled::Tree,
    budgets: sled::Tree,
    quotas: sled::Tree,
    projects: sled::Tree,
    metrics: sled::Tree,
    metrics_read: sled::Tree,
    comments: sled::Tree,
    conclusions: sled::Tree,
    provenance: sled::Tree,
    diffs: sled::Tree,
    diff_blobs: sled::Tree,
    hash_cache: sled::Tree,
    index: sled::Tree,
    experiment_use: sled::Tree,
    run_costs: sled::Tree,
    host_limits: sled::Tree,
    /// How records are packed (`dictionaries.rs`).
    dictionaries: dictionaries::Dictionaries,
}

impl Trees {
    /// Opens the database in `path`, a directory of the data directory
    /// `data_dir`, waiting up to [`LOCK_PATIENCE`] for its lock.
    ///
    /// The lock is `flock`'s, which a forked child shares until it runs its
    /// program: a store closed while this process was starting one stays
    /// locked for that moment, and opening it again at once would fail.
    fn open(data_dir: &Path, path: &Path) -> StoreResult<Trees> {
        let patience = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match Trees::try_open(data_dir, path) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < patience => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    fn try_open(data_dir: &Path, path: &Path) -> StoreResult<Trees> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(STORE_CACHE_BYTES)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked(data_dir.to_path_buf())
                }
                other => StoreError::Db(other),
            })?;
        // Whatever the umask made of the files, they are the daemon's alone.
        make_private(path);
        Ok(Trees {
            users: db.open_tree(USERS_TREE)?,
            keys: db.open_tree(KEYS_TREE)?,
            audit: db.open_tree(AUDIT_TREE)?,
            usage_1m: db.open_tree(USAGE_1M_TREE)?,
            usage_1h: db.open_tree(USAGE_1H_TREE)?,
            meta: db.open_tree(META_TREE)?,
            experiments: db.open_tree(EXPERIMENTS_TREE)?,
            active: db.open_tree(ACTIVE_TREE)?,
            quotas: db.open_tree(QUOTAS_TREE)?,
            budgets: db.open_tree(BUDGETS_TREE)?,
            projects: db.open_tree(PROJECTS_TREE)?,
            metrics: db.open_tree(METRICS_TREE)?,
            comments: db.open_tree(COMMENTS_TREE)?,
            conclusions: db.open_tree(CONCLUSIONS_TREE)?,
            metrics_read: db.open_tree(METRICS_READ_TREE)?,
            provenance: db.open_tree(PROVENANCE_TREE)?,
            diffs: db.open_tree(DIFFS_TREE)?,
            diff_blobs: db.open_tree(DIFF_BLOBS_TREE)?,
            hash_cache: db.open_tree(HASH_CACHE_TREE)?,
            index: db.open_tree(INDEX_TREE)?,
            experiment_use: db.open_tree(EXPERIMENT_USE_TREE)?,
            run_costs: db.open_tree(RUN_COSTS_TREE)?,
            host_limits: db.open_tree(HOST_LIMITS_TREE)?,
            dictionaries: dictionaries::Dictionaries::open(db.open_tree(DICTIONARIES_TREE)?)?,
            db,
        })
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir/db`.
    pub fn open(data_dir: &Path) -> StoreResult<Store> {
        // Others may traverse (experiments' supervisors reach their own files)
        // but not list; the database itself is owner-only (below).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(data_dir)
            .map_err(|source| StoreError::CreateDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
        let path = data_dir.join("db");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|source| StoreError::CreateDir {
                path: path.clone(),
                source,
            })?;
        let trees = Trees::open(data_dir, &path)?;
        let meta = &trees.meta;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                trees.db.flush()?;
            }
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: META_TREE,
                        reason: "schema version is not 4 bytes".into(),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: data_dir.to_path_buf(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Every earlier record still reads; what is written
                    // from now on may not read in the earlier build.
                    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                    trees.db.flush()?;
                }
            }
        }
        indexes::build_if_missing(&trees)?;
        run_costs::build_if_missing(&trees)?;
        let cache = experiments::load_active(&trees)?;
        Ok(Store {
            open: std::sync::Arc::new(std::sync::RwLock::new(Some(std::sync::Arc::new(trees)))),
            active_cache: std::sync::Arc::new(std::sync::RwLock::new(cache)),
            experiment_writes: std::sync::Arc::default(),
            path: data_dir.to_path_buf(),
        })
    }

    /// The open database (held for the length of one operation).
    fn t(&self) -> StoreResult<std::sync::Arc<Trees>> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// Whether the database still writes: sled stops for good once a
    /// write has failed (a full disk), which a flush then reports.
    pub fn is_writable(&self) -> bool {
        self.flush().is_ok()
    }

    /// Opens the database anew after sled stopped writing (see
    /// [`Store::is_writable`]), once the cause is gone (space was freed):
    /// what was made durable before is kept; what was not, and was
    /// answered as failed, is not. Operations wait meanwhile (a few
    /// milliseconds); the unfinished experiments are read back from disk.
    pub fn recover(&self) -> StoreResult<()> {
        let _no_experiment_writes = self
            .experiment_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Operations from here on fail at once (Closed) instead of waiting.
        let taken = self.open.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut old) = taken {
            // Operations in progress hold the old database a moment longer;
            // sled lets go of its files when the last handle is dropped.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match std::sync::Arc::try_unwrap(old) {
                    Ok(trees) => {
                        drop(trees);
                        break;
                    }
                    Err(shared) if std::time::Instant::now() < deadline => {
                        old = shared;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(shared) => {
                        *self.open.write().unwrap_or_else(|e| e.into_inner()) = Some(shared);
                        return Err(StoreError::Busy);
                    }
                }
            }
        }
        let trees = Trees::open(&self.path, &self.path.join("db"))?;
        let cache = experiments::load_active(&trees)?;
        *self.active_cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(trees));
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> StoreResult<()> {
        self.t()?.db.flush()?;
        Ok(())
    }
}

/// Makes every file under `dir` readable and writable by its owner only
/// (directories: also searchable by the owner only).
fn make_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let mode = if kind.is_dir() {
            make_private(&entry.path());
            0o700
        } else if kind.is_file() {
            0o600
        } else {
            continue;
        };
        let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode));
    }
}

/// Maps a failed sled transaction (we never abort on purpose) to a store error.
fn transaction_error(
    tree: &'static str,
) -> impl Fn(sled::transaction::TransactionError<()>) -> StoreError {
    move |e| match e {
        sled::transaction::TransactionError::Storage(e) => StoreError::Db(e),
        sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
            tree,
            reason: "transaction aborted".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyRecord, PublicKeyInfo, Role, User};

    fn alice() -> User {
        User {
            name: "alice".into(),
            role: Role::Member,
            unix_user: Some("alice".into()),
            system_account_allowed: false,
            disabled: false,
            created_at: 1,
        }
    }

    #[test]
    fn the_database_files_are_the_daemons_alone_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(dir.path()).expect("open"));
        // As a umask of 0 would have left them.
        let db = dir.path().join("db");
        for entry in std::fs::read_dir(&db).expect("db") {
            let path = entry.expect("entry").path();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        }
        let store = Store::open(dir.path()).expect("reopen");
        store.put_user(&alice()).expect("put");
        let mut files = 0;
        for entry in std::fs::read_dir(&db).expect("db") {
            let entry = entry.expect("entry");
            let mode = entry.metadata().expect("meta").permissions().mode() & 0o777;
            if entry.file_type().expect("type").is_file() {
                files += 1;
                assert_eq!(mode, 0o600, "{:?}", entry.path());
            } else {
                assert_eq!(mode, 0o700, "{:?}", entry.path());
            }
        }
        assert!(files > 0);
    }

    #[test]
    fn users_persist_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store.put_user(&alice()).expect("put");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.user("alice").expect("get"), Some(alice()));
    }

    /// What a flush returned for is in the database files while the store
    /// is still open, as a killed daemon leaves them (the vendored sled writes
    /// a flush's buffer on the calling thread: see vendor/README.md).
    #[test]
    fn a_flushed_write_is_in_the_files_before_the_store_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crashed = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for n in 0..3 {
            let user = User {
                name: format!("user{n}"),
                ..alice()
            };
            store.put_user(&user).expect("put");
            // The files as they are now, the store still open.
            let copy = crashed.path().join(format!("copy{n}"));
            std::fs::create_dir_all(copy.join("db")).expect("mkdir");
            for entry in std::fs::read_dir(dir.path().join("db")).expect("list") {
                let entry = entry.expect("entry");
                if entry.file_type().expect("type").is_file() {
                    std::fs::copy(entry.path(), copy.join("db").join(entry.file_name()))
                        .expect("copy");
                }
            }
            let reopened = Store::open(&copy).expect("open the copy");
            for earlier in 0..=n {
                let name = format!("user{earlier}");
                assert!(
                    reopened.user(&name).expect("get").is_some(),
                    "{name} missing after write {n}"
                );
            }
            assert_eq!(reopened.user(&user.name).expect("get"), Some(user));
        }
        drop(store);
    }

    #[test]
    fn second_open_of_same_directory_reports_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Store::open(dir.path()).expect("open");
        let err = Store::open(dir.path()).expect_err("second open must fail");
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn an_earlier_schema_is_marked_as_this_builds_once_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path().join("db")).expect("sled");
            db.open_tree(META_TREE)
                .expect("tree")
                .insert(SCHEMA_KEY, &1u32.to_be_bytes())
                .expect("insert");
            db.flush().expect("flush");
        }
        drop(Store::open(dir.path()).expect("open"));
        let db = sled::open(dir.path().join("db")).expect("sled");
        let found = db
            .open_tree(META_TREE)
            .expect("tree")
            .get(SCHEMA_KEY)
            .expect("get");
        assert_eq!(found.as_deref(), Some(&SCHEMA_VERSION.to_be_bytes()[..]));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path().join("db")).expect("sled");
            db.open_tree(META_TREE)
                .expect("tree")
                .insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
                .expect("insert");
            db.flush().expect("flush");
        }
        let err = Store::open(dir.path()).expect_err("must refuse");
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    }

    #[test]
    fn removing_user_removes_their_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.put_user(&alice()).expect("put");
        let key = PublicKeyInfo::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsmWNLTwvIyW9lRhCopauIQbWxrZzUVvjXMnud4kAdR a@b",
        )
        .expect("key");
        store
            .put_key(&KeyRecord {
                user: "alice".into(),
                key: key.clone(),
                added_at: 1,
                added_by: "root".into(),
            })
            .expect("put key");
        assert_eq!(store.keys_of("alice").expect("keys").len(), 1);
        store.remove_user("alice").expect("remove");
        assert!(store.key(&key.fingerprint).expect("get").is_none());
        assert!(store.user("alice").expect("get").is_none());
    }
}
