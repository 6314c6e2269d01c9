//! What each finished run reserved and used, kept apart and compact for
//! the cost report: tree `run_costs`, key `ended_at (BE, offset) id (BE)`,
//! a fixed binary value (times, request, measured use) followed by owner
//! and project. A report over a window reads the runs that ended in it or
//! after, without decoding whole records (about 60 bytes against 1–2 KB
//! packed).
//!
//! Written with the finished record (the same order as the other indexes:
//! entry first); a store from before it gets it built when opened (once;
//! `meta` key `run_costs`).

use super::codec::decode;
use super::{EXPERIMENTS_TREE, Store, StoreResult, Trees};
use crate::model::{Experiment, State};

/// Marks a store whose run costs have been built.
const BUILT_KEY: &[u8] = b"run_costs";

/// One run as the cost report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCost {
    /// Experiment id.
    pub id: u64,
    /// Its owner.
    pub owner: String,
    /// Its project, if any.
    pub project: Option<String>,
    /// When it started and ended (seconds since the epoch).
    pub started_at: i64,
    /// For a running one: now.
    pub ended_at: i64,
    /// CPU cores asked for.
    pub cpus: f64,
    /// Memory asked for, bytes.
    pub memory_bytes: u64,
    /// GPUs asked for.
    pub gpus: u32,
    /// CPU-seconds used.
    pub cpu_seconds: f64,
    /// GiB-hours of memory used (its mean where sampled, else its peak).
    pub used_gib_hours: f64,
    /// GPU-seconds used.
    pub gpu_seconds: f64,
    /// The model of its GPUs, where recorded.
    pub gpu_model: Option<String>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl RunCost {
    /// What `e` reserved and used up to `now`; `None` for one that never ran.
    pub fn of(e: &Experiment, now: i64) -> Option<RunCost> {
        let (started_at, ended_at) = match &e.state {
            State::Running { started_at, .. } => (*started_at, now),
            State::Finished {
                started_at: Some(start),
                ended_at,
                ..
            } => (*start, *ended_at),
            _ => return None,
        };
        let hours = ended_at.saturating_sub(started_at).max(0) as f64 / 3600.0;
        let u = &e.usage;
        let used_gib_hours = match &u.profile {
            Some(p) => p.memory_bytes.mean / GIB * p.seconds as f64 / 3600.0,
            None => u.peak_memory_bytes as f64 / GIB * hours,
        };
        let r = &e.spec.resources;
        Some(RunCost {
            id: e.id,
            owner: e.owner.clone(),
            project: e.spec.project.clone(),
            started_at,
            ended_at,
            cpus: r.cpus,
            memory_bytes: r.memory_bytes,
            gpus: r.gpus,
            cpu_seconds: u.cpu_seconds,
            used_gib_hours,
            gpu_seconds: u.gpu_seconds,
            gpu_model: u.gpu_model.clone(),
        })
    }

    fn key(&self) -> [u8; 16] {
        key(self.ended_at, self.id)
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.owner.len());
        v.extend_from_slice(&self.started_at.to_be_bytes());
        v.extend_from_slice(&self.cpus.to_be_bytes());
        v.extend_from_slice(&self.memory_bytes.to_be_bytes());
        v.extend_from_slice(&self.gpus.to_be_bytes());
        v.extend_from_slice(&self.cpu_seconds.to_be_bytes());
        v.extend_from_slice(&self.used_gib_hours.to_be_bytes());
        v.extend_from_slice(&self.gpu_seconds.to_be_bytes());
        for text in [
            Some(&self.owner),
            self.project.as_ref(),
            self.gpu_model.as_ref(),
        ] {
            match text {
                Some(t) => {
                    v.extend_from_slice(&(t.len() as u32).to_be_bytes());
                    v.extend_from_slice(t.as_bytes());
                }
                None => v.extend_from_slice(&u32::MAX.to_be_bytes()),
            }
        }
        v
    }

    fn decode(key: &[u8], v: &[u8]) -> Option<RunCost> {
        let mut at = 0;
        let mut take = |n: usize| {
            let part = v.get(at..at + n)?;
            at += n;
            Some(part)
        };
        let u64_of = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
        let started_at = u64_of(take(8)?)? as i64;
        let cpus = f64::from_bits(u64_of(take(8)?)?);
        let memory_bytes = u64_of(take(8)?)?;
        let gpus = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let cpu_seconds = f64::from_bits(u64_of(take(8)?)?);
        let used_gib_hours = f64::from_bits(u64_of(take(8)?)?);
        let gpu_seconds = f64::from_bits(u64_of(take(8)?)?);
        let mut text = || -> Option<Option<String>> {
            let len = u32::from_be_bytes(take(4)?.try_into().ok()?);
            if len == u32::MAX {
                return Some(None);
            }
            let bytes = take(len as usize)?;
            Some(Some(String::from_utf8_lossy(bytes).into_owned()))
        };
        let owner = text()??;
        let project = text()?;
        // Entries of the first builds end here.
        let gpu_model = text().flatten();
        let ended_at = (u64_of(key.get(..8)?)? ^ SIGN) as i64;
        let id = u64_of(key.get(8..16)?)?;
        Some(RunCost {
            id,
            owner,
            project,
            started_at,
            ended_at,
            cpus,
            memory_bytes,
            gpus,
            cpu_seconds,
            used_gib_hours,
            gpu_seconds,
            gpu_model,
        })
    }
}

/// Flips the sign bit, so that times order as their bytes do.
const SIGN: u64 = 1 << 63;

fn key(ended_at: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&((ended_at as u64) ^ SIGN).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The entry of a finished run, if `e` is one that ran.
pub(super) fn entry(e: &Experiment) -> Option<([u8; 16], Vec<u8>)> {
    if !e.state.is_finished() {
        return None;
    }
    let cost = RunCost::of(e, 0)?;
    Some((cost.key(), cost.encode()))
}

/// Builds the run costs of a store written before they existed.
pub(super) fn build_if_missing(trees: &Trees) -> StoreResult<()> {
    if trees.meta.get(BUILT_KEY)?.is_some() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    let (mut pending, mut built) = (0usize, 0usize);
    for record in trees.experiments.iter() {
        let (_, value) = record?;
        let Ok(e) = decode::<Experiment>(EXPERIMENTS_TREE, &value) else {
            // A damaged record is skipped here as everywhere.
            continue;
        };
        if let Some((k, v)) = entry(&e) {
            batch.insert(&k, v);
            pending += 1;
            built += 1;
        }
        if pending == 10_000 {
            trees.run_costs.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    trees.run_costs.apply_batch(batch)?;
    trees.meta.insert(BUILT_KEY, &[1])?;
    trees.db.flush()?;
    if built > 0 {
        tracing::info!("kept the costs of {built} finished runs apart");
    }
    Ok(())
}

impl Store {
    /// Visits the finished runs that ended at or after `from`, oldest end
    /// first, until `visit` says stop.
    pub fn walk_run_costs_from(
        &self,
        from: i64,
        mut visit: impl FnMut(RunCost) -> bool,
    ) -> StoreResult<()> {
        for item in self.t()?.run_costs.range(key(from, 0)..) {
            let (k, v) = item?;
            if let Some(cost) = RunCost::decode(&k, &v)
                && !visit(cost)
            {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_cost_reads_back_as_written_and_orders_by_its_end() {
        let cost = |id, ended_at, project: Option<&str>| RunCost {
            id,
            owner: "ana".into(),
            project: project.map(str::to_string),
            started_at: ended_at - 3600,
            ended_at,
            cpus: 2.5,
            memory_bytes: 8 << 30,
            gpus: 1,
            cpu_seconds: 4000.0,
            used_gib_hours: 3.25,
            gpu_seconds: 3600.0,
            gpu_model: project.map(|_| "NVIDIA H100 80GB HBM3".to_string()),
        };
        for c in [cost(7, 1_790_000_000, Some("churn")), cost(8, -5, None)] {
            assert_eq!(RunCost::decode(&c.key(), &c.encode()), Some(c));
        }
        assert!(key(-5, 9) < key(10, 1) && key(10, 1) < key(10, 2));
        assert_eq!(RunCost::decode(&key(1, 1), &[1, 2, 3]), None, "damaged");
    }
}
