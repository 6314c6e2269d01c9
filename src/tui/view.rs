//! Drawing the whole screen: a pure function of (view state, snapshot) to a
//! frame. The tab bar, status line and help are drawn here; each tab's body
//! by its component's `draw`.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Tabs, Wrap};

use super::admin::draw::render_admin;
use super::app::{Tab, ViewState};
use super::dashboard::draw::render_dashboard;
use super::data::Snapshot;
use super::history::draw::render_history;
use super::queue::draw::render_queue;
use super::widgets::{ACCENT, Canvas, clear_centered};

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 80;
/// Smallest usable terminal.
pub const MIN_HEIGHT: u16 = 24;

/// Draws the whole screen into `buffer`: a pure function of view state and snapshot.
pub fn render(buffer: &mut Buffer, view: &ViewState, snap: &Snapshot) {
    let area = buffer.area;
    let frame = &mut Canvas::new(buffer);
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
        Tab::Queue => render_queue(frame, body, snap, &view.queue),
        Tab::History => render_history(frame, body, snap, &view.history),
        Tab::Admin => render_admin(frame, body, snap, &view.admin),
    }
    render_status(frame, status, view, snap);
    if view.help_open {
        render_help(frame, area, view.tab);
    }
    if let Some(text) = &view.announcement {
        render_announcement(frame, body, text);
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
    let mut left = format!(
        " {} ({role}) │ {} │ {} │ {} session{}",
        snap.user,
        snap.usage.host.hostname,
        snap.clock,
        snap.sessions,
        if snap.sessions == 1 { "" } else { "s" }
    );
    if let Some(month) = &snap.month_cost {
        left.push_str(&format!(" │ this month {month}"));
    }
    let right = match &view.notice {
        Some(notice) => format!("{} ", crate::units::printable(notice)),
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
    if tab == Tab::History {
        lines.extend([
            ("↑↓ j k", "select an experiment; PgUp PgDn Home End"),
            ("/", "filter: project:P user:U state:S tag:T outcome:O"),
            (
                "",
                "metric:auc>0.8 param:lr<0.01 since:7d, words; -TERM not",
            ),
            ("Esc", "clear the filter (or close the pane)"),
            ("n p", "older page / newer page"),
            ("s r", "sort all that matches by the next column / reverse"),
            (
                "Enter",
                "experiment page: spec, provenance, metrics, comments",
            ),
            (
                "c e x o",
                "on the page: comment, edit / delete yours, outcome",
            ),
            ("l v", "on the page: its log, its git diff"),
            (
                "m L u",
                "on the page: next metric, log scale, memory/CPU/GPU",
            ),
            ("space", "mark for comparison; u: clear the marks"),
            ("d", "compare the marked experiments side by side"),
        ]);
    }
    if tab == Tab::Admin {
        lines.extend([
            ("↑↓ j k", "select an entry; PgUp PgDn Home End"),
            ("v", "audit, costs, users, quotas, host limits, idle"),
            ("Enter e", "quotas: edit the selected one (live preview)"),
            (
                "n x",
                "quotas: a new one (user U, project P, default); remove",
            ),
            ("a r u p", "users: add; role; unix user; paste a key"),
            ("Enter d x", "users: their keys; disable/enable; remove"),
            ("↑↓ Tab", "in the quota editor: next limit; Enter saves"),
            ("/", "filter the audit trail: user:U action:A since:7d"),
            ("Esc", "clear the filter"),
            ("b", "costs by user, project, month"),
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

/// The announcement, over the screen until a key is pressed.
fn render_announcement(frame: &mut Canvas, area: Rect, text: &str) {
    let width = area.width.min(72);
    let lines =
        (crate::units::printable(text).chars().count() as u16 / width.saturating_sub(4).max(1)) + 2;
    let rect = clear_centered(frame, area, width, (lines + 2).min(area.height));
    frame.render_widget(
        Paragraph::new(crate::units::printable(text))
            .wrap(Wrap { trim: true })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(Style::default().fg(ACCENT))
                    .title(" Announcement · any key closes "),
            ),
        rect,
    );
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
