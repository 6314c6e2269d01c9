//! Usage statistics: closed buckets per subject, at two resolutions.

use super::{Store, StoreError, StoreResult, Trees, USAGE_1M_TREE, codec};
use crate::model::{Bucket, ClosedBucket};

/// Usage buckets: keys are `subject 0x00 start(u64 BE)`, values a compact
/// binary record (see `codec::encode_bucket`), since they are the bulk of the
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
    use crate::model::Usage;

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
