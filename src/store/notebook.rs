//! Comments and outcomes: `comments` maps `experiment (u64 BE) comment id
//! (u64 BE)` to a comment (ids from sled's id generator);
//! `conclusions` maps an experiment id to the outcome given to it.

use super::codec::{decode, encode};
use super::{COMMENTS_TREE, CONCLUSIONS_TREE, Store, StoreResult};
use crate::model::{Comment, Conclusion};

fn comment_key(experiment: u64, id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&experiment.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

impl Store {
    /// A new comment id (unique, growing).
    pub fn next_comment_id(&self) -> StoreResult<u64> {
        Ok(self.t()?.db.generate_id()? + 1)
    }

    /// Writes `comment` (new or edited), durably.
    pub fn put_comment(&self, comment: &Comment) -> StoreResult<()> {
        self.t()?.comments.insert(
            comment_key(comment.experiment, comment.id),
            encode(COMMENTS_TREE, comment)?,
        )?;
        self.flush()
    }

    /// Removes comment `id` of `experiment`, durably.
    pub fn remove_comment(&self, experiment: u64, id: u64) -> StoreResult<()> {
        self.t()?.comments.remove(comment_key(experiment, id))?;
        self.flush()
    }

    /// The comments on `experiment`, oldest first.
    pub fn comments(&self, experiment: u64) -> StoreResult<Vec<Comment>> {
        self.t()?
            .comments
            .scan_prefix(experiment.to_be_bytes())
            .map(|entry| decode(COMMENTS_TREE, &entry?.1))
            .collect()
    }

    /// Sets (or with `None` clears) the outcome of `experiment`, durably.
    pub fn put_conclusion(
        &self,
        experiment: u64,
        conclusion: Option<&Conclusion>,
    ) -> StoreResult<()> {
        let key = experiment.to_be_bytes();
        match conclusion {
            Some(c) => {
                self.t()?
                    .conclusions
                    .insert(key, encode(CONCLUSIONS_TREE, c)?)?;
            }
            None => {
                self.t()?.conclusions.remove(key)?;
            }
        }
        self.flush()
    }

    /// Writes many outcomes with one flush (imports, benchmarks).
    pub fn import_conclusions(&self, conclusions: &[(u64, Conclusion)]) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for (id, c) in conclusions {
            batch.insert(&id.to_be_bytes(), encode(CONCLUSIONS_TREE, c)?);
        }
        self.t()?.conclusions.apply_batch(batch)?;
        self.flush()
    }

    /// The outcome given to `experiment`, if any.
    pub fn conclusion(&self, experiment: u64) -> StoreResult<Option<Conclusion>> {
        self.t()?
            .conclusions
            .get(experiment.to_be_bytes())?
            .map(|bytes| decode(CONCLUSIONS_TREE, &bytes))
            .transpose()
    }
}

impl Store {
    /// Comments written at or after `since`, on any experiment.
    pub fn comments_since(&self, since: i64) -> StoreResult<Vec<Comment>> {
        let mut found = Vec::new();
        for entry in self.t()?.comments.iter() {
            let comment: Comment = decode(COMMENTS_TREE, &entry?.1)?;
            if comment.at >= since {
                found.push(comment);
            }
        }
        Ok(found)
    }

    /// Outcomes given at or after `since`, with their experiments' ids.
    pub fn conclusions_since(&self, since: i64) -> StoreResult<Vec<(u64, Conclusion)>> {
        let mut found = Vec::new();
        for entry in self.t()?.conclusions.iter() {
            let (key, value) = entry?;
            let conclusion: Conclusion = decode(CONCLUSIONS_TREE, &value)?;
            let mut id = [0u8; 8];
            if key.len() == 8 && conclusion.at >= since {
                id.copy_from_slice(&key);
                found.push((u64::from_be_bytes(id), conclusion));
            }
        }
        Ok(found)
    }
}

impl Store {
    /// Walks the experiments given an outcome (`verdict`, when given),
    /// newest first from below `before` (exclusive), until `visit` says
    /// stop: the outcomes are their own index.
    pub fn walk_concluded_newest(
        &self,
        before: Option<u64>,
        verdict: Option<&str>,
        mut visit: impl FnMut(crate::model::Experiment) -> bool,
    ) -> StoreResult<()> {
        let end = before.unwrap_or(u64::MAX).to_be_bytes();
        for entry in self.t()?.conclusions.range(..end).rev() {
            let (key, value) = entry?;
            let Ok(id) = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes) else {
                continue;
            };
            // Another verdict than the one asked: its record is not read.
            if let Some(wanted) = verdict {
                let c: Conclusion = decode(CONCLUSIONS_TREE, &value)?;
                if c.verdict.name() != wanted {
                    continue;
                }
            }
            if let Some(e) = self.walked_experiment(id)?
                && !visit(e)
            {
                break;
            }
        }
        Ok(())
    }

    /// Every outcome given, by experiment id.
    pub fn conclusions(&self) -> StoreResult<std::collections::HashMap<u64, Conclusion>> {
        Ok(self.conclusions_since(i64::MIN)?.into_iter().collect())
    }
}
