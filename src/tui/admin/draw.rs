//! Drawing the Admin tab: the filter bar and the audit trail, newest first.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::AdminState;
use crate::tui::data::Snapshot;
use crate::tui::widgets::{ACCENT, Canvas, DIM, header_style, panel, with_filter_bar};
use crate::units::{minute_time, printable};

/// Draws the Admin tab.
pub(in crate::tui) fn render_admin(
    frame: &mut Canvas,
    area: Rect,
    snap: &Snapshot,
    state: &AdminState,
) {
    let errors: Vec<&str> = state.error.as_deref().into_iter().collect();
    let body = with_filter_bar(
        frame,
        area,
        state.typing.as_deref(),
        &errors,
        " Filter: user:U action:A since:T · Enter apply · Esc cancel ",
    );
    let filter = if state.filter.is_empty() {
        "none (/)".to_string()
    } else {
        printable(&state.filter)
    };
    // Wide, the entry in words too; narrow, what it changed.
    let wide = body.width >= 110;
    let title = format!(
        " Admin · Audit: who changed what · filter {filter} · {} shown{} ",
        snap.audit.len(),
        if wide {
            " · users, quotas: the commands for now"
        } else {
            ""
        }
    );
    let rows: Vec<Row> = snap
        .audit
        .iter()
        .map(|e| {
            let change = e.change().unwrap_or_default();
            let mut cells = vec![
                Cell::from(when(e.at, wide)).style(Style::default().fg(DIM)),
                Cell::from(printable(&e.actor)),
                Cell::from(if e.kind.is_empty() {
                    "-".to_string()
                } else {
                    e.kind.clone()
                })
                .style(Style::default().fg(ACCENT)),
                Cell::from(printable(&e.subject)),
            ];
            if wide {
                cells.push(Cell::from(printable(&e.action)));
            }
            cells.push(Cell::from(printable(&change)));
            Row::new(cells)
        })
        .collect();
    let count = rows.len();
    let mut widths = vec![
        Constraint::Length(if wide { 16 } else { 11 }),
        Constraint::Length(8),
        Constraint::Length(18),
        Constraint::Length(14),
    ];
    let mut header = vec!["WHEN", "WHO", "KIND", "SUBJECT"];
    if wide {
        widths.push(Constraint::Fill(1));
        header.push("WHAT");
    }
    widths.push(Constraint::Fill(1));
    header.push("CHANGE");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(header_style()))
        .block(panel(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .column_spacing(1);
    if count == 0 {
        let [top, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(body);
        frame.render_widget(table, top);
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(
                "No entry matches. / changes the filter; Esc clears it.",
                Style::default().fg(DIM),
            ))),
            rest,
        );
        return;
    }
    let mut selected = TableState::default();
    selected.select(Some(state.selected.min(count - 1)));
    frame.render_stateful_widget(table, body, &mut selected);
}

/// `YYYY-MM-DD HH:MM`, or `MM-DD HH:MM` where room is short.
fn when(at: i64, wide: bool) -> String {
    let full = minute_time(at);
    match full.get(5..) {
        Some(short) if !wide => short.to_string(),
        _ => full,
    }
}
