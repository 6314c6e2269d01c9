//! View state of one interactive session and how keys change it.

use terminput::{Event, KeyCode, KeyEvent, KeyModifiers};

use super::form::{FormAction, SubmitForm};
use super::input::{key_name, key_press};
use super::logpane::LogPaneState;
use crate::model::Role;
use crate::monitor::Window;
use crate::output::Stream;

/// A top-level screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Live host and per-user use.
    Dashboard,
    /// Queued and running experiments.
    Queue,
    /// Finished experiments: the lab notebook.
    History,
    /// Users, keys, quotas (admins only).
    Admin,
}

impl Tab {
    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dashboard",
            Tab::Queue => "Queue",
            Tab::History => "History",
            Tab::Admin => "Admin",
        }
    }

    /// The tabs a role sees, in order.
    pub fn visible_to(role: Role) -> &'static [Tab] {
        match role {
            Role::Admin => &[Tab::Dashboard, Tab::Queue, Tab::History, Tab::Admin],
            Role::Member | Role::Viewer => &[Tab::Dashboard, Tab::Queue, Tab::History],
        }
    }
}

/// What the session should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep running.
    Continue,
    /// Leave the interface.
    Quit,
}

/// Which pair of metrics the Dashboard's user table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricPair {
    /// CPU cores and memory.
    CpuMemory,
    /// GPUs and GPU memory.
    Gpu,
}

/// A column of the Dashboard's user table, for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// User name.
    User,
    /// Process count.
    Processes,
    /// First metric of the pair, now or peak over a window (`None`: now).
    First(Option<Window>),
    /// Second metric of the pair, now or peak over a window.
    Second(Option<Window>),
}

impl SortColumn {
    /// Every column in display order.
    pub const ALL: [SortColumn; 10] = [
        SortColumn::User,
        SortColumn::Processes,
        SortColumn::First(None),
        SortColumn::First(Some(Window::Hour)),
        SortColumn::First(Some(Window::Day)),
        SortColumn::First(Some(Window::Week)),
        SortColumn::Second(None),
        SortColumn::Second(Some(Window::Hour)),
        SortColumn::Second(Some(Window::Day)),
        SortColumn::Second(Some(Window::Week)),
    ];
}

/// A user's detail view on the Dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillDown {
    /// Unix uid of the user shown (their account may be renamed meanwhile).
    pub uid: u32,
    /// Their account's name when the drill-down opened.
    pub unix_user: String,
    /// Chart window (1h, 24h or 7d).
    pub window: Window,
}

/// View state of the Dashboard tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardState {
    /// Metrics shown in the table.
    pub metrics: MetricPair,
    /// Sort column.
    pub sort: SortColumn,
    /// Largest first (true) or smallest first.
    pub descending: bool,
    /// Selected row (index into the sorted rows).
    pub selected: usize,
    /// The open drill-down, if any.
    pub drill: Option<DrillDown>,
}

impl Default for DashboardState {
    fn default() -> Self {
        DashboardState {
            metrics: MetricPair::CpuMemory,
            sort: SortColumn::First(None),
            descending: true,
            selected: 0,
            drill: None,
        }
    }
}

/// What a key asks of the session (it needs data or the service).
#[derive(Debug, Clone, PartialEq)]
pub enum DashboardRequest {
    /// Open the drill-down of the selected row.
    OpenSelected,
    /// Open the details of the selected experiment.
    ShowSelectedExperiment,
    /// Open the live log of the selected experiment.
    LogSelectedExperiment,
    /// Ask to cancel the selected experiment (a confirmation follows).
    CancelSelectedExperiment,
    /// Cancel this experiment (confirmed).
    ConfirmCancel(u64),
    /// Submit a copy of the selected experiment.
    RerunSelectedExperiment,
    /// Submit what the form filled in.
    Submit(Box<crate::lab::SubmitRequest>),
    /// Ask for a new priority of the selected experiment.
    PrioritySelectedExperiment,
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
    pub fn admits(self, state: &crate::model::State) -> bool {
        use crate::model::State;
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

/// Everything about the session's screen that is not shared data.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    /// The role the tabs are built for.
    pub role: Role,
    /// The selected tab.
    pub tab: Tab,
    /// Whether the `?` overlay is shown.
    pub help_open: bool,
    /// A one-line notice in the status bar (e.g. an unknown key).
    pub notice: Option<String>,
    /// The Dashboard's own state.
    pub dashboard: DashboardState,
    /// The Queue tab's own state.
    pub queue: QueueState,
    /// A request for the session to complete with shared data.
    pub request: Option<DashboardRequest>,
}

impl ViewState {
    /// The initial state for a user of `role`.
    pub fn new(role: Role) -> ViewState {
        ViewState {
            role,
            tab: Tab::Dashboard,
            help_open: false,
            notice: None,
            dashboard: DashboardState::default(),
            queue: QueueState::default(),
            request: None,
        }
    }

    /// The user's role changed: the tabs and keys offered follow (a tab no
    /// longer offered is left for the Dashboard).
    pub fn set_role(&mut self, role: Role) {
        if role == self.role {
            return;
        }
        self.role = role;
        if !self.tabs().contains(&self.tab) {
            self.tab = Tab::Dashboard;
        }
        self.notice = Some(format!("your role is now {role}"));
    }

    /// Applies one input event: a key press, or pasted text.
    pub fn handle_event(&mut self, event: &Event) -> Flow {
        match event {
            Event::Paste(text) => {
                self.handle_paste(text);
                Flow::Continue
            }
            _ => key_press(event).map_or(Flow::Continue, |key| self.handle_key(key)),
        }
    }

    /// Pasted text goes into the open form, prompt or search; anywhere else
    /// it is ignored, never taken as keys.
    pub fn handle_paste(&mut self, text: &str) {
        self.notice = None;
        let pane = match self.tab {
            Tab::Queue => self.queue.pane.as_mut(),
            _ => None,
        };
        match pane {
            Some(QueuePane::Submit(form)) => form.paste(text),
            Some(QueuePane::Priority(_, typed)) => {
                let number = text.trim();
                if number.chars().all(|c| c.is_ascii_digit() || c == '-')
                    && typed.len() + number.len() <= 11
                {
                    typed.push_str(number);
                } else {
                    self.notice = Some("type a whole number, then Enter".into());
                }
            }
            Some(QueuePane::Log(log)) if log.typing.is_some() => {
                if let Some(typed) = log.typing.as_mut() {
                    let room = 200usize.saturating_sub(typed.chars().count());
                    typed.extend(text.chars().filter(|c| !c.is_control()).take(room));
                }
            }
            _ => {
                self.notice =
                    Some("pasted text ignored: paste into a form, a prompt or a search".into());
            }
        }
    }

    /// Applies one key press.
    pub fn handle_key(&mut self, key: KeyEvent) -> Flow {
        self.notice = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CTRL);
        match key.code {
            KeyCode::Char('c') if ctrl => return Flow::Quit,
            // While text is typed (form, prompt, search), every key is text.
            _ if self.tab == Tab::Queue && self.queue.takes_text() => {
                self.queue_key(key);
            }
            KeyCode::Char('q') if key.modifiers.is_empty() => return Flow::Quit,
            KeyCode::Char('?') => self.help_open = !self.help_open,
            KeyCode::Esc if self.help_open => self.help_open = false,
            _ if self.tab == Tab::Dashboard && self.dashboard_key(key) => {}
            _ if self.tab == Tab::Queue && self.queue_key(key) => {}
            KeyCode::Esc => {}
            KeyCode::Tab | KeyCode::Right => self.step_tab(1),
            KeyCode::Left => self.step_tab(-1),
            KeyCode::Char(c @ '1'..='9') if !ctrl => self.select_tab_number(c),
            _ => {
                self.notice = Some(format!("unknown key {}: press ? for help", key_name(&key)));
            }
        }
        Flow::Continue
    }

    /// Handles a Dashboard key; false when the key is not a Dashboard key.
    fn dashboard_key(&mut self, key: KeyEvent) -> bool {
        let d = &mut self.dashboard;
        if let Some(drill) = d.drill.as_mut() {
            match key.code {
                KeyCode::Esc | KeyCode::Backspace => d.drill = None,
                KeyCode::Char('w') => {
                    drill.window = match drill.window {
                        Window::Hour => Window::Day,
                        Window::Day => Window::Week,
                        _ => Window::Hour,
                    }
                }
                _ => return false,
            }
            return true;
        }
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => d.selected = d.selected.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => d.selected = d.selected.saturating_sub(1),
            KeyCode::PageDown => d.selected = d.selected.saturating_add(10),
            KeyCode::PageUp => d.selected = d.selected.saturating_sub(10),
            KeyCode::Home => d.selected = 0,
            // Clamped to the last row when drawn.
            KeyCode::End => d.selected = usize::MAX,
            KeyCode::Enter => self.request = Some(DashboardRequest::OpenSelected),
            KeyCode::Char('s') => d.sort = step_sort(d.sort, 1),
            KeyCode::Char('S') => d.sort = step_sort(d.sort, -1),
            KeyCode::Char('r') => d.descending = !d.descending,
            KeyCode::Char('g') => {
                d.metrics = match d.metrics {
                    MetricPair::CpuMemory => MetricPair::Gpu,
                    MetricPair::Gpu => MetricPair::CpuMemory,
                }
            }
            _ => return false,
        }
        true
    }

    /// Handles a Queue key; false when the key is not a Queue key.
    fn queue_key(&mut self, key: KeyEvent) -> bool {
        let q = &mut self.queue;
        match q.pane.as_mut() {
            Some(QueuePane::ConfirmCancel(id)) => {
                let id = *id;
                if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.request = Some(DashboardRequest::ConfirmCancel(id));
                } else {
                    self.notice = Some(format!("experiment {id} not cancelled"));
                }
                q.pane = None;
                return true;
            }
            Some(QueuePane::Submit(form)) => {
                match form.handle_key(key) {
                    FormAction::Edit => {}
                    FormAction::Submit => match form.to_request() {
                        Ok(request) => {
                            self.request = Some(DashboardRequest::Submit(Box::new(request)));
                        }
                        Err(why) => form.error = Some(why),
                    },
                    FormAction::Close => q.pane = None,
                }
                return true;
            }
            Some(QueuePane::Priority(id, typed)) => {
                match key.code {
                    KeyCode::Esc => q.pane = None,
                    KeyCode::Enter => {
                        self.request = Some(DashboardRequest::SetPriority(*id, typed.clone()));
                    }
                    KeyCode::Backspace => {
                        typed.pop();
                    }
                    KeyCode::Char(c) if (c.is_ascii_digit() || c == '-') && typed.len() < 11 => {
                        typed.push(c)
                    }
                    _ => self.notice = Some("type a whole number, then Enter".into()),
                }
                return true;
            }
            Some(QueuePane::Log(log)) => {
                if let Some(typed) = log.typing.as_mut() {
                    match key.code {
                        KeyCode::Esc => log.typing = None,
                        KeyCode::Enter => {
                            log.search = log.typing.take();
                            log.matched = None;
                            self.request = Some(DashboardRequest::FindInLog { older: true });
                        }
                        KeyCode::Backspace => {
                            typed.pop();
                        }
                        KeyCode::Char(c) if !c.is_control() && typed.chars().count() < 200 => {
                            typed.push(c)
                        }
                        _ => {}
                    }
                    return true;
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
                    KeyCode::Char('n') => {
                        self.request = Some(DashboardRequest::FindInLog { older: true })
                    }
                    KeyCode::Char('N') => {
                        self.request = Some(DashboardRequest::FindInLog { older: false })
                    }
                    KeyCode::Char('e') => {
                        let id = log.id;
                        let mut next = LogPaneState::new(id);
                        next.stream = match log.stream {
                            Stream::Stdout => Stream::Stderr,
                            Stream::Stderr => Stream::Stdout,
                        };
                        *log = next;
                    }
                    _ => return false,
                }
                return true;
            }
            Some(QueuePane::Details(_)) => {
                return match key.code {
                    KeyCode::Esc | KeyCode::Backspace | KeyCode::Enter => {
                        q.pane = None;
                        true
                    }
                    _ => false,
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
            KeyCode::Char('P') => self.request = Some(DashboardRequest::NextProject),
            KeyCode::Char('n') if self.role == Role::Viewer => {
                self.notice = Some("viewers cannot submit experiments".into());
            }
            KeyCode::Char('n') => q.pane = Some(QueuePane::Submit(SubmitForm::default())),
            KeyCode::Enter => self.request = Some(DashboardRequest::ShowSelectedExperiment),
            KeyCode::Char('l') => self.request = Some(DashboardRequest::LogSelectedExperiment),
            KeyCode::Char('c') => self.request = Some(DashboardRequest::CancelSelectedExperiment),
            KeyCode::Char('r') => self.request = Some(DashboardRequest::RerunSelectedExperiment),
            KeyCode::Char('p') if self.role != Role::Admin => {
                self.notice = Some("only admins change priorities".into());
            }
            KeyCode::Char('p') => self.request = Some(DashboardRequest::PrioritySelectedExperiment),
            _ => return false,
        }
        true
    }

    fn tabs(&self) -> &'static [Tab] {
        Tab::visible_to(self.role)
    }

    fn step_tab(&mut self, step: isize) {
        let tabs = self.tabs();
        let at = tabs.iter().position(|t| *t == self.tab).unwrap_or(0) as isize;
        let next = (at + step).rem_euclid(tabs.len() as isize) as usize;
        self.tab = tabs[next];
    }

    fn select_tab_number(&mut self, digit: char) {
        let index = digit as usize - '1' as usize;
        match self.tabs().get(index) {
            Some(tab) => self.tab = *tab,
            None if index == 3 => {
                self.notice = Some("the Admin tab is for admins".into());
            }
            None => self.notice = Some(format!("no tab {digit}")),
        }
    }
}

fn step_sort(current: SortColumn, step: isize) -> SortColumn {
    let all = SortColumn::ALL;
    let at = all.iter().position(|c| *c == current).unwrap_or(0) as isize;
    all[(at + step).rem_euclid(all.len() as isize) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::SubmitRequest;
    use crate::model::CommandLine;

    fn press(state: &mut ViewState, code: KeyCode) -> Flow {
        state.handle_key(KeyEvent::new(code))
    }

    #[test]
    fn tabs_cycle_and_admin_is_hidden_from_members() {
        let mut s = ViewState::new(Role::Member);
        press(&mut s, KeyCode::Left);
        assert_eq!(s.tab, Tab::History);
        press(&mut s, KeyCode::Char('4'));
        assert_eq!(s.tab, Tab::History);
        assert_eq!(s.notice.as_deref(), Some("the Admin tab is for admins"));
        let mut a = ViewState::new(Role::Admin);
        press(&mut a, KeyCode::Char('4'));
        assert_eq!(a.tab, Tab::Admin);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.tab, Tab::Dashboard);
    }

    #[test]
    fn a_paste_fills_the_open_field_and_is_never_keys() {
        let mut s = ViewState::new(Role::Member);
        let paste = |text: &str| Event::Paste(text.to_string());
        // Outside a text field: ignored, with a word why (its q quits nothing).
        assert_eq!(s.handle_event(&paste("qc2")), Flow::Continue);
        assert_eq!(s.tab, Tab::Dashboard);
        assert!(
            s.notice
                .as_deref()
                .is_some_and(|n| n.starts_with("pasted text ignored"))
        );
        // In the form it submits nothing: in the command its lines become
        // `;`-separated commands (a backslash-newline joins two), elsewhere
        // a line break is a space.
        press(&mut s, KeyCode::Char('2'));
        press(&mut s, KeyCode::Char('n'));
        let lines = "cd run \\\n  && python train.py\necho done\n";
        assert_eq!(s.handle_event(&paste(lines)), Flow::Continue);
        assert_eq!(s.request, None);
        press(&mut s, KeyCode::Tab);
        assert_eq!(s.handle_event(&paste("first\nrun")), Flow::Continue);
        press(&mut s, KeyCode::Enter);
        let form = SubmitRequest {
            name: Some("first run".into()),
            command: Some(CommandLine::Shell(
                "cd run    && python train.py; echo done".into(),
            )),
            ..SubmitRequest::default()
        };
        assert_eq!(s.request, Some(DashboardRequest::Submit(Box::new(form))));
        // As a terminal pastes them: line breaks as CR.
        let mut t = ViewState::new(Role::Member);
        press(&mut t, KeyCode::Char('2'));
        press(&mut t, KeyCode::Char('n'));
        let typed = "cd run \\\r  && python train.py\recho done\r";
        assert_eq!(t.handle_event(&paste(typed)), Flow::Continue);
        assert_eq!(t.request, None);
        press(&mut t, KeyCode::Enter);
        let form = SubmitRequest {
            command: Some(CommandLine::Shell(
                "cd run    && python train.py; echo done".into(),
            )),
            ..SubmitRequest::default()
        };
        assert_eq!(t.request, Some(DashboardRequest::Submit(Box::new(form))));
    }

    #[test]
    fn q_and_ctrl_c_quit_and_help_toggles() {
        let mut s = ViewState::new(Role::Viewer);
        assert_eq!(press(&mut s, KeyCode::Char('?')), Flow::Continue);
        assert!(s.help_open);
        press(&mut s, KeyCode::Esc);
        assert!(!s.help_open);
        assert_eq!(press(&mut s, KeyCode::Char('q')), Flow::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c')).modifiers(KeyModifiers::CTRL);
        assert_eq!(s.handle_key(ctrl_c), Flow::Quit);
    }

    #[test]
    fn dashboard_keys_sort_select_and_drill() {
        let mut s = ViewState::new(Role::Member);
        press(&mut s, KeyCode::Char('s'));
        assert_eq!(s.dashboard.sort, SortColumn::First(Some(Window::Hour)));
        press(&mut s, KeyCode::Char('S'));
        press(&mut s, KeyCode::Char('S'));
        assert_eq!(s.dashboard.sort, SortColumn::Processes);
        press(&mut s, KeyCode::Char('r'));
        assert!(!s.dashboard.descending);
        press(&mut s, KeyCode::Down);
        press(&mut s, KeyCode::Down);
        press(&mut s, KeyCode::Up);
        assert_eq!(s.dashboard.selected, 1);
        press(&mut s, KeyCode::Enter);
        assert_eq!(s.request, Some(DashboardRequest::OpenSelected));
        s.dashboard.drill = Some(DrillDown {
            uid: 1001,
            unix_user: "alice".into(),
            window: Window::Hour,
        });
        press(&mut s, KeyCode::Char('w'));
        assert_eq!(
            s.dashboard.drill.as_ref().map(|d| d.window),
            Some(Window::Day)
        );
        press(&mut s, KeyCode::Esc);
        assert!(s.dashboard.drill.is_none());
        press(&mut s, KeyCode::Char('g'));
        assert_eq!(s.dashboard.metrics, MetricPair::Gpu);
    }

    #[test]
    fn queue_keys_filter_select_and_confirm_cancel() {
        let mut s = ViewState::new(Role::Member);
        press(&mut s, KeyCode::Char('2'));
        assert_eq!(s.tab, Tab::Queue);
        press(&mut s, KeyCode::Char('m'));
        assert!(s.queue.mine_only);
        press(&mut s, KeyCode::Char('c'));
        assert_eq!(s.request, Some(DashboardRequest::CancelSelectedExperiment));
        s.request = None;
        s.queue.pane = Some(QueuePane::ConfirmCancel(7));
        press(&mut s, KeyCode::Char('n'));
        assert_eq!(s.request, None);
        assert_eq!(s.notice.as_deref(), Some("experiment 7 not cancelled"));
        s.queue.pane = Some(QueuePane::ConfirmCancel(7));
        press(&mut s, KeyCode::Char('y'));
        assert_eq!(s.request, Some(DashboardRequest::ConfirmCancel(7)));
    }

    #[test]
    fn queue_filters_form_priority_and_log_keys() {
        let mut s = ViewState::new(Role::Member);
        press(&mut s, KeyCode::Char('2'));
        press(&mut s, KeyCode::Char('f'));
        assert_eq!(s.queue.states, StateFilter::Queued);
        press(&mut s, KeyCode::Char('P'));
        assert_eq!(s.request, Some(DashboardRequest::NextProject));
        s.request = None;
        press(&mut s, KeyCode::Char('p'));
        assert_eq!(s.notice.as_deref(), Some("only admins change priorities"));
        // The form takes every key, q included, until Enter or Esc.
        press(&mut s, KeyCode::Char('n'));
        for c in "sleep 9; q".chars() {
            assert_eq!(press(&mut s, KeyCode::Char(c)), Flow::Continue);
        }
        press(&mut s, KeyCode::Enter);
        assert_eq!(
            s.request,
            Some(DashboardRequest::Submit(Box::new(SubmitRequest {
                command: Some(CommandLine::Shell("sleep 9; q".into())),
                ..SubmitRequest::default()
            })))
        );
        press(&mut s, KeyCode::Esc);
        assert_eq!(s.queue.pane, None);

        let mut log = LogPaneState::new(5);
        log.bounds = (0, 100);
        log.page = 10;
        s.queue.pane = Some(QueuePane::Log(log));
        press(&mut s, KeyCode::PageUp);
        press(&mut s, KeyCode::Char('/'));
        for c in "loss".chars() {
            press(&mut s, KeyCode::Char(c));
        }
        press(&mut s, KeyCode::Enter);
        assert_eq!(s.request, Some(DashboardRequest::FindInLog { older: true }));
        let Some(QueuePane::Log(log)) = &s.queue.pane else {
            panic!("log pane closed");
        };
        assert_eq!((log.top, log.search.as_deref()), (Some(80), Some("loss")));
        press(&mut s, KeyCode::Char('e'));
        let Some(QueuePane::Log(log)) = &s.queue.pane else {
            panic!("log pane closed");
        };
        assert_eq!(log.stream, Stream::Stderr);

        let mut admin = ViewState::new(Role::Admin);
        admin.tab = Tab::Queue;
        admin.queue.pane = Some(QueuePane::Priority(3, String::new()));
        for c in "-2x".chars() {
            press(&mut admin, KeyCode::Char(c));
        }
        assert_eq!(
            admin.notice.as_deref(),
            Some("type a whole number, then Enter")
        );
        press(&mut admin, KeyCode::Enter);
        assert_eq!(
            admin.request,
            Some(DashboardRequest::SetPriority(3, "-2".into()))
        );
        let mut viewer = ViewState::new(Role::Viewer);
        viewer.tab = Tab::Queue;
        press(&mut viewer, KeyCode::Char('n'));
        assert_eq!(viewer.queue.pane, None);
    }

    #[test]
    fn the_queue_selection_stays_on_its_experiment_when_rows_move() {
        let mut q = QueueState::default();
        q.follow_selection(&[5, 4, 3], 0, 3);
        q.selected = 1; // ↓ onto experiment 4
        q.follow_selection(&[5, 4, 3], 0, 3);
        assert_eq!(q.anchor, Some((4, 1)));
        // A new submission lands on top: still experiment 4.
        q.follow_selection(&[6, 5, 4, 3], 0, 4);
        assert_eq!(q.selected, 2);
        // ↓ pressed before the next frame, which also drops experiment 6.
        q.selected += 1;
        q.follow_selection(&[5, 4, 3], 0, 3);
        assert_eq!((q.selected, q.anchor), (2, Some((3, 2))));
        // The selected one ends: the selection stays in range.
        q.follow_selection(&[5], 0, 1);
        assert_eq!(q.selected, 0);
    }

    #[test]
    fn the_queue_pages_through_thousands_a_screenful_at_a_time() {
        let mut s = ViewState::new(Role::Member);
        s.tab = Tab::Queue;
        s.queue.page = 30;
        let total = 5150;
        press(&mut s, KeyCode::End);
        let q = &mut s.queue;
        q.follow_selection(&[], 0, total);
        assert_eq!(q.selected, total - 1, "End: the last one");
        assert_eq!(q.window_start(30, total), total - 30, "on the last screen");
        q.offset = q.window_start(30, total);
        press(&mut s, KeyCode::PageUp);
        let q = &mut s.queue;
        assert_eq!(q.selected, total - 31);
        assert_eq!(q.window_start(30, total), total - 31, "the window follows");
        press(&mut s, KeyCode::Home);
        assert_eq!(s.queue.selected, 0);
        assert_eq!(s.queue.window_start(30, total), 0);
        press(&mut s, KeyCode::PageDown);
        assert_eq!(s.queue.selected, 30);
        press(&mut s, KeyCode::Char('s'));
        assert!(s.queue.newest_first);
        assert_eq!(s.queue.selected, 0, "a new order starts at the top");
    }

    #[test]
    fn unknown_key_shows_a_notice() {
        let mut s = ViewState::new(Role::Viewer);
        press(&mut s, KeyCode::Char('z'));
        assert_eq!(s.notice.as_deref(), Some("unknown key z: press ? for help"));
        press(&mut s, KeyCode::Char('1'));
        assert_eq!(s.notice, None);
    }
}
