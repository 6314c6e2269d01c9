//! `top`, `usage` and `host`: measured use as tables and JSON.
//!
//! `usage --json` (and `top --json`) is a list of `{"user", "lab_user",
//! "unix_user", "uid", "processes", "now", "windows", "hint"}`: `user` is the
//! lab user mapped to the Unix account (`lab_user: true`) or the Unix name;
//! `now` and each figure are `{"cpu_cores", "memory_bytes", "gpus",
//! "gpu_memory_bytes"}`; `windows` maps `"1m"`, `"1h"`, `"24h"`, `"7d"` to
//! `{"max", "mean", "p95", "samples"}`. `host --json` is the host (`hostname`,
//! `cores`, `cpu_percent`, `cpu_per_core`, `memory_total`, `memory_used`,
//! `swap_total`, `swap_used`, `load`, `uptime_secs`, `disk_free`,
//! `disk_total`, `sampled_at`), `peaks` (the same window map for the whole
//! host), `gpus` (each `index`, `name`, `utilization_percent`, `memory_used`,
//! `memory_total`, `temperature_c`, `power_watts`, `minor` (N of its
//! `/dev/nvidiaN`, null if unknown) and `owners`: `[unix_user,
//! gpu_memory_bytes]` pairs) and `gpu_unavailable` (why there are no GPUs,
//! else null). Bytes are bytes, times seconds since the epoch.

use std::collections::BTreeMap;

use serde::Serialize;

use super::output::{CommandOutput, table};
use crate::lab::{Lab, Principal, UsageReport};
use crate::monitor::{GpuStatus, HostSnapshot, Metric, Usage, Window, WindowStats};
use crate::units::{Formatter, cores, human_duration, short_bytes};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn count(value: f64) -> String {
    format!("{value:.0}")
}

/// GPUs' worth of work a user keeps busy (per-process utilisation summed).
fn gpus_busy(value: f64) -> String {
    format!("{value:.1}")
}

/// `top`: one row per user with now and peaks per window.
pub fn top(lab: &Lab, p: &Principal) -> CommandOutput {
    let reports = match lab.usage(p, None, &Window::ALL) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let snapshot = lab.usage_snapshot(p);
    let mut out = host_line(&snapshot.host);
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let peak = |w: usize, f: Metric| f(&r.windows[w].1.max);
            vec![
                r.shown_name(),
                r.processes.to_string(),
                cores(r.now.cpu_cores),
                cores(peak(1, |u| u.cpu_cores)),
                cores(peak(2, |u| u.cpu_cores)),
                cores(peak(3, |u| u.cpu_cores)),
                short_bytes(r.now.memory_bytes),
                short_bytes(peak(1, |u| u.memory_bytes)),
                short_bytes(peak(2, |u| u.memory_bytes)),
                short_bytes(peak(3, |u| u.memory_bytes)),
                gpus_busy(r.now.gpus),
                gpus_busy(peak(3, |u| u.gpus)),
                short_bytes(r.now.gpu_memory_bytes),
                short_bytes(peak(3, |u| u.gpu_memory_bytes)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "USER", "PROCS", "CPU", "CPU^1h", "CPU^24h", "CPU^7d", "MEM", "MEM^1h", "MEM^24h",
            "MEM^7d", "GPU", "GPU^7d", "GMEM", "GMEM^7d",
        ],
        &rows,
    ));
    out.push_str("(^ = peak over the window; CPU in cores; memory is RSS)\n");
    CommandOutput::ok(out)
}

fn host_line(h: &HostSnapshot) -> String {
    format!(
        "{}: {} cores, CPU {:.0}%, memory {} of {}, load {:.2} {:.2} {:.2}\n",
        h.hostname,
        h.cores,
        h.cpu_percent,
        short_bytes(h.memory_used as f64),
        short_bytes(h.memory_total as f64),
        h.load[0],
        h.load[1],
        h.load[2]
    )
}

#[derive(Serialize)]
struct UsageJson<'a> {
    user: &'a str,
    lab_user: bool,
    unix_user: &'a str,
    uid: u32,
    processes: u32,
    now: Usage,
    windows: BTreeMap<&'static str, WindowStats>,
    hint: &'a str,
}

/// `usage`: per-user figures per window, with a sizing hint.
pub fn usage(
    lab: &Lab,
    p: &Principal,
    user: Option<&str>,
    window: Option<Window>,
    json: bool,
) -> CommandOutput {
    let windows: Vec<Window> = window
        .map(|w| vec![w])
        .unwrap_or_else(|| Window::ALL.to_vec());
    let reports = match lab.usage(p, user, &windows) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    if json {
        let items: Vec<UsageJson> = reports
            .iter()
            .map(|r| UsageJson {
                user: &r.user,
                lab_user: r.lab_user,
                unix_user: &r.unix_user,
                uid: r.uid,
                processes: r.processes,
                now: r.now,
                windows: r.windows.iter().map(|(w, s)| (w.label(), *s)).collect(),
                hint: &r.hint,
            })
            .collect();
        return CommandOutput::json(&items);
    }
    let mut out = String::new();
    for r in &reports {
        out.push_str(&user_block(r));
    }
    if out.is_empty() {
        out.push_str("no use recorded yet\n");
    }
    CommandOutput::ok(out)
}

fn user_block(r: &UsageReport) -> String {
    let mut header = vec!["".to_string(), "NOW".to_string()];
    for (w, _) in &r.windows {
        header.push(format!("PEAK {}", w.label()));
        header.push(format!("P95 {}", w.label()));
        header.push(format!("MEAN {}", w.label()));
    }
    let metrics: [(&str, Metric, Formatter); 4] = [
        ("CPU cores", |u| u.cpu_cores, cores),
        ("memory", |u| u.memory_bytes, short_bytes),
        ("GPUs busy", |u| u.gpus, gpus_busy),
        ("GPU memory", |u| u.gpu_memory_bytes, short_bytes),
    ];
    let rows: Vec<Vec<String>> = metrics
        .iter()
        .map(|(name, get, fmt)| {
            let mut row = vec![name.to_string(), fmt(get(&r.now))];
            for (_, stats) in &r.windows {
                row.push(fmt(get(&stats.max)));
                row.push(fmt(get(&stats.p95)));
                row.push(fmt(get(&stats.mean)));
            }
            row
        })
        .collect();
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let unix = if r.lab_user {
        format!("unix {}, ", r.unix_user)
    } else {
        String::new()
    };
    format!(
        "{} ({unix}uid {}), {} process{}\n{}hint: {}\n\n",
        r.user,
        r.uid,
        r.processes,
        if r.processes == 1 { "" } else { "es" },
        table(&header_refs, &rows),
        r.hint
    )
}

#[derive(Serialize)]
struct HostJson<'a> {
    #[serde(flatten)]
    host: &'a HostSnapshot,
    peaks: BTreeMap<&'static str, WindowStats>,
    gpus: &'a [GpuStatus],
    gpu_unavailable: Option<&'a str>,
}

/// `host`: totals, peaks and GPUs.
pub fn host(lab: &Lab, p: &Principal, json: bool) -> CommandOutput {
    let snapshot = lab.usage_snapshot(p);
    let peaks: BTreeMap<&'static str, WindowStats> = Window::ALL
        .iter()
        .zip(snapshot.host_windows.iter())
        .map(|(w, s)| (w.label(), *s))
        .collect();
    if json {
        return CommandOutput::json(&HostJson {
            host: &snapshot.host,
            peaks,
            gpus: &snapshot.gpus,
            gpu_unavailable: snapshot.gpu_unavailable.as_deref(),
        });
    }
    let h = &snapshot.host;
    let mut out = host_line(h);
    out.push_str(&format!(
        "swap {} of {}; data directory disk {} free of {}; up {}\n",
        short_bytes(h.swap_used as f64),
        short_bytes(h.swap_total as f64),
        short_bytes(h.disk_free as f64),
        short_bytes(h.disk_total as f64),
        human_duration(h.uptime_secs)
    ));
    let rows: Vec<Vec<String>> = Window::ALL
        .iter()
        .zip(snapshot.host_windows.iter())
        .map(|(w, s)| {
            vec![
                w.label().to_string(),
                cores(s.max.cpu_cores),
                short_bytes(s.max.memory_bytes),
                count(s.max.gpus),
                short_bytes(s.max.gpu_memory_bytes),
            ]
        })
        .collect();
    out.push_str(&table(
        &["PEAK OVER", "CPU", "MEMORY", "GPUS BUSY", "GPU MEMORY"],
        &rows,
    ));
    match &snapshot.gpu_unavailable {
        Some(reason) => out.push_str(&format!("GPUs: {reason}\n")),
        None => {
            let rows: Vec<Vec<String>> = snapshot
                .gpus
                .iter()
                .map(|g| {
                    vec![
                        g.device.index.to_string(),
                        g.device.name.clone(),
                        format!("{}%", g.device.utilization_percent),
                        format!(
                            "{:.1}/{:.1}G",
                            g.device.memory_used as f64 / GIB,
                            g.device.memory_total as f64 / GIB
                        ),
                        g.device
                            .temperature_c
                            .map(|t| format!("{t}C"))
                            .unwrap_or_else(|| "-".into()),
                        g.device
                            .power_watts
                            .map(|w| format!("{w:.0}W"))
                            .unwrap_or_else(|| "-".into()),
                        g.owners
                            .iter()
                            .map(|(u, b)| format!("{u} {}", short_bytes(*b as f64)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "USERS"],
                &rows,
            ));
        }
    }
    CommandOutput::ok(out)
}
