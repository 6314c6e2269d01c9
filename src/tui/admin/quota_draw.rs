//! Drawing the Quotas view: every quota set, and the editor with its live
//! preview (who is over the typed limits now, what would start or be held
//! back, and each concerned user's holdings beside their 7-day peak and
//! p95).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::AdminState;
use super::draw::render_selectable;
use super::quota_editor::{FIELDS, QuotaEditor, duration_text};
use crate::lab::QuotaChangePreview;
use crate::model::Quota;
use crate::tui::data::Snapshot;
use crate::tui::widgets::{ACCENT, Canvas, DIM, header_style, panel};
use crate::units::{printable, short_bytes};

/// Most experiment ids a preview line lists.
const IDS_SHOWN: usize = 12;
/// Most users or projects the preview names as over the limits.
const OVER_SHOWN: usize = 5;

/// Draws the Quotas view, or the editor when open.
pub(in crate::tui) fn render_quotas(
    frame: &mut Canvas,
    area: Rect,
    snap: &Snapshot,
    state: &AdminState,
) {
    if let Some(editor) = &state.editor {
        return render_editor(frame, area, snap, editor);
    }
    let limit = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows: Vec<Row> = snap
        .quotas
        .iter()
        .map(|(scope, q)| {
            Row::new(vec![
                Cell::from(printable(&scope.to_string())),
                Cell::from(limit(q.max_running.map(|v| v.to_string()))),
                Cell::from(limit(q.max_cpus.map(|v| v.to_string()))),
                Cell::from(limit(q.max_memory_bytes.map(|v| short_bytes(v as f64)))),
                Cell::from(limit(q.max_gpus.map(|v| v.to_string()))),
                Cell::from(limit(q.max_time_secs.map(duration_text))),
                Cell::from(limit(q.max_queued.map(|v| v.to_string()))),
                Cell::from(limit(q.max_gpu_hours_month.map(|v| v.to_string()))),
                Cell::from(limit(q.max_cost_month.map(|v| v.to_string()))),
            ])
        })
        .collect();
    let count = rows.len();
    let [table_area, foot] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new(vec![
            "SCOPE", "RUNNING", "CPUS", "MEMORY", "GPUS", "TIME", "QUEUED", "GPU-H/MO", "COST/MO",
        ])
        .style(header_style()),
    )
    .block(panel(format!(
        " Admin · Quotas ({count}) · Enter: edit · n: new · x: remove · v: host limits "
    )))
    .column_spacing(1);
    render_selectable(frame, table_area, table, count, state.selected);
    let hint = if let Some(typed) = &state.new_scope {
        Line::from(vec![
            Span::styled(" New quota for: ", Style::default().fg(ACCENT)),
            Span::raw(printable(typed)),
            Span::styled("▏", Style::default().fg(ACCENT)),
            Span::styled(
                state.error.as_deref().map_or(
                    "  user NAME · project NAME · default · Enter · Esc".into(),
                    |e| format!("  {e}"),
                ),
                Style::default().fg(DIM),
            ),
        ])
    } else if let Some(scope) = &state.confirm_remove {
        Line::from(Span::styled(
            format!(" Remove the quota of {scope}? y: remove · any other key: keep"),
            Style::default().fg(Color::Yellow),
        ))
    } else {
        Line::from(Span::styled(
            " A user's own limits win; the default fills the rest. A project's quota counts all its experiments.",
            Style::default().fg(DIM),
        ))
    };
    frame.render_widget(Paragraph::new(hint), foot);
}

/// The editor: the limits on the left, the preview of what they would do
/// on the right (below, where the screen is narrow).
fn render_editor(frame: &mut Canvas, area: Rect, snap: &Snapshot, editor: &QuotaEditor) {
    let wide = area.width >= 100;
    let [form, preview] = if wide {
        Layout::horizontal([Constraint::Length(44), Constraint::Min(40)]).areas(area)
    } else {
        Layout::vertical([
            Constraint::Length(FIELDS.len() as u16 + 5),
            Constraint::Min(6),
        ])
        .areas(area)
    };
    let mut lines: Vec<Line> = FIELDS
        .iter()
        .zip(&editor.values)
        .enumerate()
        .map(|(i, ((label, example), value))| {
            let focused = i == editor.focus;
            let shown = if value.is_empty() && !focused {
                Span::styled(
                    format!("unlimited (e.g. {example})"),
                    Style::default().fg(DIM),
                )
            } else {
                Span::raw(printable(value))
            };
            let mut spans = vec![
                Span::styled(
                    format!("{}{label:<18} ", if focused { "▶ " } else { "  " }),
                    if focused {
                        Style::default().fg(ACCENT).add_modifier(Modifier::BOLD)
                    } else {
                        Style::default()
                    },
                ),
                shown,
            ];
            if focused {
                spans.push(Span::styled("▏", Style::default().fg(ACCENT)));
            }
            Line::from(spans)
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        match &editor.error {
            Some(why) => format!(" {}", printable(why)),
            None => " ↑↓ · type · Enter: save · Esc: close".to_string(),
        },
        Style::default().fg(if editor.error.is_some() {
            Color::Red
        } else {
            DIM
        }),
    )));
    frame.render_widget(
        Paragraph::new(lines).block(panel(format!(
            " Quota of {} ",
            printable(&editor.scope.to_string())
        ))),
        form,
    );
    render_preview(frame, preview, snap.quota_preview.as_ref());
}

/// The preview of the typed limits, as the service computed it.
fn render_preview(
    frame: &mut Canvas,
    area: Rect,
    preview: Option<&Result<QuotaChangePreview, String>>,
) {
    let block = panel(" Preview: if saved now (nothing is saved yet) ".to_string());
    let p = match preview {
        None => {
            frame.render_widget(Paragraph::new(" computing…").block(block), area);
            return;
        }
        Some(Err(why)) => {
            frame.render_widget(
                Paragraph::new(Span::styled(
                    format!(" {}", printable(why)),
                    Style::default().fg(Color::Red),
                ))
                .wrap(Wrap { trim: false })
                .block(block),
                area,
            );
            return;
        }
        Some(Ok(p)) => p,
    };
    let ids = |ids: &[u64]| {
        if ids.is_empty() {
            return "none".to_string();
        }
        let mut text: Vec<String> = ids.iter().take(IDS_SHOWN).map(u64::to_string).collect();
        if ids.len() > IDS_SHOWN {
            text.push(format!("… ({} in all)", ids.len()));
        }
        text.join(" ")
    };
    let mut lines = vec![];
    if p.effect.over_now.is_empty() {
        lines.push(Line::from(" Over it now: nobody"));
    }
    for over in p.effect.over_now.iter().take(OVER_SHOWN) {
        lines.push(Line::from(vec![
            Span::styled(" Over it now: ", Style::default().fg(Color::Yellow)),
            Span::raw(format!("{}: {}", printable(&over.who), over.exceeded)),
        ]));
    }
    if p.effect.over_now.len() > OVER_SHOWN {
        lines.push(Line::from(format!(
            " … and {} more over it now",
            p.effect.over_now.len() - OVER_SHOWN
        )));
    }
    lines.push(Line::from(vec![
        Span::styled(" Would start: ", Style::default().fg(Color::Green)),
        Span::raw(ids(&p.effect.would_start)),
    ]));
    lines.push(Line::from(vec![
        Span::styled(" Would be held: ", Style::default().fg(Color::Yellow)),
        Span::raw(ids(&p.effect.would_hold)),
    ]));
    let head = lines.len() as u16 + 1;
    let [text, table] =
        Layout::vertical([Constraint::Length(head), Constraint::Min(2)]).areas(block.inner(area));
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(lines), text);
    let rows: Vec<Row> = p
        .users
        .iter()
        .map(|u| {
            let over = beyond(&u.limit, u);
            Row::new(vec![
                Cell::from(printable(&u.user)),
                Cell::from(format!("{}/{}", u.running, limit(u.limit.max_running))),
                Cell::from(format!("{}/{}", u.cpus, limit(u.limit.max_cpus))),
                Cell::from(format!(
                    "{:.1}/{:.1}",
                    u.peak_7d.cpu_cores, u.p95_7d.cpu_cores
                ))
                .style(Style::default().fg(DIM)),
                Cell::from(format!(
                    "{}/{}",
                    short_bytes(u.memory_bytes as f64),
                    u.limit
                        .max_memory_bytes
                        .map_or("-".into(), |m| short_bytes(m as f64))
                )),
                Cell::from(format!(
                    "{}/{}",
                    short_bytes(u.peak_7d.memory_bytes),
                    short_bytes(u.p95_7d.memory_bytes)
                ))
                .style(Style::default().fg(DIM)),
                Cell::from(format!("{}/{}", u.gpus, limit(u.limit.max_gpus))),
                Cell::from(format!("{:.0}/{:.0}", u.peak_7d.gpus, u.p95_7d.gpus))
                    .style(Style::default().fg(DIM)),
            ])
            .style(if over {
                Style::default().fg(Color::Yellow)
            } else {
                Style::default()
            })
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(6),
                Constraint::Length(7),
                Constraint::Length(7),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(10),
            ],
        )
        .header(
            Row::new(vec![
                "USER",
                "RUN/MAX",
                "CPU/MAX",
                "CPU PK/P95",
                "MEM/MAX",
                "MEM PK/P95",
                "GPU/MAX",
                "GPU PK/P95",
            ])
            .style(header_style()),
        )
        .column_spacing(1),
        table,
    );
}

fn limit<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Whether what `u` holds is past `quota` (the row is marked).
fn beyond(quota: &Quota, u: &crate::lab::UserFigures) -> bool {
    quota.max_running.is_some_and(|m| u.running > m)
        || quota.max_cpus.is_some_and(|m| u.cpus > m + 1e-9)
        || quota.max_memory_bytes.is_some_and(|m| u.memory_bytes > m)
        || quota.max_gpus.is_some_and(|m| u.gpus > m)
}
