//! The local runner: starts what the scheduler allows, watches running
//! experiments (exit, wall time, memory, output), stops them on request, and
//! records every transition through the service. Re-attaches after a restart.
//!
//! It holds the service only as an [`Engine`] (plan, stage and commit state
//! changes, publish live use, queue news, read experiments) and runs
//! processes through [`crate::exec`], which knows nothing of the service: a
//! second backend (Slurm) is a second runner over the same two. This file
//! has the loop; `tracked` what it knows of each running experiment,
//! `start` the start protocol, `ends` how ends are seen and recorded,
//! `limits` stopping and the limits it enforces itself.
//!
//! It looks at every running experiment each quarter second:
//!
//! - Stopping (cancel, `--time`) sends SIGTERM to the command's processes
//!   and, if any is left after `queue.kill_grace_secs`, SIGKILL; with a
//!   cgroup, every process in it but the supervisor (see [`crate::exec::cgroup`]).
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

mod ends;
mod limits;
mod metrics;
mod provenance;
mod start;
mod tracked;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::exec::cgroup::{self, ExperimentCgroup};
use crate::exec::local::{LaunchContext, prepare_experiments_dir};
use crate::exec::protocol::{END_REPORT_LEN, parse_end_report};
use crate::lab::{Engine, RunnerCommand};
use crate::model::Outcome;
use crate::output::ExperimentFiles;
use crate::output::journal::read_exit;
use crate::sched::Room;
use ends::watch;
use limits::stop;
pub use provenance::ProvenanceSettings;
use start::start_allowed;
use tracked::{EndSeen, Supervisor, Tracked, measure, reattach};

/// How often running experiments are checked.
const TICK: Duration = Duration::from_millis(250);

/// How long a supervisor may take to record its command's end once
/// SIGKILL was sent, before it is killed too (it never should).
const SUPERVISOR_GRACE: Duration = Duration::from_secs(5);

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
    /// How provenance is captured.
    pub provenance: ProvenanceSettings,
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
    lab: Engine,
    settings: RunnerSettings,
    mut commands: mpsc::UnboundedReceiver<RunnerCommand>,
) {
    if settings.launch.as_root || cgroup::available() {
        crate::sys::process::become_subreaper();
    }
    provenance::start_workers(&lab, &settings.provenance);
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
            settings.launch.slots.release_emptied();
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
            for (id, t) in tracked.iter_mut() {
                metrics::ingest(&lab, &settings.launch.data_dir, *id, &mut t.metrics_seen);
            }
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
            settings.launch.slots.release_when_empty(cg);
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
        if let Some(t) = tracked
            .get_mut(&id)
            .filter(|t| t.pid == pid && matches!(t.supervisor, Supervisor::Kept { .. }))
            && let Some(status) = read_exit(&journal())
        {
            t.end = EndSeen::Reported(status);
        }
    }
}

/// The end reports waiting on the ends pipe (see [`crate::exec::protocol::end_report`]):
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
