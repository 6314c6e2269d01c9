//! Host and per-user use as the service reports it: peaks, means, hints.
//!
//! The sizing hint: memory = 7-day peak + 15 % (rounded up to a GiB), CPUs =
//! 7-day p95 rounded up, GPUs = 7-day peak of GPUs busy, rounded up.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Lab, LabError, LabResult, Principal};
use crate::monitor::{Usage, UsageSnapshot, UserUsage, Window, WindowStats};
use crate::units::short_bytes;

/// One user's use in report form (`usage --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// Lab user name when the Unix user is mapped to one, else the Unix user name.
    pub user: String,
    /// Whether `user` is a lab user.
    pub lab_user: bool,
    /// Unix user.
    pub unix_user: String,
    /// Unix uid.
    pub uid: u32,
    /// Processes now.
    pub processes: u32,
    /// Use now.
    pub now: Usage,
    /// Figures per requested window, keyed `1m`, `1h`, `24h`, `7d`.
    pub windows: Vec<(Window, WindowStats)>,
    /// A right-sizing suggestion from the 7-day figures.
    pub hint: String,
}

impl UsageReport {
    /// The name for a table: the user, with the Unix account after a lab
    /// user whose account has another name (`root (lbadmin)`), so that it is
    /// not taken for the Unix user of that name.
    pub fn shown_name(&self) -> String {
        if self.lab_user && self.user != self.unix_user {
            format!("{} ({})", self.user, self.unix_user)
        } else {
            self.user.clone()
        }
    }
}

impl Lab {
    /// The latest monitor snapshot (any role: everyone sees everyone's use).
    pub fn usage_snapshot(&self, _p: &Principal) -> Arc<UsageSnapshot> {
        self.monitor.latest()
    }

    /// A subscription to monitor snapshots, for live screens.
    pub fn usage_updates(&self) -> tokio::sync::watch::Receiver<Arc<UsageSnapshot>> {
        self.monitor.subscribe()
    }

    /// Chart points of the Unix user `uid` over a window (any role).
    pub fn usage_chart(&self, _p: &Principal, uid: u32, window: Window) -> Vec<(i64, Usage)> {
        self.monitor.chart(uid, window)
    }

    /// Stores the usage buckets still open (the daemon does as it stops),
    /// so that a restart keeps the peaks of the minute in progress.
    pub fn save_open_usage(&self) {
        self.monitor.save_open(&self.store);
    }

    /// Unix user name → lab user name, for display.
    pub fn lab_names(&self) -> LabResult<HashMap<String, String>> {
        let mut map = HashMap::new();
        for user in self.store.users()? {
            if let Some(unix_user) = user.unix_user {
                map.entry(unix_user).or_insert(user.name);
            }
        }
        Ok(map)
    }

    /// Per-user reports, optionally for one user (lab or Unix name), over `windows`.
    pub fn usage(
        &self,
        p: &Principal,
        user: Option<&str>,
        windows: &[Window],
    ) -> LabResult<Vec<UsageReport>> {
        let snapshot = self.usage_snapshot(p);
        let names = self.lab_names()?;
        let wanted_unix = match user {
            None => None,
            Some(name) => Some(match self.store.user(name)?.and_then(|u| u.unix_user) {
                Some(unix_user) => unix_user,
                None => name.to_string(),
            }),
        };
        let reports: Vec<UsageReport> = snapshot
            .users
            .iter()
            .filter(|u| wanted_unix.as_deref().is_none_or(|w| w == u.unix_user))
            .map(|u| report(u, &names, windows))
            .collect();
        if let (Some(name), true) = (user, reports.is_empty()) {
            return Err(LabError::NotFound(format!(
                "no use recorded for {name} in the last 7 days (see `usage` for everyone)"
            )));
        }
        Ok(reports)
    }
}

fn report(u: &UserUsage, names: &HashMap<String, String>, windows: &[Window]) -> UsageReport {
    let lab = names.get(&u.unix_user);
    UsageReport {
        user: lab.cloned().unwrap_or_else(|| u.unix_user.clone()),
        lab_user: lab.is_some(),
        unix_user: u.unix_user.clone(),
        uid: u.uid,
        processes: u.processes,
        now: u.now,
        windows: windows.iter().map(|w| (*w, *u.window(*w))).collect(),
        hint: sizing_hint(u.window(Window::Week)),
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A one-line right-sizing suggestion from 7-day figures.
pub fn sizing_hint(week: &WindowStats) -> String {
    if week.samples == 0 {
        return "no use recorded in the last 7 days".into();
    }
    let peak_mem = week.max.memory_bytes / GIB;
    let p95_cpu = week.p95.cpu_cores;
    let mut text = format!(
        "7-day peak memory {} (p95 {}); p95 CPU {p95_cpu:.1} cores (peak {:.1})",
        short_bytes(week.max.memory_bytes),
        short_bytes(week.p95.memory_bytes),
        week.max.cpu_cores
    );
    // GPUs: the most kept busy at once, rounded up to whole GPUs.
    let gpu_request = week.max.gpus.ceil();
    if week.max.gpus > 0.0 {
        text.push_str(&format!(
            "; peak {:.1} GPUs busy, {} GPU memory",
            week.max.gpus,
            short_bytes(week.max.gpu_memory_bytes)
        ));
    }
    // Memory: the peak plus 15 % headroom, rounded up to a whole GiB; CPUs: p95 rounded up.
    let mem_request = (peak_mem * 1.15).ceil().max(1.0);
    let cpu_request = p95_cpu.ceil().max(1.0);
    text.push_str(&format!(
        " → fits --mem {mem_request:.0}G --cpus {cpu_request:.0}"
    ));
    if gpu_request > 0.0 {
        text.push_str(&format!(" --gpus {gpu_request:.0}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_uses_peak_memory_and_p95_cpu() {
        let week = WindowStats {
            max: Usage {
                cpu_cores: 8.0,
                memory_bytes: 41.0 * GIB,
                gpus: 2.0,
                gpu_memory_bytes: 60.0 * GIB,
            },
            p95: Usage {
                cpu_cores: 3.2,
                memory_bytes: 12.0 * GIB,
                ..Usage::default()
            },
            mean: Usage::default(),
            samples: 100,
        };
        assert_eq!(
            sizing_hint(&week),
            "7-day peak memory 41G (p95 12G); p95 CPU 3.2 cores (peak 8.0); peak 2.0 GPUs busy, 60G GPU memory → fits --mem 48G --cpus 4 --gpus 2"
        );
        assert_eq!(
            sizing_hint(&WindowStats::default()),
            "no use recorded in the last 7 days"
        );
    }
}
