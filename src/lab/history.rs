//! Experiment history: every experiment the caller may see, newest first,
//! selected by the filter language of [`super::filter`] (`history FILTER`
//! and the History tab), one page at a time.
//!
//! Rows are read newest first and stop at the first experiment submitted
//! before the filter's `since:` (ids grow with time); a filter that names
//! a project or an owner reads only theirs, through the store's index, and
//! one that asks for an outcome only the experiments given one. What the filter
//! matches is what the caller may see: a private experiment's command and
//! params are hidden from others before the filter reads them, and its
//! outcome and metrics (its results) too, so a search never reveals what
//! a listing would not.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::experiments::{owns_or_admin, seen_by};
use super::filter::{Filter, Row};
use super::history_sort::{
    HistorySort, MAX_SORTED_MATCHES, MAX_SORTED_OFFSET, Ranking, SortColumn, SortValue,
};
use super::{Lab, LabError, LabResult, Principal};
use crate::model::{Experiment, MetricSource, MetricSummary, State, Verdict};
use crate::store::IndexedBy;

/// Rows a page has unless asked otherwise.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Most rows one page may ask for.
pub const MAX_HISTORY_LIMIT: usize = 10_000;
/// Most experiments one page examines: a filter that matches few stops
/// there and says where the next page starts.
pub const MAX_EXAMINED: usize = 1_000_000;

/// One experiment as History lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: Option<String>,
    /// Its owner.
    pub owner: String,
    /// Its project.
    pub project: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its state's name.
    pub state: String,
    /// The outcome given to its result.
    pub outcome: Option<Verdict>,
    /// When it was submitted (seconds since the epoch).
    pub submitted_at: i64,
    /// How long it ran (seconds), once started.
    pub duration_secs: Option<u64>,
    /// Its peak memory (bytes), once finished.
    pub peak_memory_bytes: Option<u64>,
    /// The memory it asked for (bytes).
    pub memory_request_bytes: u64,
    /// GPU-hours it used.
    pub gpu_hours: f64,
    /// Its metrics: count, last, min and max of each.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// The commit it ran, when captured.
    pub commit: Option<String>,
    /// Whether its working tree differed from the commit.
    pub dirty: bool,
}

/// A page of history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistoryPage {
    /// The rows, newest first.
    pub rows: Vec<HistoryRow>,
    /// Where the next page starts (`--before`); `None` after the last.
    pub next: Option<u64>,
    /// Where the next sorted page starts (`--offset`); `None` after the
    /// last, and when not sorted.
    pub next_offset: Option<usize>,
    /// Sorted: how many matches were ranked (at most
    /// [`MAX_SORTED_MATCHES`]).
    pub sorted_among: Option<usize>,
    /// Sorted: more matched than were ranked (the newest were), or the
    /// walk stopped at [`MAX_EXAMINED`]: older matches are not in the order.
    pub sort_partial: bool,
    /// Experiments examined for this page (of those whose results the
    /// caller may read).
    pub examined: usize,
}

/// One experiment a filter matched, with what was read to match it.
struct Matched {
    /// As the caller may see it.
    e: Experiment,
    /// Whether its results may be shown to the caller.
    readable: bool,
    /// The outcome given to it, when the caller may read it.
    outcome: Option<Verdict>,
    /// Its metric summaries, when matching read them.
    metrics: Option<BTreeMap<String, MetricSummary>>,
}

/// What a walk of the history went through.
struct Walked {
    /// Experiments walked (bounded by [`MAX_EXAMINED`]).
    walked: usize,
    /// Of those, the ones whose results the caller may read (what is
    /// said: an outcome walk must not tell which private experiments were
    /// given one).
    examined: usize,
    /// The last of those.
    last_examined: Option<u64>,
}

/// A checked search: the parsed filter and the rows a page has.
fn checked(filter: &str, limit: usize) -> LabResult<(Filter, usize)> {
    let parsed = super::filter::parse(filter)
        .map_err(|e| LabError::Invalid(format!("bad filter:\n{}", e.render(filter))))?;
    if limit > MAX_HISTORY_LIMIT {
        return Err(LabError::Invalid(format!(
            "--limit {limit}: at most {MAX_HISTORY_LIMIT} at once"
        )));
    }
    let limit = if limit == 0 {
        DEFAULT_HISTORY_LIMIT
    } else {
        limit
    };
    Ok((parsed, limit))
}

impl Lab {
    /// Up to `limit` experiments matching `filter` (the filter language),
    /// newest first, below id `before` when given; a malformed filter is
    /// an error that points at the mistake.
    pub fn history(
        &self,
        p: &Principal,
        filter: &str,
        before: Option<u64>,
        limit: usize,
    ) -> LabResult<HistoryPage> {
        let p = self.current(p)?;
        let (parsed, limit) = checked(filter, limit)?;
        // One search at a time per user: a search no index narrows reads
        // the whole history, and many at once would hold every thread.
        let _one = Searching::begin(self, &p.user)?;
        let now = super::now();
        let mut rows = Vec::new();
        let walked = self.walk_matching(&p, &parsed, before, now, |m| {
            rows.push(self.row(m, now)?);
            Ok(rows.len() < limit)
        })?;
        let next = if rows.len() >= limit {
            rows.last().map(|r| r.id)
        } else if walked.walked >= MAX_EXAMINED {
            walked.last_examined
        } else {
            None
        };
        Ok(HistoryPage {
            rows,
            next,
            next_offset: None,
            sorted_among: None,
            sort_partial: false,
            examined: walked.examined,
        })
    }

    /// Up to `limit` experiments matching `filter`, sorted by `sort` over
    /// everything the filter matches (its newest [`MAX_SORTED_MATCHES`]),
    /// after skipping `offset` of them. Reads all of that: seconds on a
    /// large history.
    pub fn history_sorted(
        &self,
        p: &Principal,
        filter: &str,
        sort: &HistorySort,
        offset: usize,
        limit: usize,
    ) -> LabResult<HistoryPage> {
        let p = self.current(p)?;
        let (parsed, limit) = checked(filter, limit)?;
        if offset > MAX_SORTED_OFFSET {
            return Err(LabError::Invalid(format!(
                "--offset {offset}: at most {MAX_SORTED_OFFSET} when sorting; narrow the filter"
            )));
        }
        let _one = Searching::begin(self, &p.user)?;
        let now = super::now();
        let mut ranking = Ranking::new(sort.descending, offset + limit);
        // Whether a match was left unranked (more than the most ranked).
        let mut more = false;
        let walked = self.walk_matching(&p, &parsed, None, now, |mut m| {
            if ranking.offered == MAX_SORTED_MATCHES {
                more = true;
                return Ok(false);
            }
            let value = self.sort_value(&sort.column, &mut m, now)?;
            ranking.offer(m.e.id, value);
            Ok(true)
        })?;
        let matched = ranking.offered;
        let next = offset + limit;
        let private_projects = self.store.private_projects()?;
        let mut rows = Vec::new();
        for id in ranking.into_ids().into_iter().skip(offset) {
            let Some(e) = self.store.experiment(id)? else {
                continue;
            };
            if let Some(m) = self.consider(&p, &parsed, &private_projects, e, now)? {
                rows.push(self.row(m, now)?);
            }
        }
        Ok(HistoryPage {
            rows,
            next: None,
            // A deeper page would be refused: narrow the filter instead.
            next_offset: (matched > next && next <= MAX_SORTED_OFFSET).then_some(next),
            sorted_among: Some(matched),
            sort_partial: more || walked.walked >= MAX_EXAMINED,
            examined: walked.examined,
        })
    }

    /// Walks the experiments `parsed` may match, newest first from below
    /// `before`, and calls `visit` with each match until it returns false
    /// or an error, or [`MAX_EXAMINED`] were walked.
    fn walk_matching(
        &self,
        p: &Principal,
        parsed: &Filter,
        before: Option<u64>,
        now: i64,
        mut visit: impl FnMut(Matched) -> LabResult<bool>,
    ) -> LabResult<Walked> {
        let since = parsed.since_secs(now);
        let private_projects = self.store.private_projects()?;
        let mut walked = Walked {
            walked: 0,
            examined: 0,
            last_examined: None,
        };
        let mut failure = None;
        let step = |e: Experiment| {
            if since.is_some_and(|s| e.submitted_at < s) {
                return false;
            }
            walked.walked += 1;
            if self.may_read_results(p, &private_projects, &e) {
                walked.examined += 1;
                walked.last_examined = Some(e.id);
            }
            let visited = match self.consider(p, parsed, &private_projects, e, now) {
                Ok(Some(m)) => visit(m),
                Ok(None) => Ok(true),
                Err(err) => Err(err),
            };
            match visited {
                Ok(true) => {}
                Ok(false) => return false,
                Err(err) => {
                    failure = Some(err);
                    return false;
                }
            }
            walked.walked < MAX_EXAMINED
        };
        // An owner or a project named reads only theirs, by its index; an
        // outcome asked for, only the experiments given one.
        match (parsed.required_project(), parsed.required_owner()) {
            _ if parsed.requires_outcome() => {
                self.store
                    .walk_concluded_newest(before, parsed.required_outcome(), step)?
            }
            (Some(project), _) => {
                self.store
                    .walk_indexed_newest(IndexedBy::Project, project, before, step)?
            }
            (None, Some(owner)) => {
                self.store
                    .walk_indexed_newest(IndexedBy::Owner, owner, before, step)?
            }
            (None, None) => self.store.walk_newest(before, step)?,
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(walked),
        }
    }

    /// Whether `p` may read `e`'s results.
    fn may_read_results(
        &self,
        p: &Principal,
        private_projects: &HashSet<String>,
        e: &Experiment,
    ) -> bool {
        !private_among(private_projects, e) || owns_or_admin(p, e)
    }

    /// `e` as `p` sees it, if `parsed` matches it.
    fn consider(
        &self,
        p: &Principal,
        parsed: &Filter,
        private_projects: &HashSet<String>,
        e: Experiment,
        now: i64,
    ) -> LabResult<Option<Matched>> {
        if narrowed_out(parsed, &e) {
            return Ok(None);
        }
        let private = private_among(private_projects, &e);
        let readable = !private || owns_or_admin(p, &e);
        let e = seen_by(p, e, private);
        self.matching(parsed, e, readable, now)
    }

    /// `e` with what matching it read, if `filter` matches it
    /// (`readable`: its results may be shown to the caller).
    fn matching(
        &self,
        filter: &Filter,
        e: Experiment,
        readable: bool,
        now: i64,
    ) -> LabResult<Option<Matched>> {
        let outcome = if readable {
            self.store.conclusion(e.id)?.map(|c| c.verdict)
        } else {
            None
        };
        // Metrics are read only when the filter asks for one.
        let metrics: RefCell<Option<BTreeMap<String, MetricSummary>>> = RefCell::new(None);
        let load_error = RefCell::new(None);
        let metric_last = |name: &str| -> Option<f64> {
            if metrics.borrow().is_none() {
                let loaded = if readable {
                    self.metric_summaries(e.id)
                } else {
                    Ok(BTreeMap::new())
                };
                match loaded {
                    Ok(m) => *metrics.borrow_mut() = Some(m),
                    Err(err) => {
                        *load_error.borrow_mut() = Some(err);
                        *metrics.borrow_mut() = Some(BTreeMap::new());
                    }
                }
            }
            metrics.borrow().as_ref()?.get(name).map(|s| s.last)
        };
        let command = e.spec.command.display();
        let matched = filter.matches(
            &Row {
                id: e.id,
                name: e.spec.name.as_deref(),
                owner: &e.owner,
                project: e.spec.project.as_deref(),
                state: e.state.name(),
                outcome: outcome.map(Verdict::name),
                tags: &e.spec.tags,
                command: &command,
                submitted_at: e.submitted_at,
                params: &e.spec.params,
                metric_last: &metric_last,
            },
            now,
        );
        if let Some(err) = load_error.into_inner() {
            return Err(err);
        }
        let metrics = metrics.into_inner();
        Ok(matched.then_some(Matched {
            e,
            readable,
            outcome,
            metrics,
        }))
    }

    /// `m`'s metric summaries, read now if matching did not.
    fn loaded_metrics(&self, m: &mut Matched) -> LabResult<()> {
        if m.metrics.is_none() {
            m.metrics = Some(if m.readable {
                self.metric_summaries(m.e.id)?
            } else {
                BTreeMap::new()
            });
        }
        Ok(())
    }

    /// `m`'s value in `column`.
    fn sort_value(
        &self,
        column: &SortColumn,
        m: &mut Matched,
        now: i64,
    ) -> LabResult<Option<SortValue>> {
        let e = &m.e;
        let text = |t: &str| Some(SortValue::Text(t.to_string()));
        Ok(match column {
            SortColumn::Id => Some(SortValue::Number(e.id as f64)),
            SortColumn::Name => e.spec.name.as_deref().and_then(text),
            SortColumn::Owner => text(&e.owner),
            SortColumn::Project => e.spec.project.as_deref().and_then(text),
            SortColumn::State => text(e.state.name()),
            SortColumn::Outcome => m.outcome.and_then(|o| text(o.name())),
            SortColumn::Ran => duration(&e.state, now).map(|d| SortValue::Number(d as f64)),
            SortColumn::PeakMemory => peak_memory(e).map(|b| SortValue::Number(b as f64)),
            // One that never ran has no GPU-hours, rather than none used.
            SortColumn::GpuHours => {
                duration(&e.state, now).map(|_| SortValue::Number(e.usage.gpu_seconds))
            }
            SortColumn::Metric(name) => {
                self.loaded_metrics(m)?;
                m.metrics
                    .as_ref()
                    .and_then(|all| all.get(name))
                    .map(|s| SortValue::Number(s.last))
            }
        })
    }

    /// The row History shows for `m`.
    fn row(&self, mut m: Matched, now: i64) -> LabResult<HistoryRow> {
        self.loaded_metrics(&mut m)?;
        let provenance = if m.readable {
            self.store.provenance(m.e.id)?
        } else {
            None
        };
        let git = provenance.and_then(|p| p.git);
        let e = m.e;
        Ok(HistoryRow {
            id: e.id,
            peak_memory_bytes: peak_memory(&e),
            name: e.spec.name,
            owner: e.owner,
            project: e.spec.project,
            tags: e.spec.tags,
            state: e.state.name().to_string(),
            outcome: m.outcome,
            submitted_at: e.submitted_at,
            duration_secs: duration(&e.state, now),
            memory_request_bytes: e.spec.resources.memory_bytes,
            gpu_hours: e.usage.gpu_seconds / 3600.0,
            metrics: m.metrics.unwrap_or_default(),
            commit: git.as_ref().and_then(|g| g.commit.clone()),
            dirty: git.is_some_and(|g| g.dirty),
        })
    }

    /// The count, last, min and max of each of experiment `id`'s metrics.
    fn metric_summaries(&self, id: u64) -> LabResult<BTreeMap<String, MetricSummary>> {
        let mut all: BTreeMap<String, MetricSummary> = BTreeMap::new();
        for source in MetricSource::ALL {
            for (name, summary) in self.store.metrics_read(id, source)?.summary {
                all.entry(name)
                    .and_modify(|s| s.merge(&summary))
                    .or_insert(summary);
            }
        }
        Ok(all)
    }
}

/// A user's search in progress; it ends when dropped.
struct Searching<'a> {
    lab: &'a Lab,
    user: String,
}

impl<'a> Searching<'a> {
    /// Marks `user`'s search as running, unless one already is.
    fn begin(lab: &'a Lab, user: &str) -> LabResult<Searching<'a>> {
        let mut running = lab.searching.lock().unwrap_or_else(|e| e.into_inner());
        if !running.insert(user.to_string()) {
            return Err(LabError::Unavailable(
                "a search of yours is still reading the history; try again when it is done".into(),
            ));
        }
        Ok(Searching {
            lab,
            user: user.to_string(),
        })
    }
}

impl Drop for Searching<'_> {
    fn drop(&mut self) {
        self.lab
            .searching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.user);
    }
}

/// Whether what the filter requires of owner, project and state rules `e`
/// out before anything else is read.
fn narrowed_out(filter: &Filter, e: &Experiment) -> bool {
    filter.required_owner().is_some_and(|o| o != e.owner)
        || filter
            .required_project()
            .is_some_and(|p| e.spec.project.as_deref() != Some(p))
        || filter
            .required_states()
            .is_some_and(|states| !states.contains(&e.state.name()))
}

/// Whether `e` is private to others than its owner and admins, with
/// `private_projects` the projects marked private.
fn private_among(private_projects: &HashSet<String>, e: &Experiment) -> bool {
    e.spec.private
        || e.spec
            .project
            .as_ref()
            .is_some_and(|pr| private_projects.contains(pr))
}

/// An experiment's peak memory, once it finished.
fn peak_memory(e: &Experiment) -> Option<u64> {
    matches!(e.state, State::Finished { .. }).then_some(e.usage.peak_memory_bytes)
}

/// How long an experiment ran (running: so far).
fn duration(state: &State, now: i64) -> Option<u64> {
    match state {
        State::Running { started_at, .. } => Some(now.saturating_sub(*started_at).max(0) as u64),
        State::Finished {
            started_at: Some(start),
            ended_at,
            ..
        } => Some(ended_at.saturating_sub(*start).max(0) as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::model::Role;

    #[test]
    fn a_user_runs_one_search_at_a_time() {
        let (_d, lab) = lab_with_admin();
        let mike = principal(&lab, "mike", Role::Member);
        let mary = principal(&lab, "mary", Role::Member);
        let running = Searching::begin(&lab, "mike").expect("the first");
        match lab.history(&mike, "", None, 10) {
            Err(LabError::Unavailable(why)) => assert!(why.contains("still reading"), "{why}"),
            other => panic!("a second search of mike's ran: {other:?}"),
        }
        assert!(
            lab.history(&mary, "", None, 10).is_ok(),
            "another user's runs"
        );
        drop(running);
        assert!(
            lab.history(&mike, "", None, 10).is_ok(),
            "once the first is done"
        );
    }
}
