//! `metrics ID [--name N] [--json|--csv]`: an experiment's metrics, in
//! brief (count, last, min, max of each, from what is kept with the reads)
//! or every value.

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
        return CommandOutput::ok(crate::describe::metrics_lines(&brief));
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
