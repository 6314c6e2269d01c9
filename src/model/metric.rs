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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Most values kept of one source of one experiment.
pub const MAX_METRIC_VALUES: u64 = 100_000;
