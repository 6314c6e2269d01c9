//! `costs [--by user|project|month] [--from D] [--to D] [--json|--csv]`:
//! what experiments reserved and used, priced at the admin's rates.

use super::output::{CommandOutput, exit, table};
use crate::lab::{CostQuery, CostReport, CostRow, Lab, LabError, Principal};
use crate::units::{minute_time, printable};

/// What `costs` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostFormat {
    /// Aligned columns.
    Text,
    /// The report as JSON.
    Json,
    /// A CSV row per key, then the total.
    Csv,
}

/// `costs`.
pub(super) fn costs(
    lab: &Lab,
    p: &Principal,
    query: &CostQuery,
    format: CostFormat,
) -> CommandOutput {
    let report = match lab.costs(p, query) {
        Ok(report) => report,
        // A window it cannot read is a usage error.
        Err(LabError::Invalid(why)) => {
            return CommandOutput::error(exit::USAGE, format!("error: {why}\n"));
        }
        Err(e) => return e.into(),
    };
    match format {
        CostFormat::Json => CommandOutput::json(&report),
        CostFormat::Csv => CommandOutput::ok(as_csv(&report)),
        CostFormat::Text => CommandOutput::ok(as_text(&report)),
    }
}

/// The CSV: a header, a row per key, the total.
pub fn as_csv(report: &CostReport) -> String {
    let mut out = format!(
        "{},experiments,cpu_hours_reserved,gib_hours_reserved,gpu_hours_reserved,cost_reserved,cpu_hours_used,gib_hours_used,gpu_hours_used,cost_used\n",
        report.by
    );
    for row in report.rows.iter().chain([&report.total]) {
        let r = &row.reserved;
        let u = &row.used;
        out.push_str(&format!(
            "{},{},{:.3},{:.3},{:.3},{:.2},{:.3},{:.3},{:.3},{:.2}\n",
            super::history::field(&row.key),
            row.experiments,
            r.cpu_hours,
            r.gib_hours,
            r.gpu_hours,
            r.cost,
            u.cpu_hours,
            u.gib_hours,
            u.gpu_hours,
            u.cost
        ));
    }
    out
}

fn as_text(report: &CostReport) -> String {
    let cur = &report.currency;
    let header = [
        report.by.to_uppercase(),
        "RUNS".into(),
        "CPU-H".into(),
        "GIB-H".into(),
        "GPU-H".into(),
        format!("RESERVED {cur}"),
        "USED CPU-H".into(),
        "GIB-H".into(),
        "GPU-H".into(),
        format!("USED {cur}"),
    ];
    let line = |row: &CostRow| {
        vec![
            printable(&row.key),
            row.experiments.to_string(),
            format!("{:.1}", row.reserved.cpu_hours),
            format!("{:.1}", row.reserved.gib_hours),
            format!("{:.1}", row.reserved.gpu_hours),
            format!("{:.2}", row.reserved.cost),
            format!("{:.1}", row.used.cpu_hours),
            format!("{:.1}", row.used.gib_hours),
            format!("{:.1}", row.used.gpu_hours),
            format!("{:.2}", row.used.cost),
        ]
    };
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .chain([&report.total])
        .map(line)
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "from {} to {}\n{}",
        minute_time(report.from),
        minute_time(report.to),
        table(&header, &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::lab::{CostGrouping, CostSettings, CostZone};
    use crate::model::{
        CommandLine, CostRates, Experiment, ExperimentSpec, Outcome, ResourceUse, Resources, Role,
        State,
    };

    /// A finished experiment of `owner` in `project` that asked for
    /// `cpus`, `gib` and `gpus` and ran from `start` to `end`, using
    /// `cpu_seconds` and `gpu_seconds`, with `peak_gib` at most.
    #[allow(clippy::too_many_arguments)]
    fn ran(
        id: u64,
        owner: &str,
        project: &str,
        (cpus, gib, gpus): (f64, u64, u32),
        (start, end): (&str, &str),
        (cpu_seconds, gpu_seconds, peak_gib): (f64, f64, u64),
    ) -> Experiment {
        let at = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .expect("time")
                .timestamp()
        };
        let mut spec = ExperimentSpec::new(
            CommandLine::Argv(vec!["train".into()]),
            "/tmp".into(),
            Resources {
                cpus,
                memory_bytes: gib << 30,
                gpus,
                time_limit_secs: 86_400,
            },
        );
        spec.project = Some(project.into());
        Experiment {
            id,
            owner: owner.into(),
            unix_user: owner.into(),
            spec,
            submitted_at: at(start) - 60,
            state: State::Finished {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                signal: None,
                stop: None,
                started_at: Some(at(start)),
                ended_at: at(end),
            },
            transitions: Vec::new(),
            host: "box".into(),
            backend: "local".into(),
            usage: ResourceUse {
                cpu_seconds,
                peak_memory_bytes: peak_gib << 30,
                gpu_seconds,
                peak_gpu_memory_bytes: 0,
                profile: None,
                gpu_model: None,
            },
        }
    }

    #[test]
    fn rates_times_recorded_use_give_exact_rows_split_at_month_ends() {
        let (_d, lab) = lab_with_admin();
        let lab = lab.with_cost_settings(CostSettings {
            rates: CostRates {
                currency: "EUR".into(),
                cpu_hour: 0.05,
                gib_hour: 0.01,
                gpu_hour: 2.0,
                gpu_models: Vec::new(),
            },
            zone: CostZone::Utc,
            budget_action: crate::lab::BudgetAction::Hold,
        });
        let experiments = [
            // Two hours across the end of November: one in each month.
            ran(
                1,
                "ana",
                "churn",
                (2.0, 4, 1),
                ("2026-11-30T23:00:00Z", "2026-12-01T01:00:00Z"),
                (10_800.0, 7_200.0, 3),
            ),
            ran(
                2,
                "bob",
                "churn",
                (1.0, 2, 0),
                ("2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z"),
                (1_800.0, 0.0, 1),
            ),
            ran(
                3,
                "ana",
                "fraud",
                (8.0, 64, 2),
                ("2026-12-03T00:00:00Z", "2026-12-03T06:00:00Z"),
                (86_400.0, 21_600.0, 10),
            ),
            // Before the window: counts nowhere.
            ran(
                4,
                "bob",
                "churn",
                (4.0, 8, 0),
                ("2026-10-01T00:00:00Z", "2026-10-01T10:00:00Z"),
                (3_600.0, 0.0, 1),
            ),
        ];
        lab.store()
            .import_experiments(&experiments)
            .expect("import");
        let admin = lab.local_operator().expect("admin");
        let query = |by| CostQuery {
            by,
            from: Some("2026-11".into()),
            to: Some("2026-12".into()),
        };
        let by_user = lab
            .costs(&admin, &query(CostGrouping::User))
            .expect("costs");
        insta::assert_snapshot!("costs_by_user", as_csv(&by_user));
        let by_month = lab
            .costs(&admin, &query(CostGrouping::Month))
            .expect("costs");
        insta::assert_snapshot!("costs_by_month", as_csv(&by_month));
        let by_project = lab
            .costs(&admin, &query(CostGrouping::Project))
            .expect("costs");
        insta::assert_snapshot!("costs_by_project", as_csv(&by_project));
        // Exactly: ana's first run, 1 h in November at 2 cores, 4 GiB, 1 GPU.
        let november = &by_month.rows[0];
        assert_eq!(november.key, "2026-11");
        assert!((november.reserved.cost - (2.0 * 0.05 + 4.0 * 0.01 + 2.0)).abs() < 1e-9);
        // A member sees their own; a window of October finds bob's old run.
        let bob = principal(&lab, "bob", Role::Member);
        let theirs = lab.costs(&bob, &query(CostGrouping::User)).expect("costs");
        assert_eq!(
            theirs
                .rows
                .iter()
                .map(|r| r.key.as_str())
                .collect::<Vec<_>>(),
            ["bob"]
        );
        let october = CostQuery {
            by: CostGrouping::User,
            from: Some("2026-10-01".into()),
            to: Some("2026-10-31".into()),
        };
        let old = lab.costs(&admin, &october).expect("costs");
        assert_eq!(old.total.experiments, 1);
        assert!((old.total.reserved.cpu_hours - 40.0).abs() < 1e-9);
        // Bad windows are clear errors.
        for (from, to) in [("2026-13", "2026-12"), ("2026-12-05", "2026-12-01")] {
            let bad = CostQuery {
                by: CostGrouping::User,
                from: Some(from.into()),
                to: Some(to.into()),
            };
            assert!(matches!(
                lab.costs(&admin, &bad),
                Err(crate::lab::LabError::Invalid(_))
            ));
        }
    }

    #[test]
    fn gpus_are_priced_by_their_model_where_a_price_is_set() {
        let (_d, lab) = lab_with_admin();
        let lab = lab.with_cost_settings(CostSettings {
            rates: CostRates {
                currency: "EUR".into(),
                cpu_hour: 0.0,
                gib_hour: 0.0,
                gpu_hour: 1.0,
                gpu_models: vec![("H100".into(), 4.0), ("A100".into(), 2.0)],
            },
            zone: CostZone::Utc,
            budget_action: crate::lab::BudgetAction::Hold,
        });
        let admin = lab.local_operator().expect("admin");
        let hour = ("2026-11-10T10:00:00Z", "2026-11-10T11:00:00Z");
        let mut h100 = ran(1, "ana", "churn", (1.0, 1, 2), hour, (0.0, 7_200.0, 1));
        h100.usage.gpu_model = Some("NVIDIA H100 80GB HBM3".into());
        let mut a100 = ran(2, "bob", "churn", (1.0, 1, 1), hour, (0.0, 3_600.0, 1));
        a100.usage.gpu_model = Some("NVIDIA A100-SXM4-40GB".into());
        let unknown = ran(3, "cy", "churn", (1.0, 1, 1), hour, (0.0, 3_600.0, 1));
        lab.store()
            .import_experiments(&[h100, a100, unknown])
            .expect("import");
        let query = CostQuery {
            by: CostGrouping::User,
            from: Some("2026-11".into()),
            to: Some("2026-11".into()),
        };
        let report = lab.costs(&admin, &query).expect("costs");
        let cost = |who: &str| {
            report
                .rows
                .iter()
                .find(|r| r.key == who)
                .map(|r| (r.reserved.cost, r.used.cost))
                .expect("row")
        };
        assert_eq!(cost("ana"), (8.0, 8.0), "2 H100s for an hour at 4");
        assert_eq!(cost("bob"), (2.0, 2.0));
        assert_eq!(cost("cy"), (1.0, 1.0), "no model recorded: gpu_hour");
    }
}
