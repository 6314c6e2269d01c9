//! The Dashboard: host header, users with now/peaks, GPUs, and a user's drill-down.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Gauge, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use super::app::{DashboardState, DrillDown, MetricPair, SortColumn};
use super::view::{ACCENT, Canvas, DIM, Snapshot, header_style, panel};
use crate::lab::sizing_hint;
use crate::monitor::{Metric, Usage, UsageSnapshot, UserUsage, Window};
use crate::units::{Formatter, cores, human_bytes, human_duration, short_bytes};

/// From this width the header shows connected users beside the host figures.
const WIDE: u16 = 110;

/// A user row as displayed: who and their figures.
pub struct UserRow<'a> {
    /// Name shown: the lab user, else the Unix user.
    pub name: String,
    /// Whether `name` is a lab user.
    pub lab_user: bool,
    /// The figures.
    pub usage: &'a UserUsage,
}

/// The user rows in display order for the Dashboard state.
pub fn sorted_rows<'a>(snap: &'a Snapshot, state: &DashboardState) -> Vec<UserRow<'a>> {
    let mut rows: Vec<UserRow> = snap
        .usage
        .users
        .iter()
        .map(|u| match snap.lab_names.get(&u.unix_user) {
            Some(lab) => UserRow {
                name: lab.clone(),
                lab_user: true,
                usage: u,
            },
            None => UserRow {
                name: u.unix_user.clone(),
                lab_user: false,
                usage: u,
            },
        })
        .collect();
    let key = |row: &UserRow| -> f64 {
        let (first, second) = metric_getters(state.metrics);
        let pick = |get: Metric, window: Option<Window>| match window {
            None => get(&row.usage.now),
            Some(w) => get(&row.usage.window(w).max),
        };
        match state.sort {
            SortColumn::User => 0.0,
            SortColumn::Processes => f64::from(row.usage.processes),
            SortColumn::First(w) => pick(first, w),
            SortColumn::Second(w) => pick(second, w),
        }
    };
    rows.sort_by(|a, b| {
        let order = if state.sort == SortColumn::User {
            a.name.cmp(&b.name)
        } else {
            key(a).total_cmp(&key(b)).then_with(|| b.name.cmp(&a.name))
        };
        if state.descending {
            order.reverse()
        } else {
            order
        }
    });
    rows
}

fn metric_getters(pair: MetricPair) -> (Metric, Metric) {
    match pair {
        MetricPair::CpuMemory => (|u| u.cpu_cores, |u| u.memory_bytes),
        MetricPair::Gpu => (|u| u.gpus, |u| u.gpu_memory_bytes),
    }
}

/// Draws the Dashboard tab.
pub(super) fn render_dashboard(
    frame: &mut Canvas,
    area: Rect,
    snap: &Snapshot,
    state: &DashboardState,
) {
    let usage = &snap.usage;
    let gpu_rows = if usage.gpus.is_empty() {
        0
    } else {
        (usage.gpus.len() as u16).min(8) + 3
    };
    let [header, body, gpus] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Min(5),
        Constraint::Length(gpu_rows),
    ])
    .areas(area);
    if header.width >= WIDE {
        let [host, connected] =
            Layout::horizontal([Constraint::Min(60), Constraint::Length(36)]).areas(header);
        render_host(frame, host, usage);
        render_connected(frame, connected, snap);
    } else {
        render_host(frame, header, usage);
    }
    match &state.drill {
        Some(drill) => render_drill(frame, body, snap, drill),
        None => render_users(frame, body, snap, state),
    }
    if gpu_rows > 0 {
        render_gpus(frame, gpus, snap);
    }
}

fn render_host(frame: &mut Canvas, area: Rect, usage: &UsageSnapshot) {
    let host = &usage.host;
    let b = panel(format!(" Host {} ", host.hostname));
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let rows = Layout::vertical([Constraint::Length(1); 5]).split(inner);
    gauge(
        frame,
        rows[0],
        "CPU",
        f64::from(host.cpu_percent) / 100.0,
        format!("{:.0}% of {} cores", host.cpu_percent, host.cores),
    );
    gauge(
        frame,
        rows[1],
        "Memory",
        ratio(host.memory_used, host.memory_total),
        format!(
            "{} / {}",
            human_bytes(host.memory_used),
            human_bytes(host.memory_total)
        ),
    );
    gauge(
        frame,
        rows[2],
        "Swap",
        ratio(host.swap_used, host.swap_total),
        if host.swap_total == 0 {
            "none".into()
        } else {
            format!(
                "{} / {}",
                human_bytes(host.swap_used),
                human_bytes(host.swap_total)
            )
        },
    );
    let label = |t: &str| Span::styled(format!("{t:<8}"), Style::default().fg(DIM));
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            label("Load"),
            Span::raw(format!(
                "{:.2} {:.2} {:.2}  up {}  disk {} free",
                host.load[0],
                host.load[1],
                host.load[2],
                human_duration(host.uptime_secs),
                human_bytes(host.disk_free)
            )),
        ])),
        rows[3],
    );
    let gpu_line = match &usage.gpu_unavailable {
        Some(reason) => Span::styled(
            format!("no GPUs detected ({reason})"),
            Style::default().fg(DIM),
        ),
        None => {
            let busy = usage
                .gpus
                .iter()
                .filter(|g| g.device.utilization_percent > 0)
                .count();
            let used: u64 = usage.gpus.iter().map(|g| g.device.memory_used).sum();
            let total: u64 = usage.gpus.iter().map(|g| g.device.memory_total).sum();
            Span::raw(format!(
                "{} GPUs, {busy} busy, memory {} / {}",
                usage.gpus.len(),
                human_bytes(used),
                human_bytes(total)
            ))
        }
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![label("GPUs"), gpu_line])),
        rows[4],
    );
}

fn gauge(frame: &mut Canvas, area: Rect, name: &str, ratio: f64, text: String) {
    let [label, bar] = Layout::horizontal([Constraint::Length(8), Constraint::Min(10)]).areas(area);
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
        bar,
    );
}

fn ratio(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 / total as f64
    }
}

fn render_connected(frame: &mut Canvas, area: Rect, snap: &Snapshot) {
    let rows = snap.connected.iter().map(|u| {
        Row::new(vec![
            Cell::from(truncate(&u.user, 16)),
            Cell::from(format!(
                "{} shell{}",
                u.shells,
                if u.shells == 1 { "" } else { "s" }
            )),
            Cell::from(format!("{} cmd", u.commands)),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(8),
                Constraint::Length(8),
                Constraint::Length(6),
            ],
        )
        .block(panel(format!(" Connected ({}) ", snap.connected.len()))),
        area,
    );
}

/// Shortens `text` to `width` characters, marking the cut with `…`.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Eight-level block characters for a text sparkline.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` values as block characters, scaled to their maximum.
pub fn text_sparkline(values: &[f64], width: usize) -> String {
    let tail = &values[values.len().saturating_sub(width)..];
    let max = tail.iter().copied().fold(0.0_f64, f64::max);
    tail.iter()
        .map(|v| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

fn render_users(frame: &mut Canvas, area: Rect, snap: &Snapshot, state: &DashboardState) {
    let rows = sorted_rows(snap, state);
    let (first_name, second_name) = match state.metrics {
        MetricPair::CpuMemory => ("CPU", "MEM"),
        MetricPair::Gpu => ("GPU", "GMEM"),
    };
    let (first, second) = metric_getters(state.metrics);
    let fmt_first: Formatter = match state.metrics {
        MetricPair::CpuMemory => cores,
        MetricPair::Gpu => |v| format!("{v:.1}"),
    };
    let wide = area.width >= WIDE;
    let name_width: u16 = if wide { 16 } else { 10 };
    let mut titles: Vec<String> = vec!["USER".into(), "PROC".into()];
    for metric in [first_name, second_name] {
        titles.push(metric.to_string());
        for w in [Window::Hour, Window::Day, Window::Week] {
            titles.push(format!("^{}", w.label()));
        }
    }
    if wide {
        titles.push("RUN".into());
        titles.push("CPU last 30 s".into());
    }
    let sorted_index = SortColumn::ALL.iter().position(|c| *c == state.sort);
    let header = Row::new(titles.iter().enumerate().map(|(i, t)| {
        let arrow = match (Some(i) == sorted_index, state.descending) {
            (false, _) => "",
            (true, true) => "▼",
            (true, false) => "▲",
        };
        Cell::from(format!("{t}{arrow}"))
    }))
    .style(header_style());
    let value_width = if wide { 7 } else { 6 };
    let mut widths = vec![Constraint::Length(name_width), Constraint::Length(4)];
    widths.extend([Constraint::Length(value_width); 8]);
    if wide {
        widths.push(Constraint::Length(4));
        widths.push(Constraint::Min(10));
    }
    let body = rows.iter().map(|row| {
        let u = row.usage;
        let mut cells = vec![
            Cell::from(truncate(&row.name, usize::from(name_width))).style(if row.lab_user {
                Style::default()
            } else {
                Style::default().fg(DIM)
            }),
            Cell::from(u.processes.to_string()),
        ];
        for (get, fmt) in [(first, fmt_first), (second, short_bytes as Formatter)] {
            cells.push(
                Cell::from(fmt(get(&u.now))).style(Style::default().add_modifier(Modifier::BOLD)),
            );
            for w in [Window::Hour, Window::Day, Window::Week] {
                cells.push(Cell::from(fmt(get(&u.window(w).max))));
            }
        }
        if wide {
            let running = snap.running.get(&u.unix_user).copied().unwrap_or(0);
            cells.push(Cell::from(running.to_string()));
            cells.push(
                Cell::from(text_sparkline(&u.cpu_history, 30))
                    .style(Style::default().fg(Color::Green)),
            );
        }
        Row::new(cells)
    });
    let mut table_state = TableState::default();
    if !rows.is_empty() {
        table_state.select(Some(state.selected.min(rows.len() - 1)));
    }
    let title = format!(" Users ({}): now and peaks (^) ", rows.len());
    let table = Table::new(body, widths)
        .header(header)
        .block(panel(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .column_spacing(1);
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn render_drill(frame: &mut Canvas, area: Rect, snap: &Snapshot, drill: &DrillDown) {
    let window = drill.window;
    let user = snap.usage.users.iter().find(|u| u.uid == drill.uid);
    let unix_user = user.map_or(drill.unix_user.as_str(), |u| u.unix_user.as_str());
    let shown = snap
        .lab_names
        .get(unix_user)
        .map(|lab| format!("{lab} (unix {unix_user})"))
        .unwrap_or_else(|| unix_user.to_string());
    let b = panel(format!(
        " {shown}: last {} — w: 1h/24h/7d, Esc: back ",
        window.label()
    ));
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let Some(user) = user else {
        frame.render_widget(
            Paragraph::new("this user has no recorded use any more"),
            inner,
        );
        return;
    };
    let [summary, charts, bottom] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(6),
        Constraint::Length(6),
    ])
    .areas(inner);
    let stats = user.window(window);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!(
                "peak CPU {} cores, memory {}, GPUs busy {:.1}, GPU memory {}   (mean CPU {}, memory {})",
                cores(stats.max.cpu_cores),
                short_bytes(stats.max.memory_bytes),
                stats.max.gpus,
                short_bytes(stats.max.gpu_memory_bytes),
                cores(stats.mean.cpu_cores),
                short_bytes(stats.mean.memory_bytes),
            )),
            Line::from(Span::styled(
                format!("hint: {}", sizing_hint(user.window(Window::Week))),
                Style::default().fg(Color::Yellow),
            )),
        ])
        .wrap(Wrap { trim: true }),
        summary,
    );
    let chart_rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(charts);
    let width = usize::from(charts.width.saturating_sub(2)).max(1);
    let series: [(&str, Metric, Formatter, f64); 3] = [
        ("CPU cores", |u| u.cpu_cores, cores, 100.0),
        ("memory", |u| u.memory_bytes, short_bytes, 1.0 / 1_048_576.0),
        (
            "GPU memory",
            |u| u.gpu_memory_bytes,
            short_bytes,
            1.0 / 1_048_576.0,
        ),
    ];
    for (i, (name, get, fmt, scale)) in series.into_iter().enumerate() {
        let values = pool_max(&snap.drill_chart, width, get);
        let peak = values.iter().copied().fold(0.0_f64, f64::max);
        let data: Vec<u64> = values.iter().map(|v| (v * scale).round() as u64).collect();
        frame.render_widget(
            Sparkline::default()
                .block(
                    Block::default()
                        .borders(Borders::TOP)
                        .border_style(Style::default().fg(DIM))
                        .title(format!(" {name} (peak {}) ", fmt(peak))),
                )
                .data(&data)
                .style(Style::default().fg(ACCENT)),
            chart_rows[i],
        );
    }
    let procs = user.top.iter().map(|p| {
        Row::new(vec![
            Cell::from(p.pid.to_string()),
            Cell::from(truncate(&p.command, 20)),
            Cell::from(cores(p.cpu_cores)),
            Cell::from(short_bytes(p.rss_bytes as f64)),
        ])
    });
    frame.render_widget(
        Table::new(
            procs,
            [
                Constraint::Length(8),
                Constraint::Min(10),
                Constraint::Length(6),
                Constraint::Length(6),
            ],
        )
        .header(Row::new(vec!["PID", "COMMAND", "CPU", "RSS"]).style(header_style()))
        .block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(Style::default().fg(DIM))
                .title(" Top processes now "),
        ),
        bottom,
    );
}

/// Reduces chart points to `width` bins, keeping each bin's maximum.
pub fn pool_max(points: &[(i64, Usage)], width: usize, get: Metric) -> Vec<f64> {
    if points.len() <= width {
        return points.iter().map(|(_, u)| get(u)).collect();
    }
    let per_bin = points.len().div_ceil(width);
    points
        .chunks(per_bin)
        .map(|chunk| chunk.iter().map(|(_, u)| get(u)).fold(0.0, f64::max))
        .collect()
}

fn render_gpus(frame: &mut Canvas, area: Rect, snap: &Snapshot) {
    let rows = snap.usage.gpus.iter().map(|g| {
        let d = &g.device;
        let owners = g
            .owners
            .iter()
            .map(|(unix, bytes)| {
                let name = snap.lab_names.get(unix).unwrap_or(unix);
                format!("{name} {}", short_bytes(*bytes as f64))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Row::new(vec![
            Cell::from(d.index.to_string()),
            Cell::from(truncate(&d.name, 18)),
            Cell::from(format!("{}%", d.utilization_percent)),
            Cell::from(format!(
                "{}/{}",
                short_bytes(d.memory_used as f64),
                short_bytes(d.memory_total as f64)
            )),
            Cell::from(
                d.temperature_c
                    .map(|t| format!("{t}°C"))
                    .unwrap_or_default(),
            ),
            Cell::from(
                d.power_watts
                    .map(|w| format!("{w:.0} W"))
                    .unwrap_or_default(),
            ),
            Cell::from(if owners.is_empty() {
                "idle".to_string()
            } else {
                owners
            }),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(3),
                Constraint::Length(18),
                Constraint::Length(5),
                Constraint::Length(11),
                Constraint::Length(5),
                Constraint::Length(6),
                Constraint::Min(10),
            ],
        )
        .header(
            Row::new(vec![
                "GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "USERS",
            ])
            .style(header_style()),
        )
        .block(panel(format!(" GPUs ({}) ", snap.usage.gpus.len()))),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_and_truncation() {
        assert_eq!(text_sparkline(&[0.0, 1.0, 2.0], 3), "▁▅█");
        assert_eq!(text_sparkline(&[0.0, 0.0], 5), "▁▁");
        assert_eq!(truncate("a-very-long-user-name", 8), "a-very-…");
        assert_eq!(truncate("bob", 8), "bob");
    }

    #[test]
    fn pooling_keeps_spikes() {
        let mut points: Vec<(i64, Usage)> = (0..100).map(|t| (t, Usage::default())).collect();
        points[57].1.memory_bytes = 9.0;
        let pooled = pool_max(&points, 10, |u| u.memory_bytes);
        assert_eq!(pooled.len(), 10);
        assert_eq!(pooled.iter().copied().fold(0.0, f64::max), 9.0);
    }
}
