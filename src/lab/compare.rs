//! Comparing experiments side by side: params, metrics, resources, code
//! and dependencies, with what differs named (`compare` and the History
//! tab's `d`). Each experiment compared must be one whose output the
//! caller may read (its metrics and provenance are its results).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Lab, LabError, LabResult, MetricPoint, Principal};
use crate::model::{MetricSummary, ResourceUse, Resources};

/// Most experiments compared at once.
pub const MAX_COMPARED: usize = 20;

/// One experiment as compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedRun {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: Option<String>,
    /// Its owner.
    pub owner: String,
    /// Its project.
    pub project: Option<String>,
    /// Its state's name.
    pub state: String,
    /// Its command, as one line.
    pub command: String,
    /// Its params.
    pub params: BTreeMap<String, String>,
    /// Its metrics' count, last, min and max.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// What it asked for.
    pub resources: Resources,
    /// What it used.
    pub usage: ResourceUse,
    /// The commit it ran, when captured.
    pub commit: Option<String>,
    /// Whether its working tree differed from the commit.
    pub dirty: bool,
    /// Its packages, `name` → version (or constraint).
    pub packages: BTreeMap<String, String>,
    /// The blake3 of each declared input, by path.
    pub inputs: BTreeMap<String, String>,
    /// The values of the metric asked for, to overlay as curves.
    pub curve: Option<Vec<MetricPoint>>,
}

/// Experiments side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The experiments, in the order asked.
    pub runs: Vec<ComparedRun>,
    /// What differs between them: `param:NAME`, `metric:NAME`, `package:NAME`,
    /// `input:PATH`, `commit`, `command`, `resources`.
    pub differs: Vec<String>,
}

impl Lab {
    /// Experiments `ids` side by side (2 to [`MAX_COMPARED`], each readable
    /// by `p`), with the values of metric `curve` when asked.
    pub fn compare(
        &self,
        p: &Principal,
        ids: &[u64],
        curve: Option<&str>,
    ) -> LabResult<Comparison> {
        if ids.len() < 2 || ids.len() > MAX_COMPARED {
            return Err(LabError::Invalid(format!(
                "compare takes 2 to {MAX_COMPARED} experiments, not {}",
                ids.len()
            )));
        }
        let mut runs = Vec::with_capacity(ids.len());
        for &id in ids {
            let e = self.check_output_readable(p, id)?;
            let metrics = self.metrics_brief(p, id)?.metrics;
            let provenance = self.store.provenance(id)?.unwrap_or_default();
            let git = provenance.git.as_ref();
            let curve = match curve {
                Some(name) => Some(
                    self.store
                        .metric(id, name)?
                        .iter()
                        .map(|s| MetricPoint {
                            step: s.step,
                            value: s.value,
                            time: s.at as f64 / 1000.0,
                        })
                        .collect(),
                ),
                None => None,
            };
            runs.push(ComparedRun {
                id,
                name: e.spec.name.clone(),
                owner: e.owner.clone(),
                project: e.spec.project.clone(),
                state: e.state.name().to_string(),
                command: e.spec.command.display(),
                params: e.spec.params.iter().cloned().collect(),
                metrics,
                resources: e.spec.resources,
                usage: e.usage,
                commit: git.and_then(|g| g.commit.clone()),
                dirty: git.is_some_and(|g| g.dirty),
                packages: provenance
                    .packages
                    .iter()
                    .map(|pkg| {
                        let version = pkg.version.clone().or(pkg.constraint.clone());
                        (
                            format!("{}:{}", pkg.ecosystem, pkg.name),
                            version.unwrap_or_default(),
                        )
                    })
                    .collect(),
                inputs: provenance
                    .inputs
                    .iter()
                    .map(|d| {
                        (
                            d.path.display().to_string(),
                            d.blake3.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
                curve,
            });
        }
        let differs = differences(&runs);
        Ok(Comparison { runs, differs })
    }
}

/// What differs between `runs`, in a stable order.
pub fn differences(runs: &[ComparedRun]) -> Vec<String> {
    let mut differs = Vec::new();
    let differ = |values: Vec<Option<String>>| values.windows(2).any(|w| w[0] != w[1]);
    let keys = |of: &dyn Fn(&ComparedRun) -> Vec<String>| -> BTreeSet<String> {
        runs.iter().flat_map(of).collect()
    };
    for name in keys(&|r| r.params.keys().cloned().collect()) {
        if differ(runs.iter().map(|r| r.params.get(&name).cloned()).collect()) {
            differs.push(format!("param:{name}"));
        }
    }
    for name in keys(&|r| r.metrics.keys().cloned().collect()) {
        let last = |r: &ComparedRun| r.metrics.get(&name).map(|s| s.last.to_string());
        if differ(runs.iter().map(last).collect()) {
            differs.push(format!("metric:{name}"));
        }
    }
    for name in keys(&|r| r.packages.keys().cloned().collect()) {
        if differ(
            runs.iter()
                .map(|r| r.packages.get(&name).cloned())
                .collect(),
        ) {
            differs.push(format!("package:{name}"));
        }
    }
    for path in keys(&|r| r.inputs.keys().cloned().collect()) {
        if differ(runs.iter().map(|r| r.inputs.get(&path).cloned()).collect()) {
            differs.push(format!("input:{path}"));
        }
    }
    let commit = |r: &ComparedRun| r.commit.as_ref().map(|c| format!("{c}{}", r.dirty));
    if differ(runs.iter().map(commit).collect()) {
        differs.push("commit".into());
    }
    if differ(runs.iter().map(|r| Some(r.command.clone())).collect()) {
        differs.push("command".into());
    }
    if differ(runs.iter().map(|r| Some(r.resources.summary())).collect()) {
        differs.push("resources".into());
    }
    differs
}
