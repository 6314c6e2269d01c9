//! Scheduling: which queued experiments start now, and why the others wait.
//!
//! A pure function of its input (capacity, running and queued experiments,
//! quotas, recent usage, dependency outcomes, the time), so every rule is
//! tested without processes or clocks. Must not start anything or touch the
//! store: the service acts on its decisions.
//!
//! The rules:
//!
//! - An experiment starts when its CPUs, memory and GPUs are free by
//!   reservation (not by measured use), its owner stays within their quota
//!   (their own limits, the default's where they set none: running
//!   experiments, CPUs, memory, GPUs, GPU-hours and cost reserved this
//!   month; the wall-time quota is checked at submission) and its project
//!   within the project's (all its experiments together) ([`quota`]).
//! - Order: priority (high first), then fair share (fewer CPU-hours over the
//!   last 7 days first), then submission time.
//! - The first experiment that does not fit is the head: later ones start
//!   before it (backfill) only when their time limit ends before the head
//!   could start, so large requests are not starved.
//! - `--after ID` waits for ID to succeed, and is abandoned
//!   ([`Decision::Abandon`]) if it does not.
//! - GPUs are given whole, never two experiments on one GPU.
//! - The service starts nothing while the data disk is below its reserve
//!   ([`WaitReason::DiskFull`]).
//!
//! Each experiment that waits gets a [`WaitReason`], whose text `ls` shows
//! ("waiting for 2 GPU(s); 1 free", "over quota: max 4 running").

use std::collections::{BTreeSet, HashMap};

use crate::model::Resources;

pub mod preview;
pub mod quota;

use quota::Ledger;
pub use quota::{Held, MonthUse, QuotaExceeded, Quotas};

/// What the host offers to experiments.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Schedulable CPU cores.
    pub cpus: f64,
    /// Schedulable memory, bytes.
    pub memory_bytes: u64,
    /// GPU indices that exist.
    pub gpus: Vec<u32>,
}

pub use crate::model::Quota;

/// An experiment holding resources.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    /// Experiment id.
    pub id: u64,
    /// Owner.
    pub owner: String,
    /// Its project, if any.
    pub project: Option<String>,
    /// What it holds.
    pub resources: Resources,
    /// GPU indices it holds.
    pub gpus: Vec<u32>,
    /// When its wall-time limit ends it at the latest (seconds since the epoch).
    pub ends_by: i64,
}

/// An experiment waiting to start (borrowing from its record: the queue
/// can be long, and is planned at every start).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob<'a> {
    /// Experiment id.
    pub id: u64,
    /// Owner.
    pub owner: &'a str,
    /// Its project, if any.
    pub project: Option<&'a str>,
    /// Higher first.
    pub priority: i32,
    /// Submission time.
    pub submitted_at: i64,
    /// What it asks for.
    pub resources: Resources,
    /// Experiments that must succeed first.
    pub after: &'a [u64],
}

/// How a dependency stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// Not finished yet.
    Pending,
    /// Finished successfully.
    Succeeded,
    /// Finished any other way.
    Failed,
}

/// Everything the scheduler looks at.
#[derive(Debug, Clone)]
pub struct SchedulerInput<'a> {
    /// Now, seconds since the epoch.
    pub now: i64,
    /// The host.
    pub capacity: &'a Capacity,
    /// Experiments holding resources.
    pub running: &'a [RunningJob],
    /// Experiments waiting.
    pub queued: &'a [QueuedJob<'a>],
    /// The quotas: by owner, by project, the default.
    pub quotas: &'a Quotas,
    /// Recent usage by owner (e.g. CPU-hours over 7 days), for fair share.
    pub recent_usage: &'a HashMap<String, f64>,
    /// Outcome of every experiment some queued one depends on.
    pub dependencies: &'a HashMap<u64, Dependency>,
}

/// The scheduler's verdict on one queued experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start it now with these GPUs.
    Start {
        /// Experiment id.
        id: u64,
        /// GPU indices assigned.
        gpus: Vec<u32>,
    },
    /// Keep it queued, for this reason.
    Wait {
        /// Experiment id.
        id: u64,
        /// Why, for `ls` (rendered only when shown: the runner plans often).
        reason: WaitReason,
    },
    /// It can never run (a dependency failed).
    Abandon {
        /// Experiment id.
        id: u64,
        /// Why.
        reason: String,
    },
}

/// Why a queued experiment waits. Its `Display` is the text `ls` shows.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitReason {
    /// Experiment `0` must succeed first and has not finished.
    Dependency(u64),
    /// Starting it would take its owner over a quota.
    OverQuota(QuotaExceeded),
    /// Starting it would take its project over the project's quota.
    OverProjectQuota(QuotaExceeded),
    /// It fits now but would delay experiment `0`, the head of the queue.
    Behind(u64),
    /// The data disk has less free than labbench keeps free: nothing starts
    /// (its logs could not be written), whatever the resources.
    DiskFull {
        /// Bytes free on the data directory's filesystem.
        free: u64,
        /// Bytes labbench keeps free there.
        reserve: u64,
    },
    /// Not enough is free; `free` is what was left when it was considered.
    Resources {
        /// What it asks for.
        wanted: Resources,
        /// What was free at that point.
        free: Room,
    },
    /// Its owner's account is disabled: it waits until it is enabled.
    OwnerDisabled,
    /// Something it needs cannot be checked now (the name service does
    /// not answer, say): it is decided again at the next plan.
    Unchecked(String),
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::units::short_bytes;
        if let WaitReason::Unchecked(why) = self {
            return write!(f, "waiting: {why}");
        }
        match *self {
            WaitReason::Dependency(dep) => write!(f, "waiting for experiment {dep} to succeed"),
            WaitReason::Behind(head) => {
                write!(f, "behind experiment {head}: starting now would delay it")
            }
            WaitReason::OverQuota(exceeded) => write!(f, "over quota: {exceeded}"),
            WaitReason::OverProjectQuota(exceeded) => write!(f, "over project quota: {exceeded}"),
            WaitReason::DiskFull { free, reserve } => write!(
                f,
                "waiting for disk space: {} free on the data disk, {} kept free",
                short_bytes(free as f64),
                short_bytes(reserve as f64)
            ),
            WaitReason::Resources { wanted, free } => {
                if wanted.gpus as usize > free.gpus {
                    write!(f, "waiting for {} GPU(s); {} free", wanted.gpus, free.gpus)
                } else if wanted.cpus > free.cpus + 1e-9 {
                    write!(
                        f,
                        "waiting for {} CPUs; {:.1} free",
                        wanted.cpus,
                        free.cpus.max(0.0)
                    )
                } else {
                    write!(
                        f,
                        "waiting for {} memory; {} free",
                        short_bytes(wanted.memory_bytes as f64),
                        short_bytes(free.memory_bytes as f64)
                    )
                }
            }
            WaitReason::OwnerDisabled => {
                write!(f, "held: its owner's account is disabled")
            }
            WaitReason::Unchecked(_) => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
struct Free {
    cpus: f64,
    memory: u64,
    gpus: BTreeSet<u32>,
}

impl Free {
    fn fits(&self, r: &Resources) -> bool {
        self.room().fits(r)
    }

    fn room(&self) -> Room {
        Room {
            cpus: self.cpus,
            memory_bytes: self.memory,
            gpus: self.gpus.len(),
        }
    }

    fn take(&mut self, r: &Resources) -> Vec<u32> {
        self.cpus -= r.cpus;
        self.memory -= r.memory_bytes;
        let gpus: Vec<u32> = self.gpus.iter().take(r.gpus as usize).copied().collect();
        for g in &gpus {
            self.gpus.remove(g);
        }
        gpus
    }

    fn give(&mut self, r: &Resources, gpus: &[u32]) {
        self.cpus += r.cpus;
        self.memory += r.memory_bytes;
        self.gpus.extend(gpus.iter().copied());
    }

    /// Why `r` does not fit (its text names the scarcest resource).
    fn shortfall(&self, r: &Resources) -> WaitReason {
        WaitReason::Resources {
            wanted: *r,
            free: self.room(),
        }
    }
}

/// Orders the queue: priority (high first), fair share (less recent usage
/// first), submission time, id.
/// Each job comes with the indices of its owner's and project's accounts
/// in `ledger`.
fn queue_order<'a>(
    input: &SchedulerInput<'a>,
    ledger: &mut Ledger<'a>,
) -> Vec<(&'a QueuedJob<'a>, usize, Option<usize>)> {
    // Each owner's usage is looked up once per owner, not per comparison.
    let mut usage: Vec<Option<f64>> = Vec::new();
    let mut order: Vec<(f64, &QueuedJob, usize, Option<usize>)> = input
        .queued
        .iter()
        .map(|job| {
            let owner = ledger.owner(input.quotas, job.owner);
            if owner >= usage.len() {
                usage.resize(owner + 1, None);
            }
            let used = *usage[owner]
                .get_or_insert_with(|| input.recent_usage.get(job.owner).copied().unwrap_or(0.0));
            let project = job.project.map(|p| ledger.project(input.quotas, p));
            (used, job, owner, project)
        })
        .collect();
    order.sort_unstable_by(|(usage_a, a, _, _), (usage_b, b, _, _)| {
        b.priority
            .cmp(&a.priority)
            .then(usage_a.total_cmp(usage_b))
            .then(a.submitted_at.cmp(&b.submitted_at))
            .then(a.id.cmp(&b.id))
    });
    order
        .into_iter()
        .map(|(_, job, owner, project)| (job, owner, project))
        .collect()
}

/// Decides, for every queued experiment, whether it starts now.
///
/// The first experiment (in queue order) that does not fit becomes the head:
/// its earliest start is computed from the running experiments' time limits,
/// and later experiments may start before it (backfill) only if they fit now
/// and their own time limit ends before that moment, so the head is never
/// delayed. Quota and dependency waits do not block others.
pub fn schedule(input: &SchedulerInput) -> Vec<Decision> {
    schedule_with_room(input).0
}

/// What is left free once the experiments a schedule starts have started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Room {
    /// CPU cores.
    pub cpus: f64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// GPUs.
    pub gpus: usize,
}

impl Room {
    /// Whether a request for `r` fits in it (by the scheduler's own rule).
    pub fn fits(&self, r: &Resources) -> bool {
        r.cpus <= self.cpus + 1e-9
            && r.memory_bytes <= self.memory_bytes
            && r.gpus as usize <= self.gpus
    }
}

/// [`schedule`], and the [`Room`] left after its starts: a new request that
/// does not fit there cannot start before something ends.
pub fn schedule_with_room(input: &SchedulerInput) -> (Vec<Decision>, Room) {
    Prepared::new(input).decide(input)
}

/// What a schedule starts from, whatever the quotas: the room left by the
/// running experiments, when they end, who holds what, and the queue in
/// order. The quota preview decides twice from one of these.
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'a> {
    free: Free,
    ends: Vec<(i64, Resources, Vec<u32>)>,
    ledger: Ledger<'a>,
    order: Vec<(&'a QueuedJob<'a>, usize, Option<usize>)>,
}

impl<'a> Prepared<'a> {
    /// Prepares a schedule of `input`.
    pub(crate) fn new(input: &SchedulerInput<'a>) -> Prepared<'a> {
        let mut free = Free {
            cpus: input.capacity.cpus,
            memory: input.capacity.memory_bytes,
            gpus: input.capacity.gpus.iter().copied().collect(),
        };
        let mut ledger = Ledger::default();
        let mut ends: Vec<(i64, Resources, Vec<u32>)> = Vec::new();
        for job in input.running {
            free.cpus -= job.resources.cpus;
            free.memory = free.memory.saturating_sub(job.resources.memory_bytes);
            for g in &job.gpus {
                free.gpus.remove(g);
            }
            let owner = ledger.owner(input.quotas, &job.owner);
            let project = job
                .project
                .as_deref()
                .map(|p| ledger.project(input.quotas, p));
            // What its limit still holds of the month.
            let left = MonthUse::reserving(
                &job.resources,
                job.ends_by.saturating_sub(input.now),
                &input.quotas.rates,
            );
            ledger.hold(owner, project, &job.resources, job.gpus.len() as u32, left);
            ends.push((job.ends_by, job.resources, job.gpus.clone()));
        }
        ends.sort_by_key(|(t, _, _)| *t);
        let order = queue_order(input, &mut ledger);
        Prepared {
            free,
            ends,
            ledger,
            order,
        }
    }

    /// The decisions under `input`'s quotas (those this was prepared with,
    /// or others: each owner's and project's limits are looked up again).
    pub(crate) fn decide(&self, input: &SchedulerInput) -> (Vec<Decision>, Room) {
        let mut free = self.free.clone();
        let ends = &self.ends;
        let mut ledger = self.ledger.clone();
        ledger.apply(input.quotas);
        let mut shadow: Option<(u64, i64)> = None; // (head id, its earliest start)
        let mut decisions = Vec::with_capacity(input.queued.len());
        for &(job, owner, project) in &self.order {
            let r = &job.resources;
            let mut pending = None;
            let mut failed = None;
            for dep in job.after {
                match input
                    .dependencies
                    .get(dep)
                    .copied()
                    .unwrap_or(Dependency::Pending)
                {
                    Dependency::Succeeded => {}
                    Dependency::Pending => pending = pending.or(Some(*dep)),
                    Dependency::Failed => failed = failed.or(Some(*dep)),
                }
            }
            if let Some(dep) = failed {
                decisions.push(Decision::Abandon {
                    id: job.id,
                    reason: format!("dependency {dep} did not succeed"),
                });
                continue;
            }
            if let Some(dep) = pending {
                decisions.push(Decision::Wait {
                    id: job.id,
                    reason: WaitReason::Dependency(dep),
                });
                continue;
            }
            let month = MonthUse::reserving(r, r.time_limit_secs as i64, &input.quotas.rates);
            if let Some(reason) = ledger.over(owner, project, r, month) {
                decisions.push(Decision::Wait { id: job.id, reason });
                continue;
            }
            if free.fits(r) {
                let finishes = r.ends_by(input.now);
                if let Some((head, start)) = shadow
                    && finishes > start
                {
                    decisions.push(Decision::Wait {
                        id: job.id,
                        reason: WaitReason::Behind(head),
                    });
                    continue;
                }
                let gpus = free.take(r);
                ledger.hold(owner, project, r, r.gpus, month);
                decisions.push(Decision::Start { id: job.id, gpus });
                continue;
            }
            let reason = free.shortfall(r);
            if shadow.is_none() {
                // The head: when would enough be free, releasing running jobs by their limits?
                let mut future = free.clone();
                let mut start = i64::MAX;
                for (t, res, gpus) in ends {
                    future.give(res, gpus);
                    if future.fits(r) {
                        start = *t;
                        break;
                    }
                }
                shadow = Some((job.id, start));
            }
            decisions.push(Decision::Wait { id: job.id, reason });
        }
        (decisions, free.room())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GIB: u64 = 1 << 30;

    fn res(cpus: f64, mem_gib: u64, gpus: u32, time: u64) -> Resources {
        Resources {
            cpus,
            memory_bytes: mem_gib * GIB,
            gpus,
            time_limit_secs: time,
        }
    }

    fn queued(id: u64, owner: &'static str, r: Resources) -> QueuedJob<'static> {
        QueuedJob {
            id,
            owner,
            project: None,
            priority: 0,
            submitted_at: id as i64,
            resources: r,
            after: &[],
        }
    }

    fn host() -> Capacity {
        Capacity {
            cpus: 8.0,
            memory_bytes: 32 * GIB,
            gpus: vec![0, 1],
        }
    }

    struct World {
        capacity: Capacity,
        running: Vec<RunningJob>,
        queued: Vec<QueuedJob<'static>>,
        quotas: Quotas,
        usage: HashMap<String, f64>,
        deps: HashMap<u64, Dependency>,
        now: i64,
    }

    impl World {
        fn new(queued: Vec<QueuedJob<'static>>) -> World {
            World {
                capacity: host(),
                running: Vec::new(),
                queued,
                quotas: Quotas::default(),
                usage: HashMap::new(),
                deps: HashMap::new(),
                now: 1000,
            }
        }

        fn run(&self) -> Vec<Decision> {
            self.run_with_room().0
        }

        fn run_with_room(&self) -> (Vec<Decision>, Room) {
            schedule_with_room(&SchedulerInput {
                now: self.now,
                capacity: &self.capacity,
                running: &self.running,
                queued: &self.queued,
                quotas: &self.quotas,
                recent_usage: &self.usage,
                dependencies: &self.deps,
            })
        }
    }

    fn started(decisions: &[Decision]) -> Vec<u64> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn reason(decisions: &[Decision], id: u64) -> String {
        decisions
            .iter()
            .find_map(|d| match d {
                Decision::Wait { id: i, reason } if *i == id => Some(reason.to_string()),
                Decision::Abandon { id: i, reason } if *i == id => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn capacity_limits_what_starts() {
        let w = World::new(vec![
            queued(1, "a", res(6.0, 4, 0, 60)),
            queued(2, "b", res(4.0, 4, 0, 60)),
            queued(3, "c", res(2.0, 4, 0, 60)),
        ]);
        let d = w.run();
        assert_eq!(started(&d), vec![1, 3]);
        assert_eq!(reason(&d, 2), "waiting for 4 CPUs; 2.0 free");
    }

    #[test]
    fn room_is_what_the_starts_leave() {
        let w = World::new(vec![
            queued(1, "a", res(6.0, 4, 1, 60)),
            queued(2, "b", res(4.0, 4, 0, 60)),
        ]);
        let (decisions, room) = w.run_with_room();
        assert_eq!(started(&decisions), vec![1]);
        assert_eq!(
            room,
            Room {
                cpus: 2.0,
                memory_bytes: 28 * GIB,
                gpus: 1
            }
        );
        assert!(room.fits(&res(2.0, 28, 1, 60)));
        assert!(!room.fits(&res(2.5, 1, 0, 60)), "CPUs");
        assert!(!room.fits(&res(1.0, 29, 0, 60)), "memory");
        assert!(!room.fits(&res(1.0, 1, 2, 60)), "GPUs");
    }

    #[test]
    fn gpus_are_assigned_by_index_and_never_shared() {
        let mut w = World::new(vec![
            queued(1, "a", res(1.0, 1, 1, 60)),
            queued(2, "b", res(1.0, 1, 2, 60)),
            queued(3, "c", res(1.0, 1, 1, 60)),
        ]);
        w.running.push(RunningJob {
            id: 9,
            owner: "z".into(),
            project: None,
            resources: res(1.0, 1, 1, 600),
            gpus: vec![0],
            ends_by: 1600,
        });
        let d = w.run();
        assert_eq!(
            d[0],
            Decision::Start {
                id: 1,
                gpus: vec![1]
            }
        );
        assert_eq!(reason(&d, 2), "waiting for 2 GPU(s); 0 free");
        assert_eq!(reason(&d, 3), "waiting for 1 GPU(s); 0 free");
    }

    #[test]
    fn quotas_hold_back_only_their_owner() {
        let mut w = World::new(vec![
            queued(1, "a", res(1.0, 1, 0, 60)),
            queued(2, "a", res(1.0, 1, 0, 60)),
            queued(3, "b", res(1.0, 1, 0, 60)),
        ]);
        w.quotas.users.insert(
            "a".into(),
            Quota {
                max_running: Some(1),
                ..Quota::default()
            },
        );
        let d = w.run();
        assert_eq!(started(&d), vec![1, 3]);
        assert_eq!(reason(&d, 2), "over quota: max 1 running");
    }

    #[test]
    fn priority_then_fair_share_then_submit_time() {
        let mut w = World::new(vec![
            queued(1, "heavy", res(8.0, 1, 0, 60)),
            queued(2, "light", res(8.0, 1, 0, 60)),
            QueuedJob {
                priority: 5,
                ..queued(3, "heavy", res(8.0, 1, 0, 60))
            },
        ]);
        w.usage.insert("heavy".into(), 100.0);
        w.usage.insert("light".into(), 1.0);
        assert_eq!(started(&w.run()), vec![3]);
        w.queued.remove(2);
        assert_eq!(started(&w.run()), vec![2], "less recent usage goes first");
    }

    #[test]
    fn backfill_never_delays_the_head() {
        let mut w = World::new(vec![
            queued(1, "a", res(8.0, 1, 0, 3600)), // head: needs the whole host
            queued(2, "b", res(2.0, 1, 0, 300)),  // fits and ends before the head can start
            queued(3, "c", res(2.0, 1, 0, 7200)), // fits but would delay the head
        ]);
        w.running.push(RunningJob {
            id: 9,
            owner: "z".into(),
            project: None,
            resources: res(4.0, 1, 0, 600),
            gpus: Vec::new(),
            ends_by: w.now + 600,
        });
        let d = w.run();
        assert_eq!(started(&d), vec![2]);
        assert_eq!(reason(&d, 1), "waiting for 8 CPUs; 4.0 free");
        assert_eq!(
            reason(&d, 3),
            "behind experiment 1: starting now would delay it"
        );
    }

    #[test]
    fn dependencies_wait_and_failures_abandon() {
        let mut w = World::new(vec![
            QueuedJob {
                after: &[7],
                ..queued(1, "a", res(1.0, 1, 0, 60))
            },
            QueuedJob {
                after: &[8],
                ..queued(2, "a", res(1.0, 1, 0, 60))
            },
            QueuedJob {
                after: &[6],
                ..queued(3, "a", res(1.0, 1, 0, 60))
            },
        ]);
        w.deps.insert(7, Dependency::Pending);
        w.deps.insert(8, Dependency::Failed);
        w.deps.insert(6, Dependency::Succeeded);
        let d = w.run();
        assert_eq!(reason(&d, 1), "waiting for experiment 7 to succeed");
        assert!(
            d.iter()
                .any(|x| matches!(x, Decision::Abandon { id: 2, .. }))
        );
        assert_eq!(started(&d), vec![3]);
    }

    proptest! {
        #[test]
        fn never_over_commits(
            jobs in proptest::collection::vec((0.5f64..6.0, 1u64..20, 0u32..3, 1u64..7200, -2i32..3, 0usize..3), 0..25),
            running in proptest::collection::vec((0.5f64..4.0, 1u64..10, 0u32..2, 1i64..3600), 0..4),
        ) {
            let owners = ["a", "b", "c"];
            let mut w = World::new(
                jobs.iter()
                    .enumerate()
                    .map(|(i, (c, m, g, t, p, o))| QueuedJob {
                        priority: *p,
                        ..queued(i as u64 + 1, owners[*o], res(*c, *m, *g, *t))
                    })
                    .collect(),
            );
            // Running jobs that themselves fit the host, with distinct GPUs.
            let mut free_gpus = vec![0u32, 1];
            let (mut cpus, mut mem) = (0.0, 0);
            for (i, (c, m, g, e)) in running.iter().enumerate() {
                if cpus + c > 8.0 || mem + m * GIB > 32 * GIB || *g as usize > free_gpus.len() {
                    continue;
                }
                cpus += c;
                mem += m * GIB;
                let gpus: Vec<u32> = free_gpus.drain(..*g as usize).collect();
                w.running.push(RunningJob {
                    id: 100 + i as u64,
                    owner: "z".into(),
                    project: None,
                    resources: res(*c, *m, *g, 3600),
                    gpus,
                    ends_by: w.now + e,
                });
            }
            let decisions = w.run();
            let mut used_cpus = cpus;
            let mut used_mem = mem;
            let mut used_gpus: Vec<u32> = w.running.iter().flat_map(|r| r.gpus.clone()).collect();
            for d in &decisions {
                if let Decision::Start { id, gpus } = d {
                    let job = w.queued.iter().find(|q| q.id == *id).expect("known job");
                    prop_assert_eq!(gpus.len() as u32, job.resources.gpus);
                    used_cpus += job.resources.cpus;
                    used_mem += job.resources.memory_bytes;
                    used_gpus.extend(gpus.iter().copied());
                }
            }
            prop_assert!(used_cpus <= 8.0 + 1e-6);
            prop_assert!(used_mem <= 32 * GIB);
            let distinct: BTreeSet<u32> = used_gpus.iter().copied().collect();
            prop_assert_eq!(distinct.len(), used_gpus.len());
            prop_assert_eq!(decisions.len(), w.queued.len());
        }

        /// The runner skips planning for a submission that does not fit in
        /// the room the last plan left: replanning would start nothing.
        #[test]
        fn a_request_beyond_the_room_starts_nothing(
            jobs in proptest::collection::vec((0.5f64..6.0, 1u64..20, 0u32..3, 1u64..7200, -2i32..3, 0usize..3), 0..25),
            new in (0.5f64..8.0, 1u64..32, 0u32..3, 1u64..7200, -2i32..3, 0usize..3),
        ) {
            let owners = ["a", "b", "c"];
            let job = |i: usize, (c, m, g, t, p, o): (f64, u64, u32, u64, i32, usize)| QueuedJob {
                priority: p,
                ..queued(i as u64 + 1, owners[o], res(c, m, g, t))
            };
            let mut w = World::new(jobs.iter().enumerate().map(|(i, j)| job(i, *j)).collect());
            let (decisions, room) = w.run_with_room();
            // What started now runs; the new submission joins the rest.
            for d in &decisions {
                if let Decision::Start { id, gpus } = d {
                    let started = w.queued.iter().find(|q| q.id == *id).expect("known").clone();
                    w.running.push(RunningJob {
                        id: started.id,
                        owner: started.owner.to_string(),
                        project: None,
                        resources: started.resources,
                        gpus: gpus.clone(),
                        ends_by: started.resources.ends_by(w.now),
                    });
                    w.queued.retain(|q| q.id != *id);
                }
            }
            let submitted = job(100, new);
            let fits = room.fits(&submitted.resources);
            w.queued.push(submitted);
            if !fits {
                prop_assert_eq!(started(&w.run()), Vec::<u64>::new());
            }
        }
    }
}
