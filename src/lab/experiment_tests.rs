//! The experiments' side of the service: submitting, listing, reading,
//! cancelling and the runner's interface, with a store in a temporary directory.

use super::*;
use std::path::PathBuf;

use crate::lab::testing::{lab_with_admin, principal};
use crate::lab::{
    ListFilter, ListFrom, ListOrder, MAX_LIST_LIMIT, QueueNews, QueueSettings, StateChange,
    SubmitRequest,
};
use crate::model::QuotaScope;
use crate::model::{CommandLine, MAX_DURATION_SECS, Outcome, Role, State};
use crate::sched::Decision;
use crate::sched::Quota;

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
        &QuotaScope::User("mike".into()),
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
        lab.set_quota(&member, &QuotaScope::User("mike".into()), Quota::default()),
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
        &QuotaScope::User("mike".into()),
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

#[test]
fn what_changes_who_may_read_what_moves_the_visibility_generation() {
    let (_d, lab) = lab_with_admin();
    let root = lab.local_operator().expect("admin");
    principal(&lab, "mike", Role::Member);
    let mut seen = lab.visibility_generation();
    let mut moved = |lab: &Lab, what: &str| {
        let now = lab.visibility_generation();
        assert_ne!(now, seen, "{what} did not move it");
        seen = now;
    };
    lab.set_role(&root, "mike", Role::Viewer).expect("role");
    moved(&lab, "a role change");
    lab.set_project_private(&root, "churn", true)
        .expect("private");
    moved(&lab, "a project made private");
    lab.remove_user(&root, "mike").expect("remove");
    moved(&lab, "a removal");
}
