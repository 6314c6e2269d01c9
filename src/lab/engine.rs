//! The runner's side of the service: what the scheduler is given and
//! decides, the host's capacity, live use, and state changes staged then
//! made durable at once.

use std::collections::HashMap;

use serde::Serialize;

use super::submit::run_as;
use super::{Lab, LabError, LabResult, now};
use crate::model::{Outcome, ResourceUse, State, Transition};
use crate::sched::{
    Capacity, Decision, Dependency, QueuedJob, Room, RunningJob, SchedulerInput, WaitReason,
    schedule_with_room,
};

/// What changed in the queue since the runner last took the news: lets it
/// skip planning when nothing new could start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueueNews {
    /// Requests of the experiments submitted since.
    pub submitted: Vec<crate::model::Resources>,
    /// Whether anything else changed that can change decisions (a queued
    /// experiment cancelled, a priority or a quota changed, or too many
    /// submissions to list).
    pub other: bool,
}

/// Submissions listed in [`QueueNews`] before it just says "other".
const MAX_NEWS: usize = 1024;

/// Recent usage by owner, with the time it was computed.
type FairShareCache = Option<(std::time::Instant, HashMap<String, f64>)>;

/// What the service keeps for the runner's side between calls: caches of
/// what the scheduler is given, what the runner published, the news.
#[derive(Default)]
pub(super) struct EngineState {
    /// Fair-share usage by owner and when it was computed.
    fair_share: std::sync::Mutex<FairShareCache>,
    /// What running experiments use now, published by the runner.
    live: std::sync::RwLock<HashMap<u64, LiveUse>>,
    /// What changed in the queue since the runner last looked.
    news: std::sync::Mutex<QueueNews>,
    /// How finished experiments that queued ones wait for (`--after`)
    /// ended: it never changes, and the queue is planned at every start.
    finished_dependencies: std::sync::Mutex<HashMap<u64, Dependency>>,
    /// Serialises the read-modify-write of provenance records (a start's
    /// capture may still be hashing when the end's begins).
    pub(super) provenance_writes: std::sync::Mutex<()>,
    /// Serialises submissions from the count of what is queued to the
    /// record staged (the queue limits).
    pub(super) submissions: std::sync::Mutex<()>,
}

impl EngineState {
    /// Notes a change that can alter scheduling decisions.
    pub(super) fn note_other_change(&self) {
        self.news.lock().unwrap_or_else(|e| e.into_inner()).other = true;
    }

    /// Notes a new submission asking for `resources`.
    pub(super) fn note_submission(&self, resources: crate::model::Resources) {
        let mut news = self.news.lock().unwrap_or_else(|e| e.into_inner());
        if news.submitted.len() < MAX_NEWS {
            news.submitted.push(resources);
        } else {
            news.other = true;
        }
    }

    /// What changed since the last call.
    pub(super) fn take_news(&self) -> QueueNews {
        std::mem::take(&mut *self.news.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One experiment's state change by the runner, for [`Lab::stage_transitions`]:
/// the states it passes through in order (each with its reason) and,
/// at its end, what it used.
#[derive(Debug, Clone)]
pub struct StateChange {
    /// The experiment.
    pub id: u64,
    /// New states in order, each with why.
    pub steps: Vec<(State, String)>,
    /// Resource use to record with the change.
    pub usage: Option<ResourceUse>,
}

/// What a running experiment uses now, measured by the runner from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LiveUse {
    /// CPU cores busy over the last runner tick.
    pub cpu_cores: f64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Peak memory so far, bytes.
    pub peak_memory_bytes: u64,
    /// GPU memory its processes hold now, bytes (from the GPU source).
    pub gpu_memory_bytes: u64,
    /// Peak GPU memory so far, bytes.
    pub peak_gpu_memory_bytes: u64,
}

impl Lab {
    /// The host's GPUs, for the runner to name and fence an experiment's
    /// (from the latest snapshot; a GPU without a known minor number is
    /// taken to have its index).
    pub fn host_gpus(&self) -> Vec<crate::model::HostGpu> {
        let usage = self.monitor.latest();
        usage
            .gpus
            .iter()
            .map(|g| crate::model::HostGpu {
                index: g.device.index,
                minor: g.device.minor.unwrap_or(g.device.index),
                uuid: g.device.uuid.clone(),
            })
            .collect()
    }

    /// What the host offers to experiments (from the latest monitor snapshot).
    pub fn capacity(&self) -> Capacity {
        let usage = self.monitor.latest();
        Capacity {
            cpus: usage.host.cores as f64,
            memory_bytes: usage.host.memory_total,
            gpus: usage.gpus.iter().map(|g| g.device.index).collect(),
        }
    }

    /// Publishes what running experiments use now (the runner does, each tick).
    pub fn publish_live_use(&self, live: HashMap<u64, LiveUse>) {
        self.observe_idle(&live);
        *self.engine.live.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// What running experiments use now.
    pub fn live_use(&self) -> HashMap<u64, LiveUse> {
        self.engine
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs the scheduler over the current queue.
    pub fn plan(&self) -> LabResult<Vec<Decision>> {
        self.plan_with_room().map(|(decisions, _)| decisions)
    }

    /// [`Lab::plan`], and the room its starts leave.
    pub fn plan_with_room(&self) -> LabResult<(Vec<Decision>, Room)> {
        let quotas = self.scheduler_quotas()?;
        let ((mut decisions, room), held) = self.on_queue(&quotas, schedule_with_room)?;
        // Disabled owners' experiments were left out of the plan (they hold
        // no room): they wait until their owner is enabled.
        decisions.extend(held.into_iter().map(|id| Decision::Wait {
            id,
            reason: WaitReason::OwnerDisabled,
        }));
        // What was true at submission is checked again at the start: the
        // owner still exists and still runs as the account recorded (a
        // mapping changed or removed, a system account no longer allowed),
        // and this daemon runs experiments at all.
        for d in &mut decisions {
            let Decision::Start { id, .. } = *d else {
                continue;
            };
            let Some((owner, unix_user, submitted_at)) = self.store.with_active(|active| {
                active
                    .get(&id)
                    .map(|e| (e.owner.clone(), e.unix_user.clone(), e.submitted_at))
            }) else {
                continue;
            };
            let refusal = match self.store.user(&owner)? {
                None => Some(format!("its owner {owner} was removed")),
                // Removed and added again since: another person's now.
                Some(user) if user.created_at > submitted_at => {
                    Some(format!("its owner {owner} was removed"))
                }
                // Held until the account is enabled again.
                Some(user) if user.disabled => {
                    *d = Decision::Wait {
                        id,
                        reason: WaitReason::OwnerDisabled,
                    };
                    continue;
                }
                Some(_) if self.queue.run_refusal.is_some() => self.queue.run_refusal.clone(),
                Some(user) => match run_as(&user) {
                    Ok(account) if account.name == unix_user => None,
                    Ok(account) => Some(format!(
                        "{owner} now runs as unix user {}, not {unix_user} as when it was submitted",
                        account.name
                    )),
                    // The name service not answering: decided again later.
                    Err(LabError::Unavailable(why)) => {
                        *d = Decision::Wait {
                            id,
                            reason: WaitReason::Unchecked(why),
                        };
                        continue;
                    }
                    Err(e) => Some(e.to_string()),
                },
            };
            if let Some(reason) = refusal {
                *d = Decision::Abandon { id, reason };
            }
        }
        if let Some((free, reserve)) = self.disk_short() {
            for d in &mut decisions {
                if let Decision::Start { id, .. } = *d {
                    *d = Decision::Wait {
                        id,
                        reason: WaitReason::DiskFull { free, reserve },
                    };
                }
            }
        }
        Ok((decisions, room))
    }

    /// The users disabled now.
    fn disabled_owners(&self) -> LabResult<std::collections::HashSet<String>> {
        Ok(self
            .store
            .users()?
            .into_iter()
            .filter(|u| u.disabled)
            .map(|u| u.name)
            .collect())
    }

    /// `decide` over the scheduler's input as it stands now (the running
    /// and queued experiments, capacity, fair share), with these `quotas`;
    /// and the queued experiments of disabled owners, left out of it.
    pub(super) fn on_queue<R>(
        &self,
        quotas: &crate::sched::Quotas,
        decide: impl Fn(&SchedulerInput) -> R,
    ) -> LabResult<(R, Vec<u64>)> {
        let recent_usage = self.recent_usage()?;
        let capacity = self.capacity();
        let disabled = self.disabled_owners()?;
        // The queue is planned where it lies (the cache of unfinished
        // experiments), without copies; the outcomes of finished experiments
        // that queued ones wait for are looked up first if not known yet.
        let mut unknown = Vec::new();
        // Unfinished by the store, though not yet among the active ones
        // (being written): pending for this plan.
        let mut unfinished = std::collections::HashSet::new();
        loop {
            for id in unknown.drain(..) {
                let status = match self.store.experiment(id)?.map(|d| d.state) {
                    Some(State::Finished {
                        outcome: Outcome::Succeeded,
                        ..
                    }) => Dependency::Succeeded,
                    Some(State::Finished { .. }) | None => Dependency::Failed,
                    Some(_) => {
                        unfinished.insert(id);
                        continue;
                    }
                };
                self.engine
                    .finished_dependencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, status);
            }
            let planned = self.store.with_active(|active| {
                let finished = self
                    .engine
                    .finished_dependencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let mut running = Vec::new();
                let mut held = Vec::new();
                let mut queued = Vec::new();
                let mut dependencies = HashMap::new();
                for e in active.values() {
                    match &e.state {
                        State::Running {
                            started_at, gpus, ..
                        } => running.push(RunningJob {
                            id: e.id,
                            owner: e.owner.clone(),
                            project: e.spec.project.clone(),
                            resources: e.spec.resources,
                            gpus: gpus.clone(),
                            ends_by: e.spec.resources.ends_by(*started_at),
                        }),
                        State::Starting { gpus } => running.push(RunningJob {
                            id: e.id,
                            owner: e.owner.clone(),
                            project: e.spec.project.clone(),
                            resources: e.spec.resources,
                            gpus: gpus.clone(),
                            ends_by: e.spec.resources.ends_by(now()),
                        }),
                        // Held, and holding nothing (see plan_with_room).
                        State::Queued if disabled.contains(&e.owner) => held.push(e.id),
                        State::Queued => {
                            for dep in &e.spec.after {
                                let status = if active.contains_key(dep) || unfinished.contains(dep)
                                {
                                    Dependency::Pending
                                } else if let Some(status) = finished.get(dep) {
                                    *status
                                } else {
                                    unknown.push(*dep);
                                    continue;
                                };
                                dependencies.insert(*dep, status);
                            }
                            queued.push(QueuedJob {
                                id: e.id,
                                owner: &e.owner,
                                project: e.spec.project.as_deref(),
                                priority: e.spec.priority,
                                submitted_at: e.submitted_at,
                                resources: e.spec.resources,
                                after: &e.spec.after,
                            });
                        }
                        State::Finished { .. } => {}
                    }
                }
                unknown.is_empty().then(|| {
                    let decided = decide(&SchedulerInput {
                        now: now(),
                        capacity: &capacity,
                        running: &running,
                        queued: &queued,
                        quotas,
                        recent_usage: &recent_usage,
                        dependencies: &dependencies,
                    });
                    (decided, held)
                })
            });
            if let Some(planned) = planned {
                return Ok(planned);
            }
            unknown.sort_unstable();
            unknown.dedup();
        }
    }

    /// Reopens the database if it stopped writing (a write failed on a
    /// full disk: sled then refuses every later one) and the disk has room
    /// again (the runner asks at each tick); true if it was reopened.
    pub fn heal_store(&self) -> bool {
        if self.store.is_writable() {
            return false;
        }
        let room = crate::sys::fs::free_bytes(self.data_dir())
            .is_some_and(|free| free > self.queue.disk_reserve_bytes.max(1 << 20));
        if !room {
            return false;
        }
        match self.store.recover() {
            Ok(()) => {
                tracing::warn!("the database stopped writing (the disk was full); reopened");
                self.queue_changed();
                true
            }
            Err(e) => {
                tracing::warn!("the database stopped writing; reopening failed: {e}");
                false
            }
        }
    }

    /// `(free, reserve)` when the data disk has less free than the reserve.
    pub fn disk_short(&self) -> Option<(u64, u64)> {
        let reserve = self.queue.disk_reserve_bytes;
        if reserve == 0 {
            return None;
        }
        let free = crate::sys::fs::free_bytes(self.data_dir())?;
        (free < reserve).then_some((free, reserve))
    }

    /// CPU-hours per owner over the last 7 days of experiments (fair share),
    /// recomputed at most once a minute: it only orders owners.
    pub(super) fn recent_usage(&self) -> LabResult<HashMap<String, f64>> {
        let mut cache = self
            .engine
            .fair_share
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((at, usage)) = cache.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(60)
        {
            return Ok(usage.clone());
        }
        let usage = self.compute_recent_usage()?;
        *cache = Some((std::time::Instant::now(), usage.clone()));
        Ok(usage)
    }

    pub(super) fn compute_recent_usage(&self) -> LabResult<HashMap<String, f64>> {
        let since = now() - 7 * 86_400;
        let mut usage: HashMap<String, f64> = HashMap::new();
        // One experiment at a time: a week can hold a great many.
        self.store.for_each_since(since, 100_000, |e| {
            let hours = match &e.state {
                State::Finished {
                    started_at: Some(s),
                    ended_at,
                    ..
                } => (ended_at - s).max(0) as f64 / 3600.0,
                State::Running { started_at, .. } => (now() - started_at).max(0) as f64 / 3600.0,
                _ => 0.0,
            };
            *usage.entry(e.owner.clone()).or_default() += hours * e.spec.resources.cpus;
        })?;
        Ok(usage)
    }

    /// Writes state changes of the runner without flushing them; nothing is
    /// told until [`Lab::commit_transitions`] has made them durable. Each
    /// change gets its own result; one for an experiment that already ended
    /// is refused and not written.
    pub fn stage_transitions(&self, changes: Vec<StateChange>) -> Vec<LabResult<()>> {
        let at = now();
        changes
            .into_iter()
            .map(|change| {
                let id = change.id;
                self.store
                    .update_experiment(id, |experiment| {
                        if experiment.state.is_finished() {
                            return Err(LabError::Invalid(format!(
                                "experiment {id} already ended"
                            )));
                        }
                        for (state, reason) in change.steps {
                            experiment.transitions.push(Transition {
                                at,
                                to: state.name().to_string(),
                                reason,
                            });
                            experiment.state = state;
                        }
                        if let Some(usage) = change.usage {
                            experiment.usage = usage;
                        }
                        Ok(())
                    })?
                    .ok_or_else(|| LabError::NotFound(format!("no experiment {id}")))
            })
            .collect()
    }

    /// Makes staged state changes durable (one flush), then tells followers.
    pub fn commit_transitions(&self) -> LabResult<()> {
        self.store.flush()?;
        self.notify_queue();
        Ok(())
    }
}

/// The runner's handle on the service: what it may ask (the plan, the
/// unfinished experiments, the host's GPUs, news of the queue) and tell
/// (state changes, live use), and nothing else: no store, no front-end API.
#[derive(Clone)]
pub struct Engine {
    pub(super) lab: Lab,
}

impl Lab {
    /// The runner's handle on this service.
    pub fn engine(&self) -> Engine {
        Engine { lab: self.clone() }
    }
}

impl Engine {
    /// The scheduler's decisions now and the room its starts leave.
    pub fn plan(&self) -> LabResult<(Vec<Decision>, Room)> {
        self.lab.plan_with_room()
    }

    /// Experiment `id` as stored (`None` if there is none).
    pub fn experiment(&self, id: u64) -> LabResult<Option<crate::model::Experiment>> {
        Ok(self.lab.store.experiment(id)?)
    }

    /// Every unfinished experiment (queued, starting, running), oldest first.
    pub fn unfinished_experiments(&self) -> LabResult<Vec<crate::model::Experiment>> {
        Ok(self.lab.store.active_experiments()?)
    }

    /// See [`Lab::host_gpus`].
    pub fn host_gpus(&self) -> Vec<crate::model::HostGpu> {
        self.lab.host_gpus()
    }

    /// The model of the first GPU experiment `id` holds, as the GPU source
    /// names it (for prices per model).
    pub fn gpu_model_of(&self, id: u64) -> Option<String> {
        let gpus = self
            .lab
            .store
            .with_active(|active| match &active.get(&id)?.state {
                State::Running { gpus, .. } => Some(gpus.clone()),
                _ => None,
            })?;
        super::costs::gpu_model(&self.lab.monitor.latest(), &gpus)
    }

    /// See [`Lab::stage_transitions`].
    pub fn stage(&self, changes: Vec<StateChange>) -> Vec<LabResult<()>> {
        self.lab.stage_transitions(changes)
    }

    /// See [`Lab::commit_transitions`].
    pub fn commit(&self) -> LabResult<()> {
        self.lab.commit_transitions()
    }

    /// See [`Lab::heal_store`].
    pub fn heal_store(&self) -> bool {
        self.lab.heal_store()
    }

    /// See [`Lab::publish_live_use`].
    pub fn publish_live_use(&self, live: HashMap<u64, LiveUse>) {
        self.lab.publish_live_use(live)
    }

    /// See [`Lab::take_queue_news`].
    pub fn take_queue_news(&self) -> super::QueueNews {
        self.lab.take_queue_news()
    }

    /// See [`Lab::queue_changes`].
    pub fn queue_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.lab.queue_changes()
    }

    /// See [`Lab::usage_updates`].
    pub fn usage_updates(
        &self,
    ) -> tokio::sync::watch::Receiver<std::sync::Arc<crate::monitor::UsageSnapshot>> {
        self.lab.usage_updates()
    }
}
