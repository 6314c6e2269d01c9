//! `report ID --html`, `report --project P --html`, `report FILTER --html`:
//! one self-contained HTML page on standard output, of what the caller may
//! read (see [`crate::report`]).

use super::output::{CommandOutput, exit};
use crate::lab::{Lab, Principal};
use crate::report::{ExperimentReport, experiment_html, many_html};

/// Experiments a report of many lists unless asked otherwise.
const DEFAULT_ROWS: usize = 500;

/// What `report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// The page.
    Html,
    /// What the page shows, as JSON.
    Json,
}

/// `report`: the page for one experiment, a project or a filter.
pub fn report(
    lab: &Lab,
    p: &Principal,
    target: &[String],
    project: Option<&str>,
    limit: usize,
    format: Option<ReportFormat>,
) -> CommandOutput {
    let Some(format) = format else {
        return CommandOutput::error(
            exit::USAGE,
            "error: report writes HTML: add --html (report ID --html > report.html), or --json\n",
        );
    };
    if project.is_none()
        && let [one] = target
        && let Ok(id) = one.parse::<u64>()
    {
        return experiment(lab, p, id, format);
    }
    let mut filter = String::new();
    if let Some(project) = project {
        filter.push_str(&format!("project:{}", crate::lab::filter::quote(project)));
    }
    for word in target {
        if !filter.is_empty() {
            filter.push(' ');
        }
        filter.push_str(word);
    }
    if let Err(e) = crate::lab::filter::parse(&filter) {
        return CommandOutput::error(
            exit::USAGE,
            format!("error: bad filter:\n{}\n", e.render(&filter)),
        );
    }
    let limit = if limit == 0 { DEFAULT_ROWS } else { limit };
    match lab.history(p, &filter, None, limit) {
        Ok(page) => {
            let title = match project {
                Some(project) => format!("Project {project}"),
                None if filter.is_empty() => "All experiments".to_string(),
                None => format!("Experiments: {filter}"),
            };
            if format == ReportFormat::Json {
                return CommandOutput::json(&serde_json::json!({
                    "title": title,
                    "filter": filter,
                    "rows": page.rows,
                    "next": page.next,
                    "examined": page.examined,
                }));
            }
            CommandOutput::ok(many_html(&title, &filter, &page.rows, page.next.is_some()))
        }
        Err(e) => e.into(),
    }
}

fn experiment(lab: &Lab, p: &Principal, id: u64, format: ReportFormat) -> CommandOutput {
    let experiment = match lab.experiment(p, id) {
        Ok(e) => e,
        Err(e) => return e.into(),
    };
    let report = ExperimentReport {
        experiment,
        provenance: lab.provenance(p, id).map_err(|e| e.to_string()),
        diff: lab.diff(p, id).ok().flatten(),
        metrics: lab.metrics(p, id).map_err(|e| e.to_string()),
        resources: lab.resource_series(p, id).ok(),
        discussion: lab.discussion(p, id).map_err(|e| e.to_string()),
    };
    if format == ReportFormat::Json {
        return CommandOutput::json(&serde_json::json!({
            "experiment": report.experiment,
            "provenance": report.provenance.ok(),
            "metrics": report.metrics.ok(),
            "resources": report.resources,
            "discussion": report.discussion.ok(),
        }));
    }
    CommandOutput::ok(experiment_html(&report))
}
