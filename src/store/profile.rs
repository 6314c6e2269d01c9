//! Experiments' use over their runs: `experiment_use` maps `id (u64 BE)
//! start (i64 BE, as u64 with the sign bit flipped)` to a stretch (binary:
//! seconds u32, CPU cores f32, memory u64, GPU memory u64, big-endian).

use super::{Store, StoreError, StoreResult};
use crate::model::UseSample;

/// Length of an encoded stretch.
const SAMPLE_LEN: usize = 24;

fn key(id: u64, at: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    key
}

impl Store {
    /// Keeps a stretch of experiment `id`'s use (not flushed: a stretch
    /// lost to a crash is only missing from its chart).
    pub fn put_use_sample(&self, id: u64, s: &UseSample) -> StoreResult<()> {
        let mut value = [0u8; SAMPLE_LEN];
        value[..4].copy_from_slice(&s.secs.to_be_bytes());
        value[4..8].copy_from_slice(&s.cpu_cores.to_be_bytes());
        value[8..16].copy_from_slice(&s.memory_bytes.to_be_bytes());
        value[16..].copy_from_slice(&s.gpu_memory_bytes.to_be_bytes());
        self.t()?.experiment_use.insert(key(id, s.at), &value)?;
        Ok(())
    }

    /// Experiment `id`'s stretches, oldest first.
    pub fn use_samples(&self, id: u64) -> StoreResult<Vec<UseSample>> {
        let corrupt = || StoreError::Corrupt {
            tree: "experiment_use",
            reason: "a stretch of the wrong length".into(),
        };
        let mut samples = Vec::new();
        for entry in self.t()?.experiment_use.scan_prefix(id.to_be_bytes()) {
            let (k, v) = entry?;
            if k.len() != 16 || v.len() != SAMPLE_LEN {
                return Err(corrupt());
            }
            let at = u64::from_be_bytes(k[8..].try_into().map_err(|_| corrupt())?) ^ (1 << 63);
            samples.push(UseSample {
                at: at as i64,
                secs: u32::from_be_bytes(v[..4].try_into().map_err(|_| corrupt())?),
                cpu_cores: f32::from_be_bytes(v[4..8].try_into().map_err(|_| corrupt())?),
                memory_bytes: u64::from_be_bytes(v[8..16].try_into().map_err(|_| corrupt())?),
                gpu_memory_bytes: u64::from_be_bytes(v[16..].try_into().map_err(|_| corrupt())?),
            });
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_read_back_in_time_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let s = |at: i64, mem: u64| UseSample {
            at,
            secs: 1,
            cpu_cores: 1.5,
            memory_bytes: mem,
            gpu_memory_bytes: 7,
        };
        for sample in [
            s(1_796_000_002, 3),
            s(1_796_000_000, 1),
            s(1_796_000_001, 2),
        ] {
            store.put_use_sample(9, &sample).expect("put");
        }
        store.put_use_sample(10, &s(5, 99)).expect("put");
        let read = store.use_samples(9).expect("read");
        assert_eq!(
            read,
            vec![
                s(1_796_000_000, 1),
                s(1_796_000_001, 2),
                s(1_796_000_002, 3)
            ]
        );
        assert!(store.use_samples(11).expect("read").is_empty());
    }
}
