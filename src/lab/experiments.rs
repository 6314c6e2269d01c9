//! Experiments: submitting, listing, cancelling, priorities and quotas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Lab, LabError, LabResult, Principal, now, require_admin};
use crate::model::{
    CommandLine, Experiment, ExperimentSpec, MAX_DURATION_SECS, Outcome, ResourceUse, Resources,
    Role, State, Transition, User, is_reserved_env,
};
use crate::sched::{
    Capacity, Decision, Dependency, QueuedJob, Quota, Room, RunningJob, SchedulerInput, WaitReason,
    schedule_with_room,
};
use crate::sys::accounts::{self, Account};

/// Longest name, project or tag.
const MAX_LABEL: usize = 128;
/// Most environment variables, tags, params, inputs, outputs or dependencies.
const MAX_ITEMS: usize = 256;

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

/// Defaults applied to experiments that ask for nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// CPU cores.
    pub default_cpus: f64,
    /// Memory, bytes.
    pub default_memory_bytes: u64,
    /// Wall-time limit, seconds.
    pub default_time_secs: u64,
    /// Bytes kept free on the data disk: below, submissions are refused and
    /// nothing starts, so that running experiments' ends can still be
    /// recorded (0: no reserve).
    pub disk_reserve_bytes: u64,
    /// Why no experiment may run on this host, if none may (a daemon not
    /// running as root, outside single-user mode).
    pub run_refusal: Option<String>,
    /// Most bytes an experiment's output may take unless an admin allows more.
    pub max_output_bytes: u64,
    /// Most experiments one user may have queued at once (a quota may say otherwise).
    pub max_queued_per_user: u32,
    /// In single-user mode (a daemon not running as root that runs
    /// experiments as itself), the daemon's account: only the lab user
    /// mapped to it runs experiments (they can read the daemon's data).
    pub single_user: Option<String>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            default_cpus: 1.0,
            default_memory_bytes: 4 << 30,
            default_time_secs: 86_400,
            disk_reserve_bytes: 0,
            run_refusal: None,
            max_output_bytes: 10 << 30,
            max_queued_per_user: 1000,
            single_user: None,
        }
    }
}

/// A submission as a front end builds it; missing resources take defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitRequest {
    /// Short name.
    pub name: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The command (`None` is an error).
    pub command: Option<CommandLine>,
    /// Working directory (default: the owner's home).
    pub workdir: Option<PathBuf>,
    /// Environment additions.
    pub env: Vec<(String, String)>,
    /// Declared inputs.
    pub inputs: Vec<PathBuf>,
    /// Declared outputs.
    pub outputs: Vec<PathBuf>,
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// Dependencies.
    pub after: Vec<u64>,
    /// CPU cores.
    pub cpus: Option<f64>,
    /// Memory, bytes.
    pub memory_bytes: Option<u64>,
    /// GPUs.
    pub gpus: Option<u32>,
    /// Wall-time limit, seconds.
    pub time_limit_secs: Option<u64>,
    /// Priority.
    pub priority: i32,
    /// Only its owner and admins may read its output and see what it runs.
    pub private: bool,
    /// Most bytes of output (more than the queue's default: admins only).
    pub max_output_bytes: Option<u64>,
}

/// Which experiments `ls` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Include finished ones.
    pub all: bool,
    /// Only this owner.
    pub user: Option<String>,
    /// Only this state name.
    pub state: Option<String>,
    /// Only this project.
    pub project: Option<String>,
    /// At most this many (0: [`DEFAULT_LIST_LIMIT`]; at most [`MAX_LIST_LIMIT`]).
    pub limit: usize,
    /// In which order (unfinished experiments only: history is newest first).
    pub order: ListOrder,
}

/// How unfinished experiments are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest first.
    #[default]
    Newest,
    /// Running ones first, then queued ones in the order the scheduler
    /// would start them.
    NextToStart,
}

/// Experiments listed when no limit is given.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Most experiments one listing may ask for.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Where a page of a listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFrom {
    /// The first page.
    Start,
    /// After this many (unfinished experiments, in their order).
    Offset(usize),
    /// Below this id (history, newest first).
    Before(u64),
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    /// The experiments, as the caller may see them.
    pub views: Vec<ExperimentView>,
    /// How many the filter selects in all, where known without reading the
    /// whole history (unfinished experiments).
    pub total: Option<usize>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<ListFrom>,
}

/// An experiment with why it waits, for `ls` and the Queue tab.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentView {
    /// The record.
    #[serde(flatten)]
    pub experiment: Experiment,
    /// For queued experiments: why they have not started.
    pub wait_reason: Option<String>,
    /// For running experiments: what they use now (from their cgroup).
    pub live: Option<LiveUse>,
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
    /// Queues an experiment for the caller; refused for viewers and for bad input.
    pub fn submit(&self, p: &Principal, request: SubmitRequest) -> LabResult<u64> {
        let p = &self.current(p)?;
        if p.role == Role::Viewer {
            return Err(LabError::PermissionDenied(
                "viewers cannot submit experiments".into(),
            ));
        }
        if request.priority > 0 && !p.is_admin() {
            return Err(LabError::PermissionDenied(
                "only admins can submit with a priority above 0".into(),
            ));
        }
        if request
            .max_output_bytes
            .is_some_and(|max| max > self.queue.max_output_bytes)
            && !p.is_admin()
        {
            return Err(LabError::PermissionDenied(format!(
                "only admins can allow more output than queue.max_output ({})",
                crate::units::short_bytes(self.queue.max_output_bytes as f64)
            )));
        }
        if let Some(why) = &self.queue.run_refusal {
            return Err(LabError::Invalid(why.clone()));
        }
        let owner = self.existing_user_record(&p.user)?;
        if let Some(daemon) = &self.queue.single_user
            && owner.unix_user.as_deref() != Some(daemon.as_str())
        {
            return Err(LabError::PermissionDenied(format!(
                "single-user mode: experiments run as the daemon's own account {daemon}, which \
                 can read labbench's data; only the lab user mapped to {daemon} may run them"
            )));
        }
        let account = run_as(&owner)?;
        self.check_queue_room(&p.user)?;
        let spec = self.validate_submission(&account, &p.user, request)?;
        if let Some((free, reserve)) = self.disk_short() {
            return Err(LabError::Unavailable(format!(
                "the data disk is full: {} free, and labbench keeps {} free for the records \
                 of running experiments; nothing was queued (try again when space is freed)",
                crate::units::short_bytes(free as f64),
                crate::units::short_bytes(reserve as f64)
            )));
        }
        let id = self.store.next_experiment_id()?;
        let at = now();
        let experiment = Experiment {
            id,
            owner: p.user.clone(),
            unix_user: account.name,
            spec,
            submitted_at: at,
            state: State::Queued,
            transitions: vec![Transition {
                at,
                to: "queued".into(),
                reason: format!("submitted by {}", p.user),
            }],
            host: self.usage_snapshot(p).host.hostname.clone(),
            backend: "local".into(),
            usage: ResourceUse::default(),
        };
        // One flush makes the counter, the record and the audit entry durable.
        self.store.stage_experiment(&experiment)?;
        self.audit_with_next_flush(p, format!("submitted experiment {id}"))?;
        self.store.flush()?;
        // One that waits for an unfinished experiment cannot start before
        // that one ends (which makes the runner plan anyway).
        let after = &experiment.spec.after;
        if self
            .store
            .with_active(|active| after.iter().any(|d| active.contains_key(d)))
        {
            self.notify_queue();
        } else {
            self.queue_grew(experiment.spec.resources);
        }
        Ok(id)
    }

    fn validate_submission(
        &self,
        account: &Account,
        owner: &str,
        r: SubmitRequest,
    ) -> LabResult<ExperimentSpec> {
        let invalid = |m: String| Err(LabError::Invalid(m));
        let command = match r.command {
            Some(CommandLine::Argv(argv)) if argv.is_empty() || argv[0].is_empty() => {
                return invalid(
                    "no command given: use submit -- CMD ARGS… or submit --sh 'CMD'".into(),
                );
            }
            Some(CommandLine::Shell(line)) if line.trim().is_empty() => {
                return invalid("empty --sh command".into());
            }
            Some(command) => command,
            None => {
                return invalid(
                    "no command given: use submit -- CMD ARGS… or submit --sh 'CMD'".into(),
                );
            }
        };
        for label in r.name.iter().chain(r.project.iter()).chain(r.tags.iter()) {
            if label.is_empty()
                || label.chars().count() > MAX_LABEL
                || label.chars().any(char::is_control)
            {
                return invalid(format!(
                    "invalid name, project or tag {label:?}: 1–{MAX_LABEL} printable characters"
                ));
            }
        }
        let counts = [
            r.tags.len(),
            r.env.len(),
            r.params.len(),
            r.inputs.len(),
            r.outputs.len(),
            r.after.len(),
        ];
        if counts.iter().any(|n| *n > MAX_ITEMS) {
            return invalid(format!(
                "too many tags, variables, params, inputs, outputs or dependencies (at most {MAX_ITEMS} each)"
            ));
        }
        for (key, _) in &r.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return invalid(format!("invalid environment variable name {key:?}"));
            }
            if is_reserved_env(key) {
                return invalid(reserved_env_message(key));
            }
        }
        let settings = &self.queue;
        let resources = Resources {
            cpus: r.cpus.unwrap_or(settings.default_cpus),
            memory_bytes: r.memory_bytes.unwrap_or(settings.default_memory_bytes),
            gpus: r.gpus.unwrap_or(0),
            time_limit_secs: r.time_limit_secs.unwrap_or(settings.default_time_secs),
        };
        if !(1..=MAX_DURATION_SECS).contains(&resources.time_limit_secs) {
            return invalid(format!(
                "--time {} s: a wall-time limit is from 1 s to 365d",
                resources.time_limit_secs
            ));
        }
        if resources.cpus.is_nan() || resources.cpus <= 0.0 || !resources.cpus.is_finite() {
            return invalid("--cpus must be more than 0".into());
        }
        let capacity = self.capacity();
        if resources.cpus > capacity.cpus {
            return invalid(format!(
                "--cpus {} is more than this host has ({})",
                resources.cpus, capacity.cpus
            ));
        }
        if resources.memory_bytes > capacity.memory_bytes {
            return invalid(format!(
                "--mem {} is more than this host has ({})",
                crate::units::short_bytes(resources.memory_bytes as f64),
                crate::units::short_bytes(capacity.memory_bytes as f64)
            ));
        }
        if resources.gpus as usize > capacity.gpus.len() {
            return invalid(format!(
                "--gpus {} is more than this host has ({})",
                resources.gpus,
                capacity.gpus.len()
            ));
        }
        let quota = self.store.quota(owner)?;
        if let Some(reason) = larger_than_quota(&quota, &resources) {
            return invalid(format!("request larger than your quota: {reason}"));
        }
        for dep in &r.after {
            if self.store.experiment(*dep)?.is_none() {
                return invalid(format!("--after {dep}: no such experiment"));
            }
        }
        let workdir = r.workdir.unwrap_or_else(|| account.home.clone());
        check_workdir(&workdir, account, &self.workdir_checks)?;
        Ok(ExperimentSpec {
            name: r.name,
            project: r.project,
            tags: r.tags,
            command,
            workdir,
            env: r.env,
            inputs: r.inputs,
            outputs: r.outputs,
            params: r.params,
            after: r.after,
            resources,
            priority: r.priority,
            private: r.private,
            max_output_bytes: r.max_output_bytes,
        })
    }

    /// Most bytes an experiment's output may take unless it says otherwise.
    pub fn default_output_limit(&self) -> u64 {
        self.queue.max_output_bytes
    }

    /// Why no experiment may run on this host, if none may.
    pub fn run_refusal(&self) -> Option<&str> {
        self.queue.run_refusal.as_deref()
    }

    /// Refuses a submission of `user` who has as many experiments queued
    /// as allowed (their quota's `max_queued`, else the queue's default):
    /// the queue is everyone's, and each queued one costs the daemon memory.
    fn check_queue_room(&self, user: &str) -> LabResult<()> {
        let max = self
            .store
            .quota(user)?
            .max_queued
            .unwrap_or(self.queue.max_queued_per_user);
        let queued = self.store.with_active(|active| {
            active
                .values()
                .filter(|e| e.owner == user && e.state == State::Queued)
                .count()
        });
        if queued >= max as usize {
            return Err(LabError::Unavailable(format!(
                "{user} has {queued} experiments queued, the most allowed (queue.max_queued_per_user, \
                 or quota --max-queued); nothing was queued: submit again once some have started"
            )));
        }
        Ok(())
    }

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

    /// One experiment as the caller may see it (any role; see [`seen_by`]).
    pub fn experiment(&self, p: &Principal, id: u64) -> LabResult<Experiment> {
        let p = self.current(p)?;
        let e = self.stored_experiment(id)?;
        let private = self.is_private(&e)?;
        Ok(seen_by(&p, e, private))
    }

    /// One experiment as stored, secrets included: for the service's own use.
    fn stored_experiment(&self, id: u64) -> LabResult<Experiment> {
        self.store
            .experiment(id)?
            .ok_or_else(|| LabError::NotFound(format!("no experiment {id}")))
    }

    /// The read rule for an experiment's output (logs, and whatever it
    /// writes for others to read): its owner and admins always; other
    /// members and viewers unless the experiment or its project is
    /// private. Every front end asks it before showing output.
    pub fn check_output_readable(&self, p: &Principal, id: u64) -> LabResult<Experiment> {
        let p = self.current(p)?;
        let e = self.stored_experiment(id)?;
        let private = self.is_private(&e)?;
        if private && !owns_or_admin(&p, &e) {
            return Err(LabError::PermissionDenied(format!(
                "experiment {id} is private: only {} and admins can read its output",
                e.owner
            )));
        }
        Ok(seen_by(&p, e, private))
    }

    /// Whether `e` is private, itself or through its project.
    fn is_private(&self, e: &Experiment) -> LabResult<bool> {
        Ok(e.spec.private
            || match &e.spec.project {
                Some(project) => self.store.project_is_private(project)?,
                None => false,
            })
    }

    /// The first page of `filter` (up to its limit), with wait reasons for
    /// queued experiments.
    pub fn list_experiments(&self, p: &Principal, filter: &ListFilter) -> LabResult<ListPage> {
        let limit = if filter.limit == 0 {
            DEFAULT_LIST_LIMIT
        } else {
            filter.limit
        };
        self.list_page(p, filter, ListFrom::Start, limit)
    }

    /// Up to `count` experiments of `filter` from `from` on: unfinished ones
    /// in `filter.order`, with history newest first. Long listings are read
    /// page by page, so that none is held whole.
    pub fn list_page(
        &self,
        p: &Principal,
        filter: &ListFilter,
        from: ListFrom,
        count: usize,
    ) -> LabResult<ListPage> {
        let p = &self.current(p)?;
        if filter.limit > MAX_LIST_LIMIT {
            return Err(LabError::Invalid(format!(
                "--limit {}: at most {MAX_LIST_LIMIT} at once",
                filter.limit
            )));
        }
        let count = count.min(MAX_LIST_LIMIT);
        let keep = |e: &Experiment| {
            filter.user.as_deref().is_none_or(|u| e.owner == u)
                && filter.state.as_deref().is_none_or(|s| e.state.name() == s)
                && filter
                    .project
                    .as_deref()
                    .is_none_or(|pr| e.spec.project.as_deref() == Some(pr))
        };
        let history = filter.all
            || filter
                .state
                .as_deref()
                .is_some_and(|s| !["queued", "starting", "running"].contains(&s));
        let (experiments, total, next) = if history {
            let before = match from {
                ListFrom::Before(id) => Some(id),
                _ => None,
            };
            // One more than asked tells whether there are more.
            let mut page = self.store.experiments_page(before, count + 1, keep)?;
            let more = page.len() > count;
            page.truncate(count);
            let next = more
                .then(|| page.last().map(|e| ListFrom::Before(e.id)))
                .flatten();
            (page, None, next)
        } else {
            let ids = self.active_ids(filter.order, |e| keep(e))?;
            let offset = match from {
                ListFrom::Offset(n) => n,
                _ => 0,
            };
            let window: Vec<u64> = ids.iter().skip(offset).take(count).copied().collect();
            let page: Vec<Experiment> = self.store.with_active(|active| {
                window
                    .iter()
                    .filter_map(|id| active.get(id).cloned())
                    .collect()
            });
            let end = offset + window.len();
            let next = (end < ids.len()).then_some(ListFrom::Offset(end));
            (page, Some(ids.len()), next)
        };
        let reasons = self.wait_reasons(p)?;
        let live = self.live_use();
        let private_projects = self.store.private_projects()?;
        let views = experiments
            .into_iter()
            .map(|e| {
                let private = e.spec.private
                    || e.spec
                        .project
                        .as_ref()
                        .is_some_and(|pr| private_projects.contains(pr));
                ExperimentView {
                    wait_reason: reasons.get(&e.id).cloned(),
                    live: live.get(&e.id).copied(),
                    experiment: seen_by(p, e, private),
                }
            })
            .collect();
        Ok(ListPage { views, total, next })
    }

    /// The ids of the unfinished experiments `keep` accepts, in `order`.
    fn active_ids(
        &self,
        order: ListOrder,
        keep: impl Fn(&Experiment) -> bool,
    ) -> LabResult<Vec<u64>> {
        let mut ids: Vec<u64> = self.store.with_active(|active| {
            active
                .values()
                .rev()
                .filter(|e| keep(e))
                .map(|e| e.id)
                .collect()
        });
        if order == ListOrder::NextToStart {
            // Running (and starting) first, longest running first; then
            // queued ones as the scheduler takes them.
            let position: HashMap<u64, usize> = self
                .plan()?
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let id = match d {
                        Decision::Start { id, .. }
                        | Decision::Wait { id, .. }
                        | Decision::Abandon { id, .. } => *id,
                    };
                    (id, i)
                })
                .collect();
            ids.sort_by_key(|id| match position.get(id) {
                Some(at) => (1, *at, *id),
                None => (0, 0, *id),
            });
        }
        Ok(ids)
    }

    /// Whether an admin made `project` private (its experiments' output and
    /// commands are then for their owners and admins).
    pub fn project_is_private(&self, project: &str) -> LabResult<bool> {
        Ok(self.store.project_is_private(project)?)
    }

    /// The projects of unfinished experiments, sorted (the Queue tab's filter).
    pub fn active_projects(&self) -> Vec<String> {
        let mut projects: Vec<String> = self.store.with_active(|active| {
            active
                .values()
                .filter_map(|e| e.spec.project.clone())
                .collect()
        });
        projects.sort();
        projects.dedup();
        projects
    }

    /// Publishes what running experiments use now (the runner does, each tick).
    pub fn publish_live_use(&self, live: HashMap<u64, LiveUse>) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
    }

    /// What running experiments use now.
    pub fn live_use(&self) -> HashMap<u64, LiveUse> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why each queued experiment waits (or that it is about to start).
    pub fn wait_reasons(&self, _p: &Principal) -> LabResult<HashMap<u64, String>> {
        let decisions = self.plan()?;
        Ok(decisions
            .into_iter()
            .map(|d| match d {
                Decision::Start { id, .. } => (id, "starting".to_string()),
                Decision::Wait { id, reason } => (id, reason.to_string()),
                Decision::Abandon { id, reason } => (id, reason),
            })
            .collect())
    }

    /// Running experiments per Unix user (for usage screens).
    pub fn running_by_unix_user(&self) -> HashMap<String, usize> {
        self.store.with_active(|active| {
            let mut counts = HashMap::new();
            for e in active.values() {
                if matches!(e.state, State::Running { .. }) {
                    *counts.entry(e.unix_user.clone()).or_insert(0) += 1;
                }
            }
            counts
        })
    }

    /// Submits a copy of experiment `id` for the caller, with `changes` applied
    /// to its resources, priority and name: its owner's or an admin's (the
    /// same checks as `submit` apply).
    pub fn rerun(&self, p: &Principal, id: u64, changes: SubmitRequest) -> LabResult<u64> {
        let p = &self.current(p)?;
        let original = self.stored_experiment(id)?;
        if !owns_or_admin(p, &original) {
            return Err(LabError::PermissionDenied(format!(
                "only {} or an admin can rerun experiment {id}",
                original.owner
            )));
        }
        let spec = original.spec;
        let request = SubmitRequest {
            name: changes.name.or(spec.name),
            project: spec.project,
            tags: spec.tags,
            command: Some(spec.command),
            workdir: Some(spec.workdir),
            env: spec.env,
            inputs: spec.inputs,
            outputs: spec.outputs,
            params: spec.params,
            after: Vec::new(),
            cpus: changes.cpus.or(Some(spec.resources.cpus)),
            memory_bytes: changes.memory_bytes.or(Some(spec.resources.memory_bytes)),
            gpus: changes.gpus.or(Some(spec.resources.gpus)),
            time_limit_secs: changes
                .time_limit_secs
                .or(Some(spec.resources.time_limit_secs)),
            priority: if changes.priority != 0 {
                changes.priority
            } else {
                spec.priority.min(0)
            },
            private: spec.private || changes.private,
            max_output_bytes: changes.max_output_bytes.or(spec.max_output_bytes),
        };
        self.submit(p, request)
    }

    /// Runs the scheduler over the current queue.
    pub fn plan(&self) -> LabResult<Vec<Decision>> {
        self.plan_with_room().map(|(decisions, _)| decisions)
    }

    /// [`Lab::plan`], and the room its starts leave.
    pub fn plan_with_room(&self) -> LabResult<(Vec<Decision>, Room)> {
        let quotas: HashMap<String, Quota> = self.store.quotas()?.into_iter().collect();
        let recent_usage = self.recent_usage()?;
        let capacity = self.capacity();
        // The queue is planned where it lies (the cache of unfinished
        // experiments), without copies; the outcomes of finished experiments
        // that queued ones wait for are looked up first if not known yet.
        let mut unknown = Vec::new();
        // Unfinished by the store, though not yet among the active ones
        // (being written): pending for this plan.
        let mut unfinished = std::collections::HashSet::new();
        let (mut decisions, room) = loop {
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
                self.finished_dependencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, status);
            }
            let planned = self.store.with_active(|active| {
                let finished = self
                    .finished_dependencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let mut running = Vec::new();
                let mut queued = Vec::new();
                let mut dependencies = HashMap::new();
                for e in active.values() {
                    match &e.state {
                        State::Running {
                            started_at, gpus, ..
                        } => running.push(RunningJob {
                            id: e.id,
                            owner: e.owner.clone(),
                            resources: e.spec.resources,
                            gpus: gpus.clone(),
                            ends_by: e.spec.resources.ends_by(*started_at),
                        }),
                        State::Starting { gpus } => running.push(RunningJob {
                            id: e.id,
                            owner: e.owner.clone(),
                            resources: e.spec.resources,
                            gpus: gpus.clone(),
                            ends_by: e.spec.resources.ends_by(now()),
                        }),
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
                    schedule_with_room(&SchedulerInput {
                        now: now(),
                        capacity: &capacity,
                        running: &running,
                        queued: &queued,
                        quotas: &quotas,
                        recent_usage: &recent_usage,
                        dependencies: &dependencies,
                    })
                })
            });
            if let Some(planned) = planned {
                break planned;
            }
            unknown.sort_unstable();
            unknown.dedup();
        };
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
    fn recent_usage(&self) -> LabResult<HashMap<String, f64>> {
        let mut cache = self.fair_share.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, usage)) = cache.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(60)
        {
            return Ok(usage.clone());
        }
        let usage = self.compute_recent_usage()?;
        *cache = Some((std::time::Instant::now(), usage.clone()));
        Ok(usage)
    }

    fn compute_recent_usage(&self) -> LabResult<HashMap<String, f64>> {
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

    /// Cancels experiments: the owner or an admin. Queued ones end at once
    /// (the finished state is returned); running ones are stopped by the
    /// executor (their current state is returned).
    pub fn cancel(&self, p: &Principal, id: u64) -> LabResult<State> {
        let p = &self.current(p)?;
        let experiment = self.stored_experiment(id)?;
        if !(p.is_admin() || (owns(p, &experiment) && p.role != Role::Viewer)) {
            return Err(LabError::PermissionDenied(format!(
                "only {} or an admin can cancel experiment {id}",
                experiment.owner
            )));
        }
        match &experiment.state {
            State::Finished { .. } => Err(LabError::Invalid(format!(
                "experiment {id} already ended ({})",
                experiment.state.name()
            ))),
            State::Queued => {
                let reason = format!("cancelled by {} while queued", p.user);
                let Some(state) = self.stage_cancel_if_queued(id, &reason)? else {
                    // The runner got there first: cancel what it started.
                    return self.cancel(p, id);
                };
                self.store.flush()?;
                self.audit(p, format!("cancelled experiment {id}"))?;
                self.queue_changed();
                Ok(state)
            }
            State::Starting { .. } | State::Running { .. } => {
                let runner = self.runner.as_ref().ok_or_else(|| {
                    LabError::Invalid(format!(
                        "experiment {id} is running under the server: cancel it with `ssh lab@host cancel {id}`"
                    ))
                })?;
                if !runner.cancel(id, format!("cancelled by {}", p.user)) {
                    return Err(LabError::Unavailable(format!(
                        "the server is stopping; experiment {id} runs on (cancel it again once the server is back)"
                    )));
                }
                self.audit(p, format!("cancelled experiment {id}"))?;
                Ok(experiment.state)
            }
        }
    }

    /// Ends experiment `id` as cancelled with `reason` if it is still
    /// queued (decided on the record it writes over: the runner may start
    /// it meanwhile); not flushed. Its new state, or `None` if it was no
    /// longer queued.
    fn stage_cancel_if_queued(&self, id: u64, reason: &str) -> LabResult<Option<State>> {
        let cancelled = self.store.update_experiment(id, |e| {
            if e.state != State::Queued {
                return Ok::<_, LabError>(None);
            }
            let at = now();
            e.state = State::Finished {
                outcome: Outcome::Cancelled,
                exit_code: None,
                signal: None,
                stop: None,
                started_at: None,
                ended_at: at,
            };
            e.transitions.push(Transition {
                at,
                to: "cancelled".into(),
                reason: reason.to_string(),
            });
            Ok(Some(e.state.clone()))
        })?;
        Ok(cancelled.flatten())
    }

    /// Cancels every queued experiment of `owner` with `reason` (their
    /// owner was removed); returns their ids.
    pub(super) fn cancel_queued_of(&self, owner: &str, reason: &str) -> LabResult<Vec<u64>> {
        let queued: Vec<u64> = self.store.with_active(|active| {
            active
                .values()
                .filter(|e| e.owner == owner && e.state == State::Queued)
                .map(|e| e.id)
                .collect()
        });
        let mut cancelled = Vec::new();
        for id in queued {
            if self.stage_cancel_if_queued(id, reason)?.is_some() {
                cancelled.push(id);
            }
        }
        if !cancelled.is_empty() {
            self.store.flush()?;
            self.queue_changed();
        }
        Ok(cancelled)
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

    /// Changes a queued experiment's priority (admin only).
    pub fn set_priority(&self, p: &Principal, id: u64, priority: i32) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "change priorities")?;
        self.stored_experiment(id)?;
        // Decided on the record it writes over: the runner may start it meanwhile.
        let old = self
            .store
            .update_experiment(id, |experiment| {
                if experiment.state != State::Queued {
                    return Err(LabError::Invalid(format!(
                        "experiment {id} is {}; only queued experiments have a priority to change",
                        experiment.state.name()
                    )));
                }
                Ok(std::mem::replace(&mut experiment.spec.priority, priority))
            })?
            .ok_or_else(|| LabError::NotFound(format!("no experiment {id}")))?;
        self.audit(
            p,
            format!("changed priority of experiment {id} from {old} to {priority}"),
        )?;
        self.queue_changed();
        Ok(())
    }

    /// Marks `project` private (its experiments' output and what they run
    /// are for their owners and admins) or not (admin only).
    pub fn set_project_private(
        &self,
        p: &Principal,
        project: &str,
        private: bool,
    ) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "make projects private or public")?;
        if project.is_empty()
            || project.chars().count() > MAX_LABEL
            || project.chars().any(char::is_control)
        {
            return Err(LabError::Invalid(format!(
                "invalid project {project:?}: 1–{MAX_LABEL} printable characters"
            )));
        }
        self.store.set_project_private(project, private)?;
        let what = if private { "private" } else { "public" };
        self.audit(p, format!("made project {project} {what}"))?;
        self.notify_queue();
        Ok(())
    }

    /// Sets a user's quota (admin only).
    pub fn set_quota(&self, p: &Principal, user: &str, quota: Quota) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "set quotas")?;
        self.existing_user_record(user)?;
        if quota.max_time_secs.is_some_and(|t| t > MAX_DURATION_SECS) {
            return Err(LabError::Invalid(
                "--max-time: at most 365d (the longest wall-time limit)".into(),
            ));
        }
        self.store.put_quota(user, &quota)?;
        self.audit(p, format!("set quota of {user}: {quota:?}"))?;
        self.queue_changed();
        Ok(())
    }

    /// A user's quota (themselves, or anyone for admins).
    pub fn quota(&self, p: &Principal, user: &str) -> LabResult<Quota> {
        let p = &self.current(p)?;
        super::require_self_or_admin(p, user, "see this quota")?;
        Ok(self.store.quota(user)?)
    }

    fn existing_user_record(&self, name: &str) -> LabResult<crate::model::User> {
        self.store
            .user(name)?
            .ok_or_else(|| LabError::NotFound(format!("no user named {name}")))
    }
}

/// Whether `p` owns `e` (theirs, not an earlier account's of the same
/// name) or is an admin.
fn owns_or_admin(p: &Principal, e: &Experiment) -> bool {
    p.is_admin() || owns(p, e)
}

/// Whether `e` is `p`'s own.
fn owns(p: &Principal, e: &Experiment) -> bool {
    p.user == e.owner && e.submitted_at >= p.since
}

/// What stands in for a value the caller may not see.
pub const HIDDEN: &str = "(hidden)";

/// What `p` may see of experiment `e`: everything for its owner and
/// admins. Others see the names of its environment variables but not their
/// values (they carry tokens and passwords); of a `private` one (itself or
/// through its project), its owner, name, project, tags, requests and
/// state, but not what it runs, where, or with what.
fn seen_by(p: &Principal, mut e: Experiment, private: bool) -> Experiment {
    if owns_or_admin(p, &e) {
        return e;
    }
    for (_, value) in &mut e.spec.env {
        *value = HIDDEN.into();
    }
    if private {
        let spec = &mut e.spec;
        spec.command = CommandLine::Shell(HIDDEN.into());
        spec.workdir = PathBuf::from(HIDDEN);
        spec.env.clear();
        spec.params.clear();
        spec.inputs.clear();
        spec.outputs.clear();
    }
    e
}

/// Why a request exceeds a quota outright (not just given current use).
fn larger_than_quota(quota: &Quota, r: &Resources) -> Option<String> {
    if let Some(max) = quota.max_cpus
        && r.cpus > max
    {
        return Some(format!("{} CPUs asked, max {max}", r.cpus));
    }
    if let Some(max) = quota.max_memory_bytes
        && r.memory_bytes > max
    {
        return Some(format!(
            "{} memory asked, max {}",
            crate::units::short_bytes(r.memory_bytes as f64),
            crate::units::short_bytes(max as f64)
        ));
    }
    if let Some(max) = quota.max_gpus
        && r.gpus > max
    {
        return Some(format!("{} GPUs asked, max {max}", r.gpus));
    }
    if let Some(max) = quota.max_time_secs
        && r.time_limit_secs > max
    {
        return Some(format!(
            "{} s wall time asked, max {max} s",
            r.time_limit_secs
        ));
    }
    if quota.max_running == Some(0) {
        return Some("you may not run experiments (max 0 running)".into());
    }
    None
}

/// Why `--env NAME=…` is refused for a reserved `name`.
pub fn reserved_env_message(name: &str) -> String {
    format!(
        "--env {name}: labbench sets {name} for every experiment (the GPUs it assigned, its own \
         variables); it cannot be overridden"
    )
}

/// Longest a `--workdir` check may take.
const WORKDIR_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a `--workdir` an account passed is not checked again.
const WORKDIR_PASSED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The Unix account `owner`'s experiments run as: refused when none is
/// set, it does not exist here, or it is a system account an admin did
/// not allow.
fn run_as(owner: &User) -> LabResult<Account> {
    let Some(name) = &owner.unix_user else {
        return Err(LabError::Invalid(format!(
            "no Unix account is set for {0}, so their experiments cannot run: an admin must set \
             one (user set-unix {0} UNIX_USER)",
            owner.name
        )));
    };
    let account = accounts::by_name(name)
        .map_err(LabError::Unavailable)?
        .ok_or_else(|| {
            LabError::Invalid(format!(
                "unix user {name} does not exist on this host; an admin must create it or map {} \
                 to another (user set-unix)",
                owner.name
            ))
        })?;
    if accounts::is_system_uid(account.uid) && !owner.system_account_allowed {
        return Err(LabError::Invalid(format!(
            "unix user {name} is a system account (uid {}); an admin must allow it (user \
             set-unix {} {name} --allow-system-account) or map another",
            account.uid, owner.name
        )));
    }
    Ok(account)
}

/// Refuses a working directory `account` cannot enter and list, as the
/// kernel decides for it. One message whether it is missing or closed to
/// the account, so a refusal tells nothing about what the account cannot see.
///
/// A directory an account may enter is taken as such for
/// [`WORKDIR_PASSED_FOR`] (a script that submits many experiments from one
/// directory costs one check, not a thread each); the command's start
/// enters it as the account anyway, and fails clearly if it no longer may.
///
/// The check can hang on a filesystem that does not answer (a user's own
/// FUSE mount): it is given [`WORKDIR_CHECK_TIMEOUT`], after which the
/// directory is refused, and an account has one check at a time (`in_flight`:
/// accounts whose check has not returned), so that none can tie up the
/// daemon's threads.
fn check_workdir(
    dir: &Path,
    account: &Account,
    in_flight: &std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
) -> LabResult<()> {
    if !dir.is_absolute() {
        return Err(LabError::Invalid(format!(
            "--workdir {}: use an absolute path",
            dir.display()
        )));
    }
    static PASSED: std::sync::OnceLock<accounts::Kept<(u32, PathBuf), ()>> =
        std::sync::OnceLock::new();
    let passed = PASSED.get_or_init(accounts::Kept::new);
    let key = (account.uid, dir.to_path_buf());
    if passed.get(&key).is_some() {
        return Ok(());
    }
    let groups = accounts::groups_of(&account.name, account.gid).map_err(LabError::Unavailable)?;
    if !in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(account.uid)
    {
        return Err(LabError::Unavailable(format!(
            "the check of an earlier --workdir of unix user {} has not returned (is its \
             filesystem answering?); try again later",
            account.name
        )));
    }
    let (path, uid, gid, checks) = (
        dir.to_path_buf(),
        account.uid,
        account.gid,
        in_flight.clone(),
    );
    let checked = accounts::within(WORKDIR_CHECK_TIMEOUT, move || {
        let may = crate::sys::fs::may_enter_as(&path, uid, gid, &groups);
        checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid);
        may
    });
    if checked == Ok(true) {
        passed.put(key, (), WORKDIR_PASSED_FOR);
        return Ok(());
    }
    Err(LabError::Invalid(format!(
        "--workdir {}: no such directory, or unix user {} cannot enter and list it",
        dir.display(),
        account.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::QueueNews;
    use crate::lab::testing::{lab_with_admin, principal};

    fn echo() -> SubmitRequest {
        SubmitRequest {
            command: Some(CommandLine::Argv(vec!["echo".into(), "hi".into()])),
            workdir: Some(PathBuf::from("/tmp")),
            ..SubmitRequest::default()
        }
    }

    #[test]
    fn viewer_cannot_submit_member_can() {
        let (_d, lab) = lab_with_admin();
        let viewer = principal(&lab, "vera", Role::Viewer);
        assert!(matches!(
            lab.submit(&viewer, echo()),
            Err(LabError::PermissionDenied(_))
        ));
        let member = principal(&lab, "mike", Role::Member);
        let id = lab.submit(&member, echo()).expect("submit");
        let e = lab.experiment(&member, id).expect("show");
        assert_eq!(e.owner, "mike");
        assert_eq!(e.state, State::Queued);
        assert_eq!(e.spec.resources.cpus, 1.0);
        assert_eq!(e.transitions[0].to, "queued");
    }

    #[test]
    fn queue_news_tells_the_runner_what_could_start() {
        let (_d, lab) = lab_with_admin();
        let member = principal(&lab, "mike", Role::Member);
        let _ = lab.take_queue_news();
        let first = lab.submit(&member, echo()).expect("first");
        let news = lab.take_queue_news();
        assert_eq!(news.submitted.len(), 1);
        assert_eq!(news.submitted[0].cpus, 1.0);
        assert!(!news.other);
        // Waiting for an unfinished experiment: it cannot start yet.
        let waiting = SubmitRequest {
            after: vec![first],
            ..echo()
        };
        lab.submit(&member, waiting).expect("second");
        assert_eq!(lab.take_queue_news(), QueueNews::default());
        // Cancelling a queued experiment can unblock others.
        lab.cancel(&member, first).expect("cancel");
        assert!(lab.take_queue_news().other);
        let (decisions, room) = lab.plan_with_room().expect("plan");
        assert!(
            decisions
                .iter()
                .any(|d| matches!(d, Decision::Abandon { .. })),
            "{decisions:?}"
        );
        assert_eq!(room.cpus, lab.capacity().cpus);
    }

    /// Records experiment `id` as the runner would, in `state`.
    fn record(lab: &Lab, id: u64, state: State) {
        let change = StateChange {
            id,
            steps: vec![(state, "by the test".into())],
            usage: None,
        };
        assert!(lab.stage_transitions(vec![change])[0].is_ok());
        lab.commit_transitions().expect("commit");
    }

    #[test]
    fn queued_experiments_follow_how_their_dependencies_ended() {
        let (_d, lab) = lab_with_admin();
        let member = principal(&lab, "mike", Role::Member);
        let first = lab.submit(&member, echo()).expect("first");
        let second = lab.submit(&member, echo()).expect("second");
        let after = |dep| SubmitRequest {
            after: vec![dep],
            ..echo()
        };
        let on_first = lab.submit(&member, after(first)).expect("on first");
        let on_second = lab.submit(&member, after(second)).expect("on second");
        for (id, outcome) in [(first, Outcome::Succeeded), (second, Outcome::Failed)] {
            let end = State::Finished {
                outcome,
                exit_code: None,
                signal: None,
                stop: None,
                started_at: None,
                ended_at: now(),
            };
            record(&lab, id, end);
        }
        // The second plan knows how they ended without reading them again.
        for _ in 0..2 {
            let decisions = lab.plan().expect("plan");
            assert!(
                decisions
                    .iter()
                    .any(|d| matches!(d, Decision::Start { id, .. } if *id == on_first)),
                "{decisions:?}"
            );
            assert!(
                decisions
                    .iter()
                    .any(|d| matches!(d, Decision::Abandon { id, .. } if *id == on_second)),
                "{decisions:?}"
            );
        }
    }

    #[test]
    fn a_cancel_once_the_runner_has_stopped_is_refused_clearly() {
        let (_d, lab) = lab_with_admin();
        let (runner, commands) = crate::lab::RunnerHandle::new();
        drop(commands);
        let lab = lab.with_runner(runner);
        let member = principal(&lab, "mike", Role::Member);
        let id = lab.submit(&member, echo()).expect("submit");
        let running = State::Running {
            started_at: now(),
            pid: 1,
            pid_start_time: 0,
            cgroup: None,
            gpus: Vec::new(),
        };
        record(&lab, id, running);
        match lab.cancel(&member, id) {
            Err(LabError::Unavailable(why)) => assert!(why.contains("stopping"), "{why}"),
            other => panic!("{other:?}"),
        }
        let e = lab.experiment(&member, id).expect("show");
        assert_eq!(e.state.name(), "running");
    }

    #[test]
    fn ids_are_monotonic() {
        let (_d, lab) = lab_with_admin();
        let member = principal(&lab, "mike", Role::Member);
        let a = lab.submit(&member, echo()).expect("a");
        let b = lab.submit(&member, echo()).expect("b");
        assert!(b > a);
    }

    #[test]
    fn bad_submissions_are_refused_and_nothing_is_queued() {
        let (_d, lab) = lab_with_admin();
        let member = principal(&lab, "mike", Role::Member);
        let cases = [
            SubmitRequest {
                command: None,
                ..echo()
            },
            SubmitRequest {
                gpus: Some(1),
                ..echo()
            },
            SubmitRequest {
                cpus: Some(64.0),
                ..echo()
            },
            SubmitRequest {
                memory_bytes: Some(1 << 40),
                ..echo()
            },
            SubmitRequest {
                workdir: Some(PathBuf::from("/no/such/dir")),
                ..echo()
            },
            SubmitRequest {
                workdir: Some(PathBuf::from("relative")),
                ..echo()
            },
            SubmitRequest {
                after: vec![999],
                ..echo()
            },
            SubmitRequest {
                env: vec![("A=B".into(), "x".into())],
                ..echo()
            },
            SubmitRequest {
                name: Some("bad\u{1b}[2J".into()),
                ..echo()
            },
            SubmitRequest {
                time_limit_secs: Some(u64::MAX),
                ..echo()
            },
            SubmitRequest {
                env: vec![("CUDA_VISIBLE_DEVICES".into(), "0,1,2,3".into())],
                ..echo()
            },
            SubmitRequest {
                env: vec![("LABBENCH_METRICS".into(), "/etc/passwd".into())],
                ..echo()
            },
            SubmitRequest {
                time_limit_secs: Some(MAX_DURATION_SECS + 1),
                ..echo()
            },
        ];
        for case in cases {
            let err = lab.submit(&member, case.clone()).expect_err("refused");
            assert!(matches!(err, LabError::Invalid(_)), "{case:?}: {err}");
        }
        assert!(lab.store().active_experiments().expect("active").is_empty());
        let err = lab
            .submit(
                &member,
                SubmitRequest {
                    gpus: Some(2),
                    ..echo()
                },
            )
            .expect_err("gpus");
        assert_eq!(err.to_string(), "--gpus 2 is more than this host has (0)");
    }

    #[test]
    fn quota_refuses_oversized_requests_and_holds_back_extra_runs() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let member = principal(&lab, "mike", Role::Member);
        lab.set_quota(
            &admin,
            "mike",
            Quota {
                max_cpus: Some(2.0),
                max_running: Some(1),
                ..Quota::default()
            },
        )
        .expect("quota");
        let err = lab
            .submit(
                &member,
                SubmitRequest {
                    cpus: Some(4.0),
                    ..echo()
                },
            )
            .expect_err("too big");
        assert!(err.to_string().contains("larger than your quota"), "{err}");
        let a = lab.submit(&member, echo()).expect("a");
        let b = lab.submit(&member, echo()).expect("b");
        let reasons = lab.wait_reasons(&member).expect("reasons");
        assert_eq!(reasons.get(&a).map(String::as_str), Some("starting"));
        assert!(
            reasons.get(&b).is_some_and(|r| r.contains("over quota"))
                || reasons.get(&b).map(String::as_str) == Some("starting")
        );
        assert!(matches!(
            lab.set_quota(&member, "mike", Quota::default()),
            Err(LabError::PermissionDenied(_))
        ));
    }

    #[test]
    fn cancel_rules_per_role() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let mary = principal(&lab, "mary", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        let id = lab.submit(&mike, echo()).expect("submit");
        assert!(matches!(
            lab.cancel(&mary, id),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.cancel(&vera, id),
            Err(LabError::PermissionDenied(_))
        ));
        lab.cancel(&mike, id).expect("own");
        assert_eq!(
            lab.experiment(&mike, id).expect("e").state.name(),
            "cancelled"
        );
        let other = lab.submit(&mike, echo()).expect("submit");
        lab.cancel(&admin, other).expect("admin may cancel any");
        assert!(matches!(
            lab.cancel(&admin, other),
            Err(LabError::Invalid(_))
        ));
    }

    #[test]
    fn priority_is_admin_only() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let id = lab.submit(&mike, echo()).expect("submit");
        assert!(matches!(
            lab.set_priority(&mike, id, 5),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.submit(
                &mike,
                SubmitRequest {
                    priority: 3,
                    ..echo()
                }
            ),
            Err(LabError::PermissionDenied(_))
        ));
        lab.set_priority(&admin, id, 5).expect("admin");
        assert_eq!(lab.experiment(&admin, id).expect("e").spec.priority, 5);
    }

    #[test]
    fn rerun_copies_the_spec_with_changes() {
        let (_d, lab) = lab_with_admin();
        let mike = principal(&lab, "mike", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        let first = lab
            .submit(
                &mike,
                SubmitRequest {
                    name: Some("a".into()),
                    ..echo()
                },
            )
            .expect("submit");
        let again = lab
            .rerun(
                &mike,
                first,
                SubmitRequest {
                    cpus: Some(2.0),
                    ..SubmitRequest::default()
                },
            )
            .expect("rerun");
        let e = lab.experiment(&mike, again).expect("e");
        assert_eq!(e.spec.resources.cpus, 2.0);
        assert_eq!(e.spec.name.as_deref(), Some("a"));
        assert_eq!(
            e.spec.command,
            CommandLine::Argv(vec!["echo".into(), "hi".into()])
        );
        assert!(matches!(
            lab.rerun(&vera, first, SubmitRequest::default()),
            Err(LabError::PermissionDenied(_))
        ));
    }

    #[test]
    fn others_see_the_names_of_environment_variables_but_not_their_values() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let mary = principal(&lab, "mary", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        let id = lab
            .submit(
                &mike,
                SubmitRequest {
                    env: vec![("API_TOKEN".into(), "s3cret".into())],
                    ..echo()
                },
            )
            .expect("submit");
        let env_seen_by = |p: &Principal| {
            let shown = lab.experiment(p, id).expect("show").spec.env;
            let listed = lab
                .list_experiments(p, &ListFilter::default())
                .expect("ls")
                .views
                .remove(0)
                .experiment
                .spec
                .env;
            assert_eq!(shown, listed);
            shown
        };
        for other in [&mary, &vera] {
            assert_eq!(
                env_seen_by(other),
                vec![("API_TOKEN".to_string(), HIDDEN.to_string())]
            );
        }
        for allowed in [&mike, &admin] {
            assert_eq!(env_seen_by(allowed)[0].1, "s3cret");
        }
    }

    #[test]
    fn private_experiments_and_projects_keep_output_and_commands_from_others() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let mary = principal(&lab, "mary", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        let open = lab.submit(&mike, echo()).expect("open");
        let private = lab
            .submit(
                &mike,
                SubmitRequest {
                    private: true,
                    ..echo()
                },
            )
            .expect("private");
        let in_project = lab
            .submit(
                &mike,
                SubmitRequest {
                    project: Some("merger".into()),
                    ..echo()
                },
            )
            .expect("in project");
        assert!(matches!(
            lab.set_project_private(&mike, "merger", true),
            Err(LabError::PermissionDenied(_))
        ));
        lab.set_project_private(&admin, "merger", true)
            .expect("admin makes it private");
        for p in [&mike, &mary, &vera, &admin] {
            assert!(lab.check_output_readable(p, open).is_ok(), "{}", p.user);
        }
        for id in [private, in_project] {
            for p in [&mike, &admin] {
                assert!(lab.check_output_readable(p, id).is_ok());
                let e = lab.experiment(p, id).expect("show");
                assert_eq!(e.spec.command, echo().command.expect("command"));
            }
            for p in [&mary, &vera] {
                assert!(matches!(
                    lab.check_output_readable(p, id),
                    Err(LabError::PermissionDenied(_))
                ));
                let e = lab.experiment(p, id).expect("still listed");
                assert_eq!(e.spec.command, CommandLine::Shell(HIDDEN.into()));
            }
        }
        lab.set_project_private(&admin, "merger", false)
            .expect("public again");
        assert!(lab.check_output_readable(&vera, in_project).is_ok());
    }

    #[test]
    fn rerun_is_the_owners_or_an_admins() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let mary = principal(&lab, "mary", Role::Member);
        let id = lab.submit(&mike, echo()).expect("submit");
        assert!(matches!(
            lab.rerun(&mary, id, SubmitRequest::default()),
            Err(LabError::PermissionDenied(_))
        ));
        let copy = lab
            .rerun(&admin, id, SubmitRequest::default())
            .expect("admin");
        assert_eq!(lab.experiment(&admin, copy).expect("copy").owner, "root");
    }

    #[test]
    fn a_role_change_applies_to_a_principal_from_before_it() {
        let (_d, lab) = lab_with_admin();
        let root = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        // Ada logged in as an admin ...
        let ada = principal(&lab, "ada", Role::Admin);
        let id = lab.submit(&mike, echo()).expect("submit");
        // ... and was demoted while connected.
        lab.set_role(&root, "ada", Role::Viewer).expect("demote");
        assert!(matches!(
            lab.cancel(&ada, id),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.set_priority(&ada, id, 5),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.submit(&ada, echo()),
            Err(LabError::PermissionDenied(_))
        ));
        let e = lab.experiment(&root, id).expect("unchanged");
        assert_eq!((e.state, e.spec.priority), (State::Queued, 0));
    }

    #[test]
    fn removing_a_user_cancels_their_queued_experiments_and_none_starts() {
        let (_d, lab) = lab_with_admin();
        let root = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let ids = [
            lab.submit(&mike, echo()).expect("a"),
            lab.submit(&mike, echo()).expect("b"),
        ];
        let revoked = lab.revocations();
        let cancelled = lab.remove_user(&root, "mike").expect("remove");
        assert_eq!(cancelled, ids);
        assert!(revoked.has_changed().expect("open"));
        for id in ids {
            let e = lab.experiment(&root, id).expect("kept");
            assert_eq!(e.state.name(), "cancelled");
            assert_eq!(
                e.transitions.last().map(|t| t.reason.as_str()),
                Some("its owner mike was removed by root")
            );
        }
        assert!(matches!(
            lab.submit(&mike, echo()),
            Err(LabError::PermissionDenied(_))
        ));
        // One queued while its owner was being removed never starts either.
        let mary = principal(&lab, "mary", Role::Member);
        let late = lab.submit(&mary, echo()).expect("late");
        lab.store().remove_user("mary").expect("gone");
        let decisions = lab.plan().expect("plan");
        assert!(
            decisions.iter().any(
                |d| matches!(d, Decision::Abandon { id, reason } if *id == late && reason == "its owner mary was removed")
            ),
            "{decisions:?}"
        );
        // Nor one of a user removed and added again under the same name
        // meanwhile (a run queued again after its start was cut short).
        let olga = principal(&lab, "olga", Role::Member);
        let earlier = lab.submit(&olga, echo()).expect("earlier");
        let mut again = lab.store().user("olga").expect("read").expect("olga");
        again.created_at = lab.experiment(&root, earlier).expect("e").submitted_at + 1;
        lab.store().put_user(&again).expect("re-added");
        let decisions = lab.plan().expect("plan");
        assert!(
            decisions.iter().any(
                |d| matches!(d, Decision::Abandon { id, reason } if *id == earlier && reason == "its owner olga was removed")
            ),
            "{decisions:?}"
        );
    }

    #[test]
    fn ls_hides_finished_unless_all() {
        let (_d, lab) = lab_with_admin();
        let mike = principal(&lab, "mike", Role::Member);
        let a = lab.submit(&mike, echo()).expect("a");
        let b = lab.submit(&mike, echo()).expect("b");
        lab.cancel(&mike, a).expect("cancel");
        let active = lab
            .list_experiments(&mike, &ListFilter::default())
            .expect("ls");
        assert_eq!(
            active
                .views
                .iter()
                .map(|v| v.experiment.id)
                .collect::<Vec<_>>(),
            vec![b]
        );
        assert_eq!((active.total, active.next), (Some(1), None));
        let all = lab
            .list_experiments(
                &mike,
                &ListFilter {
                    all: true,
                    ..ListFilter::default()
                },
            )
            .expect("ls");
        assert_eq!(
            all.views
                .iter()
                .map(|v| v.experiment.id)
                .collect::<Vec<_>>(),
            vec![b, a]
        );
        let cancelled = lab
            .list_experiments(
                &mike,
                &ListFilter {
                    state: Some("cancelled".into()),
                    ..ListFilter::default()
                },
            )
            .expect("ls");
        assert_eq!(cancelled.views.len(), 1);
    }

    #[test]
    fn long_listings_come_in_pages_in_either_order() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let low = lab.submit(&mike, echo()).expect("low");
        let ids: Vec<u64> = (0..5)
            .map(|_| lab.submit(&mike, echo()).expect("id"))
            .collect();
        lab.set_priority(&admin, low, 9).expect("first to start");
        let filter = ListFilter {
            limit: 2,
            ..ListFilter::default()
        };
        let first = lab.list_experiments(&mike, &filter).expect("page");
        assert_eq!(first.total, Some(6));
        let newest: Vec<u64> = first.views.iter().map(|v| v.experiment.id).collect();
        assert_eq!(newest, vec![ids[4], ids[3]]);
        let rest = lab
            .list_page(&mike, &filter, first.next.expect("more"), 10)
            .expect("rest");
        assert_eq!(rest.views.len(), 4);
        assert_eq!(rest.next, None);
        let next_first = ListFilter {
            order: ListOrder::NextToStart,
            ..filter.clone()
        };
        let page = lab.list_experiments(&mike, &next_first).expect("page");
        assert_eq!(
            page.views[0].experiment.id, low,
            "the highest priority starts next"
        );
        // History: newest first, page by page below the last id seen.
        let all = ListFilter {
            all: true,
            limit: 4,
            ..ListFilter::default()
        };
        let page = lab.list_experiments(&mike, &all).expect("history");
        assert_eq!(page.total, None);
        let Some(ListFrom::Before(below)) = page.next else {
            panic!("{:?}", page.next);
        };
        assert_eq!(below, ids[1]);
        let too_many = ListFilter {
            limit: MAX_LIST_LIMIT + 1,
            ..ListFilter::default()
        };
        assert!(matches!(
            lab.list_experiments(&mike, &too_many),
            Err(LabError::Invalid(_))
        ));
    }

    #[test]
    fn a_member_cannot_queue_more_than_the_queue_allows() {
        let (_d, lab) = lab_with_admin();
        let lab = lab.with_queue_settings(QueueSettings {
            max_queued_per_user: 3,
            ..QueueSettings::default()
        });
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        for _ in 0..3 {
            lab.submit(&mike, echo()).expect("within");
        }
        let err = lab.submit(&mike, echo()).expect_err("over");
        assert!(matches!(err, LabError::Unavailable(_)), "{err}");
        lab.set_quota(
            &admin,
            "mike",
            Quota {
                max_queued: Some(4),
                ..Quota::default()
            },
        )
        .expect("quota");
        lab.submit(&mike, echo())
            .expect("the quota allows one more");
        assert_eq!(lab.store().active_experiments().expect("active").len(), 4);
    }
}
