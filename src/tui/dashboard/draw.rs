//! The Dashboard: host header, users with now/peaks, GPUs, and a user's drill-down.
//!
//! Refreshed every second: host gauges (CPU, memory, swap), load, uptime,
//! free disk of the data directory and a GPU summary; every Unix user with
//! processes now or use in the last 7 days (lab users by their lab name,
//! followed by their Unix account where its name differs, other accounts in
//! grey) with now and peak 1h / 24h / 7d of CPU cores and memory (or GPUs and
//! GPU memory), process count, running experiments and a CPU sparkline; a
//! per-GPU panel (utilisation, memory, temperature, power, users). A user's
//! drill-down charts CPU, memory and GPU memory over 1h / 24h / 7d, each
//! column the peak of its slice of time, blank where nothing was recorded,
//! with the peak and when it was last reached in the title; then their top
//! processes and a right-sizing hint. The keys are in [`crate::tui::help_lines`].

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Gauge, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use super::{DashboardState, DrillDown, MetricPair, SortColumn};
use crate::lab::sizing_hint;
use crate::monitor::{Metric, Usage, UsageSnapshot, UserUsage, Window};
use crate::tui::data::Snapshot;
use crate::tui::widgets::{ACCENT, Canvas, DIM, header_style, panel};
use crate::units::{Formatter, cores, human_bytes, human_duration, short_bytes, short_duration};

/// From this width the header shows connected users beside the host figures.
const WIDE: u16 = 110;

/// A user row as displayed: who and their figures.
pub struct UserRow<'a> {
    /// Name shown: the lab user (with the Unix account after it where the
    /// names differ, so lab user root on account lbadmin is not taken for
    /// the Unix root), else the Unix user.
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
                name: if *lab == u.unix_user {
                    lab.clone()
                } else {
                    format!("{lab} ({})", u.unix_user)
                },
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
pub(in crate::tui) fn render_dashboard(
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
            cells.push(match snap.idle.get(&u.unix_user) {
                Some(_) => {
                    Cell::from(format!("{running}!")).style(Style::default().fg(Color::Yellow))
                }
                None => Cell::from(running.to_string()),
            });
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
    let idle: usize = snap.idle.values().sum();
    let title = if idle > 0 && wide {
        format!(
            " Users ({}): now and peaks (^) · {idle} experiment(s) idle (! in RUN; Admin › Idle) ",
            rows.len()
        )
    } else {
        format!(" Users ({}): now and peaks (^) ", rows.len())
    };
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
    // Three charts of two lines at least (title and bars) and the time axis.
    let [summary, charts, bottom] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(7),
        Constraint::Length(6),
    ])
    .areas(inner);
    let stats = user.window(window);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!(
                "peak CPU {}, mem {}, GPUs busy {:.1}, GPU mem {} (mean CPU {}, mem {})",
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
    let [chart_area, axis] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(charts);
    let chart_rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(chart_area);
    let now = snap.usage.at;
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
        let block = Block::default()
            .borders(Borders::TOP)
            .border_style(Style::default().fg(DIM));
        let inner = block.inner(chart_rows[i]);
        let [gutter, plot] =
            Layout::horizontal([Constraint::Length(GUTTER), Constraint::Min(1)]).areas(inner);
        let bins = bin_max(
            &snap.drill_chart,
            now,
            window.seconds(),
            usize::from(plot.width).max(1),
            get,
        );
        let peak = bins
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            // The latest bin at the peak: when it was last reached.
            .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
                Some((_, b)) if b > v => best,
                _ => Some((i, v)),
            });
        let title = match peak {
            Some((at, value)) => {
                let ago = window.seconds() * (bins.len() - 1 - at) as i64 / bins.len() as i64;
                let bin_secs = (window.seconds() / bins.len() as i64).max(1) as u64;
                let when = match ago {
                    0 => format!("in the last {}", short_duration(bin_secs)),
                    ago => format!("last {} ago", short_duration(ago.max(0) as u64)),
                };
                format!(" {name}: peak {}, {when} ", fmt(value))
            }
            None => format!(" {name}: nothing recorded "),
        };
        let top = peak.map_or(0.0, |(_, v)| v);
        frame.render_widget(block.title(title), chart_rows[i]);
        frame.render_widget(
            Paragraph::new(y_labels(fmt(top), gutter.height)).style(Style::default().fg(DIM)),
            gutter,
        );
        let data: Vec<Option<u64>> = bins
            .iter()
            .map(|v| v.map(|v| (v * scale).round() as u64))
            .collect();
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .max(((top * scale).round() as u64).max(1))
                .absent_value_symbol(" ")
                .style(Style::default().fg(ACCENT)),
            plot,
        );
    }
    let [_, axis_plot] =
        Layout::horizontal([Constraint::Length(GUTTER), Constraint::Min(1)]).areas(axis);
    frame.render_widget(
        Paragraph::new(time_axis(window, usize::from(axis_plot.width)))
            .style(Style::default().fg(DIM)),
        axis_plot,
    );
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

/// Columns left of a drill-down chart for its value labels.
const GUTTER: u16 = 6;

/// The most of `get` in each of `bins` equal spans of the `span` seconds up
/// to `end`, oldest first; `None` where no sample fell (shown blank), so the
/// chart's left edge is always `span` ago, however little is recorded.
pub fn bin_max(
    points: &[(i64, Usage)],
    end: i64,
    span: i64,
    bins: usize,
    get: Metric,
) -> Vec<Option<f64>> {
    let mut out = vec![None; bins];
    let (start, span) = (end - span, span.max(1) as i128);
    for (t, usage) in points {
        if *t < start || *t > end {
            continue;
        }
        let bin = (((*t - start) as i128 * bins as i128) / span).min(bins as i128 - 1) as usize;
        let value = get(usage);
        out[bin] = Some(out[bin].map_or(value, |v: f64| v.max(value)));
    }
    out
}

/// The value labels of a chart `height` lines tall: its top at the top,
/// 0 at the bottom (when there are two lines or more).
fn y_labels(top: String, height: u16) -> Vec<Line<'static>> {
    let width = usize::from(GUTTER - 1);
    let mut lines = vec![Line::from(format!("{top:>width$}"))];
    if height >= 2 {
        lines.extend((2..height).map(|_| Line::from("")));
        lines.push(Line::from(format!("{:>width$}", "0")));
    }
    lines
}

/// "-1h            -30m            now", `width` columns wide.
pub fn time_axis(window: Window, width: usize) -> String {
    let (left, middle) = match window {
        Window::Minute => ("-1m", "-30s"),
        Window::Hour => ("-1h", "-30m"),
        Window::Day => ("-24h", "-12h"),
        Window::Week => ("-7d", "-3.5d"),
    };
    let right = "now";
    let mut axis = vec![' '; width];
    let mut put = |at: usize, text: &str| {
        for (i, c) in text.chars().enumerate() {
            if let Some(slot) = axis.get_mut(at + i) {
                *slot = c;
            }
        }
    };
    if width >= left.len() + middle.len() + right.len() + 4 {
        put((width - middle.len()) / 2, middle);
    }
    put(0, left);
    put(width.saturating_sub(right.len()), right);
    axis.into_iter().collect()
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
    fn binning_keeps_spikes_in_place_and_leaves_gaps_blank() {
        // 100 s of samples at the end of a 200 s window: the left half is empty.
        let mut points: Vec<(i64, Usage)> = (100..200).map(|t| (t, Usage::default())).collect();
        points[57].1.memory_bytes = 9.0; // t = 157
        let bins = bin_max(&points, 200, 200, 10, |u| u.memory_bytes);
        assert_eq!(bins.len(), 10);
        assert!(bins[..5].iter().all(Option::is_none), "{bins:?}");
        assert_eq!(bins[7], Some(9.0), "{bins:?}");
        assert!(bins[5..].iter().all(Option::is_some), "{bins:?}");
    }

    #[test]
    fn the_time_axis_runs_from_the_window_to_now() {
        assert_eq!(time_axis(Window::Hour, 20), "-1h     -30m     now");
        assert_eq!(time_axis(Window::Week, 8), "-7d  now");
        assert_eq!(time_axis(Window::Day, 3), "now");
    }
}
