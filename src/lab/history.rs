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
use std::collections::BTreeMap;

use serde::Serialize;

use super::experiments::{owns_or_admin, seen_by};
use super::filter::{Filter, Row};
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    /// The rows, newest first.
    pub rows: Vec<HistoryRow>,
    /// Where the next page starts (`--before`); `None` after the last.
    pub next: Option<u64>,
    /// Experiments examined for this page (of those whose results the
    /// caller may read).
    pub examined: usize,
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
        // One search at a time per user: a search no index narrows reads
        // the whole history, and many at once would hold every thread.
        let _one = Searching::begin(self, &p.user)?;
        let now = super::now();
        let since = parsed.since_secs(now);
        let private_projects = self.store.private_projects()?;
        let mut rows = Vec::new();
        // Every experiment walked (the bound), and those whose results the
        // caller may read (what is said: an outcome walk must not tell
        // which private experiments were given one).
        let mut walked = 0usize;
        let mut examined = 0usize;
        let mut last_examined = None;
        let mut failure = None;
        let visit = |e: Experiment| {
            if since.is_some_and(|s| e.submitted_at < s) {
                return false;
            }
            walked += 1;
            let private = e.spec.private
                || e.spec
                    .project
                    .as_ref()
                    .is_some_and(|pr| private_projects.contains(pr));
            let readable = !private || owns_or_admin(&p, &e);
            if readable {
                examined += 1;
                last_examined = Some(e.id);
            }
            if narrowed_out(&parsed, &e) {
                return walked < MAX_EXAMINED;
            }
            let e = seen_by(&p, e, private);
            match self.row_if_matching(&parsed, e, readable, now) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(err) => {
                    failure = Some(err);
                    return false;
                }
            }
            rows.len() < limit && walked < MAX_EXAMINED
        };
        // An owner or a project named reads only theirs, by its index; an
        // outcome asked for, only the experiments given one.
        match (parsed.required_project(), parsed.required_owner()) {
            _ if parsed.requires_outcome() => {
                self.store
                    .walk_concluded_newest(before, parsed.required_outcome(), visit)?
            }
            (Some(project), _) => {
                self.store
                    .walk_indexed_newest(IndexedBy::Project, project, before, visit)?
            }
            (None, Some(owner)) => {
                self.store
                    .walk_indexed_newest(IndexedBy::Owner, owner, before, visit)?
            }
            (None, None) => self.store.walk_newest(before, visit)?,
        }
        if let Some(err) = failure {
            return Err(err);
        }
        let next = if rows.len() >= limit {
            rows.last().map(|r| r.id)
        } else if walked >= MAX_EXAMINED {
            last_examined
        } else {
            None
        };
        Ok(HistoryPage {
            rows,
            next,
            examined,
        })
    }

    /// `e`'s row if `filter` matches it (`readable`: its results may be
    /// shown to the caller).
    fn row_if_matching(
        &self,
        filter: &Filter,
        e: Experiment,
        readable: bool,
        now: i64,
    ) -> LabResult<Option<HistoryRow>> {
        let outcome = if readable {
            self.store.conclusion(e.id)?.map(|c| c.verdict)
        } else {
            None
        };
        // Metrics are read only when the filter asks for one.
        let metrics: RefCell<Option<BTreeMap<String, MetricSummary>>> = RefCell::new(None);
        let load = || -> LabResult<BTreeMap<String, MetricSummary>> {
            if !readable {
                return Ok(BTreeMap::new());
            }
            self.metric_summaries(e.id)
        };
        let load_error = RefCell::new(None);
        let metric_last = |name: &str| -> Option<f64> {
            if metrics.borrow().is_none() {
                match load() {
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
        if !matched {
            return Ok(None);
        }
        let metrics = match metrics.into_inner() {
            Some(m) => m,
            None => load()?,
        };
        let provenance = if readable {
            self.store.provenance(e.id)?
        } else {
            None
        };
        let git = provenance.and_then(|p| p.git);
        Ok(Some(HistoryRow {
            id: e.id,
            name: e.spec.name.clone(),
            owner: e.owner.clone(),
            project: e.spec.project.clone(),
            tags: e.spec.tags.clone(),
            state: e.state.name().to_string(),
            outcome,
            submitted_at: e.submitted_at,
            duration_secs: duration(&e.state, now),
            peak_memory_bytes: matches!(e.state, State::Finished { .. })
                .then_some(e.usage.peak_memory_bytes),
            memory_request_bytes: e.spec.resources.memory_bytes,
            gpu_hours: e.usage.gpu_seconds / 3600.0,
            metrics,
            commit: git.as_ref().and_then(|g| g.commit.clone()),
            dirty: git.is_some_and(|g| g.dirty),
        }))
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
