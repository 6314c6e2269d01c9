//! Persistent state in one sled database: trees per entity, versioned records.
//!
//! Owns the on-disk layout (tree names, key encodings, record envelopes, the
//! schema version) and durability (flush before acknowledging). Knows nothing
//! of roles or permissions: the service layer decides who may call what.

mod codec;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::model::{Experiment, PublicKeyInfo, User};
use crate::monitor::{Bucket, ClosedBucket};
use crate::sched::Quota;
use codec::{decode, encode};

/// Bytes of database pages sled keeps in memory (its default, 1 GiB, let
/// long listings of history grow the daemon for good).
const STORE_CACHE_BYTES: u64 = 16 << 20;

/// Schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

const META_TREE: &str = "meta";
const USERS_TREE: &str = "users";
const KEYS_TREE: &str = "keys";
const AUDIT_TREE: &str = "audit";
const EXPERIMENTS_TREE: &str = "experiments";
const ACTIVE_TREE: &str = "experiments_active";
const QUOTAS_TREE: &str = "quotas";
const PROJECTS_TREE: &str = "projects";
const NEXT_EXPERIMENT_KEY: &[u8] = b"next_experiment_id";
const USAGE_1M_TREE: &str = "usage_1m";
const USAGE_1H_TREE: &str = "usage_1h";
const SCHEMA_KEY: &[u8] = b"schema_version";

/// A registered SSH key and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Owning lab user.
    pub user: String,
    /// The key itself.
    pub key: PublicKeyInfo,
    /// Seconds since the epoch when it was registered.
    pub added_at: i64,
    /// Who registered it.
    pub added_by: String,
}

/// One entry of the audit trail of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Seconds since the epoch.
    pub at: i64,
    /// Lab user who acted.
    pub actor: String,
    /// What was done, in words.
    pub action: String,
}

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
    quotas: sled::Tree,
    projects: sled::Tree,
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
            projects: db.open_tree(PROJECTS_TREE)?,
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
            }
        }
        let cache = load_active(&trees.experiments, &trees.active)?;
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
        let cache = load_active(&trees.experiments, &trees.active)?;
        *self.active_cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(trees));
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> StoreResult<()> {
        self.t()?.db.flush()?;
        Ok(())
    }

    /// True when no user exists yet (first start).
    pub fn has_no_users(&self) -> bool {
        self.t().is_ok_and(|t| t.users.is_empty())
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> StoreResult<Option<User>> {
        self.t()?
            .users
            .get(name.as_bytes())?
            .map(|v| decode(USERS_TREE, &v))
            .transpose()
    }

    /// All users, ordered by name.
    pub fn users(&self) -> StoreResult<Vec<User>> {
        self.t()?
            .users
            .iter()
            .map(|entry| decode(USERS_TREE, &entry?.1))
            .collect()
    }

    /// Creates or replaces a user record, durably.
    pub fn put_user(&self, user: &User) -> StoreResult<()> {
        self.t()?
            .users
            .insert(user.name.as_bytes(), encode(USERS_TREE, user)?)?;
        self.flush()
    }

    /// Removes a user and all their keys in one transaction, durably.
    pub fn remove_user(&self, name: &str) -> StoreResult<()> {
        let fingerprints: Vec<String> = self
            .keys_of(name)?
            .into_iter()
            .map(|k| k.key.fingerprint)
            .collect();
        (&self.t()?.users, &self.t()?.keys)
            .transaction(|(users, keys)| {
                users.remove(name.as_bytes())?;
                for fp in &fingerprints {
                    keys.remove(fp.as_bytes())?;
                }
                Ok(())
            })
            .map_err(transaction_error(USERS_TREE))?;
        self.flush()
    }

    /// The key with this `SHA256:…` fingerprint.
    pub fn key(&self, fingerprint: &str) -> StoreResult<Option<KeyRecord>> {
        self.t()?
            .keys
            .get(fingerprint.as_bytes())?
            .map(|v| decode(KEYS_TREE, &v))
            .transpose()
    }

    /// All keys of one user.
    pub fn keys_of(&self, user: &str) -> StoreResult<Vec<KeyRecord>> {
        Ok(self
            .all_keys()?
            .into_iter()
            .filter(|k| k.user == user)
            .collect())
    }

    /// Every registered key.
    pub fn all_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        self.t()?
            .keys
            .iter()
            .map(|entry| decode(KEYS_TREE, &entry?.1))
            .collect()
    }

    /// Registers a key, durably.
    pub fn put_key(&self, record: &KeyRecord) -> StoreResult<()> {
        self.t()?.keys.insert(
            record.key.fingerprint.as_bytes(),
            encode(KEYS_TREE, record)?,
        )?;
        self.flush()
    }

    /// Removes a key, durably.
    pub fn remove_key(&self, fingerprint: &str) -> StoreResult<()> {
        self.t()?.keys.remove(fingerprint.as_bytes())?;
        self.flush()
    }

    /// Appends an entry to the audit trail, durably.
    pub fn audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.audit_with_next_flush(event)?;
        self.flush()
    }

    /// Appends an audit event that becomes durable with the next flush (for
    /// a caller that writes and flushes its subject right after).
    pub fn audit_with_next_flush(&self, event: &AuditEvent) -> StoreResult<()> {
        let id = self.t()?.db.generate_id()?;
        self.t()?
            .audit
            .insert(id.to_be_bytes(), encode(AUDIT_TREE, event)?)?;
        Ok(())
    }

    /// The most recent `limit` audit entries, oldest first.
    pub fn recent_audit(&self, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        let mut events: Vec<AuditEvent> = self
            .t()?
            .audit
            .iter()
            .rev()
            .take(limit)
            .map(|entry| decode(AUDIT_TREE, &entry?.1))
            .collect::<StoreResult<_>>()?;
        events.reverse();
        Ok(events)
    }
}

/// Experiments: `experiments` maps big-endian ids to records, `experiments_active`
/// indexes the unfinished ones so the queue is read without scanning history.
impl Store {
    /// The next experiment id (monotonic). Not flushed by itself: the flush
    /// that writes the experiment holding it makes the counter durable too
    /// (sled persists its log in order), so an id that anyone saw is never reused.
    pub fn next_experiment_id(&self) -> StoreResult<u64> {
        let next = self
            .t()?
            .meta
            .update_and_fetch(NEXT_EXPERIMENT_KEY, |old| {
                Some((counter(old) + 1).to_be_bytes().to_vec())
            })?;
        next.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt {
                tree: META_TREE,
                reason: "experiment counter unreadable".into(),
            })
    }

    /// Writes an experiment and its index entry (see [`Store::stage_experiment`]), durably:
    /// a state change is on disk before anyone is told about it.
    pub fn put_experiment(&self, experiment: &Experiment) -> StoreResult<()> {
        self.stage_experiment(experiment)?;
        self.flush()
    }

    /// Writes an experiment without flushing: it is durable after the next
    /// [`Store::flush`], which the caller must make before telling anyone.
    pub fn stage_experiment(&self, experiment: &Experiment) -> StoreResult<()> {
        let _one_writer = self
            .experiment_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.write_and_cache(experiment)
    }

    /// Stages experiment `id` as `change` leaves it (see
    /// [`Store::stage_experiment`]), read and written with no other writer of
    /// experiments in between: two writers that each act on the state they
    /// read (a cancel of a queued experiment, the runner's start of it)
    /// cannot both act on one state. `Ok(None)` if there is no such
    /// experiment; an error from `change` writes nothing.
    pub fn update_experiment<T, E: From<StoreError>>(
        &self,
        id: u64,
        change: impl FnOnce(&mut Experiment) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        let _one_writer = self
            .experiment_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(mut experiment) = self.experiment(id)? else {
            return Ok(None);
        };
        let out = change(&mut experiment)?;
        self.write_and_cache(&experiment)?;
        Ok(Some(out))
    }

    /// Writes the record and its index entry as two single-key writes in an
    /// order that keeps the index a superset of the unfinished records (no
    /// multi-tree transaction: sled writes its batch manifest apart, which
    /// costs a second disk write per flush). sled recovers its log in order,
    /// so after a crash an index entry may point at a finished or missing
    /// record, never the other way round; [`load_active`] drops those.
    fn write_experiment(&self, experiment: &Experiment) -> StoreResult<()> {
        let key = experiment.id.to_be_bytes();
        let value = encode(EXPERIMENTS_TREE, experiment)?;
        if experiment.state.is_finished() {
            self.t()?.experiments.insert(key, value)?;
            self.t()?.active.remove(key)?;
        } else {
            self.t()?.active.insert(key, &[])?;
            self.t()?.experiments.insert(key, value)?;
        }
        Ok(())
    }

    /// Writes `experiment` and caches it. A write that failed half-way
    /// (the record written, its index entry not) leaves the cache as the
    /// stored record reads, so that the cache never answers otherwise than
    /// the store would.
    fn write_and_cache(&self, experiment: &Experiment) -> StoreResult<()> {
        let written = self.write_experiment(experiment);
        if written.is_ok() {
            self.cache_experiment(experiment);
            return written;
        }
        // As stored now; if even that cannot be read, the cache stays.
        let stored = self
            .t()?
            .experiments
            .get(experiment.id.to_be_bytes())
            .map(|v| v.and_then(|v| decode::<Experiment>(EXPERIMENTS_TREE, &v).ok()));
        match stored {
            Ok(Some(stored)) => self.cache_experiment(&stored),
            Ok(None) => {
                self.active_cache
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&experiment.id);
            }
            Err(_) => {}
        }
        written
    }

    fn cache_experiment(&self, experiment: &Experiment) {
        let mut cache = self.active_cache.write().unwrap_or_else(|e| e.into_inner());
        if experiment.state.is_finished() {
            cache.remove(&experiment.id);
        } else {
            cache.insert(experiment.id, experiment.clone());
        }
    }

    /// Writes many experiments in one batch with one flush (imports, benchmarks).
    pub fn import_experiments(&self, experiments: &[Experiment]) -> StoreResult<()> {
        // Index entries of unfinished ones first, then the records, then the
        // removals: the index stays a superset of the unfinished records.
        let mut records = sled::Batch::default();
        let mut entries = sled::Batch::default();
        let mut removals = sled::Batch::default();
        let mut highest = 0;
        for e in experiments {
            let key = e.id.to_be_bytes();
            records.insert(&key, encode(EXPERIMENTS_TREE, e)?);
            if e.state.is_finished() {
                removals.remove(&key);
            } else {
                entries.insert(&key, &[]);
            }
            highest = highest.max(e.id);
        }
        let _one_writer = self
            .experiment_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.t()?.active.apply_batch(entries)?;
        self.t()?.experiments.apply_batch(records)?;
        self.t()?.active.apply_batch(removals)?;
        self.t()?
            .meta
            .update_and_fetch(NEXT_EXPERIMENT_KEY, |old| {
                Some(counter(old).max(highest).to_be_bytes().to_vec())
            })?;
        self.flush()?;
        for e in experiments {
            self.cache_experiment(e);
        }
        Ok(())
    }

    /// One experiment (an unfinished one from the cache, undecoded).
    pub fn experiment(&self, id: u64) -> StoreResult<Option<Experiment>> {
        let cached = self
            .active_cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        self.t()?
            .experiments
            .get(id.to_be_bytes())?
            .map(|v| decode(EXPERIMENTS_TREE, &v))
            .transpose()
    }

    /// Runs `f` over the unfinished experiments (by id) without copying them.
    pub fn with_active<R>(
        &self,
        f: impl FnOnce(&std::collections::BTreeMap<u64, Experiment>) -> R,
    ) -> R {
        let cache = self.active_cache.read().unwrap_or_else(|e| e.into_inner());
        f(&cache)
    }

    /// Unfinished experiments (queued, starting, running), oldest first.
    pub fn active_experiments(&self) -> StoreResult<Vec<Experiment>> {
        let cache = self.active_cache.read().unwrap_or_else(|e| e.into_inner());
        Ok(cache.values().cloned().collect())
    }

    /// Walks experiments newest first from below `before` (exclusive) with
    /// point lookups (ids are dense; sled's reverse iteration is slow on large
    /// trees) until `visit` says stop.
    fn walk_newest(
        &self,
        before: Option<u64>,
        mut visit: impl FnMut(Experiment) -> bool,
    ) -> StoreResult<()> {
        let newest = self
            .t()?
            .meta
            .get(NEXT_EXPERIMENT_KEY)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let mut id = before
            .map(|b| b.saturating_sub(1))
            .unwrap_or(newest)
            .min(newest);
        while id > 0 {
            if let Some(value) = self.t()?.experiments.get(id.to_be_bytes())?
                && !visit(decode(EXPERIMENTS_TREE, &value)?)
            {
                break;
            }
            id -= 1;
        }
        Ok(())
    }

    /// Experiments newest first, starting below `before` (exclusive), keeping
    /// those `keep` accepts, at most `limit`.
    pub fn experiments_page(
        &self,
        before: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&Experiment) -> bool,
    ) -> StoreResult<Vec<Experiment>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.walk_newest(before, |e| {
            if keep(&e) {
                out.push(e);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Visits the experiments submitted at or after `since`, newest first,
    /// at most `limit`, one at a time (none is kept): the walk stops at the
    /// first older one (ids grow with time).
    pub fn for_each_since(
        &self,
        since: i64,
        limit: usize,
        mut visit: impl FnMut(&Experiment),
    ) -> StoreResult<()> {
        let mut seen = 0;
        self.walk_newest(None, |e| {
            if e.submitted_at < since || seen >= limit {
                return false;
            }
            seen += 1;
            visit(&e);
            true
        })
    }

    /// A user's quota (default: unlimited).
    pub fn quota(&self, user: &str) -> StoreResult<Quota> {
        Ok(self
            .t()?
            .quotas
            .get(user.as_bytes())?
            .map(|v| decode(QUOTAS_TREE, &v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every quota that was set.
    pub fn quotas(&self) -> StoreResult<Vec<(String, Quota)>> {
        self.t()?
            .quotas
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(QUOTAS_TREE, &v)?,
                ))
            })
            .collect()
    }

    /// Sets a user's quota, durably.
    pub fn put_quota(&self, user: &str, quota: &Quota) -> StoreResult<()> {
        self.t()?
            .quotas
            .insert(user.as_bytes(), encode(QUOTAS_TREE, quota)?)?;
        self.flush()
    }

    /// Whether `project` was marked private.
    pub fn project_is_private(&self, project: &str) -> StoreResult<bool> {
        Ok(self
            .t()?
            .projects
            .get(project.as_bytes())?
            .map(|v| decode::<ProjectRecord>(PROJECTS_TREE, &v))
            .transpose()?
            .is_some_and(|p| p.private))
    }

    /// The projects marked private.
    pub fn private_projects(&self) -> StoreResult<std::collections::HashSet<String>> {
        let mut private = std::collections::HashSet::new();
        for entry in self.t()?.projects.iter() {
            let (k, v) = entry?;
            if decode::<ProjectRecord>(PROJECTS_TREE, &v)?.private {
                private.insert(String::from_utf8_lossy(&k).into_owned());
            }
        }
        Ok(private)
    }

    /// Marks `project` private or not (not flushed: the audit entry that
    /// follows flushes both).
    pub fn set_project_private(&self, project: &str, private: bool) -> StoreResult<()> {
        self.t()?.projects.insert(
            project.as_bytes(),
            encode(PROJECTS_TREE, &ProjectRecord { private })?,
        )?;
        Ok(())
    }
}

/// The experiment counter as stored (0 before the first).
fn counter(stored: Option<&[u8]>) -> u64 {
    stored
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
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

/// What is set for a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProjectRecord {
    /// Its experiments' output and commands are for their owners and admins.
    private: bool,
}

/// Usage buckets: keys are `subject 0x00 start(u64 BE)`, values a compact
/// binary record (see [`codec::encode_bucket`]), since they are the bulk of the
/// data (a minute per subject per minute).
impl Store {
    fn usage_tree(trees: &Trees, resolution: i64) -> StoreResult<&sled::Tree> {
        match resolution {
            60 => Ok(&trees.usage_1m),
            3600 => Ok(&trees.usage_1h),
            other => Err(StoreError::Corrupt {
                tree: USAGE_1M_TREE,
                reason: format!("no usage level of {other} s"),
            }),
        }
    }

    /// Stores a closed bucket of `subject` (not flushed: losing the last
    /// second of statistics in a crash is acceptable, unlike a state change).
    pub fn put_usage_bucket(&self, subject: &str, closed: &ClosedBucket) -> StoreResult<()> {
        let trees = self.t()?;
        let tree = Self::usage_tree(&trees, closed.resolution)?;
        tree.insert(
            usage_key(subject, closed.start),
            codec::encode_bucket(&closed.bucket).as_slice(),
        )?;
        Ok(())
    }

    /// Buckets of `subject` at `resolution` starting at or after `since`, oldest first.
    pub fn usage_buckets(
        &self,
        resolution: i64,
        subject: &str,
        since: i64,
    ) -> StoreResult<Vec<(i64, Bucket)>> {
        let trees = self.t()?;
        let tree = Self::usage_tree(&trees, resolution)?;
        let end = usage_key(subject, i64::MAX);
        tree.range(usage_key(subject, since.max(0))..=end)
            .map(|entry| {
                let (key, value) = entry?;
                let start = key
                    .len()
                    .checked_sub(8)
                    .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
                    .map(|b| u64::from_be_bytes(b) as i64)
                    .ok_or_else(|| StoreError::Corrupt {
                        tree: USAGE_1M_TREE,
                        reason: "short usage key".into(),
                    })?;
                Ok((start, codec::decode_bucket(&value)?))
            })
            .collect()
    }

    /// Subjects that have buckets at `resolution`.
    pub fn usage_subjects(&self, resolution: i64) -> StoreResult<Vec<String>> {
        let trees = self.t()?;
        let tree = Self::usage_tree(&trees, resolution)?;
        let mut subjects = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let next = tree.range(from.clone()..).next().transpose()?;
            let Some((key, _)) = next else { break };
            let Some(end) = key.iter().position(|&b| b == 0) else {
                break;
            };
            let subject = String::from_utf8_lossy(&key[..end]).into_owned();
            // Jump past every key of this subject: subject 0x01 sorts after subject 0x00 ….
            from = key[..end].to_vec();
            from.push(1);
            subjects.push(subject);
        }
        Ok(subjects)
    }

    /// Deletes buckets at `resolution` that started before `before`.
    pub fn prune_usage(&self, resolution: i64, before: i64) -> StoreResult<usize> {
        let trees = self.t()?;
        let tree = Self::usage_tree(&trees, resolution)?;
        let mut removed = 0;
        for subject in self.usage_subjects(resolution)? {
            let stale: Vec<sled::IVec> = tree
                .range(usage_key(&subject, 0)..usage_key(&subject, before.max(0)))
                .keys()
                .collect::<Result<_, _>>()?;
            for key in stale {
                tree.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(self.t()?.db.size_on_disk()?)
    }
}

/// The unfinished experiments named by the `active` index. Entries whose
/// record is missing (a submission cut short) or already finished (a crash
/// between the record and the index update) are removed from the index.
fn load_active(
    experiments: &sled::Tree,
    active: &sled::Tree,
) -> StoreResult<std::collections::BTreeMap<u64, Experiment>> {
    let mut cache = std::collections::BTreeMap::new();
    let mut stale = Vec::new();
    for key in active.iter().keys() {
        let key = key?;
        match experiments.get(&key)? {
            Some(value) => {
                let e: Experiment = decode(EXPERIMENTS_TREE, &value)?;
                if e.state.is_finished() {
                    stale.push(key);
                } else {
                    cache.insert(e.id, e);
                }
            }
            None => stale.push(key),
        }
    }
    if !stale.is_empty() {
        for key in stale {
            active.remove(key)?;
        }
        active.flush()?;
    }
    Ok(cache)
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

fn usage_key(subject: &str, start: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 9);
    key.extend_from_slice(subject.as_bytes());
    key.push(0);
    key.extend_from_slice(&(start.max(0) as u64).to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn alice() -> User {
        User {
            name: "alice".into(),
            role: Role::Member,
            unix_user: Some("alice".into()),
            system_account_allowed: false,
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

#[cfg(test)]
mod usage_tests {
    use super::*;
    use crate::monitor::Usage;

    fn bucket(v: f64) -> Bucket {
        let mut b = Bucket::default();
        b.add(Usage {
            memory_bytes: v,
            ..Usage::default()
        });
        b
    }

    #[test]
    fn usage_buckets_round_trip_by_subject_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for (subject, start, v) in [
            ("u/a", 60, 1.0),
            ("u/a", 120, 2.0),
            ("u/ab", 60, 9.0),
            ("host", 60, 5.0),
        ] {
            store
                .put_usage_bucket(
                    subject,
                    &ClosedBucket {
                        resolution: 60,
                        start,
                        bucket: bucket(v),
                    },
                )
                .expect("put");
        }
        let a = store.usage_buckets(60, "u/a", 0).expect("read");
        assert_eq!(a.len(), 2);
        assert_eq!(a[1], (120, bucket(2.0)));
        assert_eq!(store.usage_buckets(60, "u/a", 100).expect("read").len(), 1);
        assert_eq!(
            store.usage_subjects(60).expect("subjects"),
            vec!["host".to_string(), "u/a".into(), "u/ab".into()]
        );
        assert_eq!(store.prune_usage(60, 100).expect("prune"), 3);
        assert_eq!(store.usage_buckets(60, "u/a", 0).expect("read").len(), 1);
    }
}

#[cfg(test)]
mod experiment_tests {
    use super::*;
    use crate::model::{CommandLine, ExperimentSpec, Outcome, ResourceUse, Resources, State};

    fn experiment(id: u64, state: State) -> Experiment {
        Experiment {
            id,
            owner: "a".into(),
            unix_user: "a".into(),
            spec: ExperimentSpec::new(
                CommandLine::Argv(vec!["true".into()]),
                "/tmp".into(),
                Resources {
                    cpus: 1.0,
                    memory_bytes: 1,
                    gpus: 0,
                    time_limit_secs: 1,
                },
            ),
            submitted_at: id as i64,
            state,
            transitions: Vec::new(),
            host: "h".into(),
            backend: "local".into(),
            usage: ResourceUse::default(),
        }
    }

    fn ids(experiments: &[Experiment]) -> Vec<u64> {
        experiments.iter().map(|e| e.id).collect()
    }

    #[test]
    fn an_update_decides_on_the_state_it_writes_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let id = store.next_experiment_id().expect("id");
        store
            .put_experiment(&experiment(id, State::Queued))
            .expect("put");
        // A change that refuses writes nothing.
        let refused = store.update_experiment(id, |e| {
            e.state = State::Starting { gpus: Vec::new() };
            Err::<(), _>(StoreError::Corrupt {
                tree: EXPERIMENTS_TREE,
                reason: "refused".into(),
            })
        });
        assert!(refused.is_err());
        assert_eq!(
            store.experiment(id).expect("read").map(|e| e.state),
            Some(State::Queued)
        );
        // One that applies is read back, from the cache and from disk.
        let seen = store.update_experiment(id, |e| {
            let before = e.state.clone();
            e.state = State::Starting { gpus: Vec::new() };
            Ok::<_, StoreError>(before)
        });
        assert_eq!(seen.expect("update"), Some(State::Queued));
        let starting = Some(State::Starting { gpus: Vec::new() });
        assert_eq!(
            store.experiment(id).expect("read").map(|e| e.state),
            starting
        );
        store.flush().expect("flush");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            store.experiment(id).expect("read").map(|e| e.state),
            starting
        );
        // No such experiment: nothing to change.
        let none = store.update_experiment(id + 1, |_| Ok::<_, StoreError>(()));
        assert_eq!(none.expect("update"), None);
    }

    #[test]
    fn active_index_follows_states_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let a = store.next_experiment_id().expect("id");
            let b = store.next_experiment_id().expect("id");
            store
                .put_experiment(&experiment(a, State::Queued))
                .expect("put");
            store
                .put_experiment(&experiment(b, State::Queued))
                .expect("put");
            let done = State::Finished {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                signal: None,
                stop: None,
                started_at: None,
                ended_at: 1,
            };
            store.put_experiment(&experiment(a, done)).expect("finish");
            assert_eq!(ids(&store.active_experiments().expect("active")), vec![b]);
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(ids(&store.active_experiments().expect("active")), vec![2]);
        let page = store.experiments_page(None, 10, |_| true).expect("page");
        assert_eq!(ids(&page), vec![2, 1]);
        assert_eq!(store.next_experiment_id().expect("id"), 3);
    }

    #[test]
    fn concurrent_writers_of_one_experiment_keep_it_indexed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let done = State::Finished {
            outcome: Outcome::Cancelled,
            exit_code: None,
            signal: None,
            stop: None,
            started_at: None,
            ended_at: 1,
        };
        // Each round, two writers (queued, finished) start together; the
        // index must then match whichever record was written last.
        for round in 0..1000 {
            let start = std::sync::Arc::new(std::sync::Barrier::new(2));
            let writers: Vec<_> = [State::Queued, done.clone()]
                .into_iter()
                .map(|state| {
                    let (store, start) = (store.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        store
                            .stage_experiment(&experiment(1, state))
                            .expect("write");
                    })
                })
                .collect();
            for w in writers {
                w.join().expect("writer");
            }
            let record = store.experiment(1).expect("read").expect("record");
            let indexed = store
                .t()
                .expect("open")
                .active
                .contains_key(1u64.to_be_bytes())
                .expect("index");
            assert_eq!(
                indexed,
                !record.state.is_finished(),
                "round {round}: {:?}",
                record.state
            );
            let cached = store.active_experiments().expect("cache").len() == 1;
            assert_eq!(cached, indexed, "round {round}: cache");
        }
    }

    #[test]
    fn index_entries_left_by_a_crash_are_dropped_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let done = State::Finished {
            outcome: Outcome::Failed,
            exit_code: Some(1),
            signal: None,
            stop: None,
            started_at: None,
            ended_at: 1,
        };
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .put_experiment(&experiment(1, State::Queued))
                .expect("put");
            store.put_experiment(&experiment(2, done)).expect("put");
            // As if cut short: 2 finished but its entry not yet removed, and
            // 3's entry written but not its record.
            for id in [2u64, 3] {
                store
                    .t()
                    .expect("open")
                    .active
                    .insert(id.to_be_bytes(), &[])
                    .expect("entry");
            }
            store.flush().expect("flush");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(ids(&store.active_experiments().expect("active")), vec![1]);
        let entries: Vec<_> = store
            .t()
            .expect("open")
            .active
            .iter()
            .keys()
            .map(|k| k.expect("key"))
            .collect();
        assert_eq!(entries, vec![sled::IVec::from(&1u64.to_be_bytes())]);
        assert!(store.experiment(2).expect("read").is_some(), "history kept");
    }
}
