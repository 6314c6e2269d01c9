//! `metrics ID [--name N] [--json|--csv]`: an experiment's metrics.

use super::output::{CommandOutput, exit};
use crate::lab::{Lab, MetricsReport, Principal};
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
    let mut report = match lab.metrics(p, id) {
        Ok(report) => report,
        Err(e) => return e.into(),
    };
    if let Some(name) = name {
        report.metrics.retain(|m| m.name == name);
        if report.metrics.is_empty() {
            return CommandOutput::error(
                exit::FAILURE,
                format!("error: experiment {id} has no metric {}", printable(name)),
            );
        }
    }
    if json {
        return CommandOutput::json(&report);
    }
    if csv {
        return CommandOutput::ok(as_csv(&report));
    }
    CommandOutput::ok(as_text(&report))
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

fn as_text(report: &MetricsReport) -> String {
    let mut out = String::new();
    if report.metrics.is_empty() {
        out.push_str(&format!(
            "experiment {} reported no metrics (print `@metric name=value` lines, or append JSON lines to $LABBENCH_METRICS)\n",
            report.id
        ));
    } else {
        let width = report
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(4)
            .max(6);
        out.push_str(&format!(
            "{:<width$}  {:>7}  {:>12}  {:>12}  {:>12}\n",
            "METRIC", "VALUES", "LAST", "MIN", "MAX"
        ));
        for m in &report.metrics {
            out.push_str(&format!(
                "{:<width$}  {:>7}  {:>12}  {:>12}  {:>12}\n",
                m.name,
                m.count,
                short(m.last),
                short(m.min),
                short(m.max)
            ));
        }
    }
    if report.skipped_bytes > 0 {
        out.push_str(&format!(
            "{} of its output and metrics file were not read for metrics (past {} values a source, lines over 1 MiB, or left when it ended)\n",
            crate::units::short_bytes(report.skipped_bytes as f64),
            crate::model::MAX_METRIC_VALUES
        ));
    }
    if report.malformed > 0 {
        out.push_str(&format!(
            "{} line(s) could not be read as metrics; the last: {}\n",
            report.malformed,
            printable(report.last_malformed.as_deref().unwrap_or(""))
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
