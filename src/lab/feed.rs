//! The activity feed: new results, comments and outcomes, newest first,
//! of the experiments the caller may read the output of (what a
//! stakeholder looks at first).

use std::collections::HashMap;

use serde::Serialize;

use super::{Lab, LabResult, Principal};
use crate::model::{State, Verdict};

/// How far before a feed's window a result's run may have been submitted
/// and still be found (runs are found by submission time).
const RUNS_FOUND_WITHIN: i64 = 7 * 86_400;
/// An experiment's name and project, as a feed item shows them.
type NameAndProject = (Option<String>, Option<String>);

/// Most items a feed gives.
pub const MAX_FEED: usize = 1000;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeedEvent {
    /// A run ended.
    Result {
        /// How it ended: succeeded, failed, …
        state: String,
    },
    /// Someone commented.
    Comment {
        /// Who.
        author: String,
        /// The comment's first line.
        text: String,
    },
    /// Its result was given an outcome.
    Outcome {
        /// Which.
        verdict: Verdict,
        /// By whom.
        by: String,
        /// Why.
        note: Option<String>,
    },
}

/// An event of the feed, with when and on what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedItem {
    /// When (seconds since the epoch).
    pub at: i64,
    /// The experiment.
    pub experiment: u64,
    /// Its name.
    pub name: Option<String>,
    /// Its project.
    pub project: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: FeedEvent,
}

impl Lab {
    /// What happened since `since` (seconds since the epoch), newest first,
    /// at most `limit` (up to [`MAX_FEED`]), of `project` if given, on the
    /// experiments whose output `p` may read.
    pub fn feed(
        &self,
        p: &Principal,
        since: i64,
        project: Option<&str>,
        limit: usize,
    ) -> LabResult<Vec<FeedItem>> {
        let p = self.current(p)?;
        // Whether `p` may read an experiment's output, and its name and
        // project, asked once per experiment.
        let mut seen: HashMap<u64, Option<NameAndProject>> = HashMap::new();
        let mut visible = |id: u64| {
            seen.entry(id)
                .or_insert_with(|| {
                    self.check_output_readable(&p, id)
                        .ok()
                        .map(|e| (e.spec.name, e.spec.project))
                })
                .clone()
        };
        let mut items = Vec::new();
        let mut ended = Vec::new();
        self.store
            .for_each_since(since.saturating_sub(RUNS_FOUND_WITHIN), usize::MAX, |e| {
                if let State::Finished { ended_at, .. } = e.state
                    && ended_at >= since
                {
                    ended.push((e.id, ended_at, e.state.name().to_string()));
                }
            })?;
        for (id, at, state) in ended {
            items.push((id, at, FeedEvent::Result { state }));
        }
        for c in self.store.comments_since(since)? {
            let text = c
                .text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            items.push((
                c.experiment,
                c.at,
                FeedEvent::Comment {
                    author: c.author,
                    text,
                },
            ));
        }
        for (id, c) in self.store.conclusions_since(since)? {
            items.push((
                id,
                c.at,
                FeedEvent::Outcome {
                    verdict: c.verdict,
                    by: c.by,
                    note: c.note,
                },
            ));
        }
        // Newest first. Times are in whole seconds: within one, the last
        // gathered first (outcomes, then comments, then results: the
        // order in which they follow each other).
        let mut items: Vec<(usize, (u64, i64, FeedEvent))> =
            items.into_iter().enumerate().collect();
        items.sort_by(|(i, a), (j, b)| b.1.cmp(&a.1).then(b.0.cmp(&a.0)).then(j.cmp(i)));
        let mut feed = Vec::new();
        for (_, (id, at, event)) in items {
            if feed.len() >= limit.min(MAX_FEED) {
                break;
            }
            let Some((name, in_project)) = visible(id) else {
                continue;
            };
            if project.is_some_and(|wanted| in_project.as_deref() != Some(wanted)) {
                continue;
            }
            feed.push(FeedItem {
                at,
                experiment: id,
                name,
                project: in_project,
                event,
            });
        }
        Ok(feed)
    }
}
