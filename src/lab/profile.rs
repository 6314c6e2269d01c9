//! Experiments' use over their runs: the runner keeps a stretch at a time
//! (see [`crate::model::UseSample`]); readers get the series with its peak,
//! p95 and mean against the request (`resources ID`), as `show` gives the
//! totals: to anyone who may see the experiment.

use serde::Serialize;

use super::{Engine, Lab, LabResult, Principal};
use crate::model::{Resources, UseProfile, UseSample};

/// An experiment's use over its run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceSeries {
    /// The experiment.
    pub id: u64,
    /// What it asked for.
    pub request: Resources,
    /// Peak, p95 and mean (so far, for a running one).
    pub profile: Option<UseProfile>,
    /// The stretches, oldest first.
    pub samples: Vec<UseSample>,
}

impl Lab {
    /// Experiment `id`'s use over its run, for a caller who may see it.
    pub fn resource_series(&self, p: &Principal, id: u64) -> LabResult<ResourceSeries> {
        let e = self.experiment(p, id)?;
        let samples = self.store.use_samples(id)?;
        Ok(ResourceSeries {
            id,
            request: e.spec.resources,
            profile: e.usage.profile.or_else(|| UseProfile::of(&samples)),
            samples,
        })
    }
}

impl Engine {
    /// Keeps a stretch of running experiment `id`'s use.
    pub fn record_use(&self, id: u64, sample: &UseSample) {
        if let Err(e) = self.lab.store.put_use_sample(id, sample) {
            tracing::warn!("experiment {id}: cannot record its use: {e}");
        }
    }

    /// The peak, p95 and mean of experiment `id`'s stretches.
    pub fn use_profile(&self, id: u64) -> Option<UseProfile> {
        match self.lab.store.use_samples(id) {
            Ok(samples) => UseProfile::of(&samples),
            Err(e) => {
                tracing::warn!("experiment {id}: cannot read its use: {e}");
                None
            }
        }
    }
}
