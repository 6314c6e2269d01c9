//! Quotas through the service: scopes, the checks at submission, what the
//! scheduler then does, and the preview agreeing with it.

use chrono::Datelike;

use super::*;
use crate::lab::testing::{finished_run, lab_with_admin, principal};
use crate::model::{CommandLine, CostRates, Quota, QuotaScope, Role};
use crate::sched::Decision;

fn echo(project: Option<&str>) -> SubmitRequest {
    SubmitRequest {
        command: Some(CommandLine::Argv(vec!["true".into()])),
        workdir: Some("/tmp".into()),
        project: project.map(str::to_string),
        cpus: Some(1.0),
        ..SubmitRequest::default()
    }
}

fn user(name: &str) -> QuotaScope {
    QuotaScope::User(name.into())
}

fn project(name: &str) -> QuotaScope {
    QuotaScope::Project(name.into())
}

fn starts(lab: &Lab) -> Vec<u64> {
    let mut ids: Vec<u64> = lab
        .plan()
        .expect("plan")
        .into_iter()
        .filter_map(|d| match d {
            Decision::Start { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn reason(lab: &Lab, id: u64) -> String {
    let root = lab.local_operator().expect("admin");
    lab.wait_reasons(&root)
        .expect("reasons")
        .remove(&id)
        .unwrap_or_default()
}

#[test]
fn the_default_fills_what_a_users_quota_leaves_and_a_project_quota_holds_its_own_only() {
    let (_d, lab) = lab_with_admin();
    let root = lab.local_operator().expect("admin");
    let mike = principal(&lab, "mike", Role::Member);
    let mary = principal(&lab, "mary", Role::Member);
    let cpus = |n: f64| Quota {
        max_cpus: Some(n),
        ..Quota::default()
    };
    lab.set_quota(&root, &QuotaScope::Default, cpus(2.0))
        .expect("default");
    let err = lab
        .submit(
            &mike,
            SubmitRequest {
                cpus: Some(3.0),
                ..echo(None)
            },
        )
        .expect_err("over the default");
    assert!(err.to_string().contains("larger than your quota"), "{err}");
    lab.set_quota(
        &root,
        &user("mike"),
        Quota {
            max_running: Some(5),
            ..Quota::default()
        },
    )
    .expect("mike's own");
    let shown = lab.quota_of(&mike, &user("mike")).expect("shown");
    assert_eq!(
        (shown.set.max_cpus, shown.effective.max_cpus),
        (None, Some(2.0))
    );
    assert_eq!(shown.effective.max_running, Some(5));

    // A project quota of 1 GPU-less run at once: churn's second waits,
    // mary's run in another project and mike's without one do not.
    lab.set_quota(
        &root,
        &project("churn"),
        Quota {
            max_running: Some(1),
            ..Quota::default()
        },
    )
    .expect("project");
    let a = lab.submit(&mike, echo(Some("churn"))).expect("a");
    let b = lab.submit(&mary, echo(Some("churn"))).expect("b");
    let c = lab.submit(&mary, echo(Some("vision"))).expect("c");
    assert_eq!(starts(&lab), vec![a, c]);
    assert_eq!(reason(&lab, b), "over project quota: max 1 running");
    lab.remove_quota(&root, &project("churn")).expect("rm");
    assert_eq!(starts(&lab), vec![a, b, c]);

    let kinds: Vec<String> = lab
        .audit_log(
            &root,
            &crate::lab::AuditQuery::parse("action:quota", 0).expect("q"),
        )
        .expect("audit")
        .into_iter()
        .map(|e| format!("{} {}", e.kind, e.subject))
        .collect();
    assert_eq!(
        kinds,
        [
            "quota.rm project churn",
            "quota.set project churn",
            "quota.set user mike",
            "quota.set default"
        ]
    );
}

#[test]
fn a_project_quota_bounds_each_request_and_the_queue_of_the_project() {
    let (_d, lab) = lab_with_admin();
    let root = lab.local_operator().expect("admin");
    let mike = principal(&lab, "mike", Role::Member);
    lab.set_quota(
        &root,
        &project("churn"),
        Quota {
            max_cpus: Some(1.0),
            max_queued: Some(2),
            ..Quota::default()
        },
    )
    .expect("project");
    let err = lab
        .submit(
            &mike,
            SubmitRequest {
                cpus: Some(2.0),
                ..echo(Some("churn"))
            },
        )
        .expect_err("larger");
    assert!(
        err.to_string()
            .contains("larger than the quota of project churn"),
        "{err}"
    );
    lab.submit(&mike, echo(Some("churn"))).expect("1");
    lab.submit(&mike, echo(Some("churn"))).expect("2");
    let err = lab.submit(&mike, echo(Some("churn"))).expect_err("3");
    assert!(matches!(err, LabError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("project churn has 2"), "{err}");
    lab.submit(&mike, echo(Some("vision")))
        .expect("another project has room");
}

#[test]
fn the_preview_says_what_the_scheduler_does_once_saved_and_saves_nothing() {
    let (_d, lab) = lab_with_admin();
    let root = lab.local_operator().expect("admin");
    let mike = principal(&lab, "mike", Role::Member);
    let one = Quota {
        max_running: Some(1),
        ..Quota::default()
    };
    lab.set_quota(&root, &user("mike"), one).expect("one");
    let ids: Vec<u64> = (0..3)
        .map(|_| lab.submit(&mike, echo(None)).expect("submit"))
        .collect();
    assert_eq!(starts(&lab), vec![ids[0]]);
    let three = Quota {
        max_running: Some(3),
        ..Quota::default()
    };
    let preview = lab
        .quota_preview(&root, &user("mike"), three)
        .expect("preview");
    assert_eq!(preview.effect.would_start, vec![ids[1], ids[2]]);
    assert!(preview.effect.over_now.is_empty());
    assert_eq!(preview.users.len(), 1);
    assert_eq!(preview.users[0].limit.max_running, Some(3));
    assert_eq!(
        lab.quota_of(&root, &user("mike")).expect("q").set,
        one,
        "a preview saves nothing"
    );
    lab.set_quota(&root, &user("mike"), three).expect("three");
    assert_eq!(starts(&lab), ids);
    let zero = Quota {
        max_running: Some(0),
        ..Quota::default()
    };
    let preview = lab
        .quota_preview(&root, &QuotaScope::Default, zero)
        .expect("default");
    assert!(
        preview.effect.would_hold.is_empty(),
        "mike's own quota wins"
    );
    for (who, denied) in [
        (&mike, lab.quota_preview(&mike, &user("mike"), three).err()),
        (
            &mike,
            lab.set_quota(&mike, &QuotaScope::Default, three).err(),
        ),
        (&mike, lab.remove_quota(&mike, &user("mike")).err()),
        (&mike, lab.all_quotas(&mike).err()),
    ] {
        assert!(
            matches!(denied, Some(LabError::PermissionDenied(_))),
            "{} {denied:?}",
            who.user
        );
    }
}

#[test]
fn a_month_whose_cost_is_spent_holds_new_starts() {
    let (_d, lab) = lab_with_admin();
    // One core for a second costs 1 EUR.
    let lab = lab.with_cost_settings(crate::lab::CostSettings {
        rates: CostRates {
            currency: "EUR".into(),
            cpu_hour: 3600.0,
            ..CostRates::default()
        },
        zone: crate::lab::CostZone::Utc,
        budget_action: crate::lab::BudgetAction::Notify,
    });
    let root = lab.local_operator().expect("admin");
    let mike = principal(&lab, "mike", Role::Member);
    let month_start = {
        let today = chrono::Utc::now().date_naive();
        today
            .with_day(1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .expect("month start")
    };
    if crate::lab::now() - month_start < 20 {
        std::thread::sleep(std::time::Duration::from_secs(21));
    }
    let secs = (crate::lab::now() - month_start).min(100);
    lab.store()
        .import_experiments(&[finished_run(1001, "mike", month_start, secs)])
        .expect("import");
    let cap = |amount: f64| Quota {
        max_cost_month: Some(amount),
        ..Quota::default()
    };
    // Ten seconds of one core: 10 EUR reserved up front.
    let short = SubmitRequest {
        time_limit_secs: Some(10),
        ..echo(None)
    };
    let long = SubmitRequest {
        time_limit_secs: Some(3600),
        ..echo(None)
    };
    lab.set_quota(&root, &user("mike"), cap(secs as f64 + 100.0))
        .expect("cap");
    let err = lab.submit(&mike, long).expect_err("a run over a month");
    assert!(
        err.to_string()
            .contains("for one run (its request × time limit)"),
        "{err}"
    );
    let id = lab.submit(&mike, short).expect("submit");
    let preview = lab
        .quota_preview(&root, &user("mike"), cap(secs as f64 + 5.0))
        .expect("preview");
    assert_eq!(preview.effect.would_hold, vec![id]);
    assert!(preview.effect.over_now.is_empty(), "not past it yet");
    lab.set_quota(&root, &user("mike"), cap(secs as f64 + 5.0))
        .expect("cap");
    assert!(
        starts(&lab).is_empty(),
        "{secs} spent and 10 more would pass it"
    );
    assert!(
        reason(&lab, id).starts_with(&format!("over quota: max {} a month in cost", secs + 5)),
        "{}",
        reason(&lab, id)
    );
    lab.set_quota(&root, &user("mike"), cap(secs as f64 + 10.0))
        .expect("raised");
    assert_eq!(starts(&lab), vec![id]);
}

/// Costs by user from the day before `start` on.
fn by_user_since(start: i64) -> crate::lab::CostQuery {
    crate::lab::CostQuery {
        by: crate::lab::CostGrouping::User,
        from: Some(
            chrono::DateTime::from_timestamp(start - 86_400, 0)
                .expect("time")
                .format("%Y-%m-%d")
                .to_string(),
        ),
        to: None,
    }
}

#[test]
fn a_run_whose_end_was_written_twice_costs_once() {
    let (_d, lab) = lab_with_admin();
    let root = lab.local_operator().expect("admin");
    let start = crate::lab::now() - 7200;
    // Its end written, lost in a crash, and written again later.
    lab.store()
        .import_experiments(&[finished_run(9, "mike", start, 600)])
        .expect("first end");
    lab.store()
        .put_experiment(&finished_run(9, "mike", start, 900))
        .expect("second end");
    let report = lab.costs(&root, &by_user_since(start)).expect("costs");
    assert_eq!(report.total.experiments, 1, "{report:?}");
    assert!(
        (report.total.reserved.cpu_hours - 0.25).abs() < 1e-9,
        "{report:?}"
    );
}

#[test]
fn a_running_run_is_priced_by_the_model_of_its_gpu() {
    use crate::monitor::{GpuDevice, GpuStatus};
    let h100 = GpuStatus {
        device: GpuDevice {
            index: 1,
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization_percent: 90,
            utilization_unknown: false,
            memory_used: 0,
            memory_total: 80 << 30,
            temperature_c: None,
            power_watts: None,
            minor: Some(1),
            uuid: None,
        },
        owners: Vec::new(),
    };
    let (_d, lab) = crate::lab::testing::lab_with_admin_seeing(vec![h100]);
    let lab = lab.with_cost_settings(crate::lab::CostSettings {
        rates: crate::model::CostRates {
            gpu_hour: 1.0,
            gpu_models: vec![("H100".into(), 4.0)],
            ..crate::model::CostRates::default()
        },
        zone: crate::lab::CostZone::Utc,
        budget_action: crate::lab::BudgetAction::Hold,
    });
    let root = lab.local_operator().expect("admin");
    let start = crate::lab::now() - 3600;
    let mut run = finished_run(4, "mike", start, 0);
    run.spec.resources.gpus = 1;
    run.state = crate::model::State::Running {
        started_at: start,
        pid: 0,
        pid_start_time: 0,
        cgroup: None,
        gpus: vec![1],
    };
    lab.store().put_experiment(&run).expect("put");
    let report = lab.costs(&root, &by_user_since(start)).expect("costs");
    let reserved = &report.total.reserved;
    // About an hour of one H100 at 4.0, not at the 1.0 of an unnamed GPU.
    assert!(
        (reserved.gpu_hours - 1.0).abs() < 0.01 && (reserved.cost - 4.0).abs() < 0.05,
        "{report:?}"
    );
}
