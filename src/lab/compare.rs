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
/// Points of each curve given (a terminal or a page shows no more): a
/// longer curve keeps the smallest and largest value of each of half as
/// many stretches, so no spike is lost.
pub const CURVE_POINTS: usize = 1000;

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
                Some(name) => Some(downsample(self.metric_curve(p, id, name)?, CURVE_POINTS)),
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

/// `points` cut to at most `most`: of each of `most / 2` stretches, its
/// smallest and largest value, in their order.
pub fn downsample(points: Vec<MetricPoint>, most: usize) -> Vec<MetricPoint> {
    let stretches = most / 2;
    if points.len() <= most || stretches == 0 {
        return points;
    }
    let mut kept = Vec::with_capacity(most);
    for i in 0..stretches {
        let stretch = &points[i * points.len() / stretches..(i + 1) * points.len() / stretches];
        let by_value = |a: &&MetricPoint, b: &&MetricPoint| a.value.total_cmp(&b.value);
        let (Some(low), Some(high)) = (
            stretch
                .iter()
                .enumerate()
                .min_by(|a, b| by_value(&a.1, &b.1)),
            stretch
                .iter()
                .enumerate()
                .max_by(|a, b| by_value(&a.1, &b.1)),
        ) else {
            continue;
        };
        let (first, second) = if low.0 <= high.0 {
            (low, high)
        } else {
            (high, low)
        };
        kept.push(first.1.clone());
        if second.0 != first.0 {
            kept.push(second.1.clone());
        }
    }
    kept
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

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[f64]) -> Vec<MetricPoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| MetricPoint {
                step: Some(i as u64),
                value: *v,
                time: i as f64,
            })
            .collect()
    }

    #[test]
    fn a_long_curve_keeps_each_stretchs_extremes_in_order() {
        let mut values = vec![1.0; 10_000];
        values[4321] = 50.0;
        values[7000] = -3.0;
        let kept = downsample(points(&values), 100);
        assert!(kept.len() <= 100, "{}", kept.len());
        assert!(kept.iter().any(|p| p.value == 50.0 && p.step == Some(4321)));
        assert!(kept.iter().any(|p| p.value == -3.0 && p.step == Some(7000)));
        assert!(kept.windows(2).all(|w| w[0].step < w[1].step));
        let short = points(&[1.0, 2.0, 3.0]);
        assert_eq!(downsample(short.clone(), 100), short);
    }
}
