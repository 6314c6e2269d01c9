//! View state of one interactive session and how keys change it.

use terminput::{KeyCode, KeyEvent, KeyModifiers};

use super::input::key_name;
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

/// Everything about the session's screen that is not shared data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewState {
    /// The role the tabs are built for.
    pub role: Role,
    /// The selected tab.
    pub tab: Tab,
    /// Whether the `?` overlay is shown.
    pub help_open: bool,
    /// A one-line notice in the status bar (e.g. an unknown key).
    pub notice: Option<String>,
}

impl ViewState {
    /// The initial state for a user of `role`.
    pub fn new(role: Role) -> ViewState {
        ViewState {
            role,
            tab: Tab::Dashboard,
            help_open: false,
            notice: None,
        }
    }

    /// Applies one key press.
    pub fn handle_key(&mut self, key: KeyEvent) -> Flow {
        self.notice = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CTRL);
        match key.code {
            KeyCode::Char('c') if ctrl => return Flow::Quit,
            KeyCode::Char('q') if key.modifiers.is_empty() => return Flow::Quit,
            KeyCode::Char('?') => self.help_open = !self.help_open,
            KeyCode::Esc => self.help_open = false,
            KeyCode::Tab | KeyCode::Right => self.step_tab(1),
            KeyCode::Left => self.step_tab(-1),
            KeyCode::Char(c @ '1'..='9') if !ctrl => self.select_tab_number(c),
            _ => {
                self.notice = Some(format!("unknown key {}: press ? for help", key_name(&key)));
            }
        }
        Flow::Continue
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_key_shows_a_notice() {
        let mut s = ViewState::new(Role::Viewer);
        press(&mut s, KeyCode::Char('z'));
        assert_eq!(s.notice.as_deref(), Some("unknown key z: press ? for help"));
        press(&mut s, KeyCode::Char('1'));
        assert_eq!(s.notice, None);
    }
}
