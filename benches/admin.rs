//! Admin benchmark: `cargo bench --bench admin`.
//!
//! In-process, through the service (`Lab`) over a real store in a
//! temporary directory:
//!
//! - a: the quota editor's preview, recomputed at each key press: 100 users
//!   (each with a quota), 10 000 queued and 200 running experiments, 7 days
//!   of finished runs behind fair share, every user's 7-day peaks in the
//!   monitor. The first call reads the week (fair share is then kept a
//!   minute); the figure is the median and the worst of the next 50, each
//!   a different limit as if typed. Goal: under 10 ms.
//! - b: the cost report of a year: 100 users with 2 runs a day each for
//!   365 days (73 000 finished experiments), by user, by project and by
//!   month over the last 12 months. Goal: under 200 ms.
//!
//! `LABBENCH_BENCH_ONLY=a` (or `b`) runs one part.

use std::time::Instant;

use labbench::lab::{CostGrouping, CostQuery, CostSettings, CostZone, Lab};
use labbench::model::{
    CommandLine, CostRates, Experiment, ExperimentSpec, Outcome, Quota, QuotaScope, ResourceUse,
    Resources, Role, State, User,
};
use labbench::monitor::{MonitorHandle, UsageSnapshot, UserUsage, WindowStats};
use labbench::store::Store;

const USERS: u64 = 100;
const QUEUED: u64 = 10_000;
const RUNNING: u64 = 200;
const GOAL_PREVIEW_MS: f64 = 10.0;
const GOAL_COSTS_MS: f64 = 200.0;

fn main() {
    let only = std::env::var("LABBENCH_BENCH_ONLY").unwrap_or_else(|_| "ab".into());
    if only.contains('a') {
        preview();
    }
    if only.contains('b') {
        costs();
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn owner(i: u64) -> String {
    format!("u{:02}", i % USERS)
}

fn spec(i: u64) -> ExperimentSpec {
    let mut spec = ExperimentSpec::new(
        CommandLine::Argv(vec!["python".into(), "train.py".into()]),
        "/tmp".into(),
        Resources {
            cpus: 1.0 + (i % 4) as f64,
            memory_bytes: (4 + i % 12) << 30,
            gpus: (i % 3) as u32,
            time_limit_secs: 4 * 3600,
        },
    );
    spec.project = Some(format!("p{}", i % 7));
    spec
}

fn experiment(id: u64, state: State, submitted_at: i64) -> Experiment {
    Experiment {
        id,
        owner: owner(id),
        unix_user: owner(id),
        spec: spec(id),
        submitted_at,
        state,
        transitions: Vec::new(),
        host: "box".into(),
        backend: "local".into(),
        usage: ResourceUse {
            cpu_seconds: 1800.0,
            peak_memory_bytes: 3 << 30,
            gpu_seconds: 900.0,
            peak_gpu_memory_bytes: 0,
            profile: None,
            gpu_model: None,
        },
    }
}

fn finished(id: u64, start: i64, secs: i64) -> Experiment {
    experiment(
        id,
        State::Finished {
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            signal: None,
            stop: None,
            started_at: Some(start),
            ended_at: start + secs,
        },
        start - 60,
    )
}

/// A store with the admin and 100 members, and `experiments` in it.
fn lab_with(dir: &std::path::Path, experiments: Vec<Experiment>) -> Lab {
    {
        let store = Store::open(dir).expect("store");
        let user = |name: String, role| User {
            unix_user: Some(name.clone()),
            name,
            role,
            system_account_allowed: false,
            disabled: false,
            created_at: 0,
        };
        store
            .put_user(&user("root".into(), Role::Admin))
            .expect("admin");
        for i in 0..USERS {
            store.put_user(&user(owner(i), Role::Member)).expect("user");
        }
        for chunk in experiments.chunks(5_000) {
            store.import_experiments(chunk).expect("import");
        }
    }
    // Opened again: the queue is read as the daemon reads it at a start.
    let store = Store::open(dir).expect("store");
    // sled's background work after the import settles first: a daemon's
    // store is mostly idle when an admin types.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut snapshot = UsageSnapshot::default();
    snapshot.host.cores = 256;
    snapshot.host.memory_total = 2 << 40;
    for i in 0..USERS {
        let mut week = WindowStats::default();
        week.max.cpu_cores = 8.0 + i as f64 % 24.0;
        week.p95.cpu_cores = 2.0 + i as f64 % 6.0;
        week.max.memory_bytes = ((16 + i % 48) << 30) as f64;
        week.p95.memory_bytes = ((4 + i % 12) << 30) as f64;
        snapshot.users.push(UserUsage {
            unix_user: owner(i),
            uid: 2000 + i as u32,
            now: Default::default(),
            processes: 3,
            windows: [WindowStats::default(), WindowStats::default(), week, week],
            cpu_history: Vec::new(),
            top: Vec::new(),
            gpu_processes: Vec::new(),
        });
    }
    let monitor = MonitorHandle::fixed(snapshot, Default::default());
    Lab::new(store, monitor).with_cost_settings(CostSettings {
        rates: CostRates {
            currency: "EUR".into(),
            cpu_hour: 0.05,
            gib_hour: 0.01,
            gpu_hour: 2.5,
            gpu_models: Vec::new(),
        },
        zone: CostZone::Utc,
        ..CostSettings::default()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn preview() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let mut experiments = Vec::new();
    let mut id = 1;
    // 7 days of finished runs, ten per user a day.
    for day in 0..7 {
        for _ in 0..USERS * 10 {
            experiments.push(finished(id, t - day * 86_400 - 7200, 3600));
            id += 1;
        }
    }
    for _ in 0..RUNNING {
        experiments.push(experiment(
            id,
            State::Running {
                started_at: t - 600,
                pid: 0,
                pid_start_time: 0,
                gpus: Vec::new(),
                cgroup: None,
            },
            t - 700,
        ));
        id += 1;
    }
    for _ in 0..QUEUED {
        experiments.push(experiment(id, State::Queued, t - 300));
        id += 1;
    }
    let lab = lab_with(dir.path(), experiments);
    let root = lab.local_operator().expect("admin");
    for i in 0..USERS {
        let quota = Quota {
            max_running: Some(2 + (i % 3) as u32),
            max_gpus: Some(1 + (i % 2) as u32),
            ..Quota::default()
        };
        lab.set_quota(&root, &QuotaScope::User(owner(i)), quota)
            .expect("quota");
    }
    let typed = |n: u32| Quota {
        max_running: Some(1 + n % 5),
        max_cpus: Some(4.0 + f64::from(n)),
        max_gpus: Some(n % 4),
        ..Quota::default()
    };
    let first = Instant::now();
    let p = lab
        .quota_preview(&root, &QuotaScope::Default, typed(0))
        .expect("preview");
    let first_ms = first.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::new();
    for n in 0..50 {
        let scope = if n % 2 == 0 {
            QuotaScope::Default
        } else {
            QuotaScope::User(owner(u64::from(n)))
        };
        let start = Instant::now();
        let p = lab.quota_preview(&root, &scope, typed(n)).expect("preview");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(p);
    }
    pure_preview(&lab);
    let worst = times.iter().copied().fold(0.0, f64::max);
    let median = median(times);
    println!(
        "a: quota preview, {USERS} users, {QUEUED} queued, {RUNNING} running, 7 days: first {first_ms:.1} ms (reads the week); \
         then median {median:.2} ms, worst {worst:.2} ms (goal < {GOAL_PREVIEW_MS} ms: {}); \
         {} over, {} would start, {} held in the first",
        if worst < GOAL_PREVIEW_MS {
            "met"
        } else {
            "NOT met"
        },
        p.effect.over_now.len(),
        p.effect.would_start.len(),
        p.effect.would_hold.len(),
    );
}

/// The scheduler's part alone: the same queue as a [`SchedulerInput`].
fn pure_preview(lab: &Lab) {
    use labbench::sched::{Capacity, QueuedJob, Quotas, RunningJob, SchedulerInput};
    let (running, queued): (Vec<Experiment>, Vec<Experiment>) = lab
        .store()
        .active_experiments()
        .expect("active")
        .into_iter()
        .partition(|e| matches!(e.state, State::Running { .. }));
    let running: Vec<RunningJob> = running
        .iter()
        .map(|e| RunningJob {
            id: e.id,
            owner: e.owner.clone(),
            project: e.spec.project.clone(),
            resources: e.spec.resources,
            gpus: Vec::new(),
            ends_by: now() + 3600,
        })
        .collect();
    let queued: Vec<QueuedJob> = queued
        .iter()
        .map(|e| QueuedJob {
            id: e.id,
            owner: &e.owner,
            project: e.spec.project.as_deref(),
            priority: 0,
            submitted_at: e.submitted_at,
            resources: e.spec.resources,
            after: &e.spec.after,
        })
        .collect();
    let quotas = Quotas::from_scoped((0..USERS).map(|i| {
        (
            QuotaScope::User(owner(i)),
            Quota {
                max_running: Some(3),
                ..Quota::default()
            },
        )
    }));
    let usage = (0..USERS).map(|i| (owner(i), i as f64)).collect();
    let capacity = Capacity {
        cpus: 256.0,
        memory_bytes: 2 << 40,
        gpus: Vec::new(),
    };
    let deps = Default::default();
    let input = SchedulerInput {
        now: now(),
        capacity: &capacity,
        running: &running,
        queued: &queued,
        quotas: &quotas,
        recent_usage: &usage,
        dependencies: &deps,
    };
    let mut times = Vec::new();
    for n in 0..50u32 {
        let start = Instant::now();
        std::hint::black_box(labbench::sched::preview::preview(
            &input,
            &QuotaScope::Default,
            Quota {
                max_running: Some(n % 4),
                ..Quota::default()
            },
        ));
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mut plans = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        std::hint::black_box(labbench::sched::schedule(&input));
        plans.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "   the scheduler's part alone: preview median {:.2} ms, one schedule {:.2} ms",
        median(times),
        median(plans)
    );
}

fn costs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = now();
    let mut experiments = Vec::new();
    let mut id = 1;
    for day in 0..365 {
        for _ in 0..USERS * 2 {
            experiments.push(finished(id, t - day * 86_400 - 7200, 3 * 3600));
            id += 1;
        }
    }
    let count = experiments.len();
    let lab = lab_with(dir.path(), experiments);
    let root = lab.local_operator().expect("admin");
    let from = chrono::DateTime::from_timestamp(t - 330 * 86_400, 0)
        .expect("time")
        .format("%Y-%m")
        .to_string();
    for by in [
        CostGrouping::User,
        CostGrouping::Project,
        CostGrouping::Month,
    ] {
        let query = CostQuery {
            by,
            from: Some(from.clone()),
            to: None,
        };
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let report = lab.costs(&root, &query).expect("costs");
            times.push(start.elapsed().as_secs_f64() * 1e3);
            rows = report.rows.len();
        }
        let median = median(times);
        println!(
            "b: costs by {by:?} since {from}, {count} experiments of {USERS} users: median {median:.0} ms, {rows} rows (goal < {GOAL_COSTS_MS} ms: {})",
            if median < GOAL_COSTS_MS {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}
