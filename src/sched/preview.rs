//! What a quota change would do before it is saved: who is already over
//! the new limit, and which queued experiments would start or be held
//! back. The scheduler is run twice over the same input, with the quotas
//! as they are and as they would be, so the preview says what the
//! scheduler then does. Pure, and fast enough to run at each key press.

use std::collections::BTreeMap;

use foldhash::HashSet;

use serde::Serialize;

use super::quota::{Held, QuotaExceeded, beyond};
use super::{Decision, Prepared, SchedulerInput, WaitReason};
use crate::model::{Quota, QuotaScope};

/// What setting one quota would do now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuotaPreview {
    /// Users (or the project) the new limit is already below, with the
    /// limit they are past: what runs keeps running, nothing more starts.
    pub over_now: Vec<OverLimit>,
    /// Queued experiments that would start at once.
    pub would_start: Vec<u64>,
    /// Queued experiments the new limit would hold back (startable now, or
    /// waiting for something else).
    pub would_hold: Vec<u64>,
}

/// One user or project past a limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverLimit {
    /// The user, or `project NAME`.
    pub who: String,
    /// The limit, with what is held (its text: `max 4 GPUs (6 in use)`).
    #[serde(serialize_with = "as_text")]
    pub exceeded: QuotaExceeded,
}

fn as_text<S: serde::Serializer>(e: &QuotaExceeded, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

/// What setting `scope`'s quota to `new` would do, given `input` (whose
/// quotas are the ones in force).
pub fn preview(input: &SchedulerInput, scope: &QuotaScope, new: Quota) -> QuotaPreview {
    let mut quotas = input.quotas.clone();
    quotas.set(scope.clone(), new);
    let changed = SchedulerInput {
        quotas: &quotas,
        ..input.clone()
    };
    // The queue's order and what runs do not depend on quotas: prepared once.
    let prepared = Prepared::new(input);
    let (before, _) = prepared.decide(input);
    let (after, _) = prepared.decide(&changed);
    let started = |d: &[Decision]| -> HashSet<u64> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Start { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    };
    let held_back = |d: &[Decision]| -> HashSet<u64> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Wait {
                    id,
                    reason: WaitReason::OverQuota(_) | WaitReason::OverProjectQuota(_),
                } => Some(*id),
                _ => None,
            })
            .collect()
    };
    let (started_before, started_after) = (started(&before), started(&after));
    let held_before = held_back(&before);
    let mut would_start: Vec<u64> = started_after.difference(&started_before).copied().collect();
    let mut would_hold: Vec<u64> = held_back(&after)
        .difference(&held_before)
        .copied()
        .collect();
    would_start.sort_unstable();
    would_hold.sort_unstable();

    let mut by_owner: BTreeMap<&str, Held> = BTreeMap::new();
    let mut by_project: BTreeMap<&str, Held> = BTreeMap::new();
    for job in input.running {
        let gpus = job.gpus.len() as u32;
        by_owner
            .entry(&job.owner)
            .or_default()
            .add(&job.resources, gpus);
        if let Some(p) = job.project.as_deref() {
            by_project.entry(p).or_default().add(&job.resources, gpus);
        }
    }
    // Users who hold nothing may still have spent their month.
    for user in quotas.user_month.keys() {
        by_owner.entry(user).or_default();
    }
    let mut over_now = Vec::new();
    match scope {
        QuotaScope::Project(project) => {
            let held = by_project
                .get(project.as_str())
                .copied()
                .unwrap_or_default();
            if let Some(exceeded) = beyond(&new, &held, quotas.project_month.get(project)) {
                over_now.push(OverLimit {
                    who: format!("project {project}"),
                    exceeded,
                });
            }
        }
        QuotaScope::User(_) | QuotaScope::Default => {
            for (owner, held) in &by_owner {
                let concerned = match scope {
                    QuotaScope::User(user) => user == owner,
                    _ => true,
                };
                if !concerned {
                    continue;
                }
                let quota = quotas.for_user(owner);
                if let Some(exceeded) = beyond(&quota, held, quotas.user_month.get(*owner)) {
                    over_now.push(OverLimit {
                        who: owner.to_string(),
                        exceeded,
                    });
                }
            }
        }
    }
    QuotaPreview {
        over_now,
        would_start,
        would_hold,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::Resources;
    use crate::sched::{Capacity, MonthUse, QueuedJob, Quotas, RunningJob, schedule};

    const GIB: u64 = 1 << 30;

    fn res(cpus: f64, gpus: u32) -> Resources {
        Resources {
            cpus,
            memory_bytes: 2 * GIB,
            gpus,
            time_limit_secs: 3600,
        }
    }

    fn host() -> Capacity {
        Capacity {
            cpus: 16.0,
            memory_bytes: 64 * GIB,
            gpus: vec![0, 1, 2, 3],
        }
    }

    fn running(id: u64, owner: &str, project: Option<&str>, r: Resources) -> RunningJob {
        RunningJob {
            id,
            owner: owner.into(),
            project: project.map(str::to_string),
            resources: r,
            gpus: (0..r.gpus).map(|g| g + id as u32 * 10).collect(),
            ends_by: 10_000,
        }
    }

    fn queued<'a>(
        id: u64,
        owner: &'a str,
        project: Option<&'a str>,
        r: Resources,
    ) -> QueuedJob<'a> {
        QueuedJob {
            id,
            owner,
            project,
            priority: 0,
            submitted_at: id as i64,
            resources: r,
            after: &[],
        }
    }

    fn input<'a>(
        capacity: &'a Capacity,
        running: &'a [RunningJob],
        queued: &'a [QueuedJob<'a>],
        quotas: &'a Quotas,
        empty: &'a (HashMap<String, f64>, HashMap<u64, crate::sched::Dependency>),
    ) -> SchedulerInput<'a> {
        SchedulerInput {
            now: 0,
            capacity,
            running,
            queued,
            quotas,
            recent_usage: &empty.0,
            dependencies: &empty.1,
        }
    }

    #[test]
    fn raising_a_users_gpu_limit_starts_their_queued_run_and_names_nobody_over() {
        let capacity = host();
        let running = [running(1, "ana", None, res(1.0, 1))];
        let queued = [
            queued(2, "ana", None, res(1.0, 1)),
            queued(3, "bo", None, res(1.0, 0)),
        ];
        let quotas = Quotas::from_scoped([(
            QuotaScope::User("ana".into()),
            Quota {
                max_gpus: Some(1),
                ..Quota::default()
            },
        )]);
        let empty = Default::default();
        let input = input(&capacity, &running, &queued, &quotas, &empty);
        let raised = Quota {
            max_gpus: Some(2),
            ..Quota::default()
        };
        let p = preview(&input, &QuotaScope::User("ana".into()), raised);
        assert_eq!(p.would_start, vec![2]);
        assert!(p.would_hold.is_empty() && p.over_now.is_empty(), "{p:?}");
    }

    #[test]
    fn a_lowered_default_names_who_is_over_and_holds_back_what_would_start() {
        let capacity = host();
        let running = [
            running(1, "ana", None, res(6.0, 0)),
            running(2, "bo", None, res(2.0, 0)),
        ];
        let queued = [
            queued(3, "bo", None, res(2.0, 0)),
            queued(4, "cy", None, res(5.0, 0)),
            queued(5, "ana", None, res(1.0, 0)),
        ];
        // cy has a quota of their own: the default does not apply to them.
        let quotas = Quotas::from_scoped([(
            QuotaScope::User("cy".into()),
            Quota {
                max_cpus: Some(8.0),
                ..Quota::default()
            },
        )]);
        let empty = Default::default();
        let input = input(&capacity, &running, &queued, &quotas, &empty);
        let lowered = Quota {
            max_cpus: Some(4.0),
            ..Quota::default()
        };
        let p = preview(&input, &QuotaScope::Default, lowered);
        assert_eq!(
            p.over_now,
            vec![OverLimit {
                who: "ana".into(),
                exceeded: QuotaExceeded::Cpus {
                    max: 4.0,
                    held: 6.0
                }
            }]
        );
        assert_eq!(p.over_now[0].exceeded.to_string(), "max 4 CPUs (6 in use)");
        assert_eq!(p.would_hold, vec![5], "bo's 2 more fit under 4; cy keeps 8");
        assert!(p.would_start.is_empty());
    }

    #[test]
    fn a_project_quota_concerns_that_projects_experiments_only() {
        let capacity = host();
        let running = [running(1, "ana", Some("churn"), res(1.0, 2))];
        let queued = [
            queued(2, "bo", Some("churn"), res(1.0, 1)),
            queued(3, "bo", Some("vision"), res(1.0, 1)),
            queued(4, "bo", None, res(1.0, 0)),
        ];
        let quotas = Quotas::default();
        let empty = Default::default();
        let input = input(&capacity, &running, &queued, &quotas, &empty);
        let two = Quota {
            max_gpus: Some(2),
            ..Quota::default()
        };
        let p = preview(&input, &QuotaScope::Project("churn".into()), two);
        assert_eq!(p.would_hold, vec![2]);
        assert!(p.over_now.is_empty(), "at the limit, not past it");
        let one = Quota {
            max_gpus: Some(1),
            ..Quota::default()
        };
        let p = preview(&input, &QuotaScope::Project("churn".into()), one);
        assert_eq!(p.over_now[0].who, "project churn");
    }

    #[test]
    fn a_month_spent_is_over_now_even_with_nothing_running() {
        let capacity = host();
        let queued = [queued(1, "ana", None, res(1.0, 1))];
        let mut quotas = Quotas::default();
        quotas.user_month.insert(
            "ana".into(),
            MonthUse {
                gpu_hours: 120.0,
                cost: 0.0,
            },
        );
        let empty = Default::default();
        let input = input(&capacity, &[], &queued, &quotas, &empty);
        let cap = Quota {
            max_gpu_hours_month: Some(100.0),
            ..Quota::default()
        };
        let p = preview(&input, &QuotaScope::User("ana".into()), cap);
        assert_eq!(p.would_hold, vec![1]);
        assert_eq!(p.over_now[0].who, "ana");
    }

    #[test]
    fn a_running_runs_remaining_reservation_counts_against_the_month() {
        let capacity = host();
        // 90 GPU-hours still held by its limit; nothing read as spent yet.
        let running = [RunningJob {
            ends_by: 90 * 3600,
            ..running(1, "ana", None, res(1.0, 1))
        }];
        let mut twenty = res(1.0, 1);
        twenty.time_limit_secs = 20 * 3600;
        let mut five = res(1.0, 1);
        five.time_limit_secs = 5 * 3600;
        let queued = [queued(2, "ana", None, twenty), queued(3, "ana", None, five)];
        let mut quotas = Quotas::from_scoped([(
            QuotaScope::User("ana".into()),
            Quota {
                max_gpu_hours_month: Some(100.0),
                ..Quota::default()
            },
        )]);
        quotas.user_month.insert("ana".into(), MonthUse::default());
        let empty = Default::default();
        let d = schedule(&input(&capacity, &running, &queued, &quotas, &empty));
        assert!(
            matches!(
                &d[0],
                Decision::Wait {
                    id: 2,
                    reason: WaitReason::OverQuota(QuotaExceeded::GpuHours { .. })
                }
            ),
            "{d:?}"
        );
        assert!(matches!(&d[1], Decision::Start { id: 3, .. }), "{d:?}");
    }

    const OWNERS: [&str; 3] = ["ana", "bo", "cy"];
    const PROJECTS: [Option<&str>; 3] = [None, Some("churn"), Some("vision")];

    type Job = (usize, usize, u8, u32);

    fn limit() -> impl Strategy<Value = Quota> {
        (
            proptest::option::of(0u32..4),
            proptest::option::of(0u8..12),
            proptest::option::of(0u32..4),
        )
            .prop_map(|(running, cpus, gpus)| Quota {
                max_running: running,
                max_cpus: cpus.map(f64::from),
                max_gpus: gpus,
                ..Quota::default()
            })
    }

    fn scope() -> impl Strategy<Value = QuotaScope> {
        prop_oneof![
            Just(QuotaScope::Default),
            (0..3usize).prop_map(|i| QuotaScope::User(OWNERS[i].into())),
            (1..3usize).prop_map(|i| QuotaScope::Project(PROJECTS[i].unwrap_or("-").into())),
        ]
    }

    fn job() -> impl Strategy<Value = Job> {
        (0..3usize, 0..3usize, 1u8..5, 0u32..2)
    }

    proptest! {
        /// The preview agrees with what the scheduler does once the quota
        /// is saved: what it says starts, starts; what it says is held back
        /// waits for a quota; who it says is over is over, and nobody else
        /// the quota concerns.
        #[test]
        fn the_preview_agrees_with_the_scheduler_after_the_change(
            held in proptest::collection::vec(job(), 0..5),
            waiting in proptest::collection::vec(job(), 0..12),
            old in limit(),
            new in limit(),
            scope in scope(),
        ) {
            let capacity = Capacity { cpus: 12.0, memory_bytes: 64 * GIB, gpus: (0..8).collect() };
            let mut next_gpu = 0;
            let running: Vec<RunningJob> = held.iter().enumerate().map(|(i, (o, p, c, g))| {
                let gpus = (next_gpu..next_gpu + g).collect();
                next_gpu += g;
                RunningJob {
                    id: 100 + i as u64,
                    owner: OWNERS[*o].into(),
                    project: PROJECTS[*p].map(str::to_string),
                    resources: res(f64::from(*c), *g),
                    gpus,
                    ends_by: 5_000,
                }
            }).collect();
            let queued: Vec<QueuedJob> = waiting.iter().enumerate().map(|(i, (o, p, c, g))| {
                queued(i as u64, OWNERS[*o], PROJECTS[*p], res(f64::from(*c), *g))
            }).collect();
            let quotas = Quotas::from_scoped([(scope.clone(), old)]);
            let empty = Default::default();
            let before = input(&capacity, &running, &queued, &quotas, &empty);
            let p = preview(&before, &scope, new);

            let saved = Quotas::from_scoped([(scope.clone(), new)]);
            let after = schedule(&input(&capacity, &running, &queued, &saved, &empty));
            for id in &p.would_start {
                let starts = after.iter().any(|d| matches!(d, Decision::Start { id: s, .. } if s == id));
                prop_assert!(starts, "{id} said to start: {after:?}");
            }
            for id in &p.would_hold {
                let waits = after.iter().any(|d| matches!(d, Decision::Wait { id: w, reason: WaitReason::OverQuota(_) | WaitReason::OverProjectQuota(_) } if w == id));
                prop_assert!(waits, "{id} said to be held: {after:?}");
            }
            // Over now, counted apart from the preview.
            let mut over = Vec::new();
            for (name, project) in OWNERS.iter().map(|o| (o.to_string(), false))
                .chain(PROJECTS.iter().flatten().map(|p| (p.to_string(), true)))
            {
                let mine: Vec<&RunningJob> = running.iter().filter(|j| if project {
                    j.project.as_deref() == Some(&name)
                } else {
                    j.owner == name
                }).collect();
                let quota = match (&scope, project) {
                    (QuotaScope::Project(p), true) if *p == name => new,
                    (QuotaScope::Default, false) => new,
                    (QuotaScope::User(u), false) if *u == name => new,
                    _ => continue,
                };
                let cpus: f64 = mine.iter().map(|j| j.resources.cpus).sum();
                let gpus: usize = mine.iter().map(|j| j.gpus.len()).sum();
                let past = quota.max_running.is_some_and(|m| mine.len() as u32 > m)
                    || quota.max_cpus.is_some_and(|m| cpus > m)
                    || quota.max_gpus.is_some_and(|m| gpus as u32 > m);
                if past {
                    over.push(if project { format!("project {name}") } else { name });
                }
            }
            let said: Vec<String> = p.over_now.iter().map(|o| o.who.clone()).collect();
            over.sort();
            let mut said_sorted = said.clone();
            said_sorted.sort();
            prop_assert_eq!(said_sorted, over);
        }
    }
}
