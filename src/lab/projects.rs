//! Projects at a glance: per project, how its experiments went from
//! submitted to a positive outcome, its last activity and what it used. Only
//! experiments whose output the caller may read are counted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::experiments::owns_or_admin;
use super::{Lab, LabResult, Principal};
use crate::model::{MetricSource, Outcome, State, Verdict};

/// One project's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProjectSummary {
    /// Its name (`-` for experiments without one).
    pub project: String,
    /// Experiments submitted.
    pub submitted: u64,
    /// Of them, finished.
    pub finished: u64,
    /// Of them, succeeded.
    pub succeeded: u64,
    /// Of them, given a positive outcome.
    pub positive: u64,
    /// Of them, given a negative outcome.
    pub negative: u64,
    /// Last submission or end (seconds since the epoch).
    pub last_activity: i64,
    /// CPU-hours of its finished runs.
    pub cpu_hours: f64,
    /// GPU-hours of its finished runs.
    pub gpu_hours: f64,
    /// Its best run by the metric asked for: the experiment and its value.
    pub best: Option<(u64, f64)>,
}

/// Which runs are best: by a metric's largest value, or its smallest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestBy {
    /// The metric.
    pub metric: String,
    /// Smallest first (a loss), instead of largest (an accuracy).
    pub lowest: bool,
}

impl Lab {
    /// Every project's figures, by name, counting the experiments whose
    /// output `p` may read.
    /// With `best`, each project's best run by that metric (of the values
    /// each run reported, its best).
    pub fn projects(&self, p: &Principal, best: Option<&BestBy>) -> LabResult<Vec<ProjectSummary>> {
        let p = self.current(p)?;
        let private_projects = self.store.private_projects()?;
        let outcomes = self.store.conclusions()?;
        let mut projects: BTreeMap<String, ProjectSummary> = BTreeMap::new();
        let mut counted = Vec::new();
        self.store.for_each_experiment(|e| {
            let private = e.spec.private
                || e.spec
                    .project
                    .as_ref()
                    .is_some_and(|name| private_projects.contains(name));
            if private && !owns_or_admin(&p, e) {
                return;
            }
            let name = e.spec.project.clone().unwrap_or_else(|| "-".into());
            counted.push((e.id, name.clone()));
            let s = projects.entry(name.clone()).or_default();
            s.project = name;
            s.submitted += 1;
            s.last_activity = s.last_activity.max(e.submitted_at);
            if let State::Finished {
                outcome, ended_at, ..
            } = &e.state
            {
                s.finished += 1;
                s.succeeded += u64::from(*outcome == Outcome::Succeeded);
                s.last_activity = s.last_activity.max(*ended_at);
                s.cpu_hours += e.usage.cpu_seconds / 3600.0;
                s.gpu_hours += e.usage.gpu_seconds / 3600.0;
            }
            match outcomes.get(&e.id).map(|c| c.verdict) {
                Some(Verdict::Positive) => s.positive += 1,
                Some(Verdict::Negative) => s.negative += 1,
                _ => {}
            }
        })?;
        if let Some(by) = best {
            for (id, name) in counted {
                let Some(value) = self.best_value(id, by)? else {
                    continue;
                };
                if let Some(s) = projects.get_mut(&name) {
                    let better = s.best.is_none_or(|(_, held)| {
                        if by.lowest {
                            value < held
                        } else {
                            value > held
                        }
                    });
                    if better {
                        s.best = Some((id, value));
                    }
                }
            }
        }
        Ok(projects.into_values().collect())
    }

    /// Experiment `id`'s best value of metric `by` (from the summaries kept
    /// with its reads), if it reported any.
    fn best_value(&self, id: u64, by: &BestBy) -> LabResult<Option<f64>> {
        let mut best: Option<f64> = None;
        for source in MetricSource::ALL {
            if let Some(s) = self.store.metrics_read(id, source)?.summary.get(&by.metric) {
                let value = if by.lowest { s.min } else { s.max };
                best = Some(match best {
                    Some(held) if by.lowest => held.min(value),
                    Some(held) => held.max(value),
                    None => value,
                });
            }
        }
        Ok(best)
    }
}
