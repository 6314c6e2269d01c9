//! Costs: what experiments reserved (what they asked for × the time they
//! ran) and what they used (measured), in core-, GiB- and GPU-hours, priced
//! at the admin's rates (`costs`). A run that spans months, or the edges of
//! the window asked, counts in each part by the share of its time there
//! (its use is taken as even over the run). Months are those of the
//! configured zone (`costs.time_zone`: `local`, the host's, or `UTC`);
//! times are stored in UTC. Admins see everyone's; others their own.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone};
use serde::Serialize;

use super::{Lab, LabError, LabResult, Principal};
use crate::model::{CostRates, Hours, MAX_DURATION_SECS, State};
use crate::store::RunCost;

/// Bytes in a GiB.
const GIB: f64 = (1u64 << 30) as f64;

/// The zone whose months costs are counted in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CostZone {
    /// The host's (`TZ`, else `/etc/localtime`).
    #[default]
    Local,
    /// UTC.
    Utc,
}

/// Rates, the zone of months, and what a spent budget does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostSettings {
    /// Prices per hour.
    pub rates: CostRates,
    /// The zone of months.
    pub zone: CostZone,
    /// What happens once a budget is spent.
    pub budget_action: super::budgets::BudgetAction,
}

/// What costs are summed by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CostGrouping {
    /// The experiment's owner.
    #[default]
    User,
    /// Its project.
    Project,
    /// The month (in the configured zone) it ran in.
    Month,
}

impl CostGrouping {
    /// Its name: `user`, `project` or `month`.
    pub fn name(self) -> &'static str {
        match self {
            CostGrouping::User => "user",
            CostGrouping::Project => "project",
            CostGrouping::Month => "month",
        }
    }
}

/// Which costs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostQuery {
    /// Summed by.
    pub by: CostGrouping,
    /// From this day (`YYYY-MM-DD`) or month (`YYYY-MM`), in the zone;
    /// default: the start of this month.
    pub from: Option<String>,
    /// Up to the end of this day or month; default: now.
    pub to: Option<String>,
}

/// One row: what the experiments of a user, project or month reserved and
/// used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostRow {
    /// The user, project or month (`YYYY-MM`).
    pub key: String,
    /// Experiments that ran in it.
    pub experiments: usize,
    /// Asked for × time run.
    pub reserved: Hours,
    /// Measured.
    pub used: Hours,
}

/// Costs over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    /// What the costs are in.
    pub currency: String,
    /// The window: from (seconds since the epoch, inclusive)…
    pub from: i64,
    /// …to (exclusive).
    pub to: i64,
    /// What the rows are: `user`, `project` or `month`.
    pub by: &'static str,
    /// The rows, by key.
    pub rows: Vec<CostRow>,
    /// All of them.
    pub total: CostRow,
}

impl CostZone {
    /// The start of the day `date` in the zone (its earliest, across a
    /// change of the clocks).
    fn day_start(self, date: NaiveDate) -> i64 {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        match self {
            CostZone::Utc => chrono::Utc.from_utc_datetime(&midnight).timestamp(),
            // A midnight the clocks skipped: the first time after it.
            CostZone::Local => (0..=96)
                .find_map(|quarter| {
                    let at = midnight + chrono::Duration::minutes(15 * quarter);
                    chrono::Local.from_local_datetime(&at).earliest()
                })
                .map_or_else(
                    || chrono::Utc.from_utc_datetime(&midnight).timestamp(),
                    |t| t.timestamp(),
                ),
        }
    }

    /// The date at `at` in the zone.
    fn date(self, at: i64) -> NaiveDate {
        let utc = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
        match self {
            CostZone::Utc => utc.date_naive(),
            CostZone::Local => utc.with_timezone(&chrono::Local).date_naive(),
        }
    }

    /// The first day of the month at `at`.
    fn month_of(self, at: i64) -> NaiveDate {
        self.date(at).with_day(1).unwrap_or_default()
    }
}

/// The first day of the month after `first`.
fn next_month(first: NaiveDate) -> NaiveDate {
    let (y, m) = if first.month() == 12 {
        (first.year() + 1, 1)
    } else {
        (first.year(), first.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(first)
}

/// Reads `YYYY-MM-DD` or `YYYY-MM`: its first day, and the first day after
/// it.
fn parse_day_or_month(text: &str) -> Result<(NaiveDate, NaiveDate), String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok((day, day.succ_opt().unwrap_or(day)));
    }
    if let Ok(first) = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
        return Ok((first, next_month(first)));
    }
    Err(format!(
        "{text:?}: write a day (2026-11-30) or a month (2026-11)"
    ))
}

/// The model of the first of `gpus`, as the monitor last named it (for
/// prices per model).
pub(super) fn gpu_model(now: &crate::monitor::UsageSnapshot, gpus: &[u32]) -> Option<String> {
    let first = *gpus.first()?;
    now.gpus
        .iter()
        .find(|g| g.device.index == first)
        .map(|g| g.device.name.clone())
}

/// What a run reserved and used over its whole run, priced at `rates`.
fn run_hours(run: &RunCost, rates: &CostRates) -> (Hours, Hours) {
    let hours = run.ended_at.saturating_sub(run.started_at).max(0) as f64 / 3600.0;
    let model = run.gpu_model.as_deref();
    let reserved = Hours::priced_model(
        run.cpus * hours,
        run.memory_bytes as f64 / GIB * hours,
        f64::from(run.gpus) * hours,
        rates,
        model,
    );
    let used = Hours::priced_model(
        run.cpu_seconds / 3600.0,
        run.used_gib_hours,
        run.gpu_seconds / 3600.0,
        rates,
        model,
    );
    (reserved, used)
}

/// How long what a user or project reserved this month is reused before it
/// is read again (budget checks at each submission, status lines).
const SPEND_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// What users and projects reserved this month, as last read, and when.
pub(super) type SpendCache = std::sync::Mutex<
    std::collections::HashMap<
        (crate::store::IndexedBy, String),
        (std::time::Instant, crate::sched::MonthUse, String),
    >,
>;

impl Lab {
    /// What the experiments `by` names reserved from the start of this
    /// month until now, priced; and the month (`YYYY-MM`). Read at most once
    /// a minute per user or project ([`SPEND_KEPT`]): a sweep of submissions
    /// against a budget, or many sessions' status lines, read it once.
    pub(super) fn reserved_this_month(
        &self,
        by: crate::store::IndexedBy,
        key: &str,
    ) -> LabResult<(f64, String)> {
        self.month_reserved(by, key)
            .map(|(m, month)| (m.cost, month))
    }

    /// GPU-hours and cost reserved this month by a user's or a project's
    /// experiments (as [`Lab::reserved_this_month`], cached alike).
    pub(super) fn month_reserved(
        &self,
        by: crate::store::IndexedBy,
        key: &str,
    ) -> LabResult<(crate::sched::MonthUse, String)> {
        let cache_key = (by, key.to_string());
        if let Some((at, spent, month)) = self
            .spend
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
            && at.elapsed() < SPEND_KEPT
        {
            return Ok((*spent, month.clone()));
        }
        let read = self.read_reserved_this_month(by, key)?;
        self.spend.lock().unwrap_or_else(|e| e.into_inner()).insert(
            cache_key,
            (std::time::Instant::now(), read.0, read.1.clone()),
        );
        Ok(read)
    }

    /// What the caller's experiments reserved this month so far, and the
    /// currency; `None` while nothing is priced.
    pub fn my_month_cost(&self, p: &Principal) -> LabResult<Option<(f64, String)>> {
        let p = self.current(p)?;
        let rates = &self.costs.rates;
        if rates.cpu_hour == 0.0
            && rates.gib_hour == 0.0
            && rates.gpu_hour == 0.0
            && rates.gpu_models.is_empty()
        {
            return Ok(None);
        }
        let (spent, _) = self.reserved_this_month(crate::store::IndexedBy::Owner, &p.user)?;
        Ok(Some((spent, rates.currency.clone())))
    }

    /// [`Lab::reserved_this_month`], read from the store.
    fn read_reserved_this_month(
        &self,
        by: crate::store::IndexedBy,
        key: &str,
    ) -> LabResult<(crate::sched::MonthUse, String)> {
        let settings = self.costs.as_ref();
        let zone = settings.zone;
        let now = super::now();
        let month = zone.month_of(now);
        let from = zone.day_start(month);
        let mut spent = crate::sched::MonthUse::default();
        let keep = |run: &RunCost| match by {
            crate::store::IndexedBy::Owner => run.owner == key,
            crate::store::IndexedBy::Project => run.project.as_deref() == Some(key),
        };
        self.runs_overlapping(from, now, now, keep, |run| {
            let (reserved, _) = run_hours(&run, &settings.rates);
            let (lo, hi) = (run.started_at.max(from), run.ended_at.min(now));
            if hi > lo {
                let share =
                    (hi - lo) as f64 / run.ended_at.saturating_sub(run.started_at).max(1) as f64;
                spent.cost += reserved.cost * share;
                spent.gpu_hours += reserved.gpu_hours * share;
            }
        })?;
        Ok((spent, month.format("%Y-%m").to_string()))
    }

    /// Visits every run that `keep` accepts and that ran between `from`
    /// and `to`: finished ones from the runs' costs (those that ended from
    /// `from` on; one that ended after `to` started at most the longest
    /// wall-time limit before its end), and the running ones, up to `now`.
    fn runs_overlapping(
        &self,
        from: i64,
        to: i64,
        now: i64,
        keep: impl Fn(&RunCost) -> bool,
        visit: impl FnMut(RunCost),
    ) -> LabResult<()> {
        let last_end = to.saturating_add(MAX_DURATION_SECS as i64);
        // An entry written just before a crash that lost its record names
        // a run that is unfinished again, or ends again later: each run
        // counts once, as its record now says.
        // A running one's GPU model is recorded at its end: until then it
        // is priced by the model its first GPU has now.
        let monitored = self.monitor.latest();
        let (active, running): (std::collections::HashSet<u64>, Vec<RunCost>) =
            self.store.with_active(|active| {
                let running = active
                    .values()
                    .filter_map(|e| match &e.state {
                        State::Running { gpus, .. } => Some((e, gpus)),
                        _ => None,
                    })
                    .filter_map(|(e, gpus)| {
                        let mut run = RunCost::of(e, now)?;
                        if run.gpu_model.is_none() {
                            run.gpu_model = gpu_model(&monitored, gpus);
                        }
                        Some(run)
                    })
                    .filter(|run| run.started_at < to && run.ended_at > from && keep(run))
                    .collect();
                (active.keys().copied().collect(), running)
            });
        let mut finished: std::collections::BTreeMap<u64, RunCost> = Default::default();
        self.store.walk_run_costs_from(from, |run| {
            if run.ended_at > last_end {
                return false;
            }
            if run.started_at < to && !active.contains(&run.id) && keep(&run) {
                // Oldest end first: a later entry of the same run wins.
                finished.insert(run.id, run);
            }
            true
        })?;
        finished.into_values().chain(running).for_each(visit);
        Ok(())
    }

    /// The rates' currency.
    pub(super) fn currency(&self) -> &str {
        &self.costs.rates.currency
    }

    /// What a spent budget does.
    pub(super) fn budget_action(&self) -> super::budgets::BudgetAction {
        self.costs.budget_action
    }

    /// Uses these rates and this zone for costs.
    pub fn with_cost_settings(mut self, settings: CostSettings) -> Lab {
        self.costs = std::sync::Arc::new(settings);
        self
    }

    /// What experiments reserved and used in the window `query` asks for,
    /// summed as it asks: everyone's for admins, one's own for others.
    pub fn costs(&self, p: &Principal, query: &CostQuery) -> LabResult<CostReport> {
        let p = self.current(p)?;
        let settings = self.costs.as_ref();
        let zone = settings.zone;
        let now = super::now();
        let from = match (&query.from, &query.to) {
            (Some(text), _) => {
                zone.day_start(parse_day_or_month(text).map_err(LabError::Invalid)?.0)
            }
            // Up to a day or month: from the start of its month.
            (None, Some(text)) => {
                let first = parse_day_or_month(text).map_err(LabError::Invalid)?.0;
                zone.day_start(first.with_day(1).unwrap_or(first))
            }
            (None, None) => zone.day_start(zone.month_of(now)),
        };
        let to = match &query.to {
            Some(text) => zone.day_start(parse_day_or_month(text).map_err(LabError::Invalid)?.1),
            None => now,
        };
        if to <= from {
            return Err(LabError::Invalid("--to must come after --from".into()));
        }
        let mine_only = !p.is_admin();
        let mut rows: BTreeMap<String, CostRow> = BTreeMap::new();
        let mut total = CostRow {
            key: "total".into(),
            ..CostRow::default()
        };
        let visit = |run: RunCost| {
            let (reserved, used) = run_hours(&run, &settings.rates);
            let (start, end) = (run.started_at, run.ended_at);
            let (lo, hi) = (start.max(from), end.min(to));
            if hi <= lo {
                return;
            }
            let whole = end.saturating_sub(start).max(1) as f64;
            // The parts of the run, each with its key.
            let mut parts: Vec<(String, i64, i64)> = Vec::new();
            match query.by {
                CostGrouping::User => parts.push((run.owner.clone(), lo, hi)),
                CostGrouping::Project => {
                    parts.push((run.project.clone().unwrap_or_else(|| "-".into()), lo, hi))
                }
                CostGrouping::Month => {
                    let mut month = zone.month_of(lo);
                    loop {
                        let starts = zone.day_start(month).max(lo);
                        let next = next_month(month);
                        let ends = zone.day_start(next).min(hi);
                        parts.push((month.format("%Y-%m").to_string(), starts, ends.max(starts)));
                        if zone.day_start(next) >= hi {
                            break;
                        }
                        month = next;
                    }
                }
            }
            for (key, a, b) in parts {
                let share = (b - a) as f64 / whole;
                let row = rows.entry(key.clone()).or_insert_with(|| CostRow {
                    key,
                    ..CostRow::default()
                });
                row.experiments += 1;
                row.reserved.add(reserved.scaled(share));
                row.used.add(used.scaled(share));
                total.reserved.add(reserved.scaled(share));
                total.used.add(used.scaled(share));
            }
            total.experiments += 1;
        };
        let keep = |run: &RunCost| !mine_only || run.owner == p.user;
        self.runs_overlapping(from, to, now, keep, visit)?;
        Ok(CostReport {
            currency: settings.rates.currency.clone(),
            from,
            to,
            by: query.by.name(),
            rows: rows.into_values().collect(),
            total,
        })
    }
}
