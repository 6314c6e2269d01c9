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

use super::gpu::{GpuDevice, GpuProcess, GpuReading, GpuSample, GpuSource};
use super::host::{HostSampler, HostSnapshot};
use super::procfs::{ProcSampler, ProcSweep, ProcessUse};
use super::series::{Bucket, ClosedBucket, Series, Usage, Window, WindowStats};
use super::uids::UidNames;
use crate::store::Store;

/// Subject name of the whole host in the store.
pub const HOST_SUBJECT: &str = "host";
/// Prefix of a Unix user's subject name in the store: its uid (`uid/1005`),
/// so that its series is kept whatever the account is named, or becomes
/// named, later.
pub const UID_SUBJECT_PREFIX: &str = "uid/";
/// Prefix of the subjects earlier versions wrote, by account name (`u/alice`).
const NAMED_SUBJECT_PREFIX: &str = "u/";
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
    usage: Usage,
    processes: u32,
    top: Vec<ProcessUse>,
    gpu_processes: Vec<GpuProcess>,
}

#[derive(Debug, Default)]
struct UserState {
    /// The account's name as last looked up (`uid N` while unknown).
    name: String,
    series: Series,
}

/// The per-subject series and what is needed to name subjects.
#[derive(Debug, Default)]
pub struct MonitorState {
    host: Series,
    /// Series by uid.
    users: BTreeMap<u32, UserState>,
    names: UidNames,
}

impl MonitorState {
    /// Restores history from the store: minute buckets of the last 7 days,
    /// and the hour in progress (saved by [`MonitorState::open_buckets`]).
    pub fn restore(store: &Store, now: i64) -> MonitorState {
        let mut state = MonitorState::default();
        let since = now - Window::Week.seconds();
        let hour = now.div_euclid(3600) * 3600;
        let subjects = match store.usage_subjects(60) {
            Ok(subjects) => subjects,
            Err(e) => {
                tracing::warn!("usage history could not be read: {e}");
                return state;
            }
        };
        let mut by_uid: HashMap<u32, Vec<(i64, Bucket)>> = HashMap::new();
        for subject in subjects {
            let minutes = store.usage_buckets(60, &subject, since).unwrap_or_default();
            let open_hour = store
                .usage_buckets(3600, &subject, hour)
                .unwrap_or_default();
            if subject == HOST_SUBJECT {
                state.host.restore_minutes(minutes);
                for (start, bucket) in open_hour {
                    state.host.restore_open_hour(start, bucket);
                }
                continue;
            }
            let uid = if let Some(uid) = subject.strip_prefix(UID_SUBJECT_PREFIX) {
                uid.parse().ok()
            } else if let Some(name) = subject.strip_prefix(NAMED_SUBJECT_PREFIX) {
                // Written by an earlier version: the account's uid now.
                state.names.uid_of(name)
            } else {
                None
            };
            let Some(uid) = uid else {
                continue;
            };
            by_uid.entry(uid).or_default().extend(minutes);
            for (start, bucket) in open_hour {
                state.user(uid).series.restore_open_hour(start, bucket);
            }
        }
        for (uid, mut minutes) in by_uid {
            minutes.sort_by_key(|(start, _)| *start);
            state.user(uid).series.restore_minutes(minutes);
        }
        state
    }

    /// The state of `uid`, made (and named) if new.
    fn user(&mut self, uid: u32) -> &mut UserState {
        let names = &mut self.names;
        self.users.entry(uid).or_insert_with(|| UserState {
            name: names.name_of(uid),
            series: Series::default(),
        })
    }

    /// The buckets still open (the current minute and hour of every
    /// subject), to store so that a restart keeps their peaks.
    pub fn open_buckets(&self) -> Vec<(String, ClosedBucket)> {
        let host = self
            .host
            .open_buckets()
            .into_iter()
            .map(|b| (HOST_SUBJECT.to_string(), b));
        let users = self.users.iter().flat_map(|(uid, user)| {
            user.series
                .open_buckets()
                .into_iter()
                .filter(|b| b.bucket.max.iter().any(|v| *v > 0.0))
                .map(move |b| (format!("{UID_SUBJECT_PREFIX}{uid}"), b))
        });
        host.chain(users).collect()
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
        let mut live: HashMap<u32, LiveUse> = HashMap::new();
        for uid in uids {
            let proc_use = sweep.by_uid.get(&uid);
            let gpu_processes = gpu_by_uid.remove(&uid).unwrap_or_default();
            let mut gpu_indices: Vec<u32> = gpu_processes.iter().map(|p| p.gpu).collect();
            gpu_indices.sort_unstable();
            gpu_indices.dedup();
            let usage = Usage {
                cpu_cores: proc_use.map(|u| u.cpu_cores).unwrap_or(0.0),
                memory_bytes: proc_use.map(|u| u.rss_bytes as f64).unwrap_or(0.0),
                gpus: gpu_sample
                    .map(|sample| gpus_busy(sample, &gpu_processes))
                    .unwrap_or(0.0),
                gpu_memory_bytes: gpu_processes.iter().map(|p| p.memory_bytes as f64).sum(),
            };
            live.insert(
                uid,
                LiveUse {
                    usage,
                    processes: proc_use.map(|u| u.processes).unwrap_or(0),
                    top: proc_use.map(|u| u.top.clone()).unwrap_or_default(),
                    gpu_processes,
                },
            );
        }
        // Every known user gets a sample (zero when idle), so windows age
        // correctly; an account not named yet is asked for its name again.
        for uid in live.keys() {
            self.user(*uid);
        }
        let mut users = Vec::new();
        let mut forgotten = Vec::new();
        for (uid, state) in self.users.iter_mut() {
            let LiveUse {
                usage,
                processes,
                top,
                gpu_processes,
            } = live.remove(uid).unwrap_or_default();
            if state.name.starts_with("uid ") && processes > 0 {
                state.name = self.names.name_of(*uid);
            }
            for c in state.series.record(now, usage) {
                // An all-idle bucket carries no peak; not storing it lets old users age out.
                if c.bucket.max.iter().any(|v| *v > 0.0) {
                    closed.push((format!("{UID_SUBJECT_PREFIX}{uid}"), c));
                }
            }
            let windows = state.series.live_stats(now);
            if processes == 0 && windows[3].max == Usage::default() {
                forgotten.push(*uid); // nothing now, nothing in 7 days
                continue;
            }
            users.push(UserUsage {
                unix_user: state.name.clone(),
                uid: *uid,
                now: usage,
                processes,
                windows,
                cpu_history: state.series.recent(0, SPARK_POINTS),
                top,
                gpu_processes,
            });
        }
        for uid in forgotten {
            self.users.remove(&uid);
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

    /// Chart points of the Unix user `uid` over a window.
    pub fn chart(&self, uid: u32, now: i64, window: Window) -> Vec<(i64, Usage)> {
        self.users
            .get(&uid)
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

    /// Chart points of Unix user `uid` over a window, ending at the latest sample.
    pub fn chart(&self, uid: u32, window: Window) -> Vec<(i64, Usage)> {
        let now = self.latest().at;
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .chart(uid, now, window)
    }

    /// Stores the buckets still open, so that a restart keeps their peaks
    /// (the daemon does at stop; the sampler every `SAVE_OPEN_EVERY`).
    pub fn save_open(&self, store: &Store) {
        let open = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open_buckets();
        store_buckets(store, &open);
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

/// Seconds between saves of the buckets still open: a daemon killed with
/// `kill -9` loses at most this much of its peaks.
pub const SAVE_OPEN_EVERY: i64 = 10;

fn store_buckets(store: &Store, buckets: &[(String, ClosedBucket)]) {
    for (subject, bucket) in buckets {
        if let Err(e) = store.put_usage_bucket(subject, bucket) {
            tracing::warn!("usage bucket not stored: {e}");
        }
    }
}

/// GPUs' worth of work a user's `processes` keep busy: the SM utilisation
/// of each process summed (1.0 is one GPU fully busy). Where the driver
/// does not report it per process, a GPU's utilisation is split among the
/// processes on it, `uid`'s share counted.
fn gpus_busy(sample: &GpuSample, processes: &[GpuProcess]) -> f64 {
    let mut percent = 0.0;
    for device in &sample.gpus {
        let mine: Vec<&GpuProcess> = processes.iter().filter(|p| p.gpu == device.index).collect();
        if mine.is_empty() {
            continue;
        }
        if mine.iter().all(|p| p.utilization_percent.is_some()) {
            percent += mine
                .iter()
                .filter_map(|p| p.utilization_percent)
                .map(f64::from)
                .sum::<f64>();
            continue;
        }
        let all = sample
            .processes
            .iter()
            .filter(|p| p.gpu == device.index)
            .count()
            .max(mine.len());
        let share = mine.len() as f64 / all as f64;
        percent += f64::from(device.utilization_percent) * share;
    }
    percent / 100.0
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
            let mut last_save = now;
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
                store_buckets(&store, &closed);
                if now - last_save >= SAVE_OPEN_EVERY {
                    last_save = now;
                    let open = task_state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .open_buckets();
                    store_buckets(&store, &open);
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
            utilization_unknown: false,
            index,
            name: "H100".into(),
            utilization_percent: 50,
            memory_used: 10,
            memory_total: 80,
            temperature_c: None,
            power_watts: None,
            minor: None,
            uuid: None,
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
        // 40 % of GPU 0 by its own figure, and GPU 1's 50 %, its only process.
        assert_eq!(root.now.gpus, 0.9);
        assert_eq!(root.now.gpu_memory_bytes, 8.0 * GIB);
        let owners = &snapshot.gpus[1].owners;
        assert_eq!(owners, &vec![("root".to_string(), 5 << 30)]);
        assert!(snapshot.gpu_unavailable.is_none());
    }

    #[test]
    fn a_shared_gpu_without_process_figures_is_split_among_its_processes() {
        let mut state = MonitorState::default();
        let on_gpu_0 = |pid, uid| GpuProcess {
            pid,
            gpu: 0,
            memory_bytes: 1 << 30,
            utilization_percent: None,
            uid: Some(uid),
        };
        let readings = gpus(vec![
            on_gpu_0(1, 0),
            on_gpu_0(2, 0),
            on_gpu_0(3, 4_000_000_001),
        ]);
        let (snapshot, _) = state.ingest(
            1_000_000,
            HostSnapshot::default(),
            &sweep(&[(0, 1.0, 1 << 20)], &[]),
            &readings,
        );
        let busy = |name: &str| {
            snapshot
                .users
                .iter()
                .find(|u| u.unix_user == name)
                .map(|u| u.now.gpus)
        };
        // GPU 0 is 50 % busy: two of its three processes are root's.
        let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
        assert!(near(busy("root"), 1.0 / 3.0), "{:?}", busy("root"));
        assert!(near(busy("uid 4000000001"), 1.0 / 6.0));
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
