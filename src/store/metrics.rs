//! Experiments' metrics: `metrics` maps `id (u64 BE) name 0x00 source
//! offset (u64 BE) index (u16 BE)` to a value, its step and when it was
//! read (binary: f64, u64 with `u64::MAX` for none, i64); `metrics_read`
//! maps `id source` to how far that source was read (`metrics_read.rs`). Keys made from where
//! a value was read make reading a source again idempotent.

use super::metrics_read::StoredRead;
use super::{METRICS_READ_TREE, Store, StoreError, StoreResult};
use crate::model::{MetricSample, MetricSource, MetricsRead};

/// Length of an encoded value: value, step, time.
const VALUE_LEN: usize = 24;

fn sample_key(id: u64, s: &MetricSample) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + s.name.len() + 1 + 1 + 8 + 2);
    key.extend_from_slice(&id.to_be_bytes());
    key.extend_from_slice(s.name.as_bytes());
    key.push(0);
    key.push(s.source.tag());
    key.extend_from_slice(&s.offset.to_be_bytes());
    key.extend_from_slice(&s.index.to_be_bytes());
    key
}

fn read_key(id: u64, source: MetricSource) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8] = source.tag();
    key
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt {
        tree: "metrics",
        reason: reason.into(),
    }
}

impl Store {
    /// Stores `samples` of experiment `id` read from `source`, and how far
    /// it was read, in one batch (not flushed: metrics read again after a
    /// crash are the same keys).
    pub fn put_metrics(
        &self,
        id: u64,
        source: MetricSource,
        samples: &[MetricSample],
        read: &MetricsRead,
    ) -> StoreResult<()> {
        let trees = self.t()?;
        let mut batch = sled::Batch::default();
        for s in samples {
            let mut value = Vec::with_capacity(VALUE_LEN);
            value.extend_from_slice(&s.value.to_be_bytes());
            value.extend_from_slice(&s.step.unwrap_or(u64::MAX).to_be_bytes());
            value.extend_from_slice(&s.at.to_be_bytes());
            batch.insert(sample_key(id, s), value);
        }
        trees.metrics.apply_batch(batch)?;
        trees.metrics_read.insert(
            read_key(id, source),
            trees
                .dictionaries
                .encode_packed(METRICS_READ_TREE, &StoredRead::from(read))?,
        )?;
        Ok(())
    }

    /// How far `source` of experiment `id` was read (from the start if never).
    pub fn metrics_read(&self, id: u64, source: MetricSource) -> StoreResult<MetricsRead> {
        let trees = self.t()?;
        match trees.metrics_read.get(read_key(id, source))? {
            Some(bytes) => Ok(trees
                .dictionaries
                .decode::<StoredRead>(METRICS_READ_TREE, &bytes)?
                .into()),
            None => Ok(MetricsRead::default()),
        }
    }

    /// Every stored value of experiment `id`, by name, then source and
    /// place in it.
    pub fn metrics(&self, id: u64) -> StoreResult<Vec<MetricSample>> {
        self.metrics_under(&id.to_be_bytes())
    }

    /// Every stored value of metric `name` of experiment `id`, by source
    /// and place.
    pub fn metric(&self, id: u64, name: &str) -> StoreResult<Vec<MetricSample>> {
        let mut prefix = id.to_be_bytes().to_vec();
        prefix.extend_from_slice(name.as_bytes());
        prefix.push(0);
        self.metrics_under(&prefix)
    }

    fn metrics_under(&self, prefix: &[u8]) -> StoreResult<Vec<MetricSample>> {
        let mut samples = Vec::new();
        for entry in self.t()?.metrics.scan_prefix(prefix) {
            let (key, value) = entry?;
            let rest = &key[8..];
            let zero = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| corrupt("a key without its name's end"))?;
            let (name, place) = (&rest[..zero], &rest[zero + 1..]);
            if place.len() != 11 || value.len() != VALUE_LEN {
                return Err(corrupt("a key or value of the wrong length"));
            }
            let source = match place[0] {
                b'o' => MetricSource::Stdout,
                b'm' => MetricSource::File,
                _ => return Err(corrupt("an unknown source")),
            };
            let u64_at = |bytes: &[u8]| {
                let mut b = [0u8; 8];
                b.copy_from_slice(bytes);
                b
            };
            let step = u64::from_be_bytes(u64_at(&value[8..16]));
            samples.push(MetricSample {
                name: String::from_utf8_lossy(name).into_owned(),
                value: f64::from_be_bytes(u64_at(&value[..8])),
                step: (step != u64::MAX).then_some(step),
                at: i64::from_be_bytes(u64_at(&value[16..24])),
                source,
                offset: u64::from_be_bytes(u64_at(&place[1..9])),
                index: u16::from_be_bytes([place[9], place[10]]),
            });
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, value: f64, offset: u64) -> MetricSample {
        MetricSample {
            name: name.into(),
            value,
            step: (offset > 0).then_some(offset),
            at: 1_700_000_000_000,
            source: MetricSource::Stdout,
            offset,
            index: 0,
        }
    }

    #[test]
    fn metrics_round_trip_and_reading_again_adds_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(
            store.metrics_read(7, MetricSource::Stdout).expect("read"),
            MetricsRead::default()
        );
        let samples = [
            sample("loss", 0.5, 0),
            sample("loss", 0.25, 20),
            sample("acc", 0.9, 20),
        ];
        let mut read = MetricsRead {
            offset: 40,
            malformed: 1,
            last_malformed: Some("loss: not a finite number".into()),
            ..MetricsRead::default()
        };
        read.summary
            .insert("loss".into(), crate::model::MetricSummary::of(0.25, 9));
        store
            .put_metrics(7, MetricSource::Stdout, &samples, &read)
            .expect("put");
        store
            .put_metrics(7, MetricSource::Stdout, &samples, &read)
            .expect("again");
        store
            .put_metrics(8, MetricSource::File, &[sample("other", 1.0, 0)], &read)
            .expect("another experiment");
        let stored = store.metrics(7).expect("metrics");
        assert_eq!(
            stored,
            vec![
                sample("acc", 0.9, 20),
                sample("loss", 0.5, 0),
                sample("loss", 0.25, 20)
            ]
        );
        assert_eq!(
            store.metrics_read(7, MetricSource::Stdout).expect("read"),
            read
        );
        // As an earlier build packed it: the summaries as objects.
        let earlier = super::super::codec::encode_packed(METRICS_READ_TREE, &read).expect("pack");
        store
            .t()
            .expect("trees")
            .metrics_read
            .insert(read_key(9, MetricSource::File), earlier)
            .expect("insert");
        assert_eq!(
            store.metrics_read(9, MetricSource::File).expect("read"),
            read
        );
    }
}
