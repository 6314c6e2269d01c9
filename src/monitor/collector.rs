//! Turning sweeps into per-user series and published snapshots.
//!
//! [`MonitorState::ingest`] is a pure step over an explicit time: it records a
//! host sample, a `/proc` sweep and a GPU reading into each subject's series
//! and returns the snapshot to publish and the buckets to store. The task in
//! [`spawn_monitor`] supplies real time and real readings.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::gpu::{GpuDevice, GpuProcess, GpuReading, GpuSource};
use super::host::{HostSampler, HostSnapshot};
use super::procfs::{ProcSampler, ProcSweep, ProcessUse};
use super::series::{ClosedBucket, Series, Usage, Window, WindowStats};
use super::uids::UidNames;
use crate::store::Store;

/// Subject name of the whole host in the store.
pub const HOST_SUBJECT: &str = "host";
/// Prefix of a Unix user's subject name in the store (`u/alice`).
pub const USER_SUBJECT_PREFIX: &str = "u/";
/// Seconds of sparkline history published per user.
pub const SPARK_POINTS: usize = 60;

/// One Unix user's use: now, and peaks per window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserUsage {
    /// Unix user name (or `uid N` when unknown).
    pub unix_user: String,
    /// Unix uid.
    pub uid: u32,
    /// Use now.
    pub now: Usage,
    /// Processes now.
    pub processes: u32,
    /// Figures per window, in [`Window::ALL`] order.
    pub windows: [WindowStats; 4],
    /// CPU cores, last [`SPARK_POINTS`] seconds, oldest first.
    pub cpu_history: Vec<f64>,
    /// Busiest processes now.
    pub top: Vec<ProcessUse>,
    /// GPU processes now.
    pub gpu_processes: Vec<GpuProcess>,
}

impl UserUsage {
    /// The figures for one window.
    pub fn window(&self, window: Window) -> &WindowStats {
        &self.windows[Window::ALL.iter().position(|w| *w == window).unwrap_or(0)]
    }
}

/// One GPU with the users holding it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuStatus {
    /// The device.
    #[serde(flatten)]
    pub device: GpuDevice,
    /// Unix users with processes on it, with their GPU memory, largest first.
    pub owners: Vec<(String, u64)>,
}

/// Everything the monitor knows at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageSnapshot {
    /// Seconds since the epoch of the sample (0: none yet).
    pub at: i64,
    /// Host totals.
    pub host: HostSnapshot,
    /// Host figures per window, in [`Window::ALL`] order.
    pub host_windows: [WindowStats; 4],
    /// Users with processes now or use in the last 7 days, busiest first.
    pub users: Vec<UserUsage>,
    /// GPUs, when any can be read.
    pub gpus: Vec<GpuStatus>,
    /// Why there are no GPUs, when there are none.
    pub gpu_unavailable: Option<String>,
}

/// One uid's readings of this round.
#[derive(Debug, Default)]
struct LiveUse {
    uid: u32,
    usage: Usage,
    processes: u32,
    top: Vec<ProcessUse>,
    gpu_processes: Vec<GpuProcess>,
}

#[derive(Debug, Default)]
struct UserState {
    uid: u32,
    series: Series,
}

/// The per-subject series and what is needed to name subjects.
#[derive(Debug, Default)]
pub struct MonitorState {
    host: Series,
    users: BTreeMap<String, UserState>,
    names: UidNames,
}

impl MonitorState {
    /// Restores history from the store: minute buckets of the last 7 days.
    pub fn restore(store: &Store, now: i64) -> MonitorState {
        let mut state = MonitorState::default();
        let since = now - Window::Week.seconds();
        match store.usage_subjects(60) {
            Ok(subjects) => {
                for subject in subjects {
                    let minutes = store.usage_buckets(60, &subject, since).unwrap_or_default();
                    if subject == HOST_SUBJECT {
                        state.host.restore_minutes(minutes);
                    } else if let Some(user) = subject.strip_prefix(USER_SUBJECT_PREFIX) {
                        let uid = state.names.uid_of(user).unwrap_or(u32::MAX);
                        state
                            .users
                            .entry(user.to_string())
                            .or_insert_with(|| UserState {
                                uid,
                                series: Series::default(),
                            })
                            .series
                            .restore_minutes(minutes);
                    }
                }
            }
            Err(e) => tracing::warn!("usage history could not be read: {e}"),
        }
        state
    }

    /// Records one round of readings at `now`; returns the snapshot and the buckets to store.
    pub fn ingest(
        &mut self,
        now: i64,
        host: HostSnapshot,
        sweep: &ProcSweep,
        gpu: &GpuReading,
    ) -> (UsageSnapshot, Vec<(String, ClosedBucket)>) {
        let mut closed = Vec::new();
        let gpu_sample = match gpu {
            GpuReading::Devices(sample) => Some(sample),
            GpuReading::Unavailable(_) => None,
        };
        // GPU processes per uid.
        let mut gpu_by_uid: HashMap<u32, Vec<GpuProcess>> = HashMap::new();
        if let Some(sample) = gpu_sample {
            for process in &sample.processes {
                let uid = process
                    .uid
                    .or_else(|| sweep.owners.get(&process.pid).copied());
                if let Some(uid) = uid {
                    gpu_by_uid.entry(uid).or_default().push(process.clone());
                }
            }
        }
        let host_usage = Usage {
            cpu_cores: f64::from(host.cpu_percent) / 100.0 * host.cores as f64,
            memory_bytes: host.memory_used as f64,
            gpus: gpu_sample
                .map(|s| s.gpus.iter().filter(|g| g.utilization_percent > 0).count() as f64)
                .unwrap_or(0.0),
            gpu_memory_bytes: gpu_sample
                .map(|s| s.gpus.iter().map(|g| g.memory_used as f64).sum())
                .unwrap_or(0.0),
        };
        for c in self.host.record(now, host_usage) {
            closed.push((HOST_SUBJECT.to_string(), c));
        }

        let mut uids: Vec<u32> = sweep.by_uid.keys().copied().collect();
        uids.extend(gpu_by_uid.keys().copied());
        uids.sort_unstable();
        uids.dedup();
        let mut live: HashMap<String, LiveUse> = HashMap::new();
        for uid in uids {
            let name = self.names.name_of(uid);
            let proc_use = sweep.by_uid.get(&uid);
            let gpu_processes = gpu_by_uid.remove(&uid).unwrap_or_default();
            let mut gpu_indices: Vec<u32> = gpu_processes.iter().map(|p| p.gpu).collect();
            gpu_indices.sort_unstable();
            gpu_indices.dedup();
            let usage = Usage {
                cpu_cores: proc_use.map(|u| u.cpu_cores).unwrap_or(0.0),
                memory_bytes: proc_use.map(|u| u.rss_bytes as f64).unwrap_or(0.0),
                gpus: gpu_indices.len() as f64,
                gpu_memory_bytes: gpu_processes.iter().map(|p| p.memory_bytes as f64).sum(),
            };
            live.insert(
                name,
                LiveUse {
                    uid,
                    usage,
                    processes: proc_use.map(|u| u.processes).unwrap_or(0),
                    top: proc_use.map(|u| u.top.clone()).unwrap_or_default(),
                    gpu_processes,
                },
            );
        }
        // Every known user gets a sample (zero when idle), so windows age correctly.
        for name in live.keys() {
            self.users.entry(name.clone()).or_default();
        }
        let mut users = Vec::new();
        let mut forgotten = Vec::new();
        for (name, state) in self.users.iter_mut() {
            let LiveUse {
                uid,
                usage,
                processes,
                top,
                gpu_processes,
            } = live.remove(name).unwrap_or(LiveUse {
                uid: state.uid,
                ..LiveUse::default()
            });
            state.uid = uid;
            for c in state.series.record(now, usage) {
                // An all-idle bucket carries no peak; not storing it lets old users age out.
                if c.bucket.max.iter().any(|v| *v > 0.0) {
                    closed.push((format!("{USER_SUBJECT_PREFIX}{name}"), c));
                }
            }
            let windows = state.series.live_stats(now);
            if processes == 0 && windows[3].max == Usage::default() {
                forgotten.push(name.clone()); // nothing now, nothing in 7 days
                continue;
            }
            users.push(UserUsage {
                unix_user: name.clone(),
                uid,
                now: usage,
                processes,
                windows,
                cpu_history: state.series.recent(0, SPARK_POINTS),
                top,
                gpu_processes,
            });
        }
        for name in forgotten {
            self.users.remove(&name);
        }
        users.sort_by(|a, b| {
            b.now
                .cpu_cores
                .total_cmp(&a.now.cpu_cores)
                .then(b.now.memory_bytes.total_cmp(&a.now.memory_bytes))
        });
        let gpus = gpu_sample
            .map(|sample| gpu_statuses(&sample.gpus, &users))
            .unwrap_or_default();
        let snapshot = UsageSnapshot {
            at: now,
            host_windows: self.host.live_stats(now),
            host,
            users,
            gpus,
            gpu_unavailable: match gpu {
                GpuReading::Unavailable(reason) => Some(crate::units::printable(reason)),
                GpuReading::Devices(s) if s.gpus.is_empty() => Some("no GPUs detected".into()),
                GpuReading::Devices(_) => None,
            },
        };
        (snapshot, closed)
    }

    /// Chart points of one Unix user (or the host with [`HOST_SUBJECT`]) over a window.
    pub fn chart(&self, subject: &str, now: i64, window: Window) -> Vec<(i64, Usage)> {
        if subject == HOST_SUBJECT {
            return self.host.chart(now, window);
        }
        self.users
            .get(subject)
            .map(|u| u.series.chart(now, window))
            .unwrap_or_default()
    }
}

fn gpu_statuses(devices: &[GpuDevice], users: &[UserUsage]) -> Vec<GpuStatus> {
    devices
        .iter()
        .map(|device| {
            let mut owners: Vec<(String, u64)> = users
                .iter()
                .filter_map(|u| {
                    let bytes: u64 = u
                        .gpu_processes
                        .iter()
                        .filter(|p| p.gpu == device.index)
                        .map(|p| p.memory_bytes)
                        .sum();
                    let present = u.gpu_processes.iter().any(|p| p.gpu == device.index);
                    present.then(|| (u.unix_user.clone(), bytes))
                })
                .collect();
            owners.sort_by_key(|owner| std::cmp::Reverse(owner.1));
            GpuStatus {
                device: device.clone(),
                owners,
            }
        })
        .collect()
}

/// The monitor as the service sees it: the latest snapshot and the history.
#[derive(Clone)]
pub struct MonitorHandle {
    snapshot: watch::Receiver<Arc<UsageSnapshot>>,
    state: Arc<Mutex<MonitorState>>,
    /// Keeps a fixed handle's channel open (the sampling thread owns its own sender).
    _fixed: Option<Arc<watch::Sender<Arc<UsageSnapshot>>>>,
}

impl MonitorHandle {
    /// A handle publishing a fixed snapshot (tests, local commands).
    pub fn fixed(snapshot: UsageSnapshot, state: MonitorState) -> MonitorHandle {
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        MonitorHandle {
            snapshot: rx,
            state: Arc::new(Mutex::new(state)),
            _fixed: Some(Arc::new(tx)),
        }
    }

    /// A subscription to the latest snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<UsageSnapshot>> {
        self.snapshot.clone()
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<UsageSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// Chart points for a subject over a window, ending at the latest sample.
    pub fn chart(&self, subject: &str, window: Window) -> Vec<(i64, Usage)> {
        let now = self.latest().at;
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .chart(subject, now, window)
    }
}

/// Measures once over `interval` (for commands run without a server): history
/// from the store plus one interval of live figures.
pub fn measure_once(
    store: &Store,
    mut gpu: Box<dyn GpuSource>,
    disk_path: std::path::PathBuf,
    interval: Duration,
) -> MonitorHandle {
    let now = chrono::Utc::now().timestamp();
    let mut state = MonitorState::restore(store, now);
    let mut host = HostSampler::with_disk(disk_path);
    let mut procs = ProcSampler::default();
    host.sample();
    procs.sweep();
    std::thread::sleep(interval);
    let sweep = procs.sweep();
    let (snapshot, _) = state.ingest(now, host.sample(), &sweep, &gpu.read());
    MonitorHandle::fixed(snapshot, state)
}

/// Host totals and GPUs right now, without per-user figures (what a local
/// command needs to check a request against the host's capacity).
pub fn host_only(mut gpu: Box<dyn GpuSource>, disk_path: std::path::PathBuf) -> MonitorHandle {
    let host = HostSampler::with_disk(disk_path).sample();
    let reading = gpu.read();
    let mut state = MonitorState::default();
    let (snapshot, _) = state.ingest(
        chrono::Utc::now().timestamp(),
        host,
        &ProcSweep::default(),
        &reading,
    );
    MonitorHandle::fixed(snapshot, MonitorState::default())
}

/// Settings of the sampling task.
pub struct MonitorSettings {
    /// Time between samples.
    pub period: Duration,
    /// Where GPU readings come from.
    pub gpu: Box<dyn GpuSource>,
    /// Days of 1-minute buckets kept in the store.
    pub keep_minutes_days: u32,
    /// Days of 1-hour buckets kept in the store.
    pub keep_hours_days: u32,
    /// Directory whose file system's free space the host figures include.
    pub disk_path: std::path::PathBuf,
}

/// Samples every `period` on a blocking thread, stores closed buckets and
/// publishes snapshots.
pub fn spawn_monitor(store: Store, settings: MonitorSettings) -> MonitorHandle {
    let now = chrono::Utc::now().timestamp();
    let state = Arc::new(Mutex::new(MonitorState::restore(&store, now)));
    let mut host_sampler = HostSampler::with_disk(settings.disk_path.clone());
    let mut proc_sampler = ProcSampler::default();
    let mut gpu = settings.gpu;
    // A first round at once, so the first screen has figures.
    let first = {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let sweep = proc_sampler.sweep();
        guard
            .ingest(now, host_sampler.sample(), &sweep, &gpu.read())
            .0
    };
    let (tx, rx) = watch::channel(Arc::new(first));
    let task_state = Arc::clone(&state);
    let period = settings.period;
    let retention = (settings.keep_minutes_days, settings.keep_hours_days);
    std::thread::Builder::new()
        .name("labbench-monitor".into())
        .spawn(move || {
            let mut next = std::time::Instant::now() + period;
            let mut last_prune = 0i64;
            loop {
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                // After a stall (suspend, overload) skip the missed ticks instead of bursting.
                next = (next + period).max(std::time::Instant::now());
                let now = chrono::Utc::now().timestamp();
                let host = host_sampler.sample();
                let sweep = proc_sampler.sweep();
                let reading = gpu.read();
                let (snapshot, closed) = task_state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .ingest(now, host, &sweep, &reading);
                for (subject, bucket) in &closed {
                    if let Err(e) = store.put_usage_bucket(subject, bucket) {
                        tracing::warn!("usage bucket not stored: {e}");
                    }
                }
                if now - last_prune >= 3600 {
                    last_prune = now;
                    let cutoffs = [
                        (60, now - i64::from(retention.0) * 86_400),
                        (3600, now - i64::from(retention.1) * 86_400),
                    ];
                    for (resolution, before) in cutoffs {
                        if let Err(e) = store.prune_usage(resolution, before) {
                            tracing::warn!("usage retention failed: {e}");
                        }
                    }
                }
                if tx.send(Arc::new(snapshot)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| tracing::error!("monitor thread could not start: {e}"))
        .ok();
    MonitorHandle {
        snapshot: rx,
        state,
        _fixed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::gpu::GpuSample;
    use crate::monitor::procfs::UidUse;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    fn sweep(entries: &[(u32, f64, u64)], owners: &[(u32, u32)]) -> ProcSweep {
        ProcSweep {
            by_uid: entries
                .iter()
                .map(|&(uid, cpu, rss)| {
                    (
                        uid,
                        UidUse {
                            cpu_cores: cpu,
                            rss_bytes: rss,
                            processes: 1,
                            top: Vec::new(),
                        },
                    )
                })
                .collect(),
            processes: entries.len(),
            owners: owners.iter().copied().collect(),
        }
    }

    fn gpus(processes: Vec<GpuProcess>) -> GpuReading {
        let device = |index| GpuDevice {
            index,
            name: "H100".into(),
            utilization_percent: 50,
            memory_used: 10,
            memory_total: 80,
            temperature_c: None,
            power_watts: None,
        };
        GpuReading::Devices(GpuSample {
            gpus: vec![device(0), device(1)],
            processes,
        })
    }

    #[test]
    fn gpu_processes_are_mapped_to_their_owner() {
        let mut state = MonitorState::default();
        // pid 77 belongs to root (uid 0) by /proc; pid 88 carries its uid (a recording).
        let readings = gpus(vec![
            GpuProcess {
                pid: 77,
                gpu: 1,
                memory_bytes: 5 << 30,
                utilization_percent: None,
                uid: None,
            },
            GpuProcess {
                pid: 88,
                gpu: 0,
                memory_bytes: 3 << 30,
                utilization_percent: Some(40),
                uid: Some(0),
            },
        ]);
        let (snapshot, _) = state.ingest(
            1_000_000,
            HostSnapshot::default(),
            &sweep(&[(0, 1.0, 1 << 20)], &[(77, 0)]),
            &readings,
        );
        let root = snapshot
            .users
            .iter()
            .find(|u| u.unix_user == "root")
            .expect("root row");
        assert_eq!(root.now.gpus, 2.0);
        assert_eq!(root.now.gpu_memory_bytes, 8.0 * GIB);
        let owners = &snapshot.gpus[1].owners;
        assert_eq!(owners, &vec![("root".to_string(), 5 << 30)]);
        assert!(snapshot.gpu_unavailable.is_none());
    }

    #[test]
    fn no_gpu_reading_is_reported_not_failed() {
        let mut state = MonitorState::default();
        let (snapshot, _) = state.ingest(
            5,
            HostSnapshot::default(),
            &sweep(&[], &[]),
            &GpuReading::Unavailable("no NVIDIA driver".into()),
        );
        assert!(snapshot.gpus.is_empty());
        assert_eq!(
            snapshot.gpu_unavailable.as_deref(),
            Some("no NVIDIA driver")
        );
    }

    #[test]
    fn idle_users_keep_their_peaks_and_age_out() {
        let mut state = MonitorState::default();
        let t0 = 60 * 100_000;
        state.ingest(
            t0,
            HostSnapshot::default(),
            &sweep(&[(0, 4.0, 1 << 30)], &[]),
            &gpus(vec![]),
        );
        for t in t0 + 1..t0 + 90 {
            state.ingest(t, HostSnapshot::default(), &sweep(&[], &[]), &gpus(vec![]));
        }
        let (snapshot, _) = state.ingest(
            t0 + 90,
            HostSnapshot::default(),
            &sweep(&[], &[]),
            &gpus(vec![]),
        );
        let root = snapshot
            .users
            .iter()
            .find(|u| u.unix_user == "root")
            .expect("row");
        assert_eq!(root.now.cpu_cores, 0.0);
        assert_eq!(root.window(Window::Minute).max.cpu_cores, 0.0);
        assert_eq!(root.window(Window::Hour).max.cpu_cores, 4.0);
    }

    #[test]
    fn peaks_survive_a_restart_through_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = 3600 * 500_000;
        {
            let store = Store::open(dir.path()).expect("store");
            let mut state = MonitorState::default();
            for t in t0..t0 + 180 {
                let rss = if t == t0 + 30 { 20u64 << 30 } else { 1 << 30 };
                let (_, closed) = state.ingest(
                    t,
                    HostSnapshot::default(),
                    &sweep(&[(0, 1.0, rss)], &[]),
                    &gpus(vec![]),
                );
                for (subject, bucket) in closed {
                    store
                        .put_usage_bucket(&subject, &bucket)
                        .expect("store bucket");
                }
            }
            store.flush().expect("flush");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let now = t0 + 5 * 3600;
        let mut state = MonitorState::restore(&store, now);
        let (snapshot, _) = state.ingest(
            now,
            HostSnapshot::default(),
            &sweep(&[], &[]),
            &gpus(vec![]),
        );
        let root = snapshot
            .users
            .iter()
            .find(|u| u.unix_user == "root")
            .expect("row");
        assert_eq!(root.window(Window::Day).max.memory_bytes, 20.0 * GIB);
        assert_eq!(root.window(Window::Hour).max.memory_bytes, 0.0);
    }
}
