//! The Queue tab: queued and running experiments (filtered by owner, state,
//! project), details, live log, new-experiment form, cancel, priority.
//!
//! It lists everyone's queued and running experiments (the caller's in bold),
//! however many (the title says how many), next to start first: running ones,
//! then queued ones in the order the scheduler takes them. Each row shows the
//! requests, what a running one uses now (CPU and memory from its cgroup, GPU
//! memory `G:` held by its processes as the GPU source reports it) and why a
//! queued one waits. The keys are in [`crate::tui::help_lines`].

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::form::render_form;
use super::logpane::render_log_pane;
use super::{QueuePane, QueueState};
use crate::lab::ExperimentView;
use crate::model::{EXPERIMENT_COLUMNS, State};
use crate::tui::data::Snapshot;
use crate::tui::widgets::{ACCENT, Canvas, DIM, clear_centered, header_style, panel};
use crate::units::{human_duration, printable};

/// Columns of the Queue tab: `ls`'s, with live use after the request.
const QUEUE_COLUMNS: [&str; 8] = [
    EXPERIMENT_COLUMNS[0],
    EXPERIMENT_COLUMNS[1],
    EXPERIMENT_COLUMNS[2],
    EXPERIMENT_COLUMNS[3],
    EXPERIMENT_COLUMNS[4],
    EXPERIMENT_COLUMNS[5],
    "USE NOW",
    EXPERIMENT_COLUMNS[6],
];

/// The rows on screen: those the session read (already chosen by owner,
/// state and project, in the order asked) from row `snap.queue_offset`.
pub fn visible_rows(snap: &Snapshot) -> Vec<&ExperimentView> {
    snap.queue.iter().collect()
}

/// Draws the Queue tab.
pub(in crate::tui) fn render_queue(
    frame: &mut Canvas,
    area: Rect,
    snap: &Snapshot,
    state: &QueueState,
) {
    let rows = visible_rows(snap);
    let now = snap.usage.at;
    let body = rows.iter().map(|v| {
        let e = &v.experiment;
        let mine = e.owner == snap.user;
        let state_style = match e.state {
            State::Running { .. } => Style::default().fg(Color::Green),
            State::Starting { .. } => Style::default().fg(Color::Yellow),
            _ => Style::default(),
        };
        Row::new(vec![
            Cell::from(e.id.to_string()),
            Cell::from(printable(e.spec.name.as_deref().unwrap_or("-"))),
            Cell::from(e.owner.clone()),
            Cell::from(e.state.name()).style(state_style),
            Cell::from(human_duration(e.age_secs(now))),
            Cell::from(e.spec.resources.summary()),
            Cell::from(
                v.live
                    .map(|l| {
                        let mut text = format!(
                            "{:.1}c {}",
                            l.cpu_cores,
                            crate::units::short_bytes(l.memory_bytes as f64)
                        );
                        // GPU memory its processes hold (G: to tell it from RAM).
                        if e.spec.resources.gpus > 0 || l.gpu_memory_bytes > 0 {
                            text.push_str(&format!(
                                " G:{}",
                                crate::units::short_bytes(l.gpu_memory_bytes as f64)
                            ));
                        }
                        text
                    })
                    .unwrap_or_default(),
            ),
            Cell::from(printable(&v.note())),
        ])
        .style(if mine {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        })
    });
    let mut table_state = TableState::default();
    if !rows.is_empty() {
        let at = state.selected.saturating_sub(snap.queue_offset);
        table_state.select(Some(at.min(rows.len() - 1)));
    }
    let total = snap.queue_total.max(rows.len());
    let order = if state.newest_first {
        "newest first"
    } else {
        "next to start first"
    };
    let whose = if state.mine_only {
        "mine"
    } else {
        "everyone's"
    };
    let project = printable(state.project.as_deref().unwrap_or("any"));
    let title = if area.width >= 110 {
        format!(
            " Queue: {total} experiment{} · {order} (s) · {whose} (m) · {} (f) · project {project} (P) · n: new ",
            if total == 1 { "" } else { "s" },
            state.states.label(),
        )
    } else {
        // The keys are in the help (?).
        format!(
            " Queue: {total} · {order} · {whose} · {} · project {project} ",
            state.states.label(),
        )
    };
    let widths: [u16; 7] = if area.width >= 110 {
        [5, 12, 9, 8, 9, 20, 15]
    } else {
        [4, 8, 7, 8, 8, 19, 0]
    };
    let table = Table::new(
        body,
        widths
            .iter()
            .map(|w| Constraint::Length(*w))
            .chain([Constraint::Min(10)]),
    )
    .header(Row::new(QUEUE_COLUMNS.to_vec()).style(header_style()))
    .block(panel(title))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .column_spacing(1);
    if rows.is_empty() {
        let [top, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(area);
        frame.render_widget(table, top);
        frame.render_widget(
            Paragraph::new(vec![
                Line::from("Nothing queued or running."),
                Line::from(Span::styled(
                    "Submit with: ssh lab@host submit --cpus 2 --mem 8G --time 2h -- python train.py",
                    Style::default().fg(DIM),
                )),
            ])
            .wrap(Wrap { trim: true }),
            rest,
        );
    } else {
        frame.render_stateful_widget(table, area, &mut table_state);
    }
    match &state.pane {
        Some(QueuePane::Log(log)) => render_log_pane(frame, area, &snap.log, log),
        Some(QueuePane::Submit(form)) => render_form(frame, area, form),
        Some(pane) => render_pane(frame, area, snap, pane),
        None => {}
    }
}

fn render_pane(frame: &mut Canvas, area: Rect, snap: &Snapshot, pane: &QueuePane) {
    let (title, height, width) = match pane {
        QueuePane::ConfirmCancel(id) => {
            (format!(" Cancel experiment {id}? "), 5, 44.min(area.width))
        }
        QueuePane::Priority(id, _) => (
            format!(" Priority of experiment {id} "),
            6,
            50.min(area.width),
        ),
        QueuePane::Details(id) => (
            format!(" Experiment {id} — Esc: close "),
            area.height.saturating_sub(2),
            area.width.saturating_sub(4),
        ),
        QueuePane::Log(_) | QueuePane::Submit(_) => return,
    };
    let rect = clear_centered(frame, area, width, height);
    let text = match pane {
        QueuePane::ConfirmCancel(_) => vec![
            Line::from(""),
            Line::from(Span::styled(
                "y: cancel it    any other key: keep it",
                Style::default().add_modifier(Modifier::BOLD),
            )),
        ],
        QueuePane::Priority(_, typed) => vec![
            Line::from(vec![
                Span::styled("New priority: ", Style::default().fg(ACCENT)),
                Span::raw(format!("{typed}▏")),
            ]),
            Line::from(Span::styled(
                "higher starts first; Enter: set, Esc: close",
                Style::default().fg(DIM),
            )),
        ],
        _ => snap
            .queue_pane_text
            .as_deref()
            .unwrap_or("")
            .lines()
            .map(|l| Line::from(printable(l)))
            .collect(),
    };
    frame.render_widget(
        Paragraph::new(text).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(ACCENT))
                .title(title),
        ),
        rect,
    );
}
