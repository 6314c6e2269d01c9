//! Starting what the scheduler allows: launch, record the starts durably,
//! then tell the supervisors to go (the start protocol).

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::RunnerSettings;
use super::ends::{commit, never_ran, stage_ends};
use super::tracked::{Stopping, Supervisor, Tracked, wake_on_exit};
use crate::exec::local::{Launched, go, launch};
use crate::lab::{Engine, StateChange};
use crate::model::{Experiment, Outcome, State};
use crate::provenance::Phase;
use crate::sched::{Decision, Room};

/// Starts what the scheduler allows: launches each supervisor (waiting),
/// stages their starts, makes them durable with whatever was staged before
/// (`staged`: this round's ends) in one flush, then lets them go. Returns
/// the room the plan left (`None` if it failed) and whether it committed.
pub(super) fn start_allowed(
    lab: &Engine,
    tracked: &mut HashMap<u64, Tracked>,
    settings: &RunnerSettings,
    exits: &mpsc::UnboundedSender<()>,
    mut staged: bool,
) -> (Option<Room>, bool) {
    let (decisions, room) = match lab.plan() {
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
                let Ok(Some(e)) = lab.experiment(id) else {
                    room = None;
                    continue;
                };
                match launch(&settings.launch, &e, &gpus, &host_gpus) {
                    Ok(l) => launched.push(Start { e, gpus, l }),
                    Err(reason) => {
                        room = None;
                        ends.push(could_not_start(id, reason.to_string()));
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
    // Provenance is captured of each that runs (not of one stopped at once).
    let capturing: Vec<Experiment> = if settings.provenance.queue.get().is_some() {
        launched.iter().map(|s| s.e.clone()).collect()
    } else {
        Vec::new()
    };
    if !release_started(
        launched, recorded, started_at, durable, tracked, settings, exits,
    ) {
        // One not started leaves more room than the plan counted.
        room = None;
    }
    for e in capturing {
        if tracked.get(&e.id).is_some_and(|t| t.stopping.is_none()) {
            super::provenance::capture(&settings.provenance, &e, Phase::Start);
        }
    }
    (room, committed)
}

/// An experiment launched (its supervisor waits for go).
pub(super) struct Start {
    e: Experiment,
    gpus: Vec<u32>,
    l: Launched,
}

/// The end of an experiment that could not start.
pub(super) fn could_not_start(id: u64, reason: String) -> StateChange {
    tracing::warn!("experiment {id} could not start: {reason}");
    never_ran(id, Outcome::Failed, format!("could not start: {reason}"))
}

/// Stages the starts of `launched` at `started_at`; a result each.
pub(super) fn stage_starts(
    lab: &Engine,
    launched: &[Start],
    started_at: i64,
) -> Vec<crate::lab::LabResult<()>> {
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
    lab.stage(starts)
}

/// After the flush that held their starts, made at `started_at`
/// (`durable`: it succeeded): lets the supervisors of `launched` go and
/// tracks them. False if some start was not recorded.
pub(super) fn release_started(
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
                settings.launch.slots.release_when_empty(cg);
            }
            continue;
        }
        let ended = match &l.watch {
            Some(watch) => Some(Arc::clone(watch)),
            None => wake_on_exit(l.pid, l.start_time, exits),
        };
        let released = match handed {
            Ok(()) if durable => go(&settings.launch, &l).map_err(|e| e.to_string()),
            Ok(()) => Err("its start could not be recorded durably".to_string()),
            // The launcher has let that supervisor go (it exits).
            Err(why) => Err(why.to_string()),
        };
        let mut t = Tracked::new(&e, l.pid, l.start_time, started_at, l.cgroup, gpus.len());
        t.exit_watch = ended;
        t.supervisor = if l.reusable {
            Supervisor::Kept {
                identity: l.identity,
            }
        } else {
            Supervisor::Own
        };
        if let Err(err) = released {
            // Its supervisor ends without running the command; tracking it
            // records that end and frees its reservation.
            crate::sys::process::kill_if_same(l.pid, l.start_time);
            launcher.abort(l.pid);
            // The launcher failed (its start was recorded): once, back to
            // the queue.
            let retried = e
                .transitions
                .iter()
                .any(|t| t.reason == super::ends::LAUNCHER_FAILED);
            t.stopping = Some(Stopping {
                outcome: Outcome::Failed,
                reason: format!("could not start: {err}"),
                kill_at: tokio::time::Instant::now(),
                sent: None,
                supervisor_killed: false,
                trim_to: None,
                retry: durable && !retried,
            });
        }
        tracked.insert(e.id, t);
    }
    all_recorded
}
