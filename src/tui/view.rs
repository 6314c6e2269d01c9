//! Drawing: a pure function of (view state, snapshot) to a frame.
//!
//! Only named ANSI colours are used so the screens read on 16-colour terminals.

use std::collections::HashMap;
use std::sync::Arc;

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, StatefulWidget, Table, Tabs, Widget, Wrap,
};

use super::app::{Tab, ViewState};
use super::dashboard::render_dashboard;
use crate::lab::ConnectedUser;
use crate::model::Role;
use crate::monitor::{Usage, UsageSnapshot};

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 80;
/// Smallest usable terminal.
pub const MIN_HEIGHT: u16 = 24;

/// The shared data a session draws.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Who is looking.
    pub user: String,
    /// Their role.
    pub role: Option<Role>,
    /// Latest monitor figures (host, users, GPUs).
    pub usage: Arc<UsageSnapshot>,
    /// Unix user → lab user names.
    pub lab_names: HashMap<String, String>,
    /// Chart points for an open drill-down.
    pub drill_chart: Vec<(i64, Usage)>,
    /// Running experiments per Unix user (Dashboard's RUN column).
    pub running: HashMap<String, usize>,
    /// Queued and running experiments on the Queue tab's screen.
    pub queue: Vec<crate::lab::ExperimentView>,
    /// Row of the first of them among all the Queue tab lists.
    pub queue_offset: usize,
    /// How many the Queue tab lists in all.
    pub queue_total: usize,
    /// Text of an open Queue details pane.
    pub queue_pane_text: Option<String>,
    /// Lines of the log in an open log pane.
    pub log: Arc<super::logpane::LogLines>,
    /// Users with live sessions.
    pub connected: Vec<ConnectedUser>,
    /// Live sessions on the server.
    pub sessions: usize,
    /// Wall clock, already formatted.
    pub clock: String,
}

/// Highlight colour (titles, keys).
pub(super) const ACCENT: Color = Color::Cyan;
/// Colour of labels and frames.
pub(super) const DIM: Color = Color::DarkGray;

/// A buffer being drawn on (the subset of ratatui's `Frame` the views use).
pub(super) struct Canvas<'a> {
    buffer: &'a mut Buffer,
}

impl Canvas<'_> {
    pub(super) fn render_widget<W: Widget>(&mut self, widget: W, area: Rect) {
        widget.render(area, self.buffer);
    }

    pub(super) fn render_stateful_widget<W: StatefulWidget>(
        &mut self,
        widget: W,
        area: Rect,
        state: &mut W::State,
    ) {
        widget.render(area, self.buffer, state);
    }
}

/// A bordered panel with a highlighted title, as every screen uses.
pub(super) fn panel(title: String) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(DIM))
        .title(Span::styled(
            title,
            Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
        ))
}

/// Style of table headers.
pub(super) fn header_style() -> Style {
    Style::default().fg(DIM).add_modifier(Modifier::BOLD)
}

/// Clears and returns a `width` × `height` rectangle centred in `area`
/// (for panes drawn over a screen).
pub(super) fn clear_centered(frame: &mut Canvas, area: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (width.min(area.width), height.min(area.height));
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, rect);
    rect
}

/// Draws the whole screen into `buffer`: a pure function of view state and snapshot.
pub fn render(buffer: &mut Buffer, view: &ViewState, snap: &Snapshot) {
    let area = buffer.area;
    let frame = &mut Canvas { buffer };
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        render_too_small(frame, area);
        return;
    }
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_tab_bar(frame, tabs, view);
    match view.tab {
        Tab::Dashboard => render_dashboard(frame, body, snap, &view.dashboard),
        Tab::Queue => super::queue::render_queue(frame, body, snap, &view.queue),
        other => render_placeholder(frame, body, other),
    }
    render_status(frame, status, view, snap);
    if view.help_open {
        render_help(frame, area, view.tab);
    }
}

fn render_too_small(frame: &mut Canvas, area: Rect) {
    let text = vec![
        Line::from(Span::styled(
            "terminal too small",
            Style::default().add_modifier(Modifier::BOLD),
        )),
        Line::from(format!(
            "{}×{} (need {MIN_WIDTH}×{MIN_HEIGHT})",
            area.width, area.height
        )),
        Line::from("enlarge the window, or press q to quit"),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let rect = Rect::new(area.x, area.y + top, area.width, area.height.min(3));
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        rect,
    );
}

fn render_tab_bar(frame: &mut Canvas, area: Rect, view: &ViewState) {
    let tabs = Tab::visible_to(view.role);
    let titles: Vec<Line> = tabs
        .iter()
        .enumerate()
        .map(|(i, t)| Line::from(format!("{} {}", i + 1, t.title())))
        .collect();
    let selected = tabs.iter().position(|t| *t == view.tab).unwrap_or(0);
    let [brand, rest] =
        Layout::horizontal([Constraint::Length(11), Constraint::Min(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(Span::styled(
            " labbench ",
            Style::default()
                .fg(Color::Black)
                .bg(ACCENT)
                .add_modifier(Modifier::BOLD),
        )),
        brand,
    );
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(
                Style::default()
                    .add_modifier(Modifier::REVERSED)
                    .add_modifier(Modifier::BOLD),
            )
            .divider("│"),
        rest,
    );
}

fn render_status(frame: &mut Canvas, area: Rect, view: &ViewState, snap: &Snapshot) {
    let role = snap.role.map(|r| r.as_str()).unwrap_or("-");
    let left = format!(
        " {} ({role}) │ {} │ {} │ {} session{}",
        snap.user,
        snap.usage.host.hostname,
        snap.clock,
        snap.sessions,
        if snap.sessions == 1 { "" } else { "s" }
    );
    let right = match &view.notice {
        Some(notice) => format!("{notice} "),
        None => "? help  q quit ".to_string(),
    };
    let style = Style::default().fg(Color::White).bg(Color::Blue);
    let notice_style = if view.notice.is_some() {
        style.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        style
    };
    let [l, r] = Layout::horizontal([
        Constraint::Min(1),
        Constraint::Length(right.chars().count() as u16),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(left).style(style), l);
    frame.render_widget(Paragraph::new(right).style(notice_style), r);
}

fn render_placeholder(frame: &mut Canvas, area: Rect, tab: Tab) {
    let (what, keys) = match tab {
        Tab::Queue => ("", ""),
        Tab::History => (
            "The lab notebook: finished experiments with command, owner, code version (git commit and diff), input hashes, environment, logs, metrics, results, comments and outcome notes.",
            "Coming keys: / search, Enter details, c comment, o outcome, d compare.",
        ),
        Tab::Admin => (
            "Administration: users and keys, roles, per-user quotas and limits, enforcement, cost attribution (CPU-hours, GPU-hours, money) and idle detection.",
            "Until this screen lands, use the commands: users, user add|set-role|rm, key add|rm, keys.",
        ),
        Tab::Dashboard => ("", ""),
    };
    let text = vec![
        Line::from(Span::styled(
            format!("{} — not built yet", tab.title()),
            Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
        )),
        Line::from(""),
        Line::from(what),
        Line::from(""),
        Line::from(Span::styled(keys, Style::default().fg(DIM))),
    ];
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(DIM))
                .title(format!(" {} ", tab.title())),
        ),
        area,
    );
}

/// The keys of the current screen, for the help overlay.
pub fn help_lines(tab: Tab) -> Vec<(&'static str, &'static str)> {
    let mut lines = vec![
        ("1-4", "switch tab (4: Admin, admins only)"),
        ("Tab → ←", "next / previous tab"),
        ("?", "show or hide this help"),
        ("Esc", "close this help, a pane, a drill-down"),
        ("q / Ctrl-C", "quit"),
    ];
    if tab == Tab::Queue {
        lines.extend([
            (
                "↑↓ PgUp PgDn",
                "select an experiment, a screenful at a time",
            ),
            ("Home End", "first / last experiment"),
            ("s", "next to start first / newest first"),
            ("m", "show mine only / everyone's"),
            ("f", "show queued+running / queued / running"),
            ("P", "show one project after another / any"),
            ("n", "new experiment (form, checked like submit)"),
            ("Enter", "details and history"),
            ("l", "live output: ↑↓ PgUp PgDn scroll, End follows"),
            ("/ n N", "in the output: search, older / newer match"),
            ("e", "in the output: stdout / stderr"),
            ("c", "cancel (yours; any as admin), asks first"),
            ("r", "rerun: submit a copy (members and admins)"),
            ("p", "priority of a queued experiment (admins)"),
        ]);
    }
    if tab == Tab::Dashboard {
        lines.extend([
            ("↑↓ j k", "select a user"),
            ("PgUp PgDn", "ten users up / down"),
            ("Home End", "first / last user"),
            ("Enter", "user drill-down: charts, top processes, hint"),
            ("w", "drill-down window: 1h, 24h, 7d"),
            ("s / S", "sort by next / previous column"),
            ("r", "reverse the sort order"),
            ("g", "show CPU+memory or GPU+GPU memory"),
        ]);
    }
    lines
}

fn render_help(frame: &mut Canvas, area: Rect, tab: Tab) {
    let lines = help_lines(tab);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = clear_centered(frame, area, 66, height);
    let rows = lines.into_iter().map(|(key, what)| {
        Row::new(vec![
            Cell::from(Span::styled(
                key,
                Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
            )),
            Cell::from(what),
        ])
    });
    frame.render_widget(
        Table::new(rows, [Constraint::Length(12), Constraint::Min(10)]).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" Keys: {} ", tab.title()))
                .title_bottom(Line::from(" Esc or ? to close ").alignment(Alignment::Right))
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        rect,
    );
}
