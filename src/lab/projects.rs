//! Projects at a glance: per project, how its experiments went from
//! submitted to a positive outcome, its last activity and what it used. Only
//! experiments whose output the caller may read are counted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::experiments::owns_or_admin;
use super::{Lab, LabResult, Principal};
use crate::model::{Outcome, State, Verdict};

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
}

impl Lab {
    /// Every project's figures, by name, counting the experiments whose
    /// output `p` may read.
    pub fn projects(&self, p: &Principal) -> LabResult<Vec<ProjectSummary>> {
        let p = self.current(p)?;
        let private_projects = self.store.private_projects()?;
        let outcomes = self.store.conclusions()?;
        let mut projects: BTreeMap<String, ProjectSummary> = BTreeMap::new();
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
        Ok(projects.into_values().collect())
    }
}
