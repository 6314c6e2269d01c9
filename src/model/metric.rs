//! Metrics an experiment reported, as they are kept: each value with where
//! it was read, and how far each source was read.

use serde::{Deserialize, Serialize};

/// Where an experiment reports metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricSource {
    /// `@metric` lines in its standard output.
    Stdout,
    /// JSON lines in `$LABBENCH_METRICS`.
    File,
}

impl MetricSource {
    /// Both, in the order they are read.
    pub const ALL: [MetricSource; 2] = [MetricSource::Stdout, MetricSource::File];

    /// Its byte in store keys.
    pub fn tag(self) -> u8 {
        match self {
            MetricSource::Stdout => b'o',
            MetricSource::File => b'm',
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// The metric.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// The step the line gave, if any.
    pub step: Option<u64>,
    /// When labbench read it (Unix milliseconds): at most a second after
    /// it was written.
    pub at: i64,
    /// Where it was read: the source, and the offset of its line in it
    /// (with its place in the line), which makes reading again idempotent.
    pub source: MetricSource,
    /// Offset of its line in the source.
    pub offset: u64,
    /// Its place among the values of its line.
    pub index: u16,
}

/// How far a source of an experiment's metrics was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRead {
    /// Bytes read (up to the end of the last whole line).
    pub offset: u64,
    /// Lines that were meant as metrics but could not be read.
    pub malformed: u64,
    /// Why the last of them could not.
    pub last_malformed: Option<String>,
    /// Values kept from this source.
    pub kept: u64,
    /// Bytes not read: past [`MAX_METRIC_VALUES`] values (so that a run
    /// cannot fill the data disk or the daemon's memory through its
    /// metrics), the rest of lines longer than a read, what was left when
    /// the run ended.
    pub skipped: u64,
    /// The last read ended inside a line longer than a read.
    pub in_long_line: bool,
    /// Count, last, smallest and largest value of each metric read from
    /// this source, kept with where the read ended (so listings need not
    /// read every value).
    #[serde(default)]
    pub summary: std::collections::BTreeMap<String, MetricSummary>,
}

/// What is known of one metric without reading its values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Values read.
    pub count: u64,
    /// The last value.
    pub last: f64,
    /// When the last value was read (Unix milliseconds).
    pub last_at: i64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl MetricSummary {
    /// A summary of the one value `value`, read at `at`.
    pub fn of(value: f64, at: i64) -> MetricSummary {
        MetricSummary {
            count: 1,
            last: value,
            last_at: at,
            min: value,
            max: value,
        }
    }

    /// Adds `value`, read at `at` (the last if none was read later).
    pub fn add(&mut self, value: f64, at: i64) {
        self.merge(&MetricSummary::of(value, at));
    }

    /// Folds `other` in.
    pub fn merge(&mut self, other: &MetricSummary) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.last_at >= self.last_at {
            self.last = other.last;
            self.last_at = other.last_at;
        }
    }
}

/// Most metric names one source of one experiment may have: values of
/// further names are refused as malformed lines (a summary is rewritten at
/// each read).
pub const MAX_METRIC_NAMES: usize = 1000;

/// Most values kept of one source of one experiment.
pub const MAX_METRIC_VALUES: u64 = 100_000;
