//! Experiments, the index of the unfinished ones, and projects.

use super::codec::{decode, encode};
use super::{
    EXPERIMENTS_TREE, META_TREE, NEXT_EXPERIMENT_KEY, PROJECTS_TREE, Store, StoreError,
    StoreResult, Trees,
};
use crate::model::Experiment;
use serde::{Deserialize, Serialize};

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
        let value = record_bytes(&*self.t()?, experiment)?;
        if !self.t()?.experiments.contains_key(key)? {
            for entry in super::indexes::entries(experiment) {
                self.t()?.index.insert(entry, &[])?;
            }
        }
        if experiment.state.is_finished() {
            if let Some(found) = super::run_costs::entry(experiment) {
                super::run_costs::add(&self.t()?.run_costs, vec![found])?;
            }
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
        let trees = self.t()?;
        let stored = trees.experiments.get(experiment.id.to_be_bytes()).map(|v| {
            v.and_then(|v| {
                trees
                    .dictionaries
                    .decode::<Experiment>(EXPERIMENTS_TREE, &v)
                    .ok()
            })
        });
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
        let mut indexed = sled::Batch::default();
        let mut costs = Vec::new();
        let mut highest = 0;
        let trees = self.t()?;
        for e in experiments {
            costs.extend(super::run_costs::entry(e));
            for entry in super::indexes::entries(e) {
                indexed.insert(entry, &[]);
            }
            let key = e.id.to_be_bytes();
            records.insert(&key, record_bytes(&trees, e)?);
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
        self.t()?.index.apply_batch(indexed)?;
        super::run_costs::add(&self.t()?.run_costs, costs)?;
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
        let trees = self.t()?;
        trees
            .experiments
            .get(id.to_be_bytes())?
            .map(|v| trees.dictionaries.decode(EXPERIMENTS_TREE, &v))
            .transpose()
    }

    /// Experiment `id` for a walk of many: one whose record cannot be read
    /// is skipped, with a warning naming it, so that one damaged record
    /// does not stop every listing and search that reaches it.
    pub(super) fn walked_experiment(&self, id: u64) -> StoreResult<Option<Experiment>> {
        match self.experiment(id) {
            Err(StoreError::Corrupt { .. }) => {
                self.warn_unreadable(id);
                Ok(None)
            }
            other => other,
        }
    }

    /// Says once per run of the daemon that experiment `id`'s record cannot
    /// be read (not what it holds: a record's text may be a secret).
    fn warn_unreadable(&self, id: u64) {
        static WARNED: std::sync::Mutex<Option<std::collections::HashSet<u64>>> =
            std::sync::Mutex::new(None);
        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if warned.get_or_insert_with(Default::default).insert(id) {
            tracing::warn!(id, "skipped experiment {id}: its record cannot be read");
        }
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
    pub fn walk_newest(
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
            let trees = self.t()?;
            if let Some(value) = trees.experiments.get(id.to_be_bytes())? {
                match trees.dictionaries.decode(EXPERIMENTS_TREE, &value) {
                    Ok(e) => {
                        if !visit(e) {
                            break;
                        }
                    }
                    // One damaged record stops no walk (as `walked_experiment`).
                    Err(StoreError::Corrupt { .. }) => self.warn_unreadable(id),
                    Err(e) => return Err(e),
                }
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

    /// Visits every experiment, newest first, one at a time (none is kept).
    pub fn for_each_experiment(&self, mut visit: impl FnMut(&Experiment)) -> StoreResult<()> {
        self.walk_newest(None, |e| {
            visit(&e);
            true
        })
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

/// What is set for a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProjectRecord {
    /// Its experiments' output and commands are for their owners and admins.
    private: bool,
}

/// The unfinished experiments named by the `active` index. Entries whose
/// record is missing (a submission cut short) or already finished (a crash
/// between the record and the index update) are removed from the index.
pub(super) fn load_active(
    trees: &Trees,
) -> StoreResult<std::collections::BTreeMap<u64, Experiment>> {
    let (experiments, active) = (&trees.experiments, &trees.active);
    let mut cache = std::collections::BTreeMap::new();
    let mut stale = Vec::new();
    for key in active.iter().keys() {
        let key = key?;
        match experiments.get(&key)? {
            Some(value) => {
                let e: Experiment = trees.dictionaries.decode(EXPERIMENTS_TREE, &value)?;
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

/// An experiment's stored bytes: packed once it is finished and written for
/// the last time, plain JSON while it still changes (cheaper to write at
/// each of its transitions).
fn record_bytes(trees: &Trees, experiment: &Experiment) -> StoreResult<Vec<u8>> {
    if experiment.state.is_finished() {
        trees
            .dictionaries
            .encode_packed(EXPERIMENTS_TREE, experiment)
    } else {
        encode(EXPERIMENTS_TREE, experiment)
    }
}

#[cfg(test)]
mod tests {
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
    fn experiments_packed_with_the_stores_own_dictionary_read_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let done = |id: u64| {
            let mut e = experiment(
                id,
                State::Finished {
                    outcome: Outcome::Succeeded,
                    exit_code: Some(0),
                    signal: None,
                    stop: None,
                    started_at: Some(id as i64),
                    ended_at: id as i64 + 60,
                },
            );
            e.spec.name = Some(format!("sweep-{id}"));
            e
        };
        let all: Vec<Experiment> = (1..=1500).map(done).collect();
        {
            let store = Store::open(dir.path()).expect("open");
            store.import_experiments(&all[..1200]).expect("import");
            for e in &all[1200..] {
                assert_eq!(store.next_experiment_id().expect("id"), e.id);
                store.put_experiment(e).expect("put");
            }
            let trees = store.t().expect("trees");
            let last = trees.experiments.get(1500u64.to_be_bytes()).expect("get");
            assert_eq!(
                last.expect("stored").first(),
                Some(&super::super::codec::PACKED_STORED)
            );
        }
        let store = Store::open(dir.path()).expect("reopen");
        for e in [&all[0], &all[1199], &all[1499]] {
            assert_eq!(store.experiment(e.id).expect("read").as_ref(), Some(e));
        }
        let mut read = 0;
        store.for_each_experiment(|_| read += 1).expect("walk");
        assert_eq!(read, 1500);
    }

    #[test]
    fn a_damaged_record_is_skipped_by_walks_and_reported_where_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let done = State::Finished {
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            signal: None,
            stop: None,
            started_at: None,
            ended_at: 1,
        };
        for _ in 0..3 {
            let id = store.next_experiment_id().expect("id");
            store
                .put_experiment(&experiment(id, done.clone()))
                .expect("put");
        }
        // Packed with a dictionary no build has.
        store
            .t()
            .expect("trees")
            .experiments
            .insert(2u64.to_be_bytes(), &[0x01, 0x09, 0x00][..])
            .expect("damage");
        let mut seen = Vec::new();
        store
            .walk_newest(None, |e| {
                seen.push(e.id);
                true
            })
            .expect("walk");
        assert_eq!(seen, vec![3, 1]);
        assert!(matches!(
            store.experiment(2),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(store.walked_experiment(2).expect("skipped"), None);
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
