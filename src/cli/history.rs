//! `history [FILTER…] [--metric NAME]… [--limit N] [--before ID | --sort
//! COLUMN [--desc] [--offset N]] [--json|--csv]`: every experiment you may
//! see, newest first or sorted, that the filter selects.

use super::output::{CommandOutput, table};
use crate::lab::{HistoryPage, HistoryRow, HistorySort, Lab, Principal};
use crate::units::{human_bytes, printable, short_duration};

/// What `history` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    /// Aligned columns.
    Text,
    /// The page as JSON.
    Json,
    /// A CSV row per experiment.
    Csv,
}

/// Which page of a search.
#[derive(Debug, Clone, PartialEq)]
pub enum Paging {
    /// Newest first, below this id.
    Before(Option<u64>),
    /// Sorted, after skipping this many.
    Sorted(HistorySort, usize),
}

/// `history`: a page of experiments matching `filter` (its words joined).
pub fn history(
    lab: &Lab,
    p: &Principal,
    filter: &[String],
    metrics: &[String],
    paging: Paging,
    limit: usize,
    format: HistoryFormat,
) -> CommandOutput {
    let filter = filter.join(" ");
    if let Err(e) = crate::lab::filter::parse(&filter) {
        return CommandOutput::error(
            super::output::exit::USAGE,
            format!("error: bad filter:\n{}\n", e.render(&filter)),
        );
    }
    let page = match &paging {
        Paging::Before(before) => lab.history(p, &filter, *before, limit),
        Paging::Sorted(sort, offset) => lab.history_sorted(p, &filter, sort, *offset, limit),
    };
    let page = match page {
        Ok(page) => page,
        Err(e) => return e.into(),
    };
    // The metrics shown: those asked for, else those the filter names.
    let mut shown: Vec<String> = metrics.to_vec();
    if shown.is_empty()
        && let Ok(parsed) = crate::lab::filter::parse(&filter)
    {
        shown = parsed
            .metric_names()
            .iter()
            .map(|m| m.to_string())
            .collect();
    }
    match format {
        HistoryFormat::Json => CommandOutput::json(&page),
        HistoryFormat::Csv => CommandOutput::ok(as_csv(&page, &shown)),
        HistoryFormat::Text => CommandOutput::ok(as_text(&page, &shown)),
    }
}

fn as_text(page: &HistoryPage, shown: &[String]) -> String {
    if page.rows.is_empty() {
        return match page.next {
            Some(next) => format!(
                "no experiment matched among the {} newest examined; go on with --before {next}\n",
                page.examined
            ),
            None => match page.sorted_among {
                Some(among) if among > 0 => {
                    format!("no rows past those {among} sorted matches (a smaller --offset)\n")
                }
                _ => "no experiment matches\n".into(),
            },
        };
    }
    let mut header = vec![
        "ID",
        "NAME",
        "OWNER",
        "PROJECT",
        "STATE",
        "OUTCOME",
        "RAN",
        "PEAK/ASKED",
        "GPU-H",
        "COMMIT",
    ];
    header.extend(shown.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = page
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.id.to_string(),
                printable(r.name.as_deref().unwrap_or("-")),
                printable(&r.owner),
                printable(r.project.as_deref().unwrap_or("-")),
                r.state.clone(),
                r.outcome.map_or("-", |o| o.name()).to_string(),
                r.duration_secs.map_or("-".into(), short_duration),
                format!(
                    "{}/{}",
                    r.peak_memory_bytes.map_or("-".into(), human_bytes),
                    human_bytes(r.memory_request_bytes)
                ),
                format!("{:.2}", r.gpu_hours),
                commit(r),
            ];
            row.extend(shown.iter().map(|m| {
                r.metrics
                    .get(m)
                    .map_or("-".into(), |s| format!("{}", s.last))
            }));
            row
        })
        .collect();
    let mut out = table(&header, &rows);
    if let Some(next) = page.next {
        out.push_str(&format!("more: --before {next}\n"));
    }
    if let Some(next) = page.next_offset {
        out.push_str(&format!("more: --offset {next}\n"));
    }
    if page.sort_partial {
        out.push_str(&format!(
            "sorted among the newest {} matches; narrow the filter (since:, project:, user:) to sort older ones\n",
            page.sorted_among.unwrap_or_default()
        ));
    }
    out
}

fn commit(r: &HistoryRow) -> String {
    match &r.commit {
        Some(c) => format!("{}{}", &c[..c.len().min(8)], if r.dirty { "+" } else { "" }),
        None => "-".into(),
    }
}

/// A CSV field: quoted when it must be, and a text that a spreadsheet
/// would take for a formula starts with `'`.
pub(super) fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn as_csv(page: &HistoryPage, shown: &[String]) -> String {
    let mut out = String::from(
        "id,name,owner,project,state,outcome,submitted_at,duration_secs,peak_memory_bytes,memory_request_bytes,gpu_hours,commit,dirty",
    );
    for m in shown {
        out.push(',');
        out.push_str(&field(m));
    }
    out.push('\n');
    for r in &page.rows {
        let cells = [
            r.id.to_string(),
            field(r.name.as_deref().unwrap_or("")),
            field(&r.owner),
            field(r.project.as_deref().unwrap_or("")),
            r.state.clone(),
            r.outcome.map_or("", |o| o.name()).to_string(),
            r.submitted_at.to_string(),
            r.duration_secs.map_or(String::new(), |d| d.to_string()),
            r.peak_memory_bytes.map_or(String::new(), |b| b.to_string()),
            r.memory_request_bytes.to_string(),
            format!("{:.4}", r.gpu_hours),
            r.commit.clone().unwrap_or_default(),
            r.dirty.to_string(),
        ];
        out.push_str(&cells.join(","));
        for m in shown {
            out.push(',');
            if let Some(s) = r.metrics.get(m) {
                out.push_str(&s.last.to_string());
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{LabCommand, parse_exec_line};

    #[test]
    fn negated_terms_come_after_a_double_dash_or_inside_quotes() {
        let Ok(LabCommand::History {
            filter,
            json,
            limit,
            ..
        }) = parse_exec_line("history --json --limit 5 -- -state:failed project:x 'name:big run'")
        else {
            panic!("not parsed as history");
        };
        assert_eq!(filter, ["-state:failed", "project:x", "name:big run"]);
        assert!(json);
        assert_eq!(limit, 5);
        // Inside one quoted filter a negation needs no `--`.
        let Ok(LabCommand::History { filter, .. }) =
            parse_exec_line("history 'state:finished -tag:wip' --csv")
        else {
            panic!("not parsed as history");
        };
        assert_eq!(filter, ["state:finished -tag:wip"]);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
    }
}
