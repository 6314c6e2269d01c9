//! Secondary indexes of experiments: `experiments_by` holds a key
//! `kind value 0x00 id (u64 BE)` for each experiment's owner (`o`) and
//! project (`p`), neither of which changes after submission, so history
//! filtered by one of them reads only its experiments, newest first.
//!
//! An entry is written before its record (as the index of unfinished ones
//! is): after a crash an entry may name a missing record, which readers
//! skip, never the other way round. A store from before the index gets it
//! built when opened (once; `meta` key `indexed`).

use super::{EXPERIMENTS_TREE, Store, StoreResult, Trees};
use crate::model::Experiment;

/// Marks a store whose index has been built.
const INDEXED_KEY: &[u8] = b"indexed";

/// What an index entry is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexedBy {
    /// The owner.
    Owner,
    /// The project.
    Project,
}

impl IndexedBy {
    fn tag(self) -> u8 {
        match self {
            IndexedBy::Owner => b'o',
            IndexedBy::Project => b'p',
        }
    }
}

/// The prefix of `by value`'s entries.
fn prefix(by: IndexedBy, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 2);
    key.push(by.tag());
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

/// The index entries of `e`.
pub(super) fn entries(e: &Experiment) -> Vec<Vec<u8>> {
    let mut keys = Vec::with_capacity(2);
    let mut owner = prefix(IndexedBy::Owner, &e.owner);
    owner.extend_from_slice(&e.id.to_be_bytes());
    keys.push(owner);
    if let Some(project) = &e.spec.project {
        let mut key = prefix(IndexedBy::Project, project);
        key.extend_from_slice(&e.id.to_be_bytes());
        keys.push(key);
    }
    keys
}

/// Builds the index of a store written before it existed.
pub(super) fn build_if_missing(trees: &Trees) -> StoreResult<()> {
    if trees.meta.get(INDEXED_KEY)?.is_some() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let mut indexed = 0usize;
    for entry in trees.experiments.iter() {
        let (_, value) = entry?;
        let e: Experiment = trees.dictionaries.decode(EXPERIMENTS_TREE, &value)?;
        for key in entries(&e) {
            batch.insert(key, &[]);
        }
        pending += 1;
        indexed += 1;
        if pending == 10_000 {
            trees.index.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    trees.index.apply_batch(batch)?;
    trees.meta.insert(INDEXED_KEY, &[1])?;
    trees.db.flush()?;
    if indexed > 0 {
        tracing::info!("indexed {indexed} experiments by owner and project");
    }
    Ok(())
}

impl Store {
    /// Walks the experiments of `by value`, newest first from below `before`
    /// (exclusive), until `visit` says stop.
    pub fn walk_indexed_newest(
        &self,
        by: IndexedBy,
        value: &str,
        before: Option<u64>,
        mut visit: impl FnMut(Experiment) -> bool,
    ) -> StoreResult<()> {
        let trees = self.t()?;
        let start = prefix(by, value);
        let mut end = start.clone();
        end.extend_from_slice(&before.unwrap_or(u64::MAX).to_be_bytes());
        for entry in trees.index.range(start.clone()..end).rev() {
            let (key, _) = entry?;
            let Some(id) = key
                .get(start.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let Some(e) = self.walked_experiment(id)? else {
                continue;
            };
            if !visit(e) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CommandLine, ExperimentSpec, ResourceUse, Resources, State};

    fn experiment(id: u64, owner: &str, project: Option<&str>) -> Experiment {
        let mut spec = ExperimentSpec::new(
            CommandLine::Argv(vec!["true".into()]),
            "/tmp".into(),
            Resources {
                cpus: 1.0,
                memory_bytes: 1,
                gpus: 0,
                time_limit_secs: 1,
            },
        );
        spec.project = project.map(str::to_string);
        Experiment {
            id,
            owner: owner.into(),
            unix_user: owner.into(),
            spec,
            submitted_at: id as i64,
            state: State::Queued,
            transitions: Vec::new(),
            host: "h".into(),
            backend: "local".into(),
            usage: ResourceUse::default(),
        }
    }

    fn walked(store: &Store, by: IndexedBy, value: &str, before: Option<u64>) -> Vec<u64> {
        let mut ids = Vec::new();
        store
            .walk_indexed_newest(by, value, before, |e| {
                ids.push(e.id);
                true
            })
            .expect("walk");
        ids
    }

    #[test]
    fn experiments_are_found_by_owner_and_project_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for (id, owner, project) in [
            (1, "ana", Some("churn")),
            (2, "bob", Some("churn")),
            (3, "ana", None),
            (4, "ana", Some("fraud")),
            (5, "anabel", Some("churn2")),
        ] {
            store
                .put_experiment(&experiment(id, owner, project))
                .expect("put");
        }
        // A state change writes no second entry.
        let mut again = experiment(4, "ana", Some("fraud"));
        again.state = State::Starting { gpus: Vec::new() };
        store.put_experiment(&again).expect("put");
        assert_eq!(walked(&store, IndexedBy::Owner, "ana", None), [4, 3, 1]);
        assert_eq!(walked(&store, IndexedBy::Owner, "ana", Some(4)), [3, 1]);
        assert_eq!(walked(&store, IndexedBy::Project, "churn", None), [2, 1]);
        assert!(walked(&store, IndexedBy::Project, "nope", None).is_empty());
        store
            .import_experiments(&[experiment(9, "bob", Some("churn"))])
            .expect("import");
        assert_eq!(walked(&store, IndexedBy::Project, "churn", None), [9, 2, 1]);
    }

    #[test]
    fn a_store_from_before_the_index_gets_it_when_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            for id in 1..=3 {
                store
                    .put_experiment(&experiment(id, "ana", Some("churn")))
                    .expect("put");
            }
            // As an older build left it: no index, no mark.
            let trees = store.t().expect("open");
            trees.index.clear().expect("clear");
            trees.meta.remove(INDEXED_KEY).expect("unmark");
            store.flush().expect("flush");
            assert!(walked(&store, IndexedBy::Owner, "ana", None).is_empty());
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(walked(&store, IndexedBy::Owner, "ana", None), [3, 2, 1]);
        assert_eq!(walked(&store, IndexedBy::Project, "churn", Some(3)), [2, 1]);
    }
}
