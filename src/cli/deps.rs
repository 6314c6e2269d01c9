//! `deps [--package P] [--source S] [--project P] [--unused-since 90d]
//! [--json]`: which experiments used a package or read a source, and which
//! packages nobody used lately.

use super::output::{CommandOutput, exit, table};
use crate::lab::{DepsAnswer, DepsQuery, Lab, PackageQuery, Principal};
use crate::units::{minute_time, printable};

/// `deps`: the answer as a table or JSON.
pub fn deps(
    lab: &Lab,
    p: &Principal,
    package: Option<&str>,
    source: Option<&str>,
    project: Option<&str>,
    unused_since: Option<&str>,
    json: bool,
) -> CommandOutput {
    let package = match package.map(PackageQuery::parse).transpose() {
        Ok(q) => q,
        Err(why) => return CommandOutput::error(exit::USAGE, format!("error: --package {why}\n")),
    };
    let unused_since = match unused_since.map(crate::model::parse_duration).transpose() {
        Ok(age) => age.map(|secs| crate::lab::now() - secs as i64),
        Err(why) => {
            return CommandOutput::error(exit::USAGE, format!("error: --unused-since {why}\n"));
        }
    };
    let query = DepsQuery {
        package,
        source: source.map(str::to_string),
        project: project.map(str::to_string),
        unused_since,
    };
    match lab.deps(p, &query) {
        Ok(answer) if json => CommandOutput::json(&answer),
        Ok(DepsAnswer::Uses(uses)) if uses.is_empty() => {
            CommandOutput::ok("no experiment you may read matches\n")
        }
        Ok(DepsAnswer::Uses(uses)) => {
            let rows: Vec<Vec<String>> = uses
                .iter()
                .map(|u| {
                    let what = match &u.package {
                        Some(pkg) => format!(
                            "{}:{} {} ({})",
                            pkg.ecosystem,
                            pkg.name,
                            pkg.version
                                .as_deref()
                                .or(pkg.constraint.as_deref())
                                .unwrap_or("any"),
                            pkg.from
                        ),
                        None => u.sources.join(", "),
                    };
                    vec![
                        u.id.to_string(),
                        printable(u.project.as_deref().unwrap_or("-")),
                        printable(&u.owner),
                        minute_time(u.submitted_at),
                        printable(&what),
                    ]
                })
                .collect();
            let last = if query.package.is_some() {
                "PACKAGE"
            } else {
                "SOURCES"
            };
            CommandOutput::ok(table(&["ID", "PROJECT", "OWNER", "SUBMITTED", last], &rows))
        }
        Ok(DepsAnswer::Packages(packages)) if packages.is_empty() => {
            CommandOutput::ok("no package matches\n")
        }
        Ok(DepsAnswer::Packages(packages)) => {
            let rows: Vec<Vec<String>> = packages
                .iter()
                .map(|s| {
                    vec![
                        printable(&s.package),
                        s.experiments.to_string(),
                        printable(&s.versions.iter().cloned().collect::<Vec<_>>().join(" ")),
                        printable(&s.projects.iter().cloned().collect::<Vec<_>>().join(" ")),
                        minute_time(s.last_used),
                    ]
                })
                .collect();
            CommandOutput::ok(table(
                &[
                    "PACKAGE",
                    "EXPERIMENTS",
                    "VERSIONS",
                    "PROJECTS",
                    "LAST USED",
                ],
                &rows,
            ))
        }
        Err(e) => e.into(),
    }
}
