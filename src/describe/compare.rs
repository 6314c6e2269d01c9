//! A comparison in words: a column per experiment, a row per thing
//! compared, a `*` before each row that differs.

use super::table::table;
use crate::lab::Comparison;
use crate::units::{human_bytes, printable};

/// Rows of packages and inputs shown at most (`--json` has all).
const ROWS_OF_EACH: usize = 40;

/// Experiments side by side, a `*` before each row that differs.
pub fn comparison_lines(c: &Comparison) -> String {
    let mut header = vec![String::new()];
    header.extend(c.runs.iter().map(|r| r.id.to_string()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |label: String, differs: bool, cells: Vec<String>| {
        let mut line = vec![format!("{} {label}", if differs { "*" } else { " " })];
        line.extend(cells.into_iter().map(|c| printable(&c)));
        rows.push(line);
    };
    let has = |key: &str| c.differs.iter().any(|d| d == key);
    let each = |f: &dyn Fn(&crate::lab::ComparedRun) -> String| -> Vec<String> {
        c.runs.iter().map(f).collect()
    };
    row(
        "name".into(),
        false,
        each(&|r| r.name.clone().unwrap_or("-".into())),
    );
    row("owner".into(), false, each(&|r| r.owner.clone()));
    row("state".into(), false, each(&|r| r.state.clone()));
    row(
        "command".into(),
        has("command"),
        each(&|r| r.command.clone()),
    );
    let params: std::collections::BTreeSet<&String> =
        c.runs.iter().flat_map(|r| r.params.keys()).collect();
    for name in params {
        row(
            format!("param {name}"),
            has(&format!("param:{name}")),
            each(&|r| r.params.get(name).cloned().unwrap_or("-".into())),
        );
    }
    let metrics: std::collections::BTreeSet<&String> =
        c.runs.iter().flat_map(|r| r.metrics.keys()).collect();
    for name in metrics {
        row(
            format!("metric {name} last (min..max)"),
            has(&format!("metric:{name}")),
            each(&|r| match r.metrics.get(name) {
                Some(s) => format!("{} ({}..{})", s.last, s.min, s.max),
                None => "-".into(),
            }),
        );
    }
    row(
        "asked".into(),
        has("resources"),
        each(&|r| r.resources.summary()),
    );
    row(
        "peak memory".into(),
        false,
        each(&|r| human_bytes(r.usage.peak_memory_bytes)),
    );
    row(
        "cpu-s / gpu-s".into(),
        false,
        each(&|r| format!("{:.0} / {:.0}", r.usage.cpu_seconds, r.usage.gpu_seconds)),
    );
    row(
        "commit".into(),
        has("commit"),
        each(&|r| match &r.commit {
            Some(commit) => format!(
                "{}{}",
                &commit[..commit.len().min(10)],
                if r.dirty { "+" } else { "" }
            ),
            None => "-".into(),
        }),
    );
    let differing = |prefix: &str| -> Vec<&str> {
        c.differs
            .iter()
            .filter_map(|d| d.strip_prefix(prefix))
            .take(ROWS_OF_EACH)
            .collect()
    };
    for name in differing("package:") {
        row(
            format!("package {name}"),
            true,
            each(&|r| r.packages.get(name).cloned().unwrap_or("-".into())),
        );
    }
    for path in differing("input:") {
        row(
            format!("input {path}"),
            true,
            each(&|r| {
                r.inputs
                    .get(path)
                    .map_or("-".into(), |h| h.chars().take(12).collect())
            }),
        );
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut out = table(&header, &rows);
    if c.differs.is_empty() {
        out.push_str("nothing differs\n");
    } else {
        out.push_str(&format!("{} differ(s): * rows\n", c.differs.len()));
    }
    out
}
