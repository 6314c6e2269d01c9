//! The Queue tab as a component: its state and keys here; its drawing in
//! [`draw`], the new-experiment form in [`form`], the live log pane in
//! [`logpane`].

pub mod draw;
pub mod form;
pub mod logpane;

use terminput::{KeyCode, KeyEvent};

use super::component::Handled;
use crate::lab::SubmitRequest;
use crate::model::{Role, State};
use crate::output::Stream;
use form::{FormAction, SubmitForm};
use logpane::LogPaneState;

/// The notice for text pasted where nothing takes text.
pub const PASTE_IGNORED: &str = "pasted text ignored: paste into a form, a prompt or a search";

/// What a Queue key asks of the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Open the details of the selected experiment.
    ShowSelected,
    /// Open the live log of the selected experiment.
    LogSelected,
    /// Ask to cancel the selected experiment (a confirmation follows).
    CancelSelected,
    /// Cancel this experiment (confirmed).
    ConfirmCancel(u64),
    /// Submit a copy of the selected experiment.
    RerunSelected,
    /// Submit what the form filled in.
    Submit(Box<SubmitRequest>),
    /// Ask for a new priority of the selected experiment.
    PrioritySelected,
    /// Set an experiment's priority (from the prompt).
    SetPriority(u64, String),
    /// Find the log search text in older (true) or newer lines.
    FindInLog {
        /// Search backwards.
        older: bool,
    },
    /// Filter the Queue by the next project among its experiments.
    NextProject,
}

/// Which states the Queue tab shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StateFilter {
    /// Queued and running.
    #[default]
    All,
    /// Waiting to start.
    Queued,
    /// Starting or running.
    Running,
}

impl StateFilter {
    /// Whether an experiment in `state` passes.
    pub fn admits(self, state: &State) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Queued => matches!(state, State::Queued),
            StateFilter::Running => matches!(state, State::Starting { .. } | State::Running { .. }),
        }
    }

    /// Its name in the title.
    pub fn label(self) -> &'static str {
        match self {
            StateFilter::All => "queued+running",
            StateFilter::Queued => "queued",
            StateFilter::Running => "running",
        }
    }

    fn next(self) -> StateFilter {
        match self {
            StateFilter::All => StateFilter::Queued,
            StateFilter::Queued => StateFilter::Running,
            StateFilter::Running => StateFilter::All,
        }
    }
}

/// A pane over the Queue table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuePane {
    /// The experiment's details and history.
    Details(u64),
    /// The experiment's output, followed live, with scrollback and search.
    Log(LogPaneState),
    /// "Cancel experiment N? y/n".
    ConfirmCancel(u64),
    /// The new-experiment form.
    Submit(SubmitForm),
    /// "Priority of experiment N:" with what is typed so far.
    Priority(u64, String),
}

impl QueueState {
    /// Re-finds the selection among the rows now shown (`ids`, in order,
    /// the first at row `offset` of `total`): it stays on the same
    /// experiment, moved by the keys pressed since.
    pub fn follow_selection(&mut self, ids: &[u64], offset: usize, total: usize) {
        if let Some((id, at)) = self.anchor
            && let Some(now) = ids.iter().position(|x| *x == id)
        {
            let moved = self.selected as isize - at as isize;
            self.selected = ((offset + now) as isize + moved).max(0) as usize;
        }
        self.selected = self.selected.min(total.saturating_sub(1));
        self.anchor = self
            .selected
            .checked_sub(offset)
            .and_then(|i| ids.get(i))
            .map(|id| (*id, self.selected));
    }

    /// The first row to read so that the selected one is on a screen of
    /// `page` rows, moving the window as little as possible.
    pub fn window_start(&self, page: usize, total: usize) -> usize {
        let page = page.max(1);
        let selected = self.selected.min(total.saturating_sub(1));
        let mut offset = self.offset.min(total.saturating_sub(1));
        if selected < offset {
            offset = selected;
        } else if selected >= offset + page {
            offset = selected + 1 - page;
        }
        offset
    }

    fn reset_selection(&mut self) {
        self.selected = 0;
        self.anchor = None;
    }

    /// Whether an open pane is taking typed text.
    pub fn takes_text(&self) -> bool {
        match &self.pane {
            Some(QueuePane::Submit(_) | QueuePane::Priority(..)) => true,
            Some(QueuePane::Log(log)) => log.typing.is_some(),
            _ => false,
        }
    }

    /// Handles a key of the Queue tab for a user of `role`.
    pub fn handle_key(&mut self, key: KeyEvent, role: Role) -> Handled<Request> {
        let q = self;
        match q.pane.as_mut() {
            Some(QueuePane::ConfirmCancel(id)) => {
                let id = *id;
                q.pane = None;
                return if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    Handled::Ask(Request::ConfirmCancel(id))
                } else {
                    Handled::Notice(format!("experiment {id} not cancelled"))
                };
            }
            Some(QueuePane::Submit(form)) => {
                match form.handle_key(key) {
                    FormAction::Edit => {}
                    FormAction::Submit => match form.to_request() {
                        Ok(request) => return Handled::Ask(Request::Submit(Box::new(request))),
                        Err(why) => form.error = Some(why),
                    },
                    FormAction::Close => q.pane = None,
                }
                return Handled::Yes;
            }
            Some(QueuePane::Priority(id, typed)) => {
                match key.code {
                    KeyCode::Esc => q.pane = None,
                    KeyCode::Enter => {
                        return Handled::Ask(Request::SetPriority(*id, typed.clone()));
                    }
                    KeyCode::Backspace => {
                        typed.pop();
                    }
                    KeyCode::Char(c) if (c.is_ascii_digit() || c == '-') && typed.len() < 11 => {
                        typed.push(c)
                    }
                    _ => return Handled::Notice("type a whole number, then Enter".into()),
                }
                return Handled::Yes;
            }
            Some(QueuePane::Log(log)) => {
                if let Some(typed) = log.typing.as_mut() {
                    match key.code {
                        KeyCode::Esc => log.typing = None,
                        KeyCode::Enter => {
                            log.search = log.typing.take();
                            log.matched = None;
                            return Handled::Ask(Request::FindInLog { older: true });
                        }
                        KeyCode::Backspace => {
                            typed.pop();
                        }
                        KeyCode::Char(c) if !c.is_control() && typed.chars().count() < 200 => {
                            typed.push(c)
                        }
                        _ => {}
                    }
                    return Handled::Yes;
                }
                let page = log.page.max(1) as isize;
                match key.code {
                    KeyCode::Esc | KeyCode::Backspace => q.pane = None,
                    KeyCode::Up | KeyCode::Char('k') => log.scroll(-1),
                    KeyCode::Down | KeyCode::Char('j') => log.scroll(1),
                    KeyCode::PageUp => log.scroll(-page),
                    KeyCode::PageDown | KeyCode::Char(' ') => log.scroll(page),
                    KeyCode::Home | KeyCode::Char('g') => log.home(),
                    KeyCode::End | KeyCode::Char('G') => {
                        log.top = None;
                        log.matched = None;
                    }
                    KeyCode::Char('/') => log.typing = Some(String::new()),
                    KeyCode::Char('n') => return Handled::Ask(Request::FindInLog { older: true }),
                    KeyCode::Char('N') => return Handled::Ask(Request::FindInLog { older: false }),
                    KeyCode::Char('e') => {
                        let id = log.id;
                        let mut next = LogPaneState::new(id);
                        next.stream = match log.stream {
                            Stream::Stdout => Stream::Stderr,
                            Stream::Stderr => Stream::Stdout,
                        };
                        *log = next;
                    }
                    _ => return Handled::No,
                }
                return Handled::Yes;
            }
            Some(QueuePane::Details(_)) => {
                return match key.code {
                    KeyCode::Esc | KeyCode::Backspace | KeyCode::Enter => {
                        q.pane = None;
                        Handled::Yes
                    }
                    _ => Handled::No,
                };
            }
            None => {}
        }
        let page = q.page.max(1);
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => q.selected = q.selected.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => q.selected = q.selected.saturating_sub(1),
            KeyCode::PageDown => {
                q.selected = q.selected.saturating_add(page);
                q.anchor = None;
            }
            KeyCode::PageUp => {
                q.selected = q.selected.saturating_sub(page);
                q.anchor = None;
            }
            KeyCode::Home => q.reset_selection(),
            // Clamped to the last experiment by the session.
            KeyCode::End => {
                q.selected = usize::MAX;
                q.anchor = None;
            }
            KeyCode::Char('s') => {
                q.newest_first = !q.newest_first;
                q.reset_selection();
            }
            KeyCode::Char('m') => {
                q.mine_only = !q.mine_only;
                q.reset_selection();
            }
            KeyCode::Char('f') => {
                q.states = q.states.next();
                q.reset_selection();
            }
            KeyCode::Char('P') => return Handled::Ask(Request::NextProject),
            KeyCode::Char('n') if role == Role::Viewer => {
                return Handled::Notice("viewers cannot submit experiments".into());
            }
            KeyCode::Char('n') => q.pane = Some(QueuePane::Submit(SubmitForm::default())),
            KeyCode::Enter => return Handled::Ask(Request::ShowSelected),
            KeyCode::Char('l') => return Handled::Ask(Request::LogSelected),
            KeyCode::Char('c') => return Handled::Ask(Request::CancelSelected),
            KeyCode::Char('r') => return Handled::Ask(Request::RerunSelected),
            KeyCode::Char('p') if role != Role::Admin => {
                return Handled::Notice("only admins change priorities".into());
            }
            KeyCode::Char('p') => return Handled::Ask(Request::PrioritySelected),
            _ => return Handled::No,
        }
        Handled::Yes
    }

    /// Pasted text goes into the open form, prompt or search; anywhere else
    /// it is ignored, never taken as keys (the notice says so).
    pub fn handle_paste(&mut self, text: &str) -> Option<String> {
        match self.pane.as_mut() {
            Some(QueuePane::Submit(form)) => form.paste(text),
            Some(QueuePane::Priority(_, typed)) => {
                let number = text.trim();
                if number.chars().all(|c| c.is_ascii_digit() || c == '-')
                    && typed.len() + number.len() <= 11
                {
                    typed.push_str(number);
                } else {
                    return Some("type a whole number, then Enter".into());
                }
            }
            Some(QueuePane::Log(log)) if log.typing.is_some() => {
                if let Some(typed) = log.typing.as_mut() {
                    let room = 200usize.saturating_sub(typed.chars().count());
                    typed.extend(text.chars().filter(|c| !c.is_control()).take(room));
                }
            }
            _ => return Some(PASTE_IGNORED.into()),
        }
        None
    }
}

/// View state of the Queue tab.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Only the viewer's own experiments.
    pub mine_only: bool,
    /// Which states are shown.
    pub states: StateFilter,
    /// Only this project.
    pub project: Option<String>,
    /// Selected row.
    pub selected: usize,
    /// The experiment selected at the last frame and its row then, so the
    /// selection stays on it when rows move (new submissions, starts).
    pub anchor: Option<(u64, usize)>,
    /// An open pane.
    pub pane: Option<QueuePane>,
    /// Newest first, instead of next to start first (running ones, then
    /// queued ones in the order the scheduler takes them).
    pub newest_first: bool,
    /// The first row shown (rows are read a screenful at a time).
    pub offset: usize,
    /// Rows that fit on the screen (set by the session), for PgUp/PgDn.
    pub page: usize,
}
