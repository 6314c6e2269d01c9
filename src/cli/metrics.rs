//! `metrics ID [--name N] [--json|--csv]`: an experiment's metrics, in
//! brief (count, last, min, max of each, from what is kept with the reads)
//! or every value.

use super::output::{CommandOutput, exit};
use crate::lab::{Lab, MetricsBrief, MetricsReport, Principal};
use crate::units::printable;

/// `metrics`: a line a metric (count, last, min, max), or every value as
/// JSON or CSV.
pub fn metrics(
    lab: &Lab,
    p: &Principal,
    id: u64,
    name: Option<&str>,
    json: bool,
    csv: bool,
) -> CommandOutput {
    let missing = |name: &str| {
        CommandOutput::error(
            exit::FAILURE,
            format!("error: experiment {id} has no metric {}", printable(name)),
        )
    };
    if !json && !csv {
        // In brief: as fast however many values were kept.
        let mut brief = match lab.metrics_brief(p, id) {
            Ok(brief) => brief,
            Err(e) => return e.into(),
        };
        if let Some(name) = name {
            brief.metrics.retain(|m, _| m == name);
            if brief.metrics.is_empty() {
                return missing(name);
            }
        }
        return CommandOutput::ok(as_text(&brief));
    }
    let mut report = match lab.metrics(p, id) {
        Ok(report) => report,
        Err(e) => return e.into(),
    };
    if let Some(name) = name {
        report.metrics.retain(|m| m.name == name);
        if report.metrics.is_empty() {
            return missing(name);
        }
    }
    if json {
        return CommandOutput::json(&report);
    }
    CommandOutput::ok(as_csv(&report))
}

fn as_csv(report: &MetricsReport) -> String {
    let mut out = String::from("name,step,value,time\n");
    for m in &report.metrics {
        for p in &m.points {
            let step = p.step.map(|s| s.to_string()).unwrap_or_default();
            out.push_str(&format!("{},{step},{},{:.3}\n", m.name, p.value, p.time));
        }
    }
    out
}

fn as_text(brief: &MetricsBrief) -> String {
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
