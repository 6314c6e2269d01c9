//! What each finished run reserved and used, kept apart and compact for
//! the cost report: tree `run_costs_by_minute`, one item per minute of
//! ends (key: the minute, big-endian with the sign bit flipped), holding
//! each run that ended in it as a length-prefixed binary entry (id, end,
//! start, request, measured use, owner, project, GPU model; about 80
//! bytes). A report over a window reads the minutes from its start on,
//! without decoding whole records (1–2 KB packed). One item per minute
//! rather than per run: sled's overhead per item is larger than such an
//! entry (one item per run cost about 290 bytes on disk per experiment).
//!
//! Written with the finished record (entry first, as the other indexes),
//! by an atomic update of its minute that replaces an entry of the same
//! id; a store from before it gets it built when opened (once; `meta` key
//! `run_costs_m`).

use super::{EXPERIMENTS_TREE, Store, StoreResult, Trees};
use crate::model::{Experiment, State};

/// Marks a store whose run costs have been built.
const BUILT_KEY: &[u8] = b"run_costs_m";

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

    /// The key of its minute.
    fn minute(&self) -> [u8; 8] {
        minute_key(self.ended_at)
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(80 + self.owner.len());
        v.extend_from_slice(&self.id.to_be_bytes());
        v.extend_from_slice(&self.ended_at.to_be_bytes());
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

    fn decode(v: &[u8]) -> Option<RunCost> {
        let mut at = 0;
        let mut take = |n: usize| {
            let part = v.get(at..at + n)?;
            at += n;
            Some(part)
        };
        let u64_of = |b: &[u8]| b.try_into().ok().map(u64::from_be_bytes);
        let id = u64_of(take(8)?)?;
        let ended_at = u64_of(take(8)?)? as i64;
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

/// The key of the minute of `at`.
fn minute_key(at: i64) -> [u8; 8] {
    ((at.div_euclid(60) as u64) ^ SIGN).to_be_bytes()
}

/// The entries of a minute's item.
fn entries(bucket: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bucket;
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let entry = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(entry)
    })
}

/// Marks a deflated bucket (a raw one starts with an entry's length,
/// whose first byte is 0 for any entry under 16 MiB).
const DEFLATED: u8 = 0xdf;

/// Most bytes a bucket inflates to (a damaged one reads as empty beyond).
const MAX_BUCKET: u64 = 16 << 20;

/// A minute's entries as stored: deflated (their owners, projects and
/// near-equal numbers repeat), or raw.
fn stored(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(vec![DEFLATED], flate2::Compression::fast());
    match encoder.write_all(raw).and_then(|()| encoder.finish()) {
        Ok(packed) => packed,
        Err(_) => raw.to_vec(),
    }
}

/// A stored bucket's raw entries.
fn raw(bucket: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::io::Read;
    match bucket.split_first() {
        Some((&DEFLATED, packed)) => {
            let mut out = Vec::new();
            let _ = flate2::read::DeflateDecoder::new(packed)
                .take(MAX_BUCKET)
                .read_to_end(&mut out);
            std::borrow::Cow::Owned(out)
        }
        _ => std::borrow::Cow::Borrowed(bucket),
    }
}

/// `bucket` (stored) with `adds` in place of any entry of the same ids.
fn merged(bucket: Option<&[u8]>, adds: &[Vec<u8>]) -> Vec<u8> {
    let id_of = |entry: &[u8]| entry.get(..8).map(<[u8]>::to_vec);
    let replaced: std::collections::HashSet<Vec<u8>> =
        adds.iter().filter_map(|a| id_of(a)).collect();
    let old = bucket.map(raw).unwrap_or_default();
    let mut out = Vec::new();
    let kept = entries(&old).filter(|e| id_of(e).is_none_or(|id| !replaced.contains(&id)));
    for entry in kept.chain(adds.iter().map(Vec::as_slice)) {
        out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        out.extend_from_slice(entry);
    }
    stored(&out)
}

/// The minute and entry of a finished run, if `e` is one that ran.
pub(super) fn entry(e: &Experiment) -> Option<([u8; 8], Vec<u8>)> {
    if !e.state.is_finished() {
        return None;
    }
    let cost = RunCost::of(e, 0)?;
    Some((cost.minute(), cost.encode()))
}

/// Adds `entries` (minute, entry) to `tree`, each minute updated at once.
pub(super) fn add(tree: &sled::Tree, entries: Vec<([u8; 8], Vec<u8>)>) -> StoreResult<()> {
    let mut by_minute: std::collections::BTreeMap<[u8; 8], Vec<Vec<u8>>> = Default::default();
    for (minute, entry) in entries {
        by_minute.entry(minute).or_default().push(entry);
    }
    for (minute, adds) in by_minute {
        tree.update_and_fetch(minute, |old| Some(merged(old, &adds)))?;
    }
    Ok(())
}

/// Builds the run costs of a store written before they existed.
pub(super) fn build_if_missing(trees: &Trees) -> StoreResult<()> {
    if trees.meta.get(BUILT_KEY)?.is_some() {
        return Ok(());
    }
    let mut pending = Vec::new();
    let mut built = 0usize;
    for record in trees.experiments.iter() {
        let (_, value) = record?;
        let Ok(e) = trees
            .dictionaries
            .decode::<Experiment>(EXPERIMENTS_TREE, &value)
        else {
            // A damaged record is skipped here as everywhere.
            continue;
        };
        if let Some(found) = entry(&e) {
            pending.push(found);
            built += 1;
        }
        if pending.len() == 10_000 {
            add(&trees.run_costs, std::mem::take(&mut pending))?;
        }
    }
    add(&trees.run_costs, pending)?;
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
        for item in self.t()?.run_costs.range(minute_key(from)..) {
            let (_, bucket) = item?;
            let bucket = raw(&bucket);
            for cost in entries(&bucket).filter_map(RunCost::decode) {
                if cost.ended_at >= from && !visit(cost) {
                    return Ok(());
                }
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
            assert_eq!(RunCost::decode(&c.encode()), Some(c));
        }
        assert!(minute_key(-61) < minute_key(-5) && minute_key(-5) < minute_key(60));
        assert_eq!(minute_key(60), minute_key(119));
        assert_eq!(RunCost::decode(&[1, 2, 3]), None, "damaged");
        // A minute keeps one entry per run: a later end of the same run
        // takes the place of the earlier.
        let first = cost(7, 1_790_000_000, None);
        let again = cost(7, 1_790_000_010, Some("churn"));
        let other = cost(9, 1_790_000_020, None);
        let bucket = merged(None, &[first.encode(), other.encode()]);
        let bucket = merged(Some(&bucket), &[again.encode()]);
        assert_eq!(bucket[0], DEFLATED);
        let read: Vec<RunCost> = entries(&raw(&bucket)).filter_map(RunCost::decode).collect();
        assert_eq!(read, vec![other, again]);
        // A damaged bucket reads as no entries, never a panic.
        assert_eq!(entries(&raw(&[DEFLATED, 1, 2, 3])).count(), 0);
    }
}
