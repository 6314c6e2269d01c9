//! The local runner: starts what the scheduler allows, watches running
//! experiments (exit, wall time, memory, output), stops them on request, and
//! records every transition through the service. Re-attaches after a restart.
//!
//! It looks at every running experiment each quarter second:
//!
//! - Stopping (cancel, `--time`) sends SIGTERM to the command's processes
//!   and, if any is left after `queue.kill_grace_secs`, SIGKILL; with a
//!   cgroup, every process in it but the supervisor (see [`super::cgroup`]).
//!   A cgroup's OOM kill ends the run as `killed_by_limit` ("memory limit 8G
//!   exceeded"), the rest of its processes at once.
//! - Without a cgroup, the experiment's session is signalled instead, and a
//!   watchdog sums the resident memory of the session's processes at each
//!   check and ends the run as `killed_by_limit` ("memory limit 100M exceeded
//!   (watchdog)") when it passes `--mem`. CPU and process count are not
//!   enforced, a burst between two checks is not seen, and a process that
//!   starts its own session escapes both the watchdog and cancellation: the
//!   weaker guarantee.
//! - Output (stdout, stderr and the metrics file together) over its limit
//!   stops the run as `killed_by_limit` ("output limit 10G exceeded"); once it
//!   has ended its output is cut to the limit, with a last line saying so.
//!   When the data disk falls below `queue.disk_reserve`, the experiment that
//!   wrote most in that quarter second (at least 4 MiB) is stopped the same
//!   way and its output cut until the reserve is back.
//! - sled stops writing for good once one of its writes has failed for lack
//!   of space (measured with sled 0.34: writes fail until the database is
//!   opened again). At each check the service opens it again in place once
//!   there is space; what was acknowledged is kept, and the ends of
//!   experiments that could not be recorded meanwhile are found as after a
//!   restart.
//!
//! After a restart (even `kill -9`), experiments kept running: the runner
//! re-attaches to them by pid and cgroup and records their end from their
//! journal; one whose command ran and vanished meanwhile becomes `lost`, and
//! one whose supervisor was never told go is queued again.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::cgroup::{self, ExperimentCgroup};
use super::gpu_use::gpu_memory_by_experiment;
use super::local::{LaunchContext, Launched, go, launch, prepare_experiments_dir};
use super::pool::{self, EXITED, ExitWatch, IdleShim, RUNNING, UNKNOWN};
use super::shim::{END_REPORT_LEN, Identity, parse_end_report};
use crate::lab::{Lab, LiveUse, RunnerCommand, StateChange};
use crate::model::{Experiment, Outcome, ResourceUse, State, Stop};
use crate::output::ExperimentFiles;
use crate::output::journal::{ExitStatus, never_started, read_exit};
use crate::sched::{Decision, Room};

/// How often running experiments are checked.
const TICK: Duration = Duration::from_millis(250);

/// How long a supervisor may take to record its command's end once
/// SIGKILL was sent, before it is killed too (it never should).
const SUPERVISOR_GRACE: Duration = Duration::from_secs(5);

/// Why the runner is stopping an experiment, and how far it got.
#[derive(Debug, Clone)]
struct Stopping {
    outcome: Outcome,
    reason: String,
    /// When SIGKILL follows the SIGTERM.
    kill_at: tokio::time::Instant,
    /// The last signal sent to the command's processes.
    sent: Option<i32>,
    /// Whether the supervisor was killed too (it outlived SIGKILL's grace).
    supervisor_killed: bool,
    /// Bytes of output to keep once it has ended (the rest is cut, with a
    /// note): for a run stopped for what it wrote.
    trim_to: Option<u64>,
}

/// A running experiment as the runner tracks it.
#[derive(Debug)]
struct Tracked {
    pid: u32,
    start_time: u64,
    started_at: i64,
    cgroup: Option<ExperimentCgroup>,
    time_limit_secs: u64,
    /// When the wall-time limit is reached, seconds since the epoch.
    ends_by: i64,
    /// Most bytes its output may take.
    output_limit: u64,
    /// Bytes of output at the last tick, and what they grew by in it
    /// (`None` before the first measure: a re-attached experiment's whole
    /// log is no growth).
    output: Option<(u64, u64)>,
    memory_bytes: u64,
    gpus: usize,
    stopping: Option<Stopping>,
    /// CPU seconds and time at the last tick, for the live CPU rate.
    last_cpu: Option<(tokio::time::Instant, f64)>,
    /// Most GPU memory its processes held at once (as the GPU source saw it).
    peak_gpu_memory: u64,
    /// What its supervisor's pidfd said (see [`ExitWatch`]); without one,
    /// `/proc` is read at every wake-up instead.
    ended: Option<ExitWatch>,
    /// Whether its supervisor stays for another experiment (then the
    /// supervisor's end is not the experiment's: it reports that instead).
    reusable: bool,
    /// Whom that supervisor runs commands as.
    identity: Option<Identity>,
    /// How the experiment ended, as its supervisor reported (and the
    /// journal confirmed).
    reported: Option<ExitStatus>,
    /// Re-attached after a restart (its supervisor may have been reusable).
    reattached: bool,
    /// Whether the last tick found its exit status in the journal.
    journaled: bool,
}

impl Tracked {
    /// Tracking of experiment `e`, whose supervisor is `pid` (started at
    /// `start_time` ticks after boot), running since `started_at`.
    fn new(
        e: &Experiment,
        pid: u32,
        start_time: u64,
        started_at: i64,
        cgroup: Option<ExperimentCgroup>,
        gpus: usize,
    ) -> Tracked {
        Tracked {
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
            ended: None,
            reusable: false,
            identity: None,
            reported: None,
            reattached: false,
            journaled: false,
        }
    }

    /// Whether its supervisor has ended. At a tick `/proc` is read even
    /// when the pidfd says it runs (a backstop that costs a read a tick).
    fn has_ended(&self, ticked: bool) -> bool {
        if self.reported.is_some() {
            return true;
        }
        match self
            .ended
            .as_ref()
            .map(|watch| watch.load(Ordering::Acquire))
        {
            Some(EXITED) => true,
            Some(RUNNING) if !ticked => false,
            _ => !crate::sys::procfs::process_running(self.pid, self.start_time),
        }
    }
}

/// Settings of the runner.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// How experiments are started.
    pub launch: LaunchContext,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Most bytes an experiment's output may take unless it says otherwise.
    pub output_limit: u64,
    /// Bytes kept free on the data disk: below, the experiment writing
    /// most is stopped.
    pub disk_reserve: u64,
}

impl RunnerSettings {
    /// The output limit of experiment `t`: its own, or the default.
    fn output_limit_of(&self, t: &Tracked) -> u64 {
        if t.output_limit == u64::MAX {
            self.output_limit
        } else {
            t.output_limit
        }
    }
}

/// Runs until the service goes away.
pub async fn run(
    lab: Lab,
    settings: RunnerSettings,
    mut commands: mpsc::UnboundedReceiver<RunnerCommand>,
) {
    if settings.launch.as_root || cgroup::available() {
        crate::sys::process::become_subreaper();
    }
    if let Err(e) = prepare_experiments_dir(&settings.launch.data_dir) {
        tracing::warn!("cannot prepare the experiments directory: {e}");
    }
    // Each supervisor's end wakes the runner at once (through a pidfd; the
    // tick is the fallback and also checks limits and measures use).
    let (exits, mut exited) = mpsc::unbounded_channel::<()>();
    let launcher = settings.launch.launcher.clone();
    // Reusable supervisors report each experiment's end here.
    let reports = launcher
        .take_ends()
        .and_then(|fd| crate::sys::fd::async_readable(fd).ok());
    tokio::task::spawn_blocking(move || {
        if let Err(e) = launcher.prepare() {
            tracing::warn!("{e} (tried again at the first start)");
        }
    });
    let mut tracked = reattach(&lab, &settings, &exits);
    if settings.launch.cgroups {
        let in_use: Vec<&str> = tracked
            .values()
            .filter_map(|t| t.cgroup.as_ref().map(ExperimentCgroup::name))
            .collect();
        cgroup::sweep_leftovers(&cgroup::instance_name(&settings.launch.data_dir), &in_use);
    }
    let mut changes = lab.queue_changes();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // What the last plan left free (`None`: plan at the next wake-up).
    let mut room: Option<Room> = None;
    loop {
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            Some(()) = exited.recv() => false,
            ends = end_reports(reports.as_ref()) => {
                note_reports(ends, &mut tracked, &settings);
                false
            }
            _ = changes.changed() => false,
            command = commands.recv() => match command {
                None => return,
                Some(RunnerCommand::Stop) => {
                    // Later cancels are refused (the server is stopping);
                    // any sent meanwhile are not carried out.
                    commands.close();
                    while let Ok(command) = commands.try_recv() {
                        if let RunnerCommand::Cancel { id, .. } = command {
                            tracing::warn!("experiment {id}: not cancelled, the server is stopping");
                        }
                    }
                    return;
                }
                Some(RunnerCommand::Cancel { id, reason }) => {
                    if let Some(t) = tracked.get_mut(&id) {
                        stop(t, Outcome::Cancelled, reason, settings.grace);
                    }
                    false
                }
            },
        };
        while exited.try_recv().is_ok() {}
        let seen = *changes.borrow_and_update();
        if ticked {
            crate::sys::process::reap_orphans();
            // Reports already written count before the journal backstop.
            if let Some(pipe) = &reports {
                note_reports(read_reports(pipe.get_ref()), &mut tracked, &settings);
            }
            cgroup::release_emptied();
            // The database stopped writing (the disk filled) and space is
            // back: it was reopened, and what the runner could not record
            // meanwhile is found again as after a restart.
            if lab.heal_store() {
                for (id, t) in reattach(&lab, &settings, &exits) {
                    tracked.entry(id).or_insert(t);
                }
            }
        }
        let running = tracked.len();
        let (freed, staged) = watch(&lab, &mut tracked, &settings, ticked);
        if ticked {
            lab.publish_live_use(measure(&lab, &mut tracked));
        }
        // Planning looks at the whole queue: skipped when only submissions
        // came that do not fit in what the last plan left free.
        let news = lab.take_queue_news();
        let must_plan = ticked
            || tracked.len() < running
            || news.other
            || room.is_none_or(|room| news.submitted.iter().any(|r| room.fits(r)));
        let mut committed = false;
        if must_plan {
            // Ends and starts of this round become durable with one flush.
            (room, committed) = start_allowed(&lab, &mut tracked, &settings, &exits, staged);
        }
        // The runner's own commit changed the queue: that is no news to it.
        if *changes.borrow() == seen.wrapping_add(u64::from(committed)) {
            changes.borrow_and_update();
        }
        for cg in freed {
            cg.release_when_empty();
        }
    }
}

/// Marks the experiments whose supervisors reported their end, each
/// believed only with the journal's word (written through a descriptor the
/// experiment's user never had).
fn note_reports(
    reports: Vec<(u32, u64)>,
    tracked: &mut HashMap<u64, Tracked>,
    settings: &RunnerSettings,
) {
    for (pid, id) in reports {
        let journal = || ExperimentFiles::new(&settings.launch.data_dir, id).journal();
        if let Some(t) = tracked.get_mut(&id).filter(|t| t.pid == pid && t.reusable) {
            t.reported = read_exit(&journal());
        }
    }
}

/// The end reports waiting on the ends pipe (see [`super::shim::end_report`]):
/// (supervisor pid, experiment id) each. Waits for one; never returns
/// without a pipe.
async fn end_reports(pipe: Option<&tokio::io::unix::AsyncFd<OwnedFd>>) -> Vec<(u32, u64)> {
    let Some(pipe) = pipe else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut ready) = pipe.readable().await else {
            return std::future::pending().await;
        };
        let reports = read_reports(pipe.get_ref());
        if !reports.is_empty() {
            return reports;
        }
        // Nothing there (read at a tick already): wait for more.
        ready.clear_ready();
    }
}

/// The end reports on the (non-blocking) ends pipe now. Whole reports
/// only: each was written at once, and the buffer holds a whole number.
fn read_reports(pipe: &OwnedFd) -> Vec<(u32, u64)> {
    let mut reports = Vec::new();
    let mut buf = [0u8; END_REPORT_LEN * 64];
    loop {
        let n = match rustix::io::read(pipe, &mut buf) {
            Ok(0) | Err(rustix::io::Errno::AGAIN) => return reports,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                let err = std::io::Error::from(e);
                tracing::warn!("cannot read end reports: {err} (journals are read instead)");
                return reports;
            }
        };
        reports.extend(
            buf[..n]
                .chunks_exact(END_REPORT_LEN)
                .filter_map(|r| r.try_into().ok().map(parse_end_report)),
        );
    }
}

/// Wakes the runner through `exits` when process `pid` (started at
/// `start_time`) ends, and returns the watch that says so. Without pidfds
/// (Linux < 5.3) nothing is sent, `None` is returned and the tick notices
/// the end instead.
fn wake_on_exit(pid: u32, start_time: u64, exits: &mpsc::UnboundedSender<()>) -> Option<ExitWatch> {
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
fn reattach(
    lab: &Lab,
    settings: &RunnerSettings,
    exits: &mpsc::UnboundedSender<()>,
) -> HashMap<u64, Tracked> {
    let mut tracked = HashMap::new();
    let Ok(active) = lab.store().active_experiments() else {
        return tracked;
    };
    let mut ended = Vec::new();
    for e in active {
        match &e.state {
            // Its command is let go only once its start is recorded.
            State::Starting { .. } => ended.push(queued_again(e.id)),
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
                    t.ended = wake_on_exit(*pid, *pid_start_time, exits);
                    t.reattached = true;
                    tracked.insert(e.id, t);
                } else {
                    // Ended while the daemon was down: the shim's journal
                    // tells how, or that it never started (the daemon
                    // stopped between recording its start and letting it go).
                    let change = finish(e.id, &t, settings, true);
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

/// What each running experiment uses now: CPU and memory from its cgroup,
/// GPU memory from the monitor's latest GPU sample.
fn measure(lab: &Lab, tracked: &mut HashMap<u64, Tracked>) -> HashMap<u64, LiveUse> {
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
        live.insert(*id, use_now);
    }
    live
}

/// GPU memory per experiment from the monitor's latest sample (nothing to
/// do, and nothing read, on a host without GPU processes).
fn gpu_memory_now(lab: &Lab, tracked: &HashMap<u64, Tracked>) -> HashMap<u64, u64> {
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

/// Sends SIGTERM to experiment `t`'s processes, and SIGKILL after `grace`
/// (see [`watch`]).
fn stop(t: &mut Tracked, outcome: Outcome, reason: String, grace: Duration) {
    if t.stopping.is_some() {
        return;
    }
    signal_command(t, libc::SIGTERM);
    t.stopping = Some(Stopping {
        outcome,
        reason,
        kill_at: tokio::time::Instant::now() + grace,
        sent: Some(libc::SIGTERM),
        supervisor_killed: false,
        trim_to: None,
    });
}

/// Sends `signal` to every process of experiment `t` but its supervisor,
/// which stays to record how the command ended.
fn signal_command(t: &Tracked, signal: i32) {
    match &t.cgroup {
        Some(cg) => cg.signal_all_but(signal, Some(t.pid as i32)),
        // Without cgroups: the experiment's session (processes that started a
        // session of their own escape; the README says so).
        None => crate::sys::process::signal_session(t.pid, signal, Some(t.pid)),
    }
}

/// Sends `signal` to every process of experiment `t`, its supervisor too.
fn signal_all(t: &Tracked, signal: i32) {
    match &t.cgroup {
        Some(cg) => cg.signal_all(signal),
        None => crate::sys::process::signal_session(t.pid, signal, None),
    }
}

/// Measures each experiment's output and stops those over their output
/// limit; when the data disk has fallen below its reserve, also the one
/// that wrote most since the last tick (the disk is shared: its reserve
/// is what lets every run's end be recorded).
fn guard_output(tracked: &mut HashMap<u64, Tracked>, settings: &RunnerSettings) {
    for (id, t) in tracked.iter_mut() {
        check_output(*id, t, settings, true);
    }
    let reserve = settings.disk_reserve;
    let Some(free) = crate::sys::fs::free_bytes(&settings.launch.data_dir) else {
        return;
    };
    if reserve == 0 || free >= reserve {
        return;
    }
    // Only a run whose own writing is filling the disk is stopped: one that
    // wrote a good part of what is missing in this quarter second alone.
    let short = reserve - free;
    let writer = tracked
        .values_mut()
        .filter(|t| t.stopping.is_none())
        .filter_map(|t| {
            let grew = t.output.map_or(0, |(_, grew)| grew);
            (grew >= DISK_HOG_GROWTH.min(short / 2).max(1)).then_some((grew, t))
        })
        .max_by_key(|(grew, _)| *grew);
    if let Some((grew, t)) = writer {
        let reason = format!(
            "the data disk fell below its reserve ({} free, {} kept) while it wrote {} in a quarter second",
            crate::units::short_bytes(free as f64),
            crate::units::short_bytes(reserve as f64),
            crate::units::short_bytes(grew as f64)
        );
        stop(t, Outcome::KilledByLimit, reason, Duration::ZERO);
        // What it wrote since gives the disk its reserve back, and no more
        // than that is cut.
        let written = t.output.map_or(0, |(bytes, _)| bytes);
        trim(t, written.saturating_sub(grew.min(short + (1 << 20))));
    }
}

/// Growth of its output in a quarter second that marks an experiment as
/// the one filling the data disk (16 MiB/s).
const DISK_HOG_GROWTH: u64 = 4 << 20;

/// Measures experiment `id`'s output; stops it (and has its output cut)
/// when over its limit.
fn check_output(id: u64, t: &mut Tracked, settings: &RunnerSettings, running: bool) {
    let files = ExperimentFiles::new(&settings.launch.data_dir, id);
    let bytes: u64 = [files.stdout(), files.stderr(), files.metrics()]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    let grew = t
        .output
        .map_or(0, |(before, _)| bytes.saturating_sub(before));
    t.output = Some((bytes, grew));
    let limit = settings.output_limit_of(t);
    if t.stopping.is_some() || bytes <= limit {
        return;
    }
    let reason = format!(
        "output limit {} exceeded",
        crate::units::short_bytes(limit as f64)
    );
    if running {
        stop(t, Outcome::KilledByLimit, reason, Duration::ZERO);
    } else {
        // Ended already: nothing to signal, only its output to cut.
        t.stopping = Some(Stopping {
            outcome: Outcome::KilledByLimit,
            reason,
            kill_at: tokio::time::Instant::now(),
            sent: None,
            supervisor_killed: false,
            trim_to: None,
        });
    }
    trim(t, limit);
}

/// Has the output of the stopping experiment `t` cut to `keep` bytes once it ended.
fn trim(t: &mut Tracked, keep: u64) {
    if let Some(s) = &mut t.stopping {
        s.trim_to = Some(keep);
    }
}

/// Cuts an ended experiment's output to `keep` bytes in all (stdout first,
/// then stderr, then metrics), each cut log ending with a note saying so.
fn trim_output(files: &ExperimentFiles, keep: u64, why: &str) {
    let mut left = keep;
    for (path, note) in [
        (files.stdout(), true),
        (files.stderr(), true),
        (files.metrics(), false),
    ] {
        let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
            continue;
        };
        let kept = len.min(left);
        left -= kept;
        if kept == len {
            continue;
        }
        let cut = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(kept));
        if let Err(e) = cut {
            tracing::warn!("cannot cut {}: {e}", path.display());
            continue;
        }
        if note {
            let marker = format!("\n[labbench: {why}; the output after this point was dropped]\n");
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, marker.as_bytes()));
            if let Err(e) = appended {
                tracing::warn!("cannot note the cut in {}: {e}", path.display());
            }
        }
    }
}

/// Checks running experiments (limits and kills only when `ticked`);
/// stages the ends of those that ended. Returns their cgroups and whether
/// anything was staged.
fn watch(
    lab: &Lab,
    tracked: &mut HashMap<u64, Tracked>,
    settings: &RunnerSettings,
    ticked: bool,
) -> (Vec<ExperimentCgroup>, bool) {
    let now = crate::lab::now();
    let mut ended = Vec::new();
    if ticked {
        guard_output(tracked, settings);
    }
    for (id, t) in tracked.iter_mut() {
        if t.has_ended(ticked) {
            ended.push(*id);
            continue;
        }
        // A supervisor that stays after its experiment (reusable, or one of
        // an earlier daemon, which may be) whose report never came (a full
        // pipe, an earlier daemon's pipe): its journal tells, two ticks in
        // a row (the first may just precede the report).
        if ticked && (t.reusable || t.reattached) {
            let journal = ExperimentFiles::new(&settings.launch.data_dir, *id).journal();
            let journaled = read_exit(&journal).is_some();
            if journaled && t.journaled {
                ended.push(*id);
                continue;
            }
            t.journaled = journaled;
        }
        if !ticked {
            continue;
        }
        if t.stopping.is_none() && now >= t.ends_by {
            let reason = format!(
                "wall time limit {} exceeded",
                crate::units::human_duration(t.time_limit_secs)
            );
            stop(t, Outcome::TimedOut, reason, settings.grace);
        }
        if t.stopping.is_none()
            && let Some(cg) = &t.cgroup
            && cg.oom_kills() > 0
        {
            let reason = format!(
                "memory limit {} exceeded",
                crate::units::short_bytes(t.memory_bytes as f64)
            );
            // The kernel killed one process; end the rest at once.
            stop(t, Outcome::KilledByLimit, reason, Duration::ZERO);
        }
        // Without a cgroup, a watchdog sums the resident memory of the
        // experiment's session each tick (a process that leaves the session,
        // or a burst between ticks, escapes it: the weaker guarantee).
        if t.stopping.is_none()
            && t.cgroup.is_none()
            && crate::sys::procfs::session_rss(t.pid) > t.memory_bytes
        {
            let reason = format!(
                "memory limit {} exceeded (watchdog)",
                crate::units::short_bytes(t.memory_bytes as f64)
            );
            stop(t, Outcome::KilledByLimit, reason, Duration::ZERO);
        }
        if let Some(s) = t.stopping.as_mut() {
            let now = tokio::time::Instant::now();
            if s.sent != Some(libc::SIGKILL) && now >= s.kill_at {
                s.sent = Some(libc::SIGKILL);
                signal_command(t, libc::SIGKILL);
            } else if s.sent == Some(libc::SIGKILL)
                && !s.supervisor_killed
                && now >= s.kill_at + SUPERVISOR_GRACE
            {
                s.supervisor_killed = true;
                tracing::warn!("experiment {id}: its supervisor did not record the end; killed");
                signal_all(t, libc::SIGKILL);
            }
        }
    }
    let mut freed = Vec::new();
    let mut changes = Vec::new();
    for id in ended {
        if let Some(mut t) = tracked.remove(&id) {
            // One that wrote past its limit and ended before a tick saw it.
            check_output(id, &mut t, settings, false);
            changes.push(finish(id, &t, settings, false));
            freed.extend(keep_supervisor(t, settings));
        }
    }
    let staged = stage_ends(lab, changes);
    (freed, staged)
}

/// After experiment `t` ended: its reusable supervisor is kept, with its
/// slot, if both are fit for another experiment, else retired. Returns the
/// cgroup to release, if any.
fn keep_supervisor(t: Tracked, settings: &RunnerSettings) -> Option<ExperimentCgroup> {
    let launcher = &settings.launch.launcher;
    let Some(cgroup) = t.cgroup else {
        // Never so (only v1 slots keep supervisors), but never kept bare.
        if t.reusable {
            launcher.retire(t.pid);
        }
        return None;
    };
    if !t.reusable {
        return Some(cgroup);
    }
    let shim = IdleShim {
        pid: t.pid,
        start_time: t.start_time,
        identity: t.identity,
        cgroup,
        watch: t.ended,
    };
    if t.reported.is_some() && shim.alive() && shim.cgroup.fit_for_another(shim.pid) {
        pool::put(shim, launcher);
    } else {
        pool::retire(shim, Some(launcher));
    }
    None
}

/// How an experiment ended (to record); ends what it left behind.
fn finish(id: u64, t: &Tracked, settings: &RunnerSettings, after_restart: bool) -> StateChange {
    let mut usage = ResourceUse::default();
    let mut oom = false;
    if let Some(cg) = &t.cgroup {
        // The experiment ends with its leader: stop anything it left running
        // (but a supervisor that reported the end, and stays).
        let staying = t.reported.and(Some(t.pid as i32));
        if cg
            .pid_list()
            .is_none_or(|pids| pids.iter().any(|pid| Some(*pid) != staying))
        {
            cg.signal_all_but(libc::SIGKILL, staying);
        }
        usage.cpu_seconds = cg.cpu_seconds();
        usage.peak_memory_bytes = cg.peak_memory();
        oom = cg.oom_kills() > 0;
    } else {
        crate::sys::process::signal_session(t.pid, libc::SIGKILL, None);
    }
    if let Some(s) = &t.stopping
        && let Some(keep) = s.trim_to
    {
        trim_output(
            &ExperimentFiles::new(&settings.launch.data_dir, id),
            keep,
            &s.reason,
        );
    }
    let elapsed = (crate::lab::now() - t.started_at).max(0) as f64;
    // GPUs are reserved whole: GPU-seconds are the reservation's.
    usage.gpu_seconds = elapsed * t.gpus as f64;
    usage.peak_gpu_memory_bytes = t.peak_gpu_memory;
    let journal = ExperimentFiles::new(&settings.launch.data_dir, id).journal();
    let status = t.reported.or_else(|| read_exit(&journal));
    // A supervisor of an earlier daemon that was never told go: its command
    // never started (found at re-attachment, or when it exits after it).
    if status.is_none()
        && t.stopping.is_none()
        && (after_restart || t.reattached)
        && never_started(&journal)
    {
        return queued_again(id);
    }
    let (exit_code, signal) = match status {
        Some(ExitStatus::Code(c)) => (Some(c), None),
        Some(ExitStatus::Signal(s)) => (None, Some(s)),
        None => (None, None),
    };
    let stop = t.stopping.as_ref().and_then(|s| {
        s.sent.map(|signal| Stop {
            signal,
            by: s.reason.clone(),
        })
    });
    let (outcome, reason) = match (&t.stopping, status) {
        // A limit's end is told by the limit (its stop has no grace).
        (Some(s), _) if s.outcome == Outcome::KilledByLimit => {
            (s.outcome.clone(), s.reason.clone())
        }
        (Some(s), status) => (
            s.outcome.clone(),
            format!(
                "{}; {}",
                s.reason,
                how_it_stopped(s, status, settings.grace)
            ),
        ),
        (None, _) if oom => (
            Outcome::KilledByLimit,
            format!(
                "memory limit {} exceeded",
                crate::units::short_bytes(t.memory_bytes as f64)
            ),
        ),
        (None, Some(ExitStatus::Code(0))) => (Outcome::Succeeded, "exited with status 0".into()),
        (None, Some(ExitStatus::Code(c))) => (Outcome::Failed, format!("exited with status {c}")),
        (None, Some(ExitStatus::Signal(s))) => (Outcome::Failed, format!("killed by signal {s}")),
        (None, None) if after_restart => (
            Outcome::Lost,
            "vanished while the daemon was down; exit status unknown".into(),
        ),
        (None, None) => (
            Outcome::Lost,
            "its supervisor vanished; exit status unknown".into(),
        ),
    };
    let state = State::Finished {
        outcome,
        exit_code,
        signal,
        stop,
        started_at: Some(t.started_at),
        ended_at: crate::lab::now(),
    };
    ending(id, state, reason, usage)
}

/// How a stopped experiment ended, in words: "exited with status 0 after
/// SIGTERM", "killed with SIGKILL 10 s after SIGTERM".
fn how_it_stopped(s: &Stopping, status: Option<ExitStatus>, grace: Duration) -> String {
    let name =
        |n: i32| crate::model::signal_name(n).map_or_else(|| format!("signal {n}"), String::from);
    match (status, s.sent) {
        (_, None) => "it never ran".into(),
        (Some(ExitStatus::Code(code)), Some(sent)) => {
            format!("exited with status {code} after {}", name(sent))
        }
        (Some(ExitStatus::Signal(libc::SIGKILL)), Some(libc::SIGKILL)) if !grace.is_zero() => {
            format!(
                "killed with SIGKILL: still running {} s after SIGTERM",
                grace.as_secs()
            )
        }
        (Some(ExitStatus::Signal(n)), _) => format!("ended by {}", name(n)),
        (None, Some(sent)) => format!("exit status unknown; {} was sent last", name(sent)),
    }
}

/// The change that ends an experiment whose command never ran.
fn never_ran(id: u64, outcome: Outcome, reason: String) -> StateChange {
    let state = State::Finished {
        outcome,
        exit_code: None,
        signal: None,
        stop: None,
        started_at: None,
        ended_at: crate::lab::now(),
    };
    ending(id, state, reason, ResourceUse::default())
}

/// Back to the queue: a start that the daemon recorded but whose command
/// never started, since the daemon stopped first.
fn queued_again(id: u64) -> StateChange {
    StateChange {
        id,
        steps: vec![(
            State::Queued,
            "queued again: the daemon stopped before its command started".into(),
        )],
        usage: None,
    }
}

fn ending(id: u64, state: State, reason: String, usage: ResourceUse) -> StateChange {
    StateChange {
        id,
        steps: vec![(state, reason)],
        usage: Some(usage),
    }
}

/// Stages ended experiments (see [`commit`]); whether any was staged.
fn stage_ends(lab: &Lab, changes: Vec<StateChange>) -> bool {
    let ids: Vec<u64> = changes.iter().map(|c| c.id).collect();
    let mut staged = false;
    for (id, result) in ids.into_iter().zip(lab.stage_transitions(changes)) {
        match result {
            Ok(()) => staged = true,
            Err(err) => tracing::error!("experiment {id}: cannot record its end: {err}"),
        }
    }
    staged
}

/// Makes what was staged durable and tells followers; false if that failed.
fn commit(lab: &Lab) -> bool {
    match lab.commit_transitions() {
        Ok(()) => true,
        Err(err) => {
            tracing::error!("cannot record state changes: {err}");
            false
        }
    }
}

/// Starts what the scheduler allows: launches each supervisor (waiting),
/// stages their starts, makes them durable with whatever was staged before
/// (`staged`: this round's ends) in one flush, then lets them go. Returns
/// the room the plan left (`None` if it failed) and whether it committed.
fn start_allowed(
    lab: &Lab,
    tracked: &mut HashMap<u64, Tracked>,
    settings: &RunnerSettings,
    exits: &mpsc::UnboundedSender<()>,
    mut staged: bool,
) -> (Option<Room>, bool) {
    let (decisions, room) = match lab.plan_with_room() {
        Ok(plan) => plan,
        Err(e) => {
            tracing::error!("scheduling failed: {e}");
            return (None, staged && commit(lab));
        }
    };
    let mut ends = Vec::new();
    let mut launched = Vec::new();
    let host_gpus = lab.host_gpus();
    // The room counts every planned start as made; one that was not leaves
    // more free, so the next wake-up plans in full.
    let mut room = Some(room);
    for decision in decisions {
        match decision {
            Decision::Wait { .. } => {}
            Decision::Abandon { id, reason } => {
                ends.push(never_ran(id, Outcome::Cancelled, reason));
            }
            Decision::Start { id, gpus } => {
                let Ok(Some(e)) = lab.store().experiment(id) else {
                    room = None;
                    continue;
                };
                match launch(&settings.launch, &e, &gpus, &host_gpus) {
                    Ok(l) => launched.push(Start { e, gpus, l }),
                    Err(reason) => {
                        room = None;
                        ends.push(could_not_start(id, reason));
                    }
                }
            }
        }
    }
    staged |= stage_ends(lab, ends);
    let started_at = crate::lab::now();
    let recorded = stage_starts(lab, &launched, started_at);
    staged |= recorded.iter().any(Result::is_ok);
    let durable = !staged || commit(lab);
    let committed = staged && durable;
    if !release_started(
        launched, recorded, started_at, durable, tracked, settings, exits,
    ) {
        // One not started leaves more room than the plan counted.
        room = None;
    }
    (room, committed)
}

/// An experiment launched (its supervisor waits for go).
struct Start {
    e: Experiment,
    gpus: Vec<u32>,
    l: Launched,
}

/// The end of an experiment that could not start.
fn could_not_start(id: u64, reason: String) -> StateChange {
    tracing::warn!("experiment {id} could not start: {reason}");
    never_ran(id, Outcome::Failed, format!("could not start: {reason}"))
}

/// Stages the starts of `launched` at `started_at`; a result each.
fn stage_starts(lab: &Lab, launched: &[Start], started_at: i64) -> Vec<crate::lab::LabResult<()>> {
    let starts = launched
        .iter()
        .map(|Start { e, gpus, l }| StateChange {
            id: e.id,
            steps: vec![
                (
                    State::Starting { gpus: gpus.clone() },
                    "resources reserved".into(),
                ),
                (
                    State::Running {
                        started_at,
                        pid: l.pid,
                        pid_start_time: l.start_time,
                        cgroup: l.cgroup.as_ref().map(|c| c.name().to_string()),
                        gpus: gpus.clone(),
                    },
                    format!(
                        "started as pid {}{}",
                        l.pid,
                        if l.cgroup.is_some() {
                            " in its cgroup"
                        } else {
                            " (no cgroup: process group only)"
                        }
                    ),
                ),
            ],
            usage: None,
        })
        .collect();
    lab.stage_transitions(starts)
}

/// After the flush that held their starts, made at `started_at`
/// (`durable`: it succeeded): lets the supervisors of `launched` go and
/// tracks them. False if some start was not recorded.
fn release_started(
    launched: Vec<Start>,
    recorded: Vec<crate::lab::LabResult<()>>,
    started_at: i64,
    durable: bool,
    tracked: &mut HashMap<u64, Tracked>,
    settings: &RunnerSettings,
    exits: &mpsc::UnboundedSender<()>,
) -> bool {
    let launcher = &settings.launch.launcher;
    let mut all_recorded = true;
    for (Start { e, gpus, l }, result) in launched.into_iter().zip(recorded) {
        // A kept supervisor's answer is in by now: the launcher took the
        // experiment on while its start was recorded.
        let handed = if l.handing_over {
            launcher.handed_over(l.pid)
        } else {
            Ok(())
        };
        if let Err(err) = result {
            // Not recorded (cancelled meanwhile): it never runs. Killed while
            // it surely waits for go, before its pid can be reused.
            tracing::warn!("experiment {}: not started: {err}", e.id);
            all_recorded = false;
            crate::sys::process::kill_if_same(l.pid, l.start_time);
            launcher.abort(l.pid);
            if let Some(cg) = l.cgroup
                && !cg.remove()
            {
                // A kept supervisor's slot: released once it has died.
                cg.release_when_empty();
            }
            continue;
        }
        let ended = match &l.watch {
            Some(watch) => Some(Arc::clone(watch)),
            None => wake_on_exit(l.pid, l.start_time, exits),
        };
        let released = match handed {
            Ok(()) if durable => go(&settings.launch, &l),
            Ok(()) => Err("its start could not be recorded durably".to_string()),
            // The launcher has let that supervisor go (it exits).
            Err(why) => Err(why),
        };
        let mut t = Tracked::new(&e, l.pid, l.start_time, started_at, l.cgroup, gpus.len());
        t.ended = ended;
        t.reusable = l.reusable;
        t.identity = l.identity;
        if let Err(err) = released {
            // Its supervisor ends without running the command; tracking it
            // records that end and frees its reservation.
            crate::sys::process::kill_if_same(l.pid, l.start_time);
            launcher.abort(l.pid);
            t.stopping = Some(Stopping {
                outcome: Outcome::Failed,
                reason: format!("could not start: {err}"),
                kill_at: tokio::time::Instant::now(),
                sent: None,
                supervisor_killed: false,
                trim_to: None,
            });
        }
        tracked.insert(e.id, t);
    }
    all_recorded
}

#[cfg(test)]
mod tests {
    use super::*;

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
