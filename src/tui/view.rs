//! Drawing: a pure function of (view state, snapshot) to a frame.
//!
//! Only named ANSI colours are used so the screens read on 16-colour terminals.

use std::sync::Arc;

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Table, Tabs, Widget, Wrap,
};

use super::app::{Tab, ViewState};
use crate::lab::ConnectedUser;
use crate::model::Role;
use crate::monitor::HostSnapshot;

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 80;
/// Smallest usable terminal.
pub const MIN_HEIGHT: u16 = 24;
/// From this width the Dashboard puts its panels side by side.
const WIDE: u16 = 110;

/// The shared data a session draws.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Who is looking.
    pub user: String,
    /// Their role.
    pub role: Option<Role>,
    /// Latest host figures.
    pub host: Arc<HostSnapshot>,
    /// Users with live sessions.
    pub connected: Vec<ConnectedUser>,
    /// Live sessions on the server.
    pub sessions: usize,
    /// Wall clock, already formatted.
    pub clock: String,
}

const ACCENT: Color = Color::Cyan;
const DIM: Color = Color::DarkGray;

/// A buffer being drawn on (the subset of ratatui's `Frame` the views use).
struct Canvas<'a> {
    buffer: &'a mut Buffer,
}

impl Canvas<'_> {
    fn render_widget<W: Widget>(&mut self, widget: W, area: Rect) {
        widget.render(area, self.buffer);
    }
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
        Tab::Dashboard => render_dashboard(frame, body, snap),
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
        snap.host.hostname,
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

fn render_dashboard(frame: &mut Canvas, area: Rect, snap: &Snapshot) {
    if area.width >= WIDE {
        let [top, rest] =
            Layout::vertical([Constraint::Length(HOST_PANEL_HEIGHT), Constraint::Min(3)])
                .areas(area);
        let [host, users] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
        render_host_panel(frame, host, &snap.host);
        render_connected(frame, users, &snap.connected);
        render_usage_placeholder(frame, rest);
    } else {
        let [host, users] =
            Layout::vertical([Constraint::Length(HOST_PANEL_HEIGHT), Constraint::Min(3)])
                .areas(area);
        render_host_panel(frame, host, &snap.host);
        render_connected(frame, users, &snap.connected);
    }
}

/// Rows of the host panel, borders included.
const HOST_PANEL_HEIGHT: u16 = 8;

fn render_usage_placeholder(frame: &mut Canvas, area: Rect) {
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(""),
            Line::from(Span::styled(
                "Per-user CPU, memory, GPU and GPU memory, now and peak over 1 h / 24 h / 7 d, arrive with the monitor.",
                Style::default().fg(DIM),
            )),
        ])
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(DIM))
                .title(" Usage by user "),
        ),
        area,
    );
}

fn render_host_panel(frame: &mut Canvas, area: Rect, host: &HostSnapshot) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(DIM))
        .title(Span::styled(
            format!(" Host {} ", host.hostname),
            Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows =
        Layout::vertical([Constraint::Length(1); HOST_PANEL_HEIGHT as usize - 2]).split(inner);
    let label = |text: &str| Span::styled(format!("{text:<8}"), Style::default().fg(DIM));
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("Cores"),
            Span::raw(host.cores.to_string()),
        ])),
        rows[0],
    );
    gauge_row(
        frame,
        rows[1],
        "CPU",
        f64::from(host.cpu_percent) / 100.0,
        format!("{:.0}%", host.cpu_percent),
    );
    gauge_row(
        frame,
        rows[2],
        "Memory",
        ratio(host.memory_used, host.memory_total),
        format!(
            "{} / {}",
            human_bytes(host.memory_used),
            human_bytes(host.memory_total)
        ),
    );
    gauge_row(
        frame,
        rows[3],
        "Swap",
        ratio(host.swap_used, host.swap_total),
        if host.swap_total == 0 {
            "none".to_string()
        } else {
            format!(
                "{} / {}",
                human_bytes(host.swap_used),
                human_bytes(host.swap_total)
            )
        },
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("Load"),
            Span::raw(format!(
                "{:.2}  {:.2}  {:.2}   (1, 5, 15 min)",
                host.load[0], host.load[1], host.load[2]
            )),
        ])),
        rows[4],
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("Uptime"),
            Span::raw(human_duration(host.uptime_secs)),
        ])),
        rows[5],
    );
}

fn gauge_row(frame: &mut Canvas, area: Rect, name: &str, ratio: f64, text: String) {
    let [label, gauge] =
        Layout::horizontal([Constraint::Length(8), Constraint::Min(10)]).areas(area);
    frame.render_widget(
        Paragraph::new(Span::styled(name.to_string(), Style::default().fg(DIM))),
        label,
    );
    let color = if ratio >= 0.9 {
        Color::Red
    } else if ratio >= 0.7 {
        Color::Yellow
    } else {
        Color::Green
    };
    frame.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(color).bg(Color::Black))
            .ratio(ratio.clamp(0.0, 1.0))
            .label(text),
        gauge,
    );
}

fn render_connected(frame: &mut Canvas, area: Rect, users: &[ConnectedUser]) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(DIM))
        .title(Span::styled(
            format!(" Connected users ({}) ", users.len()),
            Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
        ));
    let header = Row::new(vec!["USER", "SHELLS", "COMMANDS"])
        .style(Style::default().fg(DIM).add_modifier(Modifier::BOLD));
    let rows = users.iter().map(|u| {
        Row::new(vec![
            Cell::from(u.user.clone()),
            Cell::from(u.shells.to_string()),
            Cell::from(u.commands.to_string()),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(12),
                Constraint::Length(8),
                Constraint::Length(9),
            ],
        )
        .header(header)
        .block(block),
        area,
    );
}

fn render_placeholder(frame: &mut Canvas, area: Rect, tab: Tab) {
    let (what, keys) = match tab {
        Tab::Queue => (
            "The experiment queue: queued and running experiments of every user, their resource requests (CPUs, memory, GPUs, time), live use against the request and why each waits.",
            "Coming keys: n new experiment, Enter details, l live log, c cancel, r rerun, p priority (admin).",
        ),
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
        ("Tab / →", "next tab"),
        ("←", "previous tab"),
        ("?", "show or hide this help"),
        ("Esc", "close this help"),
        ("q / Ctrl-C", "quit"),
    ];
    if tab == Tab::Dashboard {
        lines.push(("", "the Dashboard refreshes every second"));
    }
    lines
}

fn render_help(frame: &mut Canvas, area: Rect, tab: Tab) {
    let lines = help_lines(tab);
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = 56.min(area.width);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let rows = lines.into_iter().map(|(key, what)| {
        Row::new(vec![
            Cell::from(Span::styled(
                key,
                Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
            )),
            Cell::from(what),
        ])
    });
    frame.render_widget(Clear, rect);
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

fn ratio(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 / total as f64
    }
}

/// Bytes as a short human figure (binary units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as `3d 04:05` or `04:05:06`.
pub fn human_duration(secs: u64) -> String {
    let days = secs / 86_400;
    let h = (secs % 86_400) / 3600;
    let m = (secs % 3600) / 60;
    let s = secs % 60;
    if days > 0 {
        format!("{days}d {h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600 + 5 * 60), "3d 04:05");
        assert_eq!(human_duration(61), "00:01:01");
    }
}
