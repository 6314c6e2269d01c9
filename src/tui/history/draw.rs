//! The History tab: every experiment the caller may see, newest first,
//! filtered (`/`), a page at a time (`n`, `p`), sorted by the service
//! (`s`, `r`); the experiment page (Enter) and the marked ones compared (space,
//! `d`). The keys are in [`crate::tui::help_lines`].

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::panes::render_pane;
use super::{HistoryState, Shown, metric_columns};
use crate::tui::data::Snapshot;
use crate::tui::widgets::{ACCENT, Canvas, DIM, header_style, panel, with_filter_bar};
use crate::units::{printable, short_bytes, short_duration};

/// Draws the History tab.
pub(in crate::tui) fn render_history(
    frame: &mut Canvas,
    area: Rect,
    snap: &Snapshot,
    state: &HistoryState,
) {
    // An error's first line repeats the filter; the caret line follows.
    let errors: Vec<&str> = state
        .error
        .as_deref()
        .map(|e| e.lines().skip(1).collect())
        .unwrap_or_default();
    let body = with_filter_bar(
        frame,
        area,
        state.typing.as_deref(),
        &errors,
        " Filter (? lists the terms) · Enter apply · Esc cancel ",
    );
    match state.shown {
        Shown::Experiments => render_table(frame, body, snap, state),
        Shown::Feed => render_feed(frame, body, snap, state),
        Shown::Projects => render_projects(frame, body, snap, state),
        Shown::Dependencies => render_packages(frame, body, snap, state),
    }
    if let Some(pane) = &state.pane {
        render_pane(frame, body, snap, pane);
    }
}

fn render_table(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &HistoryState) {
    let rows = &snap.history;
    let metrics = metric_columns(&state.filter);
    let wide = area.width >= 110;
    let mut header = vec![
        " ", "ID", "NAME", "OWNER", "PROJECT", "STATE", "OUTCOME", "RAN",
    ];
    if wide {
        header.extend(["PEAK/ASKED", "GPU-H"]);
    }
    header.push("COMMIT");
    header.extend(metrics.iter().map(String::as_str));
    let body = rows.iter().map(|r| {
        let state_style = match r.state.as_str() {
            "succeeded" => Style::default().fg(Color::Green),
            "failed" | "killed_by_limit" | "lost" | "timed_out" => Style::default().fg(Color::Red),
            "running" | "starting" => Style::default().fg(Color::Yellow),
            _ => Style::default(),
        };
        let outcome_style = match r.outcome.map(|o| o.name()) {
            Some("positive") => Style::default().fg(Color::Green),
            Some("negative") => Style::default().fg(Color::Magenta),
            _ => Style::default(),
        };
        let mut cells = vec![
            Cell::from(if state.marked.contains(&r.id) {
                "●"
            } else {
                " "
            })
            .style(Style::default().fg(ACCENT)),
            Cell::from(r.id.to_string()),
            Cell::from(printable(r.name.as_deref().unwrap_or("-"))),
            Cell::from(printable(&r.owner)),
            Cell::from(printable(r.project.as_deref().unwrap_or("-"))),
            Cell::from(r.state.clone()).style(state_style),
            Cell::from(r.outcome.map_or("-", |o| o.name())).style(outcome_style),
            Cell::from(r.duration_secs.map_or("-".into(), short_duration)),
        ];
        if wide {
            cells.push(Cell::from(format!(
                "{}/{}",
                r.peak_memory_bytes
                    .map_or("-".into(), |b| short_bytes(b as f64)),
                short_bytes(r.memory_request_bytes as f64)
            )));
            cells.push(Cell::from(format!("{:.2}", r.gpu_hours)));
        }
        cells.push(Cell::from(match &r.commit {
            Some(c) => format!("{}{}", &c[..c.len().min(8)], if r.dirty { "+" } else { "" }),
            None => "-".into(),
        }));
        for m in &metrics {
            cells.push(Cell::from(
                r.metrics
                    .get(m)
                    .map_or("-".into(), |s| format!("{:.4}", s.last)),
            ));
        }
        Row::new(cells)
    });
    let mut widths = vec![1, 6, 16, 9, 10, 10, 8, 7];
    if wide {
        widths.extend([12, 6]);
    }
    widths.push(9);
    widths.extend(metrics.iter().map(|m| m.chars().count().max(7) as u16));
    let filter = if state.filter.is_empty() {
        "none (/)".to_string()
    } else {
        printable(&state.filter)
    };
    let page = state.pages.len() + 1;
    let more = match (snap.history_next, state.service_sort()) {
        (None, _) => "",
        (Some(_), None) => " · n: older",
        (Some(_), Some(_)) => " · n: next",
    };
    let title = if wide {
        format!(
            " History · filter {filter} · by {}{}{} · page {page}{more} · {} marked (space, d compare) ",
            // As the service sorts: a metric the filter dropped is not.
            if state.service_sort().is_some() {
                state.sort.0.label()
            } else {
                "id"
            },
            if state.sort.1 && state.service_sort().is_some() {
                ", reversed"
            } else {
                ""
            },
            if snap.history_capped {
                " (the newest matches only)"
            } else {
                ""
            },
            state.marked.len(),
        )
    } else {
        format!(
            " History · filter {filter} · page {page}{more} · {} marked ",
            state.marked.len()
        )
    };
    let table = Table::new(body, widths.into_iter().map(Constraint::Length))
        .header(Row::new(header).style(header_style()))
        .block(panel(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .column_spacing(1);
    if rows.is_empty() {
        let [top, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(area);
        frame.render_widget(table, top);
        let hint = if state.filter.is_empty() {
            "No experiment yet. Submit with: ssh lab@host submit -- python train.py"
        } else {
            "No experiment matches the filter: / to change it, Esc to clear it."
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(hint, Style::default().fg(DIM))))
                .wrap(Wrap { trim: true }),
            rest,
        );
        return;
    }
    let mut table_state = TableState::default();
    table_state.select(Some(state.selected.min(rows.len() - 1)));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// How a list is drawn: its title, column titles and widths (the last
/// takes the rest), and what it says when empty.
struct List<'a> {
    title: &'a str,
    header: &'a [&'a str],
    widths: &'a [u16],
    empty: &'a str,
}

/// `list` of `rows`, `selected` highlighted.
fn render_list(frame: &mut Canvas, area: Rect, list: &List, rows: Vec<Row>, selected: usize) {
    let List {
        title,
        header,
        widths,
        empty,
    } = *list;
    let count = rows.len();
    let table = Table::new(
        rows,
        widths
            .iter()
            .map(|w| Constraint::Length(*w))
            .chain([Constraint::Min(8)]),
    )
    .header(Row::new(header.to_vec()).style(header_style()))
    .block(panel(title.to_string()))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .column_spacing(1);
    if count == 0 {
        let [top, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(area);
        frame.render_widget(table, top);
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                empty.to_string(),
                Style::default().fg(DIM),
            ))),
            rest,
        );
        return;
    }
    let mut state = TableState::default();
    state.select(Some(selected.min(count - 1)));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Each project's figures (of the experiments the caller may read):
/// submitted → finished → succeeded → positive, last activity, hours.
fn render_projects(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &HistoryState) {
    let rows = snap
        .projects
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(printable(&p.project)),
                Cell::from(p.submitted.to_string()),
                Cell::from(p.finished.to_string()),
                Cell::from(p.succeeded.to_string()),
                Cell::from(p.positive.to_string()).style(Style::default().fg(Color::Green)),
                Cell::from(p.negative.to_string()).style(Style::default().fg(Color::Magenta)),
                Cell::from(format!("{:.1}", p.cpu_hours)),
                Cell::from(format!("{:.1}", p.gpu_hours)),
                Cell::from(crate::units::minute_time(p.last_activity)),
            ])
        })
        .collect();
    let list = List {
        title: " Projects: submitted → finished → succeeded → positive · Enter: its experiments · P: back ",
        header: &[
            "PROJECT",
            "SUBMITTED",
            "FINISHED",
            "SUCCEEDED",
            "POSITIVE",
            "NEGATIVE",
            "CPU-H",
            "GPU-H",
            "LAST ACTIVITY",
        ],
        widths: &[16, 9, 8, 9, 8, 8, 7, 7],
        empty: "No project yet (an experiment's project: --project, else its git repository's name).",
    };
    render_list(frame, area, &list, rows, state.selected);
}

/// The experiments a dependency query found (`package:`, `source:`).
fn render_uses(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &HistoryState) {
    let rows = snap
        .deps_uses
        .iter()
        .map(|u| {
            let what = match &u.package {
                Some(p) => format!(
                    "{}:{} {} ({})",
                    p.ecosystem,
                    p.name,
                    p.version
                        .as_deref()
                        .or(p.constraint.as_deref())
                        .unwrap_or("any"),
                    p.from
                ),
                None => u.sources.join(", "),
            };
            Row::new(vec![
                Cell::from(u.id.to_string()),
                Cell::from(printable(u.project.as_deref().unwrap_or("-"))),
                Cell::from(printable(&u.owner)),
                Cell::from(crate::units::minute_time(u.submitted_at)),
                Cell::from(printable(&what)),
            ])
        })
        .collect();
    let title = format!(
        " Dependencies · {} (/ to change, Esc to clear) · Enter: its page · D: back ",
        printable(&state.deps_query)
    );
    let list = List {
        title: &title,
        header: &["ID", "PROJECT", "OWNER", "SUBMITTED", "USES"],
        widths: &[6, 14, 10, 16],
        empty: "No experiment you may read matches the query.",
    };
    render_list(frame, area, &list, rows, state.selected);
}

/// Every package the captured provenance names, most used first; with a
/// query, what it found.
fn render_packages(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &HistoryState) {
    if state.deps_query.contains("package:") || state.deps_query.contains("source:") {
        return render_uses(frame, area, snap, state);
    }
    let rows = snap
        .packages
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(printable(&p.package)),
                Cell::from(p.experiments.to_string()),
                Cell::from(crate::units::minute_time(p.last_used)),
                Cell::from(printable(
                    &p.projects.iter().cloned().collect::<Vec<_>>().join(" "),
                )),
                Cell::from(printable(
                    &p.versions.iter().cloned().collect::<Vec<_>>().join(" "),
                )),
            ])
        })
        .collect();
    let list = List {
        title: " Dependencies: packages the experiments' projects declare, most used first · Enter: its experiments · / query (package:pandas<2 source:mysql project:P unused:90d) · D: back ",
        header: &[
            "PACKAGE",
            "EXPERIMENTS",
            "LAST USED",
            "PROJECTS",
            "VERSIONS",
        ],
        widths: &[28, 11, 16, 20],
        empty: "No dependency recorded yet (requirements*.txt, pyproject.toml, renv.lock, … of started experiments).",
    };
    render_list(frame, area, &list, rows, state.selected);
}

/// The activity feed: results, comments and outcomes of the last days,
/// newest first (what a viewer sees first).
fn render_feed(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &HistoryState) {
    use crate::lab::FeedEvent;
    let rows = snap.feed.iter().map(|item| {
        let (what, style) = match &item.event {
            FeedEvent::Result { state } => (
                format!("ended: {state}"),
                match state.as_str() {
                    "succeeded" => Style::default().fg(Color::Green),
                    "failed" | "killed_by_limit" | "lost" | "timed_out" => {
                        Style::default().fg(Color::Red)
                    }
                    _ => Style::default(),
                },
            ),
            FeedEvent::Comment { author, text } => (format!("{author}: {text}"), Style::default()),
            FeedEvent::Outcome { verdict, by, note } => (
                format!(
                    "outcome {} by {by}{}",
                    verdict.name(),
                    note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                ),
                match verdict.name() {
                    "positive" => Style::default().fg(Color::Green),
                    "negative" => Style::default().fg(Color::Magenta),
                    _ => Style::default(),
                },
            ),
        };
        Row::new(vec![
            Cell::from(crate::units::minute_time(item.at)),
            Cell::from(item.experiment.to_string()),
            Cell::from(printable(item.name.as_deref().unwrap_or("-"))),
            Cell::from(printable(item.project.as_deref().unwrap_or("-"))),
            Cell::from(printable(&what)).style(style),
        ])
    });
    let title = if state.feed_project.is_empty() {
        " Activity of the last 7 days, newest first · Enter: its page · / one project · f: the experiments "
            .to_string()
    } else {
        format!(
            " Activity in project {} of the last 7 days · Enter: its page · / another · Esc: all · f: the experiments ",
            printable(&state.feed_project)
        )
    };
    let list = List {
        title: &title,
        header: &["WHEN", "ID", "NAME", "PROJECT", "WHAT"],
        widths: &[16, 6, 16, 12],
        empty: "Nothing happened in the last 7 days that you may read. f: the experiments.",
    };
    render_list(frame, area, &list, rows.collect(), state.selected);
}
