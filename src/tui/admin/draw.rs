//! Drawing the Admin tab: the filter bar and the audit trail, newest
//! first; costs; users (the quotas are [`super::quota_draw`]'s).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::{AdminState, AdminView};
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
    match state.view {
        AdminView::Costs => return render_costs(frame, area, snap, state),
        AdminView::Users => return render_users(frame, area, snap, state),
        AdminView::Quotas => return super::quota_draw::render_quotas(frame, area, snap, state),
        AdminView::Idle => return render_idle(frame, area, snap, state),
        AdminView::HostLimits => return render_host_limits(frame, area, snap, state),
        AdminView::Audit => {}
    }
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
            " · v: costs, users, quotas"
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

/// Draws `table` of `count` rows with row `selected` (kept in range)
/// highlighted: the lists of the Admin tab's views.
pub(super) fn render_selectable(
    frame: &mut Canvas,
    area: Rect,
    table: Table<'_>,
    count: usize,
    selected: usize,
) {
    let mut state = TableState::default();
    if count > 0 {
        state.select(Some(selected.min(count - 1)));
    }
    let table = table.row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(table, area, &mut state);
}

/// `YYYY-MM-DD HH:MM`, or `MM-DD HH:MM` where room is short.
fn when(at: i64, wide: bool) -> String {
    let full = minute_time(at);
    match full.get(5..) {
        Some(short) if !wide => short.to_string(),
        _ => full,
    }
}

/// Widest bar, in cells.
const BAR_CELLS: usize = 30;

/// What experiments reserved and used, a row and a bar per user, project
/// or month.
fn render_costs(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &AdminState) {
    let by = state.costs_by.name();
    let Some(report) = &snap.costs else {
        frame.render_widget(
            Paragraph::new(" reading the costs…").block(panel(format!(" Admin · Costs by {by} "))),
            area,
        );
        return;
    };
    let most = report
        .rows
        .iter()
        .map(|r| r.reserved.cost)
        .fold(0.0_f64, f64::max);
    let bar = |cost: f64| {
        let cells = if most > 0.0 {
            ((cost / most) * BAR_CELLS as f64).round() as usize
        } else {
            0
        };
        "█".repeat(cells.max(usize::from(cost > 0.0)))
    };
    let cur = &report.currency;
    let rows: Vec<Row> = report
        .rows
        .iter()
        .chain([&report.total])
        .map(|r| {
            let total = r.key == "total";
            let style = if total {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            Row::new(vec![
                Cell::from(printable(&r.key)),
                Cell::from(r.experiments.to_string()),
                Cell::from(format!("{:.2} {cur}", r.reserved.cost)),
                Cell::from(if total {
                    String::new()
                } else {
                    bar(r.reserved.cost)
                })
                .style(Style::default().fg(ACCENT)),
                Cell::from(format!("{:.2} {cur}", r.used.cost)),
                Cell::from(format!(
                    "{:.1} / {:.1} / {:.1}",
                    r.reserved.cpu_hours, r.reserved.gib_hours, r.reserved.gpu_hours
                ))
                .style(Style::default().fg(DIM)),
            ])
            .style(style)
        })
        .collect();
    let window = format!("{} to {}", when(report.from, true), when(report.to, true));
    let title =
        format!(" Admin · Costs by {by}, {window} · b: by user, project, month · v: users ");
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(14),
            Constraint::Length(BAR_CELLS as u16 + 1),
            Constraint::Length(14),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec![
            by.to_uppercase(),
            "RUNS".into(),
            "RESERVED".into(),
            String::new(),
            "USED".into(),
            "CPU-H / GIB-H / GPU-H".into(),
        ])
        .style(header_style()),
    )
    .block(panel(title))
    .column_spacing(1);
    frame.render_widget(table, area);
}

/// Caps on what Unix users run outside the queue.
fn render_host_limits(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &AdminState) {
    let rows: Vec<Row> = snap
        .host_limits
        .iter()
        .map(|l| {
            Row::new(vec![
                Cell::from(printable(&l.scope)),
                Cell::from(l.cpus.map_or("-".into(), |c| c.to_string())),
                Cell::from(
                    l.memory_bytes
                        .map_or("-".into(), |m| crate::units::short_bytes(m as f64)),
                ),
            ])
        })
        .collect();
    let count = rows.len();
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec!["UNIX USER", "CPUS", "MEMORY"]).style(header_style()))
    .block(panel(format!(
        " Admin · Host limits ({count}): outside the queue · hostlimit set UNIX_USER|--default --cpus N --mem 16G · v: idle "
    )))
    .column_spacing(1);
    render_selectable(frame, area, table, count, state.selected);
}

/// The running experiments as idle detection sees them, idle ones first.
fn render_idle(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &AdminState) {
    use crate::units::human_duration;
    let area = match &state.idle_typing {
        Some(typed) => {
            let [list, foot] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
            frame.render_widget(Paragraph::new(idle_foot(typed, state)), foot);
            list
        }
        None => area,
    };
    let (rule, report) = &snap.idle_report;
    let Some(rule) = rule else {
        frame.render_widget(
            Paragraph::new(" Idle detection is off (e: set a rule).")
                .block(panel(" Admin · Idle · e: rule · v: audit ".to_string())),
            area,
        );
        return;
    };
    let then = rule.cancel_after_secs.map_or("told".to_string(), |g| {
        format!("cancelled {} later", human_duration(g as u64))
    });
    let rows: Vec<Row> = report
        .iter()
        .map(|e| {
            let flagged = e.flagged_at.is_some();
            Row::new(vec![
                Cell::from(e.id.to_string()),
                Cell::from(printable(&e.owner)),
                Cell::from(e.gpus.to_string()),
                Cell::from(human_duration(e.idle_secs.max(0) as u64)),
                Cell::from(e.flagged_at.map_or("-".into(), |t| when(t, true))),
                Cell::from(e.cancel_at.map_or("-".into(), |t| when(t, true))),
            ])
            .style(if flagged {
                Style::default().fg(ratatui::style::Color::Yellow)
            } else {
                Style::default()
            })
        })
        .collect();
    let count = rows.len();
    let title = format!(
        " Admin · Idle after {} under {} % GPU (no GPU: {} % of CPUs asked) → {then} · e: rule · v: audit ",
        human_duration(rule.after_secs as u64),
        rule.gpu_percent,
        rule.cpu_percent,
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(13),
            Constraint::Length(17),
            Constraint::Min(17),
        ],
    )
    .header(
        Row::new(vec![
            "ID",
            "OWNER",
            "GPUS",
            "WITHOUT WORK",
            "FLAGGED IDLE",
            "CANCEL AT",
        ])
        .style(header_style()),
    )
    .block(panel(title))
    .column_spacing(1);
    render_selectable(frame, area, table, count, state.selected);
}

/// The users: role, Unix account, keys and the sessions they have open;
/// or the keys of one; with the prompt of an action on the last lines.
fn render_users(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &AdminState) {
    let [list, foot] = Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    frame.render_widget(Paragraph::new(users_foot(state)), foot);
    if let Some((name, selected)) = &state.users.keys_of {
        return render_keys(frame, list, snap, name, *selected);
    }
    let sessions = |name: &str| {
        snap.connected
            .iter()
            .find(|c| c.user == name)
            .map_or(0, |c| c.shells + c.commands)
    };
    let rows: Vec<Row> = snap
        .users
        .iter()
        .map(|u| {
            Row::new(vec![
                Cell::from(printable(&u.name)),
                Cell::from(u.role.to_string()),
                Cell::from(printable(u.unix_user.as_deref().unwrap_or("-"))),
                Cell::from(u.keys.to_string()),
                Cell::from(sessions(&u.name).to_string()),
                Cell::from(if u.disabled { "disabled" } else { "" })
                    .style(Style::default().fg(ratatui::style::Color::Yellow)),
                Cell::from(when(u.created_at, true)).style(Style::default().fg(DIM)),
            ])
        })
        .collect();
    let count = rows.len();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(16),
        ],
    )
    .header(
        Row::new(vec![
            "USER",
            "ROLE",
            "UNIX USER",
            "KEYS",
            "SESSIONS",
            "STATE",
            "SINCE",
        ])
        .style(header_style()),
    )
    .block(panel(format!(
        " Admin · Users ({count}) · v: quotas · each change is audited "
    )))
    .column_spacing(1);
    render_selectable(frame, list, table, count, state.selected);
}

/// One user's keys, to remove one (`x`) or paste another (`a`).
fn render_keys(frame: &mut Canvas, area: Rect, snap: &Snapshot, name: &str, selected: usize) {
    let rows: Vec<Row> = snap
        .user_keys
        .iter()
        .map(|k| {
            Row::new(vec![
                Cell::from(k.key.fingerprint.clone()),
                Cell::from(k.key.algorithm.clone()),
                Cell::from(printable(&k.key.comment)),
                Cell::from(when(k.added_at, true)).style(Style::default().fg(DIM)),
                Cell::from(printable(&k.added_by)),
            ])
        })
        .collect();
    let count = rows.len();
    let table = Table::new(
        rows,
        [
            Constraint::Length(51),
            Constraint::Length(12),
            Constraint::Min(10),
            Constraint::Length(16),
            Constraint::Length(10),
        ],
    )
    .header(Row::new(vec!["FINGERPRINT", "TYPE", "COMMENT", "ADDED", "BY"]).style(header_style()))
    .block(panel(format!(
        " Keys of {} ({count}) · a: paste a key · x: remove · Esc: back ",
        printable(name)
    )))
    .column_spacing(1);
    render_selectable(frame, area, table, count, selected);
}

/// The idle rule's prompt and, under it, why the line was not taken.
fn idle_foot(typed: &str, state: &AdminState) -> Vec<Line<'static>> {
    let prompt = Line::from(vec![
        Span::styled(" Idle rule: ", Style::default().fg(ACCENT)),
        Span::raw(printable(typed)),
        Span::styled("▏", Style::default().fg(ACCENT)),
    ]);
    let under = match &state.error {
        Some(why) => Line::from(Span::styled(
            format!(" {}", printable(why)),
            Style::default().fg(ratatui::style::Color::Red),
        )),
        None => Line::from(Span::styled(
            format!(" {} · Enter: save · Esc: cancel", super::idle_rule::FORM),
            Style::default().fg(DIM),
        )),
    };
    vec![prompt, under]
}

/// The Users view's last lines: the open prompt with its error, or a hint.
fn users_foot(state: &AdminState) -> Vec<Line<'static>> {
    use super::users::UserPrompt;
    let ask = |label: String, typed: &str| {
        // A long pasted key shows its end, where the typing is.
        let shown: String = {
            let chars: Vec<char> = printable(typed).chars().collect();
            let keep = chars.len().saturating_sub(80);
            chars[keep..].iter().collect()
        };
        Line::from(vec![
            Span::styled(label, Style::default().fg(ACCENT)),
            Span::raw(shown),
            Span::styled("▏", Style::default().fg(ACCENT)),
        ])
    };
    let confirm = |text: String| {
        Line::from(Span::styled(
            text,
            Style::default().fg(ratatui::style::Color::Yellow),
        ))
    };
    let first = match &state.users.prompt {
        None => Line::from(Span::styled(
            " a: add · r: role · u: unix user · p: paste a key · Enter: keys · d: disable/enable · x: remove",
            Style::default().fg(DIM),
        )),
        Some(UserPrompt::Add(typed)) => ask(" New user (NAME ROLE [UNIX_USER]): ".into(), typed),
        Some(UserPrompt::Role { name, typed }) => {
            ask(format!(" Role of {name} (admin, member, viewer): "), typed)
        }
        Some(UserPrompt::Unix { name, typed }) => {
            ask(format!(" Unix account of {name} (empty: none): "), typed)
        }
        Some(UserPrompt::Key { name, typed }) => {
            ask(format!(" Paste a public key for {name}: "), typed)
        }
        Some(UserPrompt::ConfirmKey {
            name, fingerprint, ..
        }) => confirm(format!(
            " Add key {fingerprint} to {name}? y: add · any other key: no"
        )),
        Some(UserPrompt::Toggle { name, disable }) => confirm(if *disable {
            format!(" Disable {name}? Their sessions end and queued experiments wait. y: disable")
        } else {
            format!(" Enable {name} again? y: enable")
        }),
        Some(UserPrompt::Remove { name }) => confirm(format!(
            " Remove {name} and their keys, cancelling their queued experiments? y: remove"
        )),
        Some(UserPrompt::RemoveKey { name, fingerprint }) => {
            confirm(format!(" Remove key {fingerprint} of {name}? y: remove"))
        }
    };
    let second = match &state.users.error {
        Some(why) => Line::from(Span::styled(
            format!(" {}", printable(why)),
            Style::default().fg(ratatui::style::Color::Red),
        )),
        None if state.users.takes_text() => Line::from(Span::styled(
            " Enter: do it · Esc: cancel",
            Style::default().fg(DIM),
        )),
        None => Line::from(""),
    };
    vec![first, second]
}
