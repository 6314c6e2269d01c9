//! Drawing History's panes over the table: the experiment page with its
//! charts, a comparison, the diff viewer, the comment editor and chooser,
//! and the outcome prompt.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::HistoryPane;
use crate::tui::data::{Snapshot, UseChart};
use crate::tui::widgets::{ACCENT, Canvas, DIM, clear_centered, panel};
use crate::units::{printable, short_bytes};

/// Draws `pane` over `area`.
pub(super) fn render_pane(frame: &mut Canvas, area: Rect, snap: &Snapshot, pane: &HistoryPane) {
    match pane {
        HistoryPane::Comment { id, text, editing } => {
            return render_comment(frame, area, *id, text, *editing);
        }
        HistoryPane::Outcome { id, verdict, note } => {
            return render_outcome(frame, area, *id, *verdict, note);
        }
        HistoryPane::PickComment {
            id,
            selected,
            remove,
        } => {
            return render_comment_choice(frame, area, snap, *id, *selected, *remove);
        }
        HistoryPane::ConfirmRemove { id, comment, what } => {
            let rect = clear_centered(frame, area, area.width.min(90), 4);
            let what: String = printable(what)
                .chars()
                .take(usize::from(rect.width.saturating_sub(4)))
                .collect();
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(what),
                    Line::from(Span::styled(
                        "y: delete it · any other key: keep it",
                        Style::default().fg(DIM),
                    )),
                ])
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .border_style(Style::default().fg(Color::Red))
                        .title(format!(" Delete comment {comment} on experiment {id}? ")),
                ),
                rect,
            );
            return;
        }
        _ => {}
    }
    let wrap = matches!(pane, HistoryPane::Page { .. });
    let (title, scroll) = match pane {
        HistoryPane::Page { id, scroll } => (
            format!(" Experiment {id} — ↑↓ PgUp PgDn scroll · Esc close "),
            *scroll,
        ),
        HistoryPane::Comment { .. }
        | HistoryPane::Outcome { .. }
        | HistoryPane::PickComment { .. }
        | HistoryPane::ConfirmRemove { .. } => return,
        HistoryPane::Diff { id, scroll } => (
            format!(
                " Diff of experiment {id} against its commit — ↑↓ PgUp PgDn scroll · Esc: its page "
            ),
            *scroll,
        ),
        HistoryPane::Compare { ids, scroll } => (
            format!(
                " Compare {} — * differs · ↑↓ PgUp PgDn scroll · Esc close ",
                ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
            ),
            *scroll,
        ),
    };
    let rect = clear_centered(frame, area, area.width, area.height);
    // The page's (a comparison's) charts above its text, where there is room.
    let rect = match (&snap.page_charts, pane) {
        (Some(charts), HistoryPane::Page { .. } | HistoryPane::Compare { .. })
            if rect.height >= 22 =>
        {
            let [top, rest] =
                Layout::vertical([Constraint::Length(11), Constraint::Min(5)]).areas(rect);
            render_page_charts(frame, top, charts);
            rest
        }
        _ => rect,
    };
    let text: Vec<Line> = snap
        .history_pane_text
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(|l| {
            let style = if l.starts_with('*') {
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            Line::from(Span::styled(printable(l), style))
        })
        .collect();
    let paragraph = Paragraph::new(text);
    // A page's long lines wrap; a comparison's columns stay aligned.
    let paragraph = if wrap {
        paragraph.wrap(Wrap { trim: false })
    } else {
        paragraph
    };
    frame.render_widget(
        paragraph.scroll((scroll, 0)).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(ACCENT))
                .title(title),
        ),
        rect,
    );
}

/// The caller's comments on an experiment, one to choose to edit or remove.
fn render_comment_choice(
    frame: &mut Canvas,
    area: Rect,
    snap: &Snapshot,
    id: u64,
    selected: usize,
    remove: bool,
) {
    let comments = &snap.history_comments;
    let height = (comments.len() as u16).clamp(1, 12) + 2;
    let rect = clear_centered(frame, area, area.width.min(90), height);
    let width = usize::from(rect.width.saturating_sub(4));
    let lines: Vec<Line> = if comments.is_empty() {
        vec![Line::from(Span::styled(
            "no comment of yours on this experiment (admins change anyone's)",
            Style::default().fg(DIM),
        ))]
    } else {
        comments
            .iter()
            .enumerate()
            .map(|(n, c)| {
                let first = c.text.lines().next().unwrap_or("");
                let more = if c.text.lines().nth(1).is_some() {
                    " …"
                } else {
                    ""
                };
                let mark = if n == selected { "▶" } else { " " };
                let text = format!("{mark} #{} {}: {first}{more}", c.id, c.author);
                let text: String = printable(&text).chars().take(width).collect();
                let style = if n == selected {
                    Style::default().add_modifier(Modifier::REVERSED)
                } else {
                    Style::default()
                };
                Line::from(Span::styled(text, style))
            })
            .collect()
    };
    let skip = selected.saturating_sub(usize::from(height.saturating_sub(3)));
    let action = if remove {
        "Enter: delete it"
    } else {
        "Enter: edit it"
    };
    frame.render_widget(
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(if remove { Color::Red } else { ACCENT }))
                .title(format!(
                    " Which comment on experiment {id}? ↑↓ choose · {action} · Esc: back "
                )),
        ),
        rect,
    );
}

/// The comment editor: several lines, saved with Ctrl-S.
fn render_comment(frame: &mut Canvas, area: Rect, id: u64, text: &str, editing: Option<u64>) {
    let rect = clear_centered(frame, area, area.width.min(90), area.height.min(14));
    let mut lines: Vec<Line> = text.split('\n').map(|l| Line::from(printable(l))).collect();
    if let Some(last) = lines.last_mut() {
        last.push_span(Span::styled("▏", Style::default().fg(ACCENT)));
    }
    // The end of a long comment stays in sight.
    let inner = rect.height.saturating_sub(2) as usize;
    let skip = lines.len().saturating_sub(inner);
    frame.render_widget(
        Paragraph::new(lines.split_off(skip))
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(Style::default().fg(ACCENT))
                    .title(match editing {
                        None => format!(
                            " Comment on experiment {id} — Enter: new line · Ctrl-S: save · Esc: cancel "
                        ),
                        Some(comment) => format!(
                            " Editing comment {comment} on experiment {id} — Ctrl-S: save · Esc: cancel "
                        ),
                    }),
            ),
        rect,
    );
}

/// The outcome prompt: a verdict key, then a note.
fn render_outcome(
    frame: &mut Canvas,
    area: Rect,
    id: u64,
    verdict: Option<Option<crate::model::Verdict>>,
    note: &str,
) {
    let rect = clear_centered(frame, area, area.width.min(70), 6);
    let text = match verdict {
        None => vec![
            Line::from(Span::styled(
                "p positive · n negative · i inconclusive · x none",
                Style::default().add_modifier(Modifier::BOLD),
            )),
            Line::from(Span::styled(
                "(owners and admins; a negative result counts as much)",
                Style::default().fg(DIM),
            )),
        ],
        Some(chosen) => vec![
            Line::from(format!("Outcome: {}", chosen.map_or("none", |v| v.name()))),
            Line::from(vec![
                Span::styled("Note: ", Style::default().fg(ACCENT)),
                Span::raw(printable(note)),
                Span::styled("▏", Style::default().fg(ACCENT)),
            ]),
            Line::from(Span::styled(
                "Enter: save · Esc: cancel",
                Style::default().fg(DIM),
            )),
        ],
    };
    frame.render_widget(
        Paragraph::new(text).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(ACCENT))
                .title(format!(" Outcome of experiment {id} ")),
        ),
        rect,
    );
}

/// Axis bounds around `values`, never empty.
fn bounds(values: impl Iterator<Item = f64>) -> [f64; 2] {
    let (mut low, mut high) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if low > high {
        return [0.0, 1.0];
    }
    if high <= low {
        let pad = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
        return [low - pad, high + pad];
    }
    [low, high]
}

/// The metric chosen (`m`, log scale `L`) and memory over the run, side
/// by side, with axes and labels.
fn render_page_charts(frame: &mut Canvas, area: Rect, charts: &crate::tui::data::PageCharts) {
    use ratatui::symbols::Marker;
    use ratatui::widgets::{Axis, Chart, Dataset, GraphType};
    // A comparison has no memory chart: its metric takes the width.
    let [left, right] = if charts.memory.is_empty() && charts.metric.is_some() {
        [area, Rect::default()]
    } else {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area)
    };
    let plain = crate::units::plain_number;
    match &charts.metric {
        Some(crate::tui::data::MetricChart {
            name,
            at,
            count,
            lines,
        }) => {
            // A log scale charts log10 of the positive values.
            let shown: Vec<(String, Vec<(f64, f64)>)> = lines
                .iter()
                .map(|(label, points)| {
                    let points = if charts.log {
                        points
                            .iter()
                            .filter(|(_, y)| *y > 0.0)
                            .map(|(x, y)| (*x, y.log10()))
                            .collect()
                    } else {
                        points.clone()
                    };
                    (label.clone(), points)
                })
                .collect();
            let all = || shown.iter().flat_map(|(_, p)| p.iter());
            let x = bounds(all().map(|p| p.0));
            let y = bounds(all().map(|p| p.1));
            let label = |v: f64| {
                if charts.log {
                    plain(10f64.powf(v))
                } else {
                    plain(v)
                }
            };
            const COLOURS: [Color; 6] = [
                Color::Cyan,
                Color::Yellow,
                Color::Green,
                Color::Magenta,
                Color::Red,
                Color::Blue,
            ];
            let several = shown.len() > 1;
            let datasets = shown
                .iter()
                .enumerate()
                .map(|(i, (label, points))| {
                    let dataset = Dataset::default()
                        .marker(Marker::Braille)
                        .graph_type(GraphType::Line)
                        .style(Style::default().fg(COLOURS[i % COLOURS.len()]))
                        .data(points);
                    if several {
                        dataset.name(printable(label))
                    } else {
                        dataset
                    }
                })
                .collect();
            let chart = Chart::new(datasets)
                .block(panel(format!(
                    " {} ({}/{count}) · m: next{} · L: log scale ",
                    printable(name),
                    at + 1,
                    if charts.log { " · log" } else { "" }
                )))
                .x_axis(
                    Axis::default()
                        .title("step")
                        .bounds(x)
                        .labels([plain(x[0]), plain(x[1])]),
                )
                .y_axis(Axis::default().bounds(y).labels([label(y[0]), label(y[1])]))
                // The legend (which line is which experiment) even in a
                // short chart.
                .hidden_legend_constraints((Constraint::Ratio(1, 3), Constraint::Ratio(1, 1)));
            frame.render_widget(chart, left);
            if charts.memory.is_empty() {
                return;
            }
        }
        None => frame.render_widget(
            Paragraph::new(Span::styled(
                "No metrics reported (or none you may read).",
                Style::default().fg(DIM),
            ))
            .block(panel(" Metrics ".into())),
            left,
        ),
    }
    if charts.memory.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("No use measured.", Style::default().fg(DIM)))
                .block(panel(" Memory ".into())),
            right,
        );
        return;
    }
    // Memory, CPU or GPU memory (`u`), against what was asked for.
    let y_label: fn(f64) -> String = if charts.shown == UseChart::Cpu {
        plain
    } else {
        short_bytes
    };
    let (points, asked, title): (&[(f64, f64)], f64, String) = match charts.shown {
        UseChart::Cpu => (
            &charts.cpu,
            charts.cpu_asked,
            format!(
                " CPU cores busy (asked {}) · u: GPU memory ",
                plain(charts.cpu_asked)
            ),
        ),
        UseChart::GpuMemory if charts.gpu_memory.is_empty() => {
            frame.render_widget(
                Paragraph::new(Span::styled(
                    "No GPU memory held during the run.",
                    Style::default().fg(DIM),
                ))
                .block(panel(" GPU memory · u: memory ".into())),
                right,
            );
            return;
        }
        // A request counts GPUs, not their memory: no line for it.
        UseChart::GpuMemory => (
            &charts.gpu_memory,
            f64::INFINITY,
            " GPU memory in use · u: memory ".to_string(),
        ),
        UseChart::Memory => (
            &charts.memory,
            charts.memory_asked,
            format!(
                " Memory in use (asked {}) · u: CPU ",
                short_bytes(charts.memory_asked)
            ),
        ),
    };
    let x = bounds(points.iter().map(|p| p.0));
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max);
    // The request shows as a line when use comes near it.
    let y = [
        0.0,
        top.max(f64::MIN_POSITIVE)
            .max(if top > asked * 0.5 { asked } else { 0.0 }),
    ];
    let y = [y[0], if y[1] > 0.0 { y[1] } else { 1.0 }];
    let request: Vec<(f64, f64)> = if top > asked * 0.5 {
        vec![(x[0], asked), (x[1], asked)]
    } else {
        Vec::new()
    };
    let mut datasets = vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Green))
            .data(points),
    ];
    if !request.is_empty() {
        datasets.push(
            Dataset::default()
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(DIM))
                .data(&request),
        );
    }
    let chart = Chart::new(datasets)
        .block(panel(title))
        .x_axis(
            Axis::default()
                .title("seconds")
                .bounds(x)
                .labels([plain(x[0]), plain(x[1])]),
        )
        .y_axis(
            Axis::default()
                .bounds(y)
                .labels(["0".to_string(), y_label(y[1])]),
        );
    frame.render_widget(chart, right);
}
