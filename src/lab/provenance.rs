//! Provenance: what the runner captured of an experiment's code, data and
//! environment (see [`crate::provenance`]), kept by the store and given to
//! readers under the read rule of its output (a diff is code, and a hash
//! says what data was used).

use std::path::Path;

use super::{Engine, Lab, LabResult, Principal};
use crate::model::{CachedHash, Provenance, Skipped};
use crate::provenance::{Part, Phase};

impl Lab {
    /// What was captured of experiment `id`'s origins (empty when nothing
    /// was: an experiment from before provenance, or one not started), for
    /// a caller who may read its output.
    pub fn provenance(&self, p: &Principal, id: u64) -> LabResult<Provenance> {
        self.check_output_readable(p, id)?;
        Ok(self.store.provenance(id)?.unwrap_or_default())
    }

    /// Experiment `id`'s git diff against its commit (cut at the capture's
    /// limit), for a caller who may read its output.
    pub fn diff(&self, p: &Principal, id: u64) -> LabResult<Option<String>> {
        self.check_output_readable(p, id)?;
        Ok(self.store.diff(id)?)
    }
}

impl Engine {
    /// Cached hashes of `path` and the files under it, at most `most`.
    pub fn cached_hashes(&self, path: &Path, most: usize) -> Vec<CachedHash> {
        self.lab
            .store
            .cached_hashes(path, most)
            .unwrap_or_else(|e| {
                tracing::warn!("cannot read the hash cache: {e}");
                Vec::new()
            })
    }

    /// Keeps a part of experiment `id`'s provenance captured at `phase`.
    pub fn record_provenance(&self, id: u64, phase: Phase, part: Part) -> LabResult<()> {
        let _one_writer = self
            .lab
            .engine
            .provenance_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut p = self.lab.store.provenance(id)?.unwrap_or_default();
        let mut diff = None;
        match part {
            Part::Code(code) => {
                p.captured_at = super::now();
                p.git = code.git;
                p.interpreters = code.interpreters;
                p.packages = code.packages;
                p.dependency_files = code.dependency_files;
                p.sources = code.sources;
                p.skipped.extend(code.skipped);
                diff = code.diff;
            }
            Part::Files {
                digests,
                hashed,
                cache_hits,
                hashed_bytes,
            } => {
                if let Err(e) = self.lab.store.cache_hashes(&hashed) {
                    tracing::warn!("cannot write the hash cache: {e}");
                }
                match phase {
                    Phase::Start => p.inputs = digests,
                    Phase::End => p.outputs = digests,
                }
                p.cache_hits += cache_hits;
                p.hashed_bytes += hashed_bytes;
            }
            Part::Failed { why } => p.skipped.push(Skipped {
                what: format!("provenance at the {}", phase_name(phase)),
                why,
            }),
        }
        self.lab.store.put_provenance(id, &p, diff.as_deref())?;
        Ok(())
    }

    /// Notes that experiment `id`'s capture at `phase` did not finish.
    pub fn provenance_failed(&self, id: u64, phase: Phase, why: String) {
        if let Err(e) = self.record_provenance(id, phase, Part::Failed { why }) {
            tracing::warn!("experiment {id}: cannot record its provenance: {e}");
        }
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Start => "start",
        Phase::End => "end",
    }
}
