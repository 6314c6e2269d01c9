//! View state of one interactive session and how keys change it.

use terminput::{Event, KeyCode, KeyEvent, KeyModifiers};

use super::admin::AdminState;
use super::component::Handled;
use super::dashboard::{self, DashboardState};
use super::history::{self, HistoryState};
use super::input::{key_name, key_press};
use super::queue::{self, PASTE_IGNORED, QueueState};
use crate::model::Role;

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

/// What a key asks of the session (it needs shared data or the service).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A Dashboard request.
    Dashboard(dashboard::Request),
    /// A Queue request.
    Queue(queue::Request),
    /// A History request.
    History(history::Request),
    /// An Admin request.
    Admin(super::admin::Request),
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
    /// The History tab's own state.
    pub history: HistoryState,
    /// Rows History's page shows (set by the session).
    pub history_rows: usize,
    /// The Admin tab's own state.
    pub admin: AdminState,
    /// Entries the Admin tab lists (set by the session).
    pub admin_rows: usize,
    /// The announcement shown over the screen until a key is pressed.
    pub announcement: Option<String>,
    /// A request for the session to complete with shared data.
    pub request: Option<Request>,
}

impl ViewState {
    /// The initial state for a user of `role`.
    pub fn new(role: Role) -> ViewState {
        // A stakeholder looks first at what happened lately.
        let viewer = role == Role::Viewer;
        ViewState {
            role,
            tab: if viewer { Tab::History } else { Tab::Dashboard },
            help_open: false,
            notice: None,
            dashboard: DashboardState::default(),
            queue: QueueState::default(),
            history: HistoryState {
                shown: if viewer {
                    super::history::Shown::Feed
                } else {
                    super::history::Shown::Experiments
                },
                ..HistoryState::default()
            },
            history_rows: 0,
            admin: AdminState::default(),
            admin_rows: 0,
            announcement: None,
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
        self.notice = match self.tab {
            Tab::Queue => self.queue.handle_paste(text),
            Tab::History if self.history.takes_text() => self.history.handle_paste(text),
            Tab::Admin if self.admin.takes_text() => self.admin.handle_paste(text),
            _ => Some(PASTE_IGNORED.into()),
        };
    }

    /// Applies one key press.
    pub fn handle_key(&mut self, key: KeyEvent) -> Flow {
        self.notice = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CTRL);
        // The announcement is closed by any key, which does nothing else.
        if self.announcement.take().is_some() && !(ctrl && key.code == KeyCode::Char('c')) {
            return Flow::Continue;
        }
        match key.code {
            KeyCode::Char('c') if ctrl => return Flow::Quit,
            // While text is typed (form, prompt, search), every key is text.
            _ if (self.tab == Tab::Queue && self.queue.takes_text())
                || (self.tab == Tab::History && self.history.takes_text())
                || (self.tab == Tab::Admin && self.admin.takes_text()) =>
            {
                self.tab_key(key);
            }
            KeyCode::Char('q') if key.modifiers.is_empty() => return Flow::Quit,
            KeyCode::Char('?') => self.help_open = !self.help_open,
            KeyCode::Esc if self.help_open => self.help_open = false,
            _ if self.tab_key(key) => {}
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

    /// Gives `key` to the open tab's component; false when it is not one
    /// of its keys.
    fn tab_key(&mut self, key: KeyEvent) -> bool {
        let handled = match self.tab {
            Tab::Dashboard => wrap(self.dashboard.handle_key(key), Request::Dashboard),
            Tab::Queue => wrap(self.queue.handle_key(key, self.role), Request::Queue),
            Tab::History => wrap(
                self.history.handle_key(key, self.history_rows),
                Request::History,
            ),
            Tab::Admin => wrap(self.admin.handle_key(key, self.admin_rows), Request::Admin),
        };
        match handled {
            Handled::No => return false,
            Handled::Yes => {}
            Handled::Ask(request) => self.request = Some(request),
            Handled::Notice(notice) => self.notice = Some(notice),
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

/// A component's outcome with its request made the session's.
fn wrap<R>(handled: Handled<R>, into: fn(R) -> Request) -> Handled<Request> {
    match handled {
        Handled::No => Handled::No,
        Handled::Yes => Handled::Yes,
        Handled::Ask(request) => Handled::Ask(into(request)),
        Handled::Notice(notice) => Handled::Notice(notice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::SubmitRequest;
    use crate::model::CommandLine;
    use crate::monitor::Window;
    use crate::output::Stream;
    use dashboard::{DrillDown, MetricPair, SortColumn};
    use queue::logpane::LogPaneState;
    use queue::{QueuePane, StateFilter};

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
        assert_eq!(
            s.request,
            Some(Request::Queue(queue::Request::Submit(Box::new(form))))
        );
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
        assert_eq!(
            t.request,
            Some(Request::Queue(queue::Request::Submit(Box::new(form))))
        );
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
        assert_eq!(
            s.request,
            Some(Request::Dashboard(dashboard::Request::OpenSelected))
        );
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
        assert_eq!(
            s.request,
            Some(Request::Queue(queue::Request::CancelSelected))
        );
        s.request = None;
        s.queue.pane = Some(QueuePane::ConfirmCancel(7));
        press(&mut s, KeyCode::Char('n'));
        assert_eq!(s.request, None);
        assert_eq!(s.notice.as_deref(), Some("experiment 7 not cancelled"));
        s.queue.pane = Some(QueuePane::ConfirmCancel(7));
        press(&mut s, KeyCode::Char('y'));
        assert_eq!(
            s.request,
            Some(Request::Queue(queue::Request::ConfirmCancel(7)))
        );
    }

    #[test]
    fn queue_filters_form_priority_and_log_keys() {
        let mut s = ViewState::new(Role::Member);
        press(&mut s, KeyCode::Char('2'));
        press(&mut s, KeyCode::Char('f'));
        assert_eq!(s.queue.states, StateFilter::Queued);
        press(&mut s, KeyCode::Char('P'));
        assert_eq!(s.request, Some(Request::Queue(queue::Request::NextProject)));
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
            Some(Request::Queue(queue::Request::Submit(Box::new(
                SubmitRequest {
                    command: Some(CommandLine::Shell("sleep 9; q".into())),
                    ..SubmitRequest::default()
                }
            ))))
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
        assert_eq!(
            s.request,
            Some(Request::Queue(queue::Request::FindInLog { older: true }))
        );
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
            Some(Request::Queue(queue::Request::SetPriority(3, "-2".into())))
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
