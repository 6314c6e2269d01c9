//! How the runner sees an experiment end and what it records: the
//! outcome, how it stopped, what it used; a kept supervisor goes back to its pool.

use std::collections::HashMap;
use std::time::Duration;

use super::limits::{check_output, guard_output, signal_all, signal_command, stop, trim_output};
use super::tracked::{EndSeen, Stopping, Supervisor, Tracked};
use super::{RunnerSettings, SUPERVISOR_GRACE};
use crate::exec::cgroup::ExperimentCgroup;
use crate::exec::pool::IdleShim;
use crate::lab::{Engine, StateChange};
use crate::model::{Outcome, ResourceUse, State, Stop};
use crate::output::ExperimentFiles;
use crate::output::journal::{ExitStatus, never_started, read_exit};
use crate::provenance::Phase;

/// Checks running experiments (limits and kills only when `ticked`);
/// stages the ends of those that ended. Returns their cgroups and whether
/// anything was staged.
pub(super) fn watch(
    lab: &Engine,
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
        if ticked && matches!(t.supervisor, Supervisor::Kept { .. } | Supervisor::Earlier) {
            let journal = ExperimentFiles::new(&settings.launch.data_dir, *id).journal();
            let journaled = read_exit(&journal).is_some();
            if journaled && t.end == EndSeen::InJournal {
                ended.push(*id);
                continue;
            }
            t.end = if journaled {
                EndSeen::InJournal
            } else {
                EndSeen::No
            };
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
            super::metrics::ingest_rest(lab, &settings.launch.data_dir, id);
            take_back_metrics_file(id, settings);
            // One that wrote past its limit and ended before a tick saw it.
            check_output(id, &mut t, settings, false);
            changes.push(finish(lab, id, &mut t, settings, false));
            if t.declares_outputs
                && let Ok(Some(e)) = lab.experiment(id)
            {
                super::provenance::capture(&settings.provenance, &e, Phase::End);
            }
            freed.extend(keep_supervisor(t, settings));
        }
    }
    let staged = stage_ends(lab, changes);
    (freed, staged)
}

/// Gives experiment `id`'s metrics file, which its user wrote while it ran,
/// back to the daemon once it has ended (as root): its user can no longer
/// grow it on the data disk, past the run and outside its output limit.
pub(super) fn take_back_metrics_file(id: u64, settings: &RunnerSettings) {
    if !settings.launch.as_root {
        return;
    }
    let path = ExperimentFiles::new(&settings.launch.data_dir, id).metrics();
    // Not followed if it is a link (its directory is the daemon's: it is not).
    let taken = std::fs::symlink_metadata(&path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|_| std::fs::File::open(&path).ok())
        .map(|file| crate::sys::fs::change_owner(&file, 0, 0));
    if let Some(Err(e)) = taken {
        tracing::warn!("experiment {id}: cannot take back its metrics file: {e}");
    }
}

/// Whether `shim`'s slot is fit for another experiment now or within
/// 15 ms: the memory of a command that just ended is uncharged a moment
/// later, and its last processes leave the slot's list a moment after they
/// died. A slot the OOM killer acted in is never fit (v1 cannot reset that
/// count), so it is not waited for.
fn fit_soon(shim: &IdleShim) -> bool {
    for attempt in 0..4 {
        if shim.cgroup.fit_for_another(shim.pid) {
            return true;
        }
        if attempt == 3 || shim.cgroup.oom_kills() > 0 {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

/// After experiment `t` ended: its reusable supervisor is kept, with its
/// slot, if both are fit for another experiment, else retired. Returns the
/// cgroup to release, if any.
pub(super) fn keep_supervisor(t: Tracked, settings: &RunnerSettings) -> Option<ExperimentCgroup> {
    let launcher = &settings.launch.launcher;
    let Supervisor::Kept { identity } = t.supervisor else {
        return t.cgroup;
    };
    let Some(cgroup) = t.cgroup else {
        // Never so (only v1 slots keep supervisors), but never kept bare.
        launcher.retire(t.pid);
        return None;
    };
    let shim = IdleShim {
        pid: t.pid,
        start_time: t.start_time,
        identity,
        cgroup,
        watch: t.exit_watch,
    };
    if t.end.reported().is_some() && shim.alive() && fit_soon(&shim) {
        settings.launch.pool.put(shim, launcher);
    } else {
        settings.launch.pool.retire(shim, Some(launcher));
    }
    None
}

/// How an experiment ended (to record); ends what it left behind.
pub(super) fn finish(
    lab: &Engine,
    id: u64,
    t: &mut Tracked,
    settings: &RunnerSettings,
    after_restart: bool,
) -> StateChange {
    let mut usage = ResourceUse::default();
    let mut oom = false;
    if let Some(cg) = &t.cgroup {
        // The experiment ends with its leader: stop anything it left running
        // (but a supervisor that reported the end, and stays).
        let staying = t.end.reported().and(Some(t.pid as i32));
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
    if t.gpus > 0 {
        usage.gpu_model = lab.gpu_model_of(id);
    }
    usage.profile = t.use_profile(lab, id);
    let journal = ExperimentFiles::new(&settings.launch.data_dir, id).journal();
    let status = t.end.reported().or_else(|| read_exit(&journal));
    // A supervisor of an earlier daemon that was never told go: its command
    // never started (found at re-attachment, or when it exits after it).
    if status.is_none()
        && t.stopping.is_none()
        && (after_restart || matches!(t.supervisor, Supervisor::Earlier))
        && never_started(&journal)
    {
        return queued_again(id, DAEMON_STOPPED);
    }
    // Its launcher failed before it was let go: it never ran; once, it
    // goes back to the queue rather than failing (a new launcher starts it).
    // (A hand-over that failed left no journal: the command surely never ran.)
    if status.is_none()
        && t.stopping.as_ref().is_some_and(|s| s.retry)
        && (never_started(&journal) || !journal.exists())
    {
        return queued_again(id, LAUNCHER_FAILED);
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
pub(super) fn how_it_stopped(s: &Stopping, status: Option<ExitStatus>, grace: Duration) -> String {
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
pub(super) fn never_ran(id: u64, outcome: Outcome, reason: String) -> StateChange {
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

/// Why a start goes back to the queue: the daemon stopped first.
pub(super) const DAEMON_STOPPED: &str =
    "queued again: the daemon stopped before its command started";

/// Why a start goes back to the queue: its launcher failed first.
pub(super) const LAUNCHER_FAILED: &str =
    "queued again: the launcher failed before its command started";

/// Back to the queue: a start that the daemon recorded but whose command
/// never started (`why`).
pub(super) fn queued_again(id: u64, why: &str) -> StateChange {
    StateChange {
        id,
        steps: vec![(State::Queued, why.into())],
        usage: None,
    }
}

pub(super) fn ending(id: u64, state: State, reason: String, usage: ResourceUse) -> StateChange {
    StateChange {
        id,
        steps: vec![(state, reason)],
        usage: Some(usage),
    }
}

/// Stages ended experiments (see [`commit`]); whether any was staged.
pub(super) fn stage_ends(lab: &Engine, changes: Vec<StateChange>) -> bool {
    let ids: Vec<u64> = changes.iter().map(|c| c.id).collect();
    let mut staged = false;
    for (id, result) in ids.into_iter().zip(lab.stage(changes)) {
        match result {
            Ok(()) => staged = true,
            Err(err) => tracing::error!("experiment {id}: cannot record its end: {err}"),
        }
    }
    staged
}

/// Makes what was staged durable and tells followers; false if that failed.
pub(super) fn commit(lab: &Engine) -> bool {
    match lab.commit() {
        Ok(()) => true,
        Err(err) => {
            tracing::error!("cannot record state changes: {err}");
            false
        }
    }
}
