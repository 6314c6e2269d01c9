//! What the session reads through the service for each screen: the text
//! and charts of History's panes, the Queue tab's listing and the Costs
//! view's query. Every read is the caller's, decided by the service with
//! the caller's current role.

use super::data::PageCharts;
use super::history::HistoryPane;
use super::queue::{QueueState, StateFilter};
use crate::lab::{Lab, ListFilter, ListOrder, Principal};

/// What a History pane shows, whatever its scroll: the experiments, and
/// whether it is a comparison.
pub(super) fn pane_key(pane: &HistoryPane) -> (Vec<u64>, bool) {
    match pane {
        HistoryPane::Page { id, .. }
        | HistoryPane::Comment { id, .. }
        | HistoryPane::PickComment { id, .. }
        | HistoryPane::ConfirmRemove { id, .. }
        | HistoryPane::Outcome { id, .. } => (vec![*id], false),
        HistoryPane::Compare { ids, .. } => (ids.clone(), true),
        // Read apart from the page's text (a diff is long).
        HistoryPane::Diff { id, .. } => (vec![*id, u64::MAX], false),
    }
}

/// Points of a chart at most (a terminal shows fewer).
const CHART_POINTS: usize = 400;

/// A comparison's chart: the `nth` of the metrics any of `ids` reported
/// (by name), each experiment's values a line.
pub(super) fn compare_charts(
    lab: &Lab,
    principal: &Principal,
    ids: &[u64],
    nth: usize,
    log: bool,
) -> PageCharts {
    let mut charts = PageCharts {
        log,
        ..PageCharts::default()
    };
    let Ok(plain) = lab.compare(principal, ids, None) else {
        return charts;
    };
    let names: std::collections::BTreeSet<&String> =
        plain.runs.iter().flat_map(|r| r.metrics.keys()).collect();
    if names.is_empty() {
        return charts;
    }
    let at = nth % names.len();
    let Some(name) = names.iter().nth(at) else {
        return charts;
    };
    if let Ok(curves) = lab.compare(principal, ids, Some(name)) {
        let lines = curves
            .runs
            .iter()
            .map(|r| {
                let points =
                    crate::lab::downsample(r.curve.clone().unwrap_or_default(), CHART_POINTS)
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (p.step.map_or(i as f64, |s| s as f64), p.value))
                        .collect();
                (format!("{}", r.id), points)
            })
            .collect();
        charts.metric = Some(super::data::MetricChart {
            name: (*name).clone(),
            at,
            count: names.len(),
            lines,
        });
    }
    charts
}

/// The experiment page's charts: its `nth` metric (of those it reported,
/// by name) and its memory over the run, each as the service allows it.
pub(super) fn page_charts(
    lab: &Lab,
    principal: &Principal,
    id: u64,
    nth: usize,
    log: bool,
) -> PageCharts {
    let mut charts = PageCharts {
        log,
        ..PageCharts::default()
    };
    if let Ok(brief) = lab.metrics_brief(principal, id)
        && !brief.metrics.is_empty()
    {
        let count = brief.metrics.len();
        let at = nth % count;
        if let Some(name) = brief.metrics.keys().nth(at)
            && let Ok(curve) = lab.metric_curve(principal, id, name)
        {
            let points = crate::lab::downsample(curve, CHART_POINTS)
                .iter()
                .enumerate()
                .map(|(i, p)| (p.step.map_or(i as f64, |s| s as f64), p.value))
                .collect();
            charts.metric = Some(super::data::MetricChart {
                name: name.clone(),
                at,
                count,
                lines: vec![(name.clone(), points)],
            });
        }
    }
    if let Ok(series) = lab.resource_series(principal, id)
        && let Some(first) = series.samples.first()
    {
        charts.memory_asked = series.request.memory_bytes as f64;
        charts.cpu_asked = series.request.cpus;
        charts.cpu = series
            .samples
            .iter()
            .map(|s| ((s.at - first.at) as f64, f64::from(s.cpu_cores)))
            .collect();
        charts.memory = series
            .samples
            .iter()
            .map(|s| ((s.at - first.at) as f64, s.memory_bytes as f64))
            .collect();
        // A run that held no GPU memory has no GPU chart.
        if series.samples.iter().any(|s| s.gpu_memory_bytes > 0) {
            charts.gpu_memory = series
                .samples
                .iter()
                .map(|s| ((s.at - first.at) as f64, s.gpu_memory_bytes as f64))
                .collect();
        }
    }
    charts
}

/// The Costs view's query: this month by user or project, or the six
/// months up to `today`'s by month.
pub(super) fn costs_query(
    by: crate::lab::CostGrouping,
    today: chrono::NaiveDate,
) -> crate::lab::CostQuery {
    use chrono::Datelike;
    let from = (by == crate::lab::CostGrouping::Month).then(|| {
        let months = today.year() * 12 + today.month0() as i32 - 5;
        format!("{}-{:02}", months.div_euclid(12), months.rem_euclid(12) + 1)
    });
    crate::lab::CostQuery { by, from, to: None }
}

/// The text of History's open pane: the experiment page (spec and state,
/// provenance, metrics, outcome and comments), or a comparison; each part
/// as the service allows it to the caller, as the commands would.
pub(super) fn history_pane_text(lab: &Lab, principal: &Principal, pane: &HistoryPane) -> String {
    match pane {
        HistoryPane::Page { id, .. }
        | HistoryPane::Comment { id, .. }
        | HistoryPane::PickComment { id, .. }
        | HistoryPane::ConfirmRemove { id, .. }
        | HistoryPane::Outcome { id, .. } => {
            let id = *id;
            let mut text = match lab.experiment(principal, id) {
                Ok(e) => {
                    let private_project =
                        e.spec.project.as_deref().is_some_and(|project| {
                            lab.project_is_private(project).unwrap_or(false)
                        });
                    crate::describe::experiment_details(&e, private_project)
                }
                Err(e) => return e.to_string(),
            };
            text.push_str("\nPROVENANCE\n");
            match lab.provenance(principal, id) {
                Ok(p) => text.push_str(&crate::describe::provenance_lines(id, &p)),
                Err(e) => text.push_str(&format!("{e}\n")),
            }
            text.push_str("\nMETRICS\n");
            match lab.metrics_brief(principal, id) {
                Ok(brief) => text.push_str(&crate::describe::metrics_lines(&brief)),
                Err(e) => text.push_str(&format!("{e}\n")),
            }
            text.push_str("\nOUTCOME AND COMMENTS\n");
            match lab.discussion(principal, id) {
                Ok(d) if d.outcome.is_none() && d.comments.is_empty() => {
                    text.push_str("no outcome and no comments yet (outcome ID …, comment ID …)\n")
                }
                Ok(d) => text.push_str(&crate::describe::discussion_lines(&d, None)),
                Err(e) => text.push_str(&format!("{e}\n")),
            }
            text
        }
        HistoryPane::Diff { id, .. } => match lab.diff(principal, *id) {
            Ok(Some(diff)) if !diff.is_empty() => diff,
            Ok(_) => {
                format!("experiment {id}: no git diff recorded (clean, or not in a repository)")
            }
            Err(e) => e.to_string(),
        },
        HistoryPane::Compare { ids, .. } => match lab.compare(principal, ids, None) {
            Ok(c) => crate::describe::comparison_lines(&c),
            Err(e) => e.to_string(),
        },
    }
}

/// What the Queue tab lists, as its state asks.
pub(super) fn queue_filter(state: &QueueState, me: &str) -> ListFilter {
    ListFilter {
        user: state.mine_only.then(|| me.to_string()),
        state: match state.states {
            StateFilter::All => None,
            StateFilter::Queued => Some("queued".into()),
            StateFilter::Running => Some("running".into()),
        },
        project: state.project.clone(),
        order: if state.newest_first {
            ListOrder::Newest
        } else {
            ListOrder::NextToStart
        },
        ..ListFilter::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::CostGrouping;

    #[test]
    fn the_queue_tab_asks_the_service_for_what_its_filters_choose() {
        let state = QueueState {
            mine_only: true,
            states: StateFilter::Running,
            project: Some("vision".into()),
            ..QueueState::default()
        };
        let filter = queue_filter(&state, "alice");
        assert_eq!(filter.user.as_deref(), Some("alice"));
        assert_eq!(filter.state.as_deref(), Some("running"));
        assert_eq!(filter.project.as_deref(), Some("vision"));
        assert_eq!(filter.order, ListOrder::NextToStart);
        let newest = QueueState {
            newest_first: true,
            ..QueueState::default()
        };
        let filter = queue_filter(&newest, "alice");
        assert_eq!(
            (filter.user, filter.state, filter.order),
            (None, None, ListOrder::Newest)
        );
    }

    #[test]
    fn the_costs_view_asks_for_this_month_or_the_last_six() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date");
        let months = costs_query(CostGrouping::Month, day(2027, 2, 14));
        assert_eq!(months.from.as_deref(), Some("2026-09"));
        assert_eq!(months.to, None);
        let users = costs_query(CostGrouping::User, day(2026, 12, 6));
        assert_eq!(users.from, None, "this month");
    }
}
