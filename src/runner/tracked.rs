//! What the runner knows of each running experiment, how it finds them
//! again after a restart, and how it measures what they use.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::mpsc;

use super::RunnerSettings;
use super::ends::{DAEMON_STOPPED, commit, finish, queued_again, stage_ends};
use crate::exec::cgroup::ExperimentCgroup;
use crate::exec::gpu_use::gpu_memory_by_experiment;
use crate::exec::pool::{EXITED, ExitWatch, RUNNING, UNKNOWN};
use crate::exec::protocol::Identity;
use crate::lab::{Engine, LiveUse};
use crate::model::{Experiment, Outcome, State};
use crate::output::journal::ExitStatus;

/// Why the runner is stopping an experiment, and how far it got.
#[derive(Debug, Clone)]
pub(super) struct Stopping {
    pub(super) outcome: Outcome,
    pub(super) reason: String,
    /// When SIGKILL follows the SIGTERM.
    pub(super) kill_at: tokio::time::Instant,
    /// The last signal sent to the command's processes.
    pub(super) sent: Option<i32>,
    /// Whether the supervisor was killed too (it outlived SIGKILL's grace).
    pub(super) supervisor_killed: bool,
    /// Bytes of output to keep once it has ended (the rest is cut, with a
    /// note): for a run stopped for what it wrote.
    pub(super) trim_to: Option<u64>,
    /// Its command never ran because the launcher failed while its start
    /// was recorded: it goes back to the queue (once) instead of failing.
    pub(super) retry: bool,
}

/// A running experiment as the runner tracks it.
#[derive(Debug)]
pub(super) struct Tracked {
    /// The stretch of its use being measured (kept once it is over).
    pub(super) stretch: Option<crate::model::UseSample>,
    /// Whether its spec declares outputs (hashed at its end).
    pub(super) declares_outputs: bool,
    pub(super) pid: u32,
    pub(super) start_time: u64,
    pub(super) started_at: i64,
    pub(super) cgroup: Option<ExperimentCgroup>,
    pub(super) time_limit_secs: u64,
    /// When the wall-time limit is reached, seconds since the epoch.
    pub(super) ends_by: i64,
    /// Most bytes its output may take.
    pub(super) output_limit: u64,
    /// Bytes of output at the last tick, and what they grew by in it
    /// (`None` before the first measure: a re-attached experiment's whole
    /// log is no growth).
    pub(super) output: Option<(u64, u64)>,
    pub(super) memory_bytes: u64,
    pub(super) gpus: usize,
    pub(super) stopping: Option<Stopping>,
    /// CPU seconds and time at the last tick, for the live CPU rate.
    pub(super) last_cpu: Option<(tokio::time::Instant, f64)>,
    /// Most GPU memory its processes held at once (as the GPU source saw it).
    pub(super) peak_gpu_memory: u64,
    /// What its supervisor's pidfd said (see [`ExitWatch`]); without one,
    /// `/proc` is read at every wake-up instead.
    pub(super) exit_watch: Option<ExitWatch>,
    /// Whose supervisor runs it: says how its end is learnt.
    pub(super) supervisor: Supervisor,
    /// What the runner has seen of its end so far.
    pub(super) end: EndSeen,
    /// Size of each metric source (stdout, metrics file) when its last read
    /// found nothing more: not read again until it grows.
    pub(super) metrics_seen: [u64; 2],
}

/// Whose supervisor runs an experiment.
#[derive(Debug)]
pub(super) enum Supervisor {
    /// Forked for it: it exits when the experiment ends.
    Own,
    /// Kept for further experiments, running commands as `identity`: it
    /// reports each end on the ends pipe and stays.
    Kept {
        /// Whom it runs commands as.
        identity: Option<Identity>,
    },
    /// Started by an earlier daemon (re-attached after a restart): it may
    /// have been kept, so its journal is read for the end as well.
    Earlier,
}

/// What the runner has seen of an experiment's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndSeen {
    /// Nothing yet.
    No,
    /// The last tick found its exit status in its journal (of a supervisor
    /// that stays, whose report did not come): a second tick in a row ends it.
    InJournal,
    /// Its supervisor reported the end, as the journal confirmed.
    Reported(ExitStatus),
}

impl EndSeen {
    /// How it ended, when its supervisor reported it.
    pub(super) fn reported(self) -> Option<ExitStatus> {
        match self {
            EndSeen::Reported(status) => Some(status),
            EndSeen::No | EndSeen::InJournal => None,
        }
    }
}

impl Tracked {
    /// Tracking of experiment `e`, whose supervisor is `pid` (started at
    /// `start_time` ticks after boot), running since `started_at`.
    pub(super) fn new(
        e: &Experiment,
        pid: u32,
        start_time: u64,
        started_at: i64,
        cgroup: Option<ExperimentCgroup>,
        gpus: usize,
    ) -> Tracked {
        Tracked {
            stretch: None,
            declares_outputs: !e.spec.outputs.is_empty(),
            pid,
            start_time,
            started_at,
            cgroup,
            time_limit_secs: e.spec.resources.time_limit_secs,
            ends_by: e.spec.resources.ends_by(started_at),
            output_limit: e.spec.max_output_bytes.unwrap_or(u64::MAX),
            output: None,
            memory_bytes: e.spec.resources.memory_bytes,
            gpus,
            stopping: None,
            last_cpu: None,
            peak_gpu_memory: 0,
            exit_watch: None,
            supervisor: Supervisor::Own,
            end: EndSeen::No,
            metrics_seen: [0; 2],
        }
    }

    /// Whether its supervisor has ended. At a tick `/proc` is read even
    /// when the pidfd says it runs (a backstop that costs a read a tick).
    pub(super) fn has_ended(&self, ticked: bool) -> bool {
        if self.end.reported().is_some() {
            return true;
        }
        match self
            .exit_watch
            .as_ref()
            .map(|watch| watch.load(Ordering::Acquire))
        {
            Some(EXITED) => true,
            Some(RUNNING) if !ticked => false,
            _ => !crate::sys::procfs::process_running(self.pid, self.start_time),
        }
    }
}

/// Wakes the runner through `exits` when process `pid` (started at
/// `start_time`) ends, and returns the watch that says so. Without pidfds
/// (Linux < 5.3) nothing is sent, `None` is returned and the tick notices
/// the end instead.
pub(super) fn wake_on_exit(
    pid: u32,
    start_time: u64,
    exits: &mpsc::UnboundedSender<()>,
) -> Option<ExitWatch> {
    let Ok(pidfd) = crate::sys::process::pidfd_open(pid) else {
        return None;
    };
    // Checked after opening: if the process is still the one started at
    // `start_time`, the pidfd refers to it and not to a later holder of
    // its pid. If not, it has ended already.
    if !crate::sys::procfs::process_running(pid, start_time) {
        return Some(Arc::new(AtomicU8::new(EXITED)));
    }
    let Ok(pidfd) = crate::sys::fd::async_readable(pidfd) else {
        return None;
    };
    let watch = ExitWatch::default();
    let state = Arc::clone(&watch);
    let exits = exits.clone();
    tokio::spawn(async move {
        let now = match pidfd.readable().await {
            Ok(_) => EXITED,
            Err(_) => UNKNOWN,
        };
        state.store(now, Ordering::Release);
        let _ = exits.send(());
    });
    Some(watch)
}

/// Rebuilds the tracking table from the store after a (re)start.
pub(super) fn reattach(
    lab: &Engine,
    settings: &RunnerSettings,
    exits: &mpsc::UnboundedSender<()>,
) -> HashMap<u64, Tracked> {
    let mut tracked = HashMap::new();
    let Ok(active) = lab.unfinished_experiments() else {
        return tracked;
    };
    let mut ended = Vec::new();
    for e in active {
        match &e.state {
            // Its command is let go only once its start is recorded.
            State::Starting { .. } => ended.push(queued_again(e.id, DAEMON_STOPPED)),
            State::Running {
                started_at,
                pid,
                pid_start_time,
                cgroup,
                gpus,
            } => {
                let mut t = Tracked::new(
                    &e,
                    *pid,
                    *pid_start_time,
                    *started_at,
                    cgroup.as_deref().and_then(ExperimentCgroup::open),
                    gpus.len(),
                );
                if crate::sys::procfs::process_running(*pid, *pid_start_time) {
                    tracing::info!("re-attached to experiment {} (pid {pid})", e.id);
                    t.exit_watch = wake_on_exit(*pid, *pid_start_time, exits);
                    t.supervisor = Supervisor::Earlier;
                    tracked.insert(e.id, t);
                } else {
                    // Ended while the daemon was down: the shim's journal
                    // tells how, or that it never started (the daemon
                    // stopped between recording its start and letting it go).
                    super::metrics::ingest_rest(lab, &settings.launch.data_dir, e.id);
                    super::ends::take_back_metrics_file(e.id, settings);
                    let change = finish(lab, e.id, &mut t, settings, true);
                    if let Some((state, why)) = change.steps.last() {
                        tracing::info!("experiment {}: {}: {why}", e.id, state.name());
                    }
                    ended.push(change);
                    if let Some(cg) = &t.cgroup {
                        cg.remove();
                    }
                }
            }
            _ => {}
        }
    }
    if stage_ends(lab, ended) {
        commit(lab);
    }
    tracked
}

impl Tracked {
    /// Adds what it uses `now` (seconds) to the stretch measured; a
    /// stretch that is over is kept and a new one begun.
    pub(super) fn note_use(&mut self, lab: &Engine, id: u64, now: i64, use_now: &LiveUse) {
        if let Some(s) = &mut self.stretch
            && now < s.at + i64::from(s.secs)
        {
            s.cpu_cores = s.cpu_cores.max(use_now.cpu_cores as f32);
            s.memory_bytes = s.memory_bytes.max(use_now.memory_bytes);
            s.gpu_memory_bytes = s.gpu_memory_bytes.max(use_now.gpu_memory_bytes);
            return;
        }
        if let Some(done) = self.stretch.take() {
            lab.record_use(id, &done);
        }
        self.stretch = Some(crate::model::UseSample {
            at: now,
            secs: crate::model::UseSample::stretch_for(now - self.started_at),
            cpu_cores: use_now.cpu_cores as f32,
            memory_bytes: use_now.memory_bytes,
            gpu_memory_bytes: use_now.gpu_memory_bytes,
        });
    }

    /// Keeps the stretch being measured (the run ended) and gives the
    /// peak, p95 and mean of the whole run.
    pub(super) fn use_profile(
        &mut self,
        lab: &Engine,
        id: u64,
    ) -> Option<crate::model::UseProfile> {
        if let Some(mut done) = self.stretch.take() {
            // The last stretch lasted until now, not its full length.
            let lasted = (crate::lab::now() - done.at).clamp(1, i64::from(done.secs));
            done.secs = lasted as u32;
            lab.record_use(id, &done);
        }
        lab.use_profile(id)
    }
}

/// What each running experiment uses now: CPU and memory from its cgroup,
/// GPU memory from the monitor's latest GPU sample.
pub(super) fn measure(lab: &Engine, tracked: &mut HashMap<u64, Tracked>) -> HashMap<u64, LiveUse> {
    let now = tokio::time::Instant::now();
    let gpu_memory = gpu_memory_now(lab, tracked);
    let mut live = HashMap::new();
    for (id, t) in tracked.iter_mut() {
        let gpu_now = gpu_memory.get(id).copied().unwrap_or(0);
        t.peak_gpu_memory = t.peak_gpu_memory.max(gpu_now);
        let mut use_now = LiveUse {
            gpu_memory_bytes: gpu_now,
            peak_gpu_memory_bytes: t.peak_gpu_memory,
            ..LiveUse::default()
        };
        if let Some(cg) = &t.cgroup {
            let cpu = cg.cpu_seconds();
            use_now.cpu_cores = match t.last_cpu {
                Some((at, before)) if now > at => {
                    (cpu - before).max(0.0) / (now - at).as_secs_f64()
                }
                _ => 0.0,
            };
            t.last_cpu = Some((now, cpu));
            use_now.memory_bytes = cg.memory_now();
            use_now.peak_memory_bytes = cg.peak_memory();
        } else if t.gpus == 0 {
            continue;
        }
        t.note_use(lab, *id, crate::lab::now(), &use_now);
        live.insert(*id, use_now);
    }
    live
}

/// GPU memory per experiment from the monitor's latest sample (nothing to
/// do, and nothing read, on a host without GPU processes).
pub(super) fn gpu_memory_now(lab: &Engine, tracked: &HashMap<u64, Tracked>) -> HashMap<u64, u64> {
    if tracked.is_empty() {
        return HashMap::new();
    }
    let usage = lab.usage_updates().borrow().clone();
    let processes: Vec<crate::monitor::GpuProcess> = usage
        .users
        .iter()
        .flat_map(|u| u.gpu_processes.iter().cloned())
        .collect();
    if processes.is_empty() {
        return HashMap::new();
    }
    let cgroup_pids: HashMap<u64, Vec<i32>> = tracked
        .iter()
        .filter_map(|(id, t)| t.cgroup.as_ref().map(|cg| (*id, cg.pids())))
        .collect();
    let sessions: HashMap<u32, u64> = tracked
        .iter()
        .filter(|(_, t)| t.cgroup.is_none())
        .map(|(id, t)| (t.pid, *id))
        .collect();
    gpu_memory_by_experiment(
        &processes,
        &cgroup_pids,
        &sessions,
        crate::sys::procfs::session_of,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::pool::{EXITED, RUNNING};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// The watch follows the process it was asked for: one whose pid now
    /// names another start (a reused pid) counts as ended at once.
    #[tokio::test]
    async fn an_exit_watch_follows_the_process_started_then() {
        let (exits, mut exited) = mpsc::unbounded_channel();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let started = crate::sys::procfs::process_start_time(pid).expect("start time");

        let other = wake_on_exit(pid, started + 1, &exits).expect("pidfd");
        assert_eq!(other.load(Ordering::Acquire), EXITED, "another start");

        let watch = wake_on_exit(pid, started, &exits).expect("pidfd");
        assert_eq!(watch.load(Ordering::Acquire), RUNNING);
        child.kill().expect("kill");
        let woke = tokio::time::timeout(Duration::from_secs(10), exited.recv()).await;
        assert_eq!(woke.expect("woken within 10 s"), Some(()));
        assert_eq!(watch.load(Ordering::Acquire), EXITED);
        child.wait().expect("reap");
    }
}
