//! Listing experiments: filters, pages in either order, and why each
//! queued one waits (`ls` and the Queue tab).

use std::collections::HashMap;

use serde::Serialize;

use super::engine::LiveUse;
use super::experiments::seen_by;
use super::{Lab, LabError, LabResult, Principal};
use crate::model::{Experiment, State};
use crate::sched::Decision;

/// Which experiments `ls` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Include finished ones.
    pub all: bool,
    /// Only this owner.
    pub user: Option<String>,
    /// Only this state name.
    pub state: Option<String>,
    /// Only this project.
    pub project: Option<String>,
    /// At most this many (0: [`DEFAULT_LIST_LIMIT`]; at most [`MAX_LIST_LIMIT`]).
    pub limit: usize,
    /// In which order (unfinished experiments only: history is newest first).
    pub order: ListOrder,
}

/// How unfinished experiments are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Newest first.
    #[default]
    Newest,
    /// Running ones first, then queued ones in the order the scheduler
    /// would start them.
    NextToStart,
}

/// Experiments listed when no limit is given.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// Most experiments one listing may ask for.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Where a page of a listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFrom {
    /// The first page.
    Start,
    /// After this many (unfinished experiments, in their order).
    Offset(usize),
    /// Below this id (history, newest first).
    Before(u64),
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    /// The experiments, as the caller may see them.
    pub views: Vec<ExperimentView>,
    /// How many the filter selects in all, where known without reading the
    /// whole history (unfinished experiments).
    pub total: Option<usize>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<ListFrom>,
}

/// An experiment with why it waits, for `ls` and the Queue tab.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentView {
    /// The record.
    #[serde(flatten)]
    pub experiment: Experiment,
    /// For queued experiments: why they have not started.
    pub wait_reason: Option<String>,
    /// For running experiments: what they use now (from their cgroup).
    pub live: Option<LiveUse>,
    /// For running experiments flagged idle: seconds without work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_secs: Option<i64>,
}

impl ExperimentView {
    /// What `ls` and the Queue tab say beside it: why it waits, or how long
    /// a running one has been idle.
    pub fn note(&self) -> String {
        match (&self.wait_reason, self.idle_secs) {
            (Some(reason), _) => reason.clone(),
            (None, Some(secs)) => format!(
                "idle for {}",
                crate::units::human_duration(secs.max(0) as u64)
            ),
            (None, None) => String::new(),
        }
    }
}

impl Lab {
    /// The first page of `filter` (up to its limit), with wait reasons for
    /// queued experiments.
    pub fn list_experiments(&self, p: &Principal, filter: &ListFilter) -> LabResult<ListPage> {
        let limit = if filter.limit == 0 {
            DEFAULT_LIST_LIMIT
        } else {
            filter.limit
        };
        self.list_page(p, filter, ListFrom::Start, limit)
    }

    /// Up to `count` experiments of `filter` from `from` on: unfinished ones
    /// in `filter.order`, with history newest first. Long listings are read
    /// page by page, so that none is held whole.
    pub fn list_page(
        &self,
        p: &Principal,
        filter: &ListFilter,
        from: ListFrom,
        count: usize,
    ) -> LabResult<ListPage> {
        let p = &self.current(p)?;
        if filter.limit > MAX_LIST_LIMIT {
            return Err(LabError::Invalid(format!(
                "--limit {}: at most {MAX_LIST_LIMIT} at once",
                filter.limit
            )));
        }
        let count = count.min(MAX_LIST_LIMIT);
        let keep = |e: &Experiment| {
            filter.user.as_deref().is_none_or(|u| e.owner == u)
                && filter.state.as_deref().is_none_or(|s| e.state.name() == s)
                && filter
                    .project
                    .as_deref()
                    .is_none_or(|pr| e.spec.project.as_deref() == Some(pr))
        };
        let history = filter.all
            || filter
                .state
                .as_deref()
                .is_some_and(|s| !["queued", "starting", "running"].contains(&s));
        let (experiments, total, next) = if history {
            let before = match from {
                ListFrom::Before(id) => Some(id),
                _ => None,
            };
            // One more than asked tells whether there are more.
            let mut page = self.store.experiments_page(before, count + 1, keep)?;
            let more = page.len() > count;
            page.truncate(count);
            let next = more
                .then(|| page.last().map(|e| ListFrom::Before(e.id)))
                .flatten();
            (page, None, next)
        } else {
            let ids = self.active_ids(filter.order, |e| keep(e))?;
            let offset = match from {
                ListFrom::Offset(n) => n,
                _ => 0,
            };
            let window: Vec<u64> = ids.iter().skip(offset).take(count).copied().collect();
            let page: Vec<Experiment> = self.store.with_active(|active| {
                window
                    .iter()
                    .filter_map(|id| active.get(id).cloned())
                    .collect()
            });
            let end = offset + window.len();
            let next = (end < ids.len()).then_some(ListFrom::Offset(end));
            (page, Some(ids.len()), next)
        };
        let reasons = self.wait_reasons(p)?;
        let live = self.live_use();
        let idle = self.idle_flags();
        let private_projects = self.store.private_projects()?;
        let views = experiments
            .into_iter()
            .map(|e| {
                let private = e.spec.private
                    || e.spec
                        .project
                        .as_ref()
                        .is_some_and(|pr| private_projects.contains(pr));
                ExperimentView {
                    wait_reason: reasons.get(&e.id).cloned(),
                    live: live.get(&e.id).copied(),
                    idle_secs: idle.get(&e.id).copied(),
                    experiment: seen_by(p, e, private),
                }
            })
            .collect();
        Ok(ListPage { views, total, next })
    }

    /// The ids of the unfinished experiments `keep` accepts, in `order`.
    pub(super) fn active_ids(
        &self,
        order: ListOrder,
        keep: impl Fn(&Experiment) -> bool,
    ) -> LabResult<Vec<u64>> {
        let mut ids: Vec<u64> = self.store.with_active(|active| {
            active
                .values()
                .rev()
                .filter(|e| keep(e))
                .map(|e| e.id)
                .collect()
        });
        if order == ListOrder::NextToStart {
            // Running (and starting) first, longest running first; then
            // queued ones as the scheduler takes them.
            let position: HashMap<u64, usize> = self
                .plan()?
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let id = match d {
                        Decision::Start { id, .. }
                        | Decision::Wait { id, .. }
                        | Decision::Abandon { id, .. } => *id,
                    };
                    (id, i)
                })
                .collect();
            ids.sort_by_key(|id| match position.get(id) {
                Some(at) => (1, *at, *id),
                None => (0, 0, *id),
            });
        }
        Ok(ids)
    }

    /// The projects of unfinished experiments, sorted (the Queue tab's filter).
    pub fn active_projects(&self) -> Vec<String> {
        let mut projects: Vec<String> = self.store.with_active(|active| {
            active
                .values()
                .filter_map(|e| e.spec.project.clone())
                .collect()
        });
        projects.sort();
        projects.dedup();
        projects
    }

    /// Why each queued experiment waits (or that it is about to start).
    pub fn wait_reasons(&self, _p: &Principal) -> LabResult<HashMap<u64, String>> {
        let decisions = self.plan()?;
        Ok(decisions
            .into_iter()
            .map(|d| match d {
                Decision::Start { id, .. } => (id, "starting".to_string()),
                Decision::Wait { id, reason } => (id, reason.to_string()),
                Decision::Abandon { id, reason } => (id, reason),
            })
            .collect())
    }

    /// Running experiments per Unix user (for usage screens).
    pub fn running_by_unix_user(&self) -> HashMap<String, usize> {
        self.store.with_active(|active| {
            let mut counts = HashMap::new();
            for e in active.values() {
                if matches!(e.state, State::Running { .. }) {
                    *counts.entry(e.unix_user.clone()).or_insert(0) += 1;
                }
            }
            counts
        })
    }
}
