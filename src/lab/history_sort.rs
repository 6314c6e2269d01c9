//! Sorting the whole of a history search by one column (`history --sort`,
//! History's `s` and `r`): every match is ranked as it is read, and only
//! the best `offset + limit` are kept (a bounded heap), so a sort of a
//! million experiments holds a page's worth of ids, not the million.
//! Experiments without a value in the column (never ran, no such metric)
//! come last in either direction; equal values, newest first.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::str::FromStr;

/// Most rows skipped before a sorted page (`--offset`): deeper pages would
/// keep too much while the whole history is read.
pub const MAX_SORTED_OFFSET: usize = 10_000;
/// Most matches a sort ranks, the newest: each costs a few reads (its
/// record, outcome and metrics), about 30 µs, so a sort answers within
/// seconds; a filter that matches more sorts its newest (and says so).
pub const MAX_SORTED_MATCHES: usize = 100_000;

/// A column a search can be sorted by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortColumn {
    /// Id (the order of submission).
    #[default]
    Id,
    /// Name.
    Name,
    /// Owner.
    Owner,
    /// Project.
    Project,
    /// State.
    State,
    /// Outcome.
    Outcome,
    /// Time it ran.
    Ran,
    /// Peak memory.
    PeakMemory,
    /// GPU-hours.
    GpuHours,
    /// The last value of a metric.
    Metric(String),
}

impl SortColumn {
    /// Its name for people.
    pub fn label(&self) -> &str {
        match self {
            SortColumn::Id => "id",
            SortColumn::Name => "name",
            SortColumn::Owner => "owner",
            SortColumn::Project => "project",
            SortColumn::State => "state",
            SortColumn::Outcome => "outcome",
            SortColumn::Ran => "time run",
            SortColumn::PeakMemory => "peak memory",
            SortColumn::GpuHours => "GPU-hours",
            SortColumn::Metric(name) => name,
        }
    }

    /// Whether its values are figures (rather than names).
    pub fn is_figure(&self) -> bool {
        matches!(
            self,
            SortColumn::Id
                | SortColumn::Ran
                | SortColumn::PeakMemory
                | SortColumn::GpuHours
                | SortColumn::Metric(_)
        )
    }
}

impl FromStr for SortColumn {
    type Err = String;

    fn from_str(text: &str) -> Result<SortColumn, String> {
        Ok(match text {
            "id" => SortColumn::Id,
            "name" => SortColumn::Name,
            "owner" | "user" => SortColumn::Owner,
            "project" => SortColumn::Project,
            "state" => SortColumn::State,
            "outcome" => SortColumn::Outcome,
            "ran" | "duration" => SortColumn::Ran,
            "peak" | "memory" => SortColumn::PeakMemory,
            "gpu-hours" | "gpu" => SortColumn::GpuHours,
            _ => match text.strip_prefix("metric:") {
                Some(name) if !name.is_empty() => SortColumn::Metric(name.to_string()),
                _ => {
                    return Err(format!(
                        "cannot sort by {text:?}: id, name, owner, project, state, outcome, ran, peak, gpu-hours or metric:NAME"
                    ));
                }
            },
        })
    }
}

/// How a search is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySort {
    /// The column.
    pub column: SortColumn,
    /// Largest (or last in the alphabet) first.
    pub descending: bool,
}

/// One experiment's value in the sorted column.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// A number.
    Number(f64),
    /// A text.
    Text(String),
}

impl SortValue {
    fn cmp(&self, other: &SortValue) -> Ordering {
        match (self, other) {
            (SortValue::Number(a), SortValue::Number(b)) => a.total_cmp(b),
            // A to Z whatever the case; the case only breaks ties.
            (SortValue::Text(a), SortValue::Text(b)) => a
                .to_lowercase()
                .cmp(&b.to_lowercase())
                .then_with(|| a.cmp(b)),
            (SortValue::Number(_), SortValue::Text(_)) => Ordering::Less,
            (SortValue::Text(_), SortValue::Number(_)) => Ordering::Greater,
        }
    }
}

/// An experiment placed in a sorted page.
#[derive(Debug)]
struct Ranked {
    /// Its value in the column (`None`: it has none, and goes last).
    value: Option<SortValue>,
    /// The experiment.
    id: u64,
    /// Largest first.
    descending: bool,
}

impl Ranked {
    /// `Less`: `self` is shown before `other`.
    fn page_order(&self, other: &Ranked) -> Ordering {
        let by_value = match (&self.value, &other.value) {
            (Some(a), Some(b)) if self.descending => b.cmp(a),
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_value.then(other.id.cmp(&self.id))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.page_order(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    /// The heap's greatest is the one shown last: the first to drop.
    fn cmp(&self, other: &Ranked) -> Ordering {
        self.page_order(other)
    }
}

/// The best `keep` experiments seen so far, in a column's order.
#[derive(Debug)]
pub(super) struct Ranking {
    descending: bool,
    keep: usize,
    best: BinaryHeap<Ranked>,
    /// Experiments offered, kept or not.
    pub offered: usize,
}

impl Ranking {
    /// Keeps the first `keep` in the order `descending` says.
    pub fn new(descending: bool, keep: usize) -> Ranking {
        Ranking {
            descending,
            keep,
            best: BinaryHeap::with_capacity(keep.min(4096) + 1),
            offered: 0,
        }
    }

    /// Considers experiment `id` with `value`.
    pub fn offer(&mut self, id: u64, value: Option<SortValue>) {
        self.offered += 1;
        if self.keep == 0 {
            return;
        }
        let ranked = Ranked {
            value,
            id,
            descending: self.descending,
        };
        if self.best.len() < self.keep {
            self.best.push(ranked);
        } else if self.best.peek().is_some_and(|last| ranked < *last) {
            self.best.pop();
            self.best.push(ranked);
        }
    }

    /// The ids kept, in page order.
    pub fn into_ids(self) -> Vec<u64> {
        self.best
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(values: &[(u64, Option<f64>)], descending: bool, keep: usize) -> Vec<u64> {
        let mut ranking = Ranking::new(descending, keep);
        for (id, v) in values {
            ranking.offer(*id, v.map(SortValue::Number));
        }
        ranking.into_ids()
    }

    #[test]
    fn the_best_are_kept_in_order_with_the_missing_last_and_ties_newest_first() {
        let values = [
            (1, Some(0.5)),
            (2, None),
            (3, Some(0.9)),
            (4, Some(0.5)),
            (5, Some(0.1)),
        ];
        assert_eq!(ranked(&values, false, 10), vec![5, 4, 1, 3, 2]);
        assert_eq!(ranked(&values, true, 10), vec![3, 4, 1, 5, 2]);
        assert_eq!(ranked(&values, true, 2), vec![3, 4]);
        assert_eq!(ranked(&values, false, 0), Vec::<u64>::new());
    }

    #[test]
    fn a_bounded_ranking_agrees_with_sorting_everything() {
        // Many values in a scrambled order, with repeats and gaps.
        let values: Vec<(u64, Option<f64>)> = (1..=500u64)
            .map(|id| {
                let x = id.wrapping_mul(2_654_435_761) % 97;
                (id, (x % 11 != 0).then_some((x % 13) as f64))
            })
            .collect();
        for descending in [false, true] {
            let mut all: Vec<Ranked> = values
                .iter()
                .map(|(id, v)| Ranked {
                    value: v.map(SortValue::Number),
                    id: *id,
                    descending,
                })
                .collect();
            all.sort();
            let want: Vec<u64> = all.iter().map(|r| r.id).collect();
            for keep in [1, 7, 100, 500, 600] {
                let got = ranked(&values, descending, keep);
                assert_eq!(got, want[..keep.min(want.len())], "keep {keep}");
            }
        }
    }

    #[test]
    fn names_go_a_to_z_whatever_their_case() {
        let mut ranking = Ranking::new(false, 10);
        for (id, name) in [(1, "beta"), (2, "Alpha"), (3, "alpha"), (4, "Gamma")] {
            ranking.offer(id, Some(SortValue::Text(name.into())));
        }
        assert_eq!(ranking.into_ids(), vec![2, 3, 1, 4]);
    }

    #[test]
    fn columns_are_named_as_the_command_line_names_them() {
        assert_eq!("peak".parse(), Ok(SortColumn::PeakMemory));
        assert_eq!(
            "metric:val_loss".parse(),
            Ok(SortColumn::Metric("val_loss".into()))
        );
        let err = "colour".parse::<SortColumn>().expect_err("no such column");
        assert!(err.contains("metric:NAME"), "{err}");
        assert!("metric:".parse::<SortColumn>().is_err());
    }
}
