//! Experiments' metrics: what the runner read from their output and
//! metrics files, kept by the store, given to readers under the read rule
//! of their output.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Engine, Lab, LabResult, Principal};
use crate::model::{MetricSample, MetricSource, MetricSummary, MetricsRead};

/// One value of a metric, for a reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    /// The step the experiment gave, if any.
    pub step: Option<u64>,
    /// The value.
    pub value: f64,
    /// When labbench read it (seconds since the epoch).
    pub time: f64,
}

/// One metric of an experiment: its values in the order they were read,
/// and its last, smallest and largest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSeries {
    /// Its name.
    pub name: String,
    /// Values read.
    pub count: usize,
    /// The last value.
    pub last: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Every value.
    pub points: Vec<MetricPoint>,
}

/// An experiment's metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsReport {
    /// The experiment.
    pub id: u64,
    /// Its metrics, by name.
    pub metrics: Vec<MetricSeries>,
    /// Lines meant as metrics that could not be read.
    pub malformed: u64,
    /// Why the last of them could not.
    pub last_malformed: Option<String>,
    /// Bytes of its sources not read (past the most values kept, lines too
    /// long, what was left when it ended).
    pub skipped_bytes: u64,
}

impl Lab {
    /// Experiment `id`'s metrics, for a caller who may read its output.
    pub fn metrics(&self, p: &Principal, id: u64) -> LabResult<MetricsReport> {
        self.check_output_readable(p, id)?;
        let mut by_name: BTreeMap<String, Vec<MetricSample>> = BTreeMap::new();
        for sample in self.store.metrics(id)? {
            by_name.entry(sample.name.clone()).or_default().push(sample);
        }
        let metrics = by_name
            .into_iter()
            .map(|(name, mut samples)| {
                samples.sort_by_key(|s| (s.at, s.source, s.offset, s.index));
                let values = samples.iter().map(|s| s.value);
                MetricSeries {
                    name,
                    count: samples.len(),
                    last: samples.last().map_or(f64::NAN, |s| s.value),
                    min: values.clone().fold(f64::INFINITY, f64::min),
                    max: values.fold(f64::NEG_INFINITY, f64::max),
                    points: samples
                        .iter()
                        .map(|s| MetricPoint {
                            step: s.step,
                            value: s.value,
                            time: s.at as f64 / 1000.0,
                        })
                        .collect(),
                }
            })
            .collect();
        let (mut malformed, mut last_malformed, mut skipped_bytes) = (0, None, 0);
        for source in MetricSource::ALL {
            let read = self.store.metrics_read(id, source)?;
            malformed += read.malformed;
            skipped_bytes += read.skipped;
            last_malformed = read.last_malformed.or(last_malformed);
        }
        Ok(MetricsReport {
            id,
            metrics,
            malformed,
            last_malformed,
            skipped_bytes,
        })
    }
}

/// An experiment's metrics in brief: each one's count, last, smallest and
/// largest value, read without its values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsBrief {
    /// The experiment.
    pub id: u64,
    /// Each metric, by name.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// Lines meant as metrics that could not be read.
    pub malformed: u64,
    /// Why the last of them could not.
    pub last_malformed: Option<String>,
    /// Bytes of its sources not read.
    pub skipped_bytes: u64,
}

impl Lab {
    /// Experiment `id`'s metrics in brief (see [`MetricsBrief`]), for a
    /// caller who may read its output: as fast however many values it has.
    pub fn metrics_brief(&self, p: &Principal, id: u64) -> LabResult<MetricsBrief> {
        self.check_output_readable(p, id)?;
        let mut brief = MetricsBrief {
            id,
            metrics: BTreeMap::new(),
            malformed: 0,
            last_malformed: None,
            skipped_bytes: 0,
        };
        for source in MetricSource::ALL {
            let read = self.store.metrics_read(id, source)?;
            brief.malformed += read.malformed;
            brief.skipped_bytes += read.skipped;
            brief.last_malformed = read.last_malformed.or(brief.last_malformed);
            for (name, summary) in read.summary {
                brief
                    .metrics
                    .entry(name)
                    .and_modify(|s| s.merge(&summary))
                    .or_insert(summary);
            }
        }
        Ok(brief)
    }
}

impl Lab {
    /// The values of metric `name` of experiment `id` in the order they
    /// were read, for a caller who may read its output.
    pub fn metric_curve(&self, p: &Principal, id: u64, name: &str) -> LabResult<Vec<MetricPoint>> {
        self.check_output_readable(p, id)?;
        let mut samples = self.store.metric(id, name)?;
        samples.sort_by_key(|s| (s.at, s.source, s.offset, s.index));
        Ok(samples
            .iter()
            .map(|s| MetricPoint {
                step: s.step,
                value: s.value,
                time: s.at as f64 / 1000.0,
            })
            .collect())
    }
}

impl Engine {
    /// How far the runner read `source` of experiment `id`.
    pub fn metrics_read(&self, id: u64, source: MetricSource) -> LabResult<MetricsRead> {
        Ok(self.lab.store.metrics_read(id, source)?)
    }

    /// `(free, reserve)` when the data disk has less free than the reserve.
    pub fn disk_short(&self) -> Option<(u64, u64)> {
        self.lab.disk_short()
    }

    /// Keeps `samples` the runner read from `source` of experiment `id`, and
    /// how far it read.
    pub fn record_metrics(
        &self,
        id: u64,
        source: MetricSource,
        samples: &[MetricSample],
        read: &MetricsRead,
    ) -> LabResult<()> {
        Ok(self.lab.store.put_metrics(id, source, samples, read)?)
    }
}
