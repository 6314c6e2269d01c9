//! The History tab as a component: every experiment the caller may see,
//! newest first, selected by the filter language (`/`), a page at a time;
//! the experiment page (Enter) and a comparison of marked ones (space,
//! `d`). Its state and keys here; its drawing in [`draw`]. The rows, the
//! page and the comparison come from the service (`Lab::history`,
//! `Lab::compare`), as the commands of the same names do.

pub mod draw;
mod panes;

use std::collections::BTreeSet;

use terminput::{KeyCode, KeyEvent};

use super::component::Handled;
use super::input::type_into;
use crate::lab::{HistorySort, SortColumn};

/// Most characters a filter typed in the bar may have.
const MAX_FILTER_CHARS: usize = 400;

/// What a History key asks of the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Open the page of the selected experiment.
    OpenSelected,
    /// Mark or unmark the selected experiment for comparison.
    MarkSelected,
    /// Compare the marked experiments.
    CompareMarked,
    /// Go to the next page (older experiments).
    NextPage,
    /// Add this comment to this experiment.
    Comment(u64, String),
    /// Follow this experiment's log (the Queue tab's log pane).
    Log(u64),
    /// Replace the text of this comment on this experiment.
    EditComment(u64, u64, String),
    /// The n-th comment listed to choose from on this experiment: edit it
    /// (`false`) or ask to remove it (`true`).
    PickComment(u64, usize, bool),
    /// Remove this comment on this experiment (asked, and said yes to).
    RemoveComment(u64, u64),
    /// Give this experiment this outcome (`None`: take it back), with a note.
    Outcome(u64, Option<crate::model::Verdict>, String),
}

/// The column after `column` (`s`), with `metrics` the metric columns shown.
fn next_column(column: &SortColumn, metrics: &[String]) -> SortColumn {
    use SortColumn::*;
    match column {
        Id => Name,
        Name => Owner,
        Owner => Project,
        Project => State,
        State => Outcome,
        Outcome => Ran,
        Ran => PeakMemory,
        PeakMemory => match metrics.first() {
            Some(first) => Metric(first.clone()),
            None => GpuHours,
        },
        Metric(name) => match metrics.iter().position(|m| m == name) {
            Some(n) if n + 1 < metrics.len() => Metric(metrics[n + 1].clone()),
            _ => GpuHours,
        },
        GpuHours => Id,
    }
}

/// The metrics the filter names, shown as columns (at most three).
pub fn metric_columns(filter: &str) -> Vec<String> {
    crate::lab::filter::parse(filter)
        .map(|f| {
            f.metric_names()
                .into_iter()
                .take(3)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What the History tab lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shown {
    /// Experiments, by the filter.
    #[default]
    Experiments,
    /// What happened lately (`f`).
    Feed,
    /// Each project's figures (`P`).
    Projects,
    /// Every package with the experiments that used it (`D`).
    Dependencies,
}

/// A pane over the History table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryPane {
    /// The experiment page, scrolled down this many lines.
    Page {
        /// The experiment.
        id: u64,
        /// Lines scrolled.
        scroll: u16,
    },
    /// The marked experiments side by side, scrolled.
    Compare {
        /// The experiments.
        ids: Vec<u64>,
        /// Lines scrolled.
        scroll: u16,
    },
    /// The experiment's git diff, scrolled.
    Diff {
        /// The experiment.
        id: u64,
        /// Lines scrolled.
        scroll: u16,
    },
    /// A comment being written on an experiment (several lines).
    Comment {
        /// The experiment.
        id: u64,
        /// What is written so far.
        text: String,
        /// The comment whose text this replaces (`None`: a new one).
        editing: Option<u64>,
    },
    /// Whether to remove a comment: `y` removes it, any other key keeps it.
    ConfirmRemove {
        /// The experiment.
        id: u64,
        /// The comment.
        comment: u64,
        /// Its author and first line, to show what goes.
        what: String,
    },
    /// One of the caller's comments being chosen, to edit it (`e`) or
    /// remove it (`x`); the session lists them.
    PickComment {
        /// The experiment.
        id: u64,
        /// The one chosen.
        selected: usize,
        /// Remove rather than edit.
        remove: bool,
    },
    /// An outcome being given: the verdict chosen (`None` until a key
    /// chose one), and a note.
    Outcome {
        /// The experiment.
        id: u64,
        /// `Some(None)`: take the outcome back.
        verdict: Option<Option<crate::model::Verdict>>,
        /// The note typed so far.
        note: String,
    },
}

/// Most characters of a comment typed here (the service allows 16 KiB).
const MAX_COMMENT_CHARS: usize = 4000;

/// The History tab's own state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryState {
    /// The filter applied.
    pub filter: String,
    /// The filter bar, open, with what is typed so far.
    pub typing: Option<String>,
    /// Why the filter typed was not applied (with a caret under the mistake).
    pub error: Option<String>,
    /// The selected row of the page.
    pub selected: usize,
    /// Where each page from the first starts: below this id, or when
    /// sorted, after this many rows (`None`: the first).
    pub pages: Vec<Option<u64>>,
    /// Experiments marked for comparison.
    pub marked: BTreeSet<u64>,
    /// The column History is sorted by, and whether reversed.
    pub sort: (SortColumn, bool),
    /// An open pane.
    pub pane: Option<HistoryPane>,
    /// Rows a screen shows (set by the session).
    pub page_rows: usize,
    /// What the tab shows: the experiments, or the activity feed (what a
    /// viewer sees first), the projects or the dependencies.
    pub shown: Shown,
    /// The Dependencies view's query (`package:pandas<2 source:mysql
    /// project:P unused:90d`).
    pub deps_query: String,
    /// The project whose activity the feed shows (empty: all).
    pub feed_project: String,
    /// Which of the experiment's metrics its page charts (`m`).
    pub chart_metric: usize,
    /// Whether the page's metric chart has a log scale (`L`).
    pub chart_log: bool,
    /// Which use the page charts (`u`).
    pub chart_use: crate::tui::data::UseChart,
}

impl HistoryState {
    /// Where the page shown starts (`None`: the first).
    pub fn before(&self) -> Option<u64> {
        self.pages.last().copied().flatten()
    }

    /// How the service is to sort (`None`: newest first, as read). Text
    /// columns go A to Z, figures largest first; `r` turns either round.
    pub fn service_sort(&self) -> Option<HistorySort> {
        let (column, reversed) = &self.sort;
        if *column == SortColumn::Id && !reversed {
            return None;
        }
        // A metric column the filter no longer names: as read.
        if let SortColumn::Metric(name) = column
            && !metric_columns(&self.filter).contains(name)
        {
            return None;
        }
        Some(HistorySort {
            column: column.clone(),
            descending: column.is_figure() != *reversed,
        })
    }

    /// Whether keys are text (the filter bar, a comment, a note).
    pub fn takes_text(&self) -> bool {
        self.typing.is_some()
            || matches!(
                self.pane,
                Some(
                    HistoryPane::Comment { .. }
                        | HistoryPane::Outcome {
                            verdict: Some(_),
                            ..
                        }
                )
            )
    }

    /// Pasted text goes into an open filter bar, comment or note.
    pub fn handle_paste(&mut self, text: &str) -> Option<String> {
        if let Some(HistoryPane::Comment { text: typed, .. }) = self.pane.as_mut() {
            for c in text.chars().filter(|c| *c == '\n' || !c.is_control()) {
                if typed.chars().count() >= MAX_COMMENT_CHARS {
                    break;
                }
                typed.push(c);
            }
            return None;
        }
        let typed = self.typing.as_mut()?;
        for c in text.chars().filter(|c| !c.is_control()) {
            if typed.chars().count() >= MAX_FILTER_CHARS {
                break;
            }
            typed.push(c);
        }
        None
    }

    /// Applies one key; `rows`: how many rows the page shows.
    pub fn handle_key(&mut self, key: KeyEvent, rows: usize) -> Handled<Request> {
        if let Some(typed) = self.typing.as_mut() {
            match key.code {
                KeyCode::Esc => {
                    self.typing = None;
                    self.error = None;
                }
                KeyCode::Enter if self.shown == Shown::Feed => {
                    self.feed_project = typed.trim().to_string();
                    self.typing = None;
                    self.error = None;
                    self.selected = 0;
                }
                KeyCode::Enter if self.shown == Shown::Dependencies => {
                    let text = typed.trim().to_string();
                    match crate::lab::parse_deps_query(&text, 0) {
                        Ok(_) => {
                            self.deps_query = text;
                            self.typing = None;
                            self.error = None;
                            self.selected = 0;
                        }
                        Err(why) => self.error = Some(format!("{text}\n{why}")),
                    }
                }
                KeyCode::Enter => {
                    let text = typed.trim().to_string();
                    match crate::lab::filter::parse(&text) {
                        Ok(_) => {
                            self.filter = text;
                            self.typing = None;
                            self.error = None;
                            self.pages.clear();
                            self.selected = 0;
                        }
                        Err(e) => self.error = Some(e.render(&text)),
                    }
                }
                code => {
                    type_into(typed, code, MAX_FILTER_CHARS);
                }
            }
            return Handled::Yes;
        }
        if let Some(pane) = self.pane.as_mut() {
            let ctrl = key.modifiers.contains(terminput::KeyModifiers::CTRL);
            match pane {
                HistoryPane::Comment { id, text, editing } => {
                    match key.code {
                        KeyCode::Esc => self.pane = None,
                        KeyCode::Char('s' | 'd') if ctrl => {
                            return Handled::Ask(match editing {
                                None => Request::Comment(*id, text.clone()),
                                Some(comment) => Request::EditComment(*id, *comment, text.clone()),
                            });
                        }
                        KeyCode::Enter => text.push('\n'),
                        KeyCode::Backspace => {
                            text.pop();
                        }
                        KeyCode::Char(c)
                            if !c.is_control() && text.chars().count() < MAX_COMMENT_CHARS =>
                        {
                            text.push(c)
                        }
                        _ => {}
                    }
                    return Handled::Yes;
                }
                HistoryPane::Outcome { id, verdict, note } => {
                    use crate::model::Verdict;
                    match (verdict.as_ref(), key.code) {
                        (_, KeyCode::Esc) => self.pane = None,
                        (None, KeyCode::Char(c)) => {
                            *verdict = Some(match c {
                                'p' => Some(Verdict::Positive),
                                'n' => Some(Verdict::Negative),
                                'i' => Some(Verdict::Inconclusive),
                                'x' => None,
                                _ => {
                                    return Handled::Notice(
                                        "p positive, n negative, i inconclusive, x none".into(),
                                    );
                                }
                            });
                        }
                        (Some(chosen), KeyCode::Enter) => {
                            return Handled::Ask(Request::Outcome(*id, *chosen, note.clone()));
                        }
                        (Some(_), KeyCode::Backspace) => {
                            note.pop();
                        }
                        (Some(_), KeyCode::Char(c))
                            if !c.is_control() && note.chars().count() < MAX_FILTER_CHARS =>
                        {
                            note.push(c)
                        }
                        _ => {}
                    }
                    return Handled::Yes;
                }
                HistoryPane::ConfirmRemove { id, comment, .. } => {
                    if key.code == KeyCode::Char('y') {
                        return Handled::Ask(Request::RemoveComment(*id, *comment));
                    }
                    self.pane = Some(HistoryPane::Page { id: *id, scroll: 0 });
                    return Handled::Notice("kept".into());
                }
                HistoryPane::PickComment {
                    id,
                    selected,
                    remove,
                } => {
                    match key.code {
                        KeyCode::Esc | KeyCode::Backspace => {
                            self.pane = Some(HistoryPane::Page { id: *id, scroll: 0 });
                        }
                        KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
                        KeyCode::Down | KeyCode::Char('j') => {
                            *selected = selected.saturating_add(1)
                        }
                        KeyCode::Enter => {
                            return Handled::Ask(Request::PickComment(*id, *selected, *remove));
                        }
                        _ => {}
                    }
                    return Handled::Yes;
                }
                HistoryPane::Page { id, .. } if !ctrl => match key.code {
                    KeyCode::Char('c') => {
                        let id = *id;
                        self.pane = Some(HistoryPane::Comment {
                            id,
                            text: String::new(),
                            editing: None,
                        });
                        return Handled::Yes;
                    }
                    KeyCode::Char('l') => return Handled::Ask(Request::Log(*id)),
                    KeyCode::Char(c @ ('e' | 'x')) => {
                        let id = *id;
                        self.pane = Some(HistoryPane::PickComment {
                            id,
                            selected: 0,
                            remove: c == 'x',
                        });
                        return Handled::Yes;
                    }
                    KeyCode::Char('u') => {
                        self.chart_use = self.chart_use.next();
                        return Handled::Yes;
                    }
                    KeyCode::Char('v') => {
                        let id = *id;
                        self.pane = Some(HistoryPane::Diff { id, scroll: 0 });
                        return Handled::Yes;
                    }
                    KeyCode::Char('o') => {
                        let id = *id;
                        self.pane = Some(HistoryPane::Outcome {
                            id,
                            verdict: None,
                            note: String::new(),
                        });
                        return Handled::Yes;
                    }
                    _ => {}
                },
                _ => {}
            }
            // Both a page and a comparison chart a metric.
            match key.code {
                KeyCode::Char('m') if !ctrl => {
                    self.chart_metric = self.chart_metric.wrapping_add(1);
                    return Handled::Yes;
                }
                KeyCode::Char('L') => {
                    self.chart_log = !self.chart_log;
                    return Handled::Yes;
                }
                _ => {}
            }
            if let HistoryPane::Diff { id, .. } = pane
                && matches!(key.code, KeyCode::Esc | KeyCode::Backspace)
            {
                // Back to the page it was opened from.
                self.pane = Some(HistoryPane::Page { id: *id, scroll: 0 });
                return Handled::Yes;
            }
            let (HistoryPane::Page { scroll, .. }
            | HistoryPane::Compare { scroll, .. }
            | HistoryPane::Diff { scroll, .. }) = pane
            else {
                return Handled::No;
            };
            let page = self.page_rows.max(1) as u16;
            match key.code {
                KeyCode::Esc | KeyCode::Backspace => self.pane = None,
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
                KeyCode::PageUp => *scroll = scroll.saturating_sub(page),
                KeyCode::PageDown | KeyCode::Char(' ') => *scroll = scroll.saturating_add(page),
                KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
                _ => return Handled::No,
            }
            return Handled::Yes;
        }
        let last = rows.saturating_sub(1);
        let screen = self.page_rows.max(1);
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(screen),
            KeyCode::PageDown => self.selected = (self.selected + screen).min(last),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = last,
            KeyCode::Char('/') if self.shown == Shown::Feed => {
                self.typing = Some(self.feed_project.clone());
                self.error = None;
            }
            KeyCode::Esc if self.shown == Shown::Feed && !self.feed_project.is_empty() => {
                self.feed_project.clear();
                self.selected = 0;
                return Handled::Notice("all projects".into());
            }
            KeyCode::Char('/') if self.shown == Shown::Dependencies => {
                self.typing = Some(self.deps_query.clone());
                self.error = None;
            }
            KeyCode::Esc if self.shown == Shown::Dependencies && !self.deps_query.is_empty() => {
                self.deps_query.clear();
                self.selected = 0;
                return Handled::Notice("query cleared".into());
            }
            KeyCode::Char('/') if self.shown == Shown::Experiments => {
                self.typing = Some(self.filter.clone());
                self.error = None;
            }
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.pages.clear();
                self.selected = 0;
                return Handled::Notice("filter cleared".into());
            }
            KeyCode::Enter => return Handled::Ask(Request::OpenSelected),
            KeyCode::Char(c @ ('f' | 'P' | 'D')) => {
                let view = match c {
                    'f' => Shown::Feed,
                    'P' => Shown::Projects,
                    _ => Shown::Dependencies,
                };
                // The same key again goes back to the experiments.
                self.shown = if self.shown == view {
                    Shown::Experiments
                } else {
                    view
                };
                self.selected = 0;
            }
            _ if self.shown != Shown::Experiments
                && matches!(
                    key.code,
                    KeyCode::Char(' ' | 'd' | 'u' | 'n' | 'p' | 's' | 'r' | '/')
                ) =>
            {
                return Handled::Notice(
                    "that key is the experiments list's (the view's key again goes back)".into(),
                );
            }
            KeyCode::Char(' ') => return Handled::Ask(Request::MarkSelected),
            KeyCode::Char('d') => {
                return if self.marked.len() < 2 {
                    Handled::Notice("mark two or more experiments with space, then d".into())
                } else {
                    Handled::Ask(Request::CompareMarked)
                };
            }
            KeyCode::Char('u') => {
                self.marked.clear();
                return Handled::Notice("marks cleared".into());
            }
            KeyCode::Char('n') => return Handled::Ask(Request::NextPage),
            KeyCode::Char('p') => {
                if self.pages.pop().is_none() {
                    return Handled::Notice("this is the newest page".into());
                }
                self.selected = 0;
            }
            KeyCode::Char(c @ ('s' | 'r')) => {
                let metrics = metric_columns(&self.filter);
                if c == 's' {
                    self.sort.0 = next_column(&self.sort.0, &metrics);
                } else {
                    self.sort.1 = !self.sort.1;
                }
                // Another order: from its first page.
                self.pages.clear();
                self.selected = 0;
                return Handled::Notice(format!(
                    "sorted by {}{} (all that the filter matches)",
                    self.sort.0.label(),
                    if self.sort.1 { ", reversed" } else { "" }
                ));
            }
            _ => return Handled::No,
        }
        Handled::Yes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terminput::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code).modifiers(KeyModifiers::empty())
    }

    fn typed(state: &mut HistoryState, text: &str) {
        for c in text.chars() {
            state.handle_key(key(KeyCode::Char(c)), 10);
        }
    }

    #[test]
    fn a_filter_is_applied_only_when_it_parses() {
        let mut s = HistoryState::default();
        s.handle_key(key(KeyCode::Char('/')), 10);
        assert!(s.takes_text());
        typed(&mut s, "metric:auc>>1");
        s.handle_key(key(KeyCode::Enter), 10);
        assert!(s.takes_text(), "the bar stays open on a mistake");
        assert_eq!(s.filter, "");
        assert!(
            s.error
                .as_deref()
                .is_some_and(|e| e.contains("           ^")),
            "{:?}",
            s.error
        );
        for _ in 0.."metric:auc>>1".len() {
            s.handle_key(key(KeyCode::Backspace), 10);
        }
        typed(&mut s, "project:churn");
        s.pages.push(Some(50));
        s.handle_key(key(KeyCode::Enter), 10);
        assert_eq!(s.filter, "project:churn");
        assert!(!s.takes_text() && s.error.is_none());
        assert!(s.pages.is_empty(), "a new filter starts at the newest");
        assert_eq!(
            s.handle_key(key(KeyCode::Esc), 10),
            Handled::Notice("filter cleared".into())
        );
        assert_eq!(s.filter, "");
    }

    #[test]
    fn keys_move_mark_compare_and_page() {
        let mut s = HistoryState {
            page_rows: 5,
            ..HistoryState::default()
        };
        s.handle_key(key(KeyCode::Down), 3);
        s.handle_key(key(KeyCode::Down), 3);
        s.handle_key(key(KeyCode::Down), 3);
        assert_eq!(s.selected, 2, "stops at the last row");
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 3),
            Handled::Ask(Request::OpenSelected)
        );
        assert_eq!(
            s.handle_key(key(KeyCode::Char(' ')), 3),
            Handled::Ask(Request::MarkSelected)
        );
        assert!(matches!(
            s.handle_key(key(KeyCode::Char('d')), 3),
            Handled::Notice(_)
        ));
        s.marked.extend([1, 2]);
        assert_eq!(
            s.handle_key(key(KeyCode::Char('d')), 3),
            Handled::Ask(Request::CompareMarked)
        );
        assert_eq!(
            s.handle_key(key(KeyCode::Char('n')), 3),
            Handled::Ask(Request::NextPage)
        );
        assert!(matches!(
            s.handle_key(key(KeyCode::Char('p')), 3),
            Handled::Notice(_)
        ));
        s.pages.push(Some(9));
        s.handle_key(key(KeyCode::Char('p')), 3);
        assert_eq!(s.before(), None);
        s.pane = Some(HistoryPane::Page { id: 1, scroll: 0 });
        s.handle_key(key(KeyCode::PageDown), 3);
        assert_eq!(s.pane, Some(HistoryPane::Page { id: 1, scroll: 5 }));
        s.handle_key(key(KeyCode::Esc), 3);
        assert_eq!(s.pane, None);
    }

    #[test]
    fn the_feed_narrows_to_one_project() {
        let mut s = HistoryState {
            shown: Shown::Feed,
            ..HistoryState::default()
        };
        s.handle_key(key(KeyCode::Char('/')), 1);
        typed(&mut s, "churn");
        s.handle_key(key(KeyCode::Enter), 1);
        assert_eq!(s.feed_project, "churn");
        assert_eq!(s.filter, "", "the experiments' filter is not touched");
        assert_eq!(
            s.handle_key(key(KeyCode::Esc), 1),
            Handled::Notice("all projects".into())
        );
        assert_eq!(s.feed_project, "");
    }

    #[test]
    fn the_dependencies_view_takes_its_own_query() {
        let mut s = HistoryState {
            shown: Shown::Dependencies,
            ..HistoryState::default()
        };
        s.handle_key(key(KeyCode::Char('/')), 1);
        typed(&mut s, "package:");
        s.handle_key(key(KeyCode::Enter), 1);
        assert!(s.takes_text() && s.error.is_some(), "a value is needed");
        typed(&mut s, "pandas<2");
        s.handle_key(key(KeyCode::Enter), 1);
        assert_eq!(s.deps_query, "package:pandas<2");
        assert_eq!(s.filter, "", "the experiments' filter is not touched");
        assert_eq!(
            s.handle_key(key(KeyCode::Esc), 1),
            Handled::Notice("query cleared".into())
        );
        assert!(matches!(
            s.handle_key(key(KeyCode::Char(' ')), 1),
            Handled::Notice(_)
        ));
        s.handle_key(key(KeyCode::Char('D')), 1);
        assert_eq!(s.shown, Shown::Experiments);
    }

    #[test]
    fn s_goes_through_every_column_and_the_service_sorts_by_it() {
        let mut s = HistoryState {
            filter: "metric:auc>0.5 metric:loss<1".into(),
            ..HistoryState::default()
        };
        assert_eq!(s.service_sort(), None, "newest first, as read");
        let mut seen = Vec::new();
        for _ in 0..12 {
            s.handle_key(key(KeyCode::Char('s')), 10);
            seen.push(s.sort.0.label().to_string());
            if s.sort.0 == SortColumn::Id {
                break;
            }
        }
        assert_eq!(
            seen,
            [
                "name",
                "owner",
                "project",
                "state",
                "outcome",
                "time run",
                "peak memory",
                "auc",
                "loss",
                "GPU-hours",
                "id"
            ]
        );
        s.sort = (SortColumn::Name, false);
        let by_name = s.service_sort().expect("sorted");
        assert!(!by_name.descending, "names A to Z");
        s.handle_key(key(KeyCode::Char('r')), 10);
        assert!(s.service_sort().expect("sorted").descending);
        s.sort = (SortColumn::Metric("auc".into()), false);
        assert!(
            s.service_sort().expect("sorted").descending,
            "largest first"
        );
        s.filter.clear();
        assert_eq!(s.service_sort(), None, "a metric the filter dropped");
    }

    #[test]
    fn a_comment_is_chosen_then_edited_or_removed() {
        let mut s = HistoryState {
            pane: Some(HistoryPane::Page { id: 7, scroll: 0 }),
            ..HistoryState::default()
        };
        s.handle_key(key(KeyCode::Char('e')), 1);
        assert!(!s.takes_text(), "keys choose a comment first");
        s.handle_key(key(KeyCode::Down), 1);
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 1),
            Handled::Ask(Request::PickComment(7, 1, false))
        );
        // The session opens the editor on the chosen comment's text.
        s.pane = Some(HistoryPane::Comment {
            id: 7,
            text: "lift holds".into(),
            editing: Some(42),
        });
        typed(&mut s, " on q3");
        let save = KeyEvent::new(KeyCode::Char('s')).modifiers(KeyModifiers::CTRL);
        assert_eq!(
            s.handle_key(save, 1),
            Handled::Ask(Request::EditComment(7, 42, "lift holds on q3".into()))
        );
        s.pane = Some(HistoryPane::Page { id: 7, scroll: 0 });
        s.handle_key(key(KeyCode::Char('x')), 1);
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 1),
            Handled::Ask(Request::PickComment(7, 0, true))
        );
        // The session asks first; only `y` removes.
        let confirm = HistoryPane::ConfirmRemove {
            id: 7,
            comment: 42,
            what: "ana: lift holds".into(),
        };
        s.pane = Some(confirm.clone());
        assert_eq!(
            s.handle_key(key(KeyCode::Char('y')), 1),
            Handled::Ask(Request::RemoveComment(7, 42))
        );
        s.pane = Some(confirm);
        s.handle_key(key(KeyCode::Char('n')), 1);
        assert_eq!(s.pane, Some(HistoryPane::Page { id: 7, scroll: 0 }));
        s.pane = Some(HistoryPane::PickComment {
            id: 7,
            selected: 0,
            remove: true,
        });
        s.handle_key(key(KeyCode::Esc), 1);
        assert_eq!(s.pane, Some(HistoryPane::Page { id: 7, scroll: 0 }));
        assert_eq!(
            s.handle_key(key(KeyCode::Char('l')), 1),
            Handled::Ask(Request::Log(7))
        );
    }

    #[test]
    fn the_page_takes_a_comment_and_an_outcome() {
        let mut s = HistoryState {
            pane: Some(HistoryPane::Page { id: 7, scroll: 0 }),
            ..HistoryState::default()
        };
        s.handle_key(key(KeyCode::Char('c')), 1);
        assert!(s.takes_text());
        typed(&mut s, "lift holds");
        s.handle_key(key(KeyCode::Enter), 1);
        typed(&mut s, "on q3");
        let save = KeyEvent::new(KeyCode::Char('s')).modifiers(KeyModifiers::CTRL);
        assert_eq!(
            s.handle_key(save, 1),
            Handled::Ask(Request::Comment(7, "lift holds\non q3".into()))
        );
        s.pane = Some(HistoryPane::Page { id: 7, scroll: 0 });
        s.handle_key(key(KeyCode::Char('o')), 1);
        assert!(!s.takes_text(), "a verdict key first");
        s.handle_key(key(KeyCode::Char('n')), 1);
        assert!(s.takes_text());
        typed(&mut s, "no lift");
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 1),
            Handled::Ask(Request::Outcome(
                7,
                Some(crate::model::Verdict::Negative),
                "no lift".into()
            ))
        );
        s.handle_key(key(KeyCode::Esc), 1);
        assert_eq!(s.pane, None);
        s.pane = Some(HistoryPane::Page { id: 7, scroll: 3 });
        s.handle_key(key(KeyCode::Char('v')), 1);
        assert_eq!(s.pane, Some(HistoryPane::Diff { id: 7, scroll: 0 }));
        s.handle_key(key(KeyCode::Down), 1);
        assert_eq!(s.pane, Some(HistoryPane::Diff { id: 7, scroll: 1 }));
        s.handle_key(key(KeyCode::Esc), 1);
        assert_eq!(
            s.pane,
            Some(HistoryPane::Page { id: 7, scroll: 0 }),
            "back to its page"
        );
    }
}
