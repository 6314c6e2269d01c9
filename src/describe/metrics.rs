//! Metrics in words: each one's count, last, smallest and largest value.

use crate::lab::MetricsBrief;
use crate::units::printable;

/// An experiment's metrics in brief: a line each, with what was not read.
pub fn metrics_lines(brief: &MetricsBrief) -> String {
    let mut out = String::new();
    if brief.metrics.is_empty() {
        out.push_str(&format!(
            "experiment {} reported no metrics (print `@metric name=value` lines, or append JSON lines to $LABBENCH_METRICS)\n",
            brief.id
        ));
    } else {
        let width = brief
            .metrics
            .keys()
            .map(|name| name.chars().count())
            .max()
            .unwrap_or(4)
            .max(6);
        out.push_str(&format!(
            "{:<width$}  {:>7}  {:>12}  {:>12}  {:>12}\n",
            "METRIC", "VALUES", "LAST", "MIN", "MAX"
        ));
        for (name, m) in &brief.metrics {
            out.push_str(&format!(
                "{:<width$}  {:>7}  {:>12}  {:>12}  {:>12}\n",
                name,
                m.count,
                short(m.last),
                short(m.min),
                short(m.max)
            ));
        }
    }
    if brief.skipped_bytes > 0 {
        out.push_str(&format!(
            "{} of its output and metrics file were not read for metrics (past {} values a source, lines over 1 MiB, or left when it ended)\n",
            crate::units::short_bytes(brief.skipped_bytes as f64),
            crate::model::MAX_METRIC_VALUES
        ));
    }
    if brief.malformed > 0 {
        out.push_str(&format!(
            "{} line(s) could not be read as metrics; the last: {}\n",
            brief.malformed,
            printable(brief.last_malformed.as_deref().unwrap_or(""))
        ));
    }
    out
}

/// A value in at most 12 characters.
fn short(value: f64) -> String {
    let plain = format!("{value}");
    if plain.len() <= 12 {
        plain
    } else {
        format!("{value:.6e}")
    }
}
