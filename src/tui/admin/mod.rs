//! The Admin tab (admins only; each read is decided by the service with
//! the caller's current role, so a demoted admin sees nothing more), in
//! views that `v` goes through: the audit trail, newest first, narrowed
//! with `/` (`user:U action:A since:T`); and costs, by user, project or
//! month (`b`), with a bar each; the users, with their roles, Unix
//! accounts, keys and open sessions; and the quotas (the default, each
//! user's, each project's), edited in place with a live preview of what
//! the typed limits would do ([`quota_editor`]); and the running
//! experiments as idle detection sees them. Users are added, changed,
//! disabled and removed, and keys pasted and removed, in the Users view
//! ([`users`]). The keys are in [`crate::tui::help_lines`].

pub mod draw;
pub mod idle_rule;
pub mod quota_draw;
pub mod quota_editor;
pub mod users;

use terminput::{KeyCode, KeyEvent};

use self::quota_editor::{EditorAction, QuotaEditor, parse_scope};
use super::component::Handled;
use super::input::type_into;
use crate::model::{Quota, QuotaScope};

/// Most characters of a filter typed here.
const MAX_FILTER_CHARS: usize = 200;

/// What the Admin tab shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminView {
    /// The audit trail.
    #[default]
    Audit,
    /// What experiments cost.
    Costs,
    /// The users, their roles, accounts, keys and open sessions.
    Users,
    /// The quotas: the default, users', projects'.
    Quotas,
    /// Caps on what Unix users run outside the queue.
    HostLimits,
    /// Running experiments without work, idle ones first.
    Idle,
}

/// What the Admin tab asks of the session (each decided by the service).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Open the editor on the selected quota.
    EditSelected,
    /// Open the editor on this scope's quota.
    Edit(QuotaScope),
    /// Save this quota.
    Save(QuotaScope, Quota),
    /// Ask to remove the selected quota.
    RemoveSelected,
    /// Remove this quota (confirmed).
    Remove(QuotaScope),
    /// Act on the selected user.
    ForSelectedUser(users::ForSelected),
    /// Change a user or their keys.
    User(users::UserChange),
    /// Ask to remove the key selected in the keys pane.
    RemoveSelectedKey,
    /// Open the idle rule's prompt with the rule in force.
    EditIdle,
    /// Set the idle rule (`None`: detection off).
    SetIdle(Option<crate::monitor::idle::IdleRule>),
}

/// The Admin tab's own state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminState {
    /// The view shown (`v`).
    pub view: AdminView,
    /// What the Costs view sums by (`b`): this month by user or project,
    /// or the last six months.
    pub costs_by: crate::lab::CostGrouping,
    /// The audit filter applied (`user:U action:A since:T`).
    pub filter: String,
    /// The filter bar, open, with what is typed so far.
    pub typing: Option<String>,
    /// Why the filter typed was not applied.
    pub error: Option<String>,
    /// The selected entry.
    pub selected: usize,
    /// Rows a screen shows (set by the session).
    pub page_rows: usize,
    /// The quota editor, open.
    pub editor: Option<QuotaEditor>,
    /// The scope of a new quota, being typed (`n`).
    pub new_scope: Option<String>,
    /// A quota to remove once confirmed (`x`, then `y`).
    pub confirm_remove: Option<QuotaScope>,
    /// The Users view's prompts and keys pane.
    pub users: users::UsersState,
    /// Keys the keys pane lists (set by the session).
    pub keys_listed: usize,
    /// The idle rule's prompt, open, with what is typed so far (`e`).
    pub idle_typing: Option<String>,
}

impl AdminState {
    /// Whether keys are text (the filter bar).
    pub fn takes_text(&self) -> bool {
        self.typing.is_some()
            || self.idle_typing.is_some()
            || self.editor.is_some()
            || self.new_scope.is_some()
            || self.users.takes_text()
    }

    /// Pasted text goes into an open filter bar.
    pub fn handle_paste(&mut self, text: &str) -> Option<String> {
        if let Some(editor) = self.editor.as_mut() {
            editor.paste(text);
            return None;
        }
        if self.users.takes_text() {
            self.users.paste(text);
            return None;
        }
        let typed = self
            .typing
            .as_mut()
            .or(self.new_scope.as_mut())
            .or(self.idle_typing.as_mut())?;
        let text = text.replace('\t', " ");
        for c in text.chars().filter(|c| !c.is_control()) {
            if typed.chars().count() >= MAX_FILTER_CHARS {
                break;
            }
            typed.push(c);
        }
        None
    }

    /// Applies one key; `rows`: how many entries are listed.
    pub fn handle_key(&mut self, key: KeyEvent, rows: usize) -> Handled<Request> {
        if let Some(editor) = self.editor.as_mut() {
            return match editor.handle_key(key) {
                EditorAction::Stay => Handled::Yes,
                EditorAction::Close => {
                    self.editor = None;
                    Handled::Notice("nothing saved".into())
                }
                EditorAction::Save(quota) => {
                    Handled::Ask(Request::Save(editor.scope.clone(), quota))
                }
            };
        }
        if let Some(typed) = self.new_scope.as_mut() {
            match key.code {
                KeyCode::Esc => self.new_scope = None,
                KeyCode::Enter => match parse_scope(typed) {
                    Ok(scope) => {
                        self.new_scope = None;
                        self.error = None;
                        return Handled::Ask(Request::Edit(scope));
                    }
                    Err(why) => self.error = Some(why),
                },
                code => {
                    type_into(typed, code, MAX_FILTER_CHARS);
                }
            }
            return Handled::Yes;
        }
        if let Some(typed) = self.idle_typing.as_mut() {
            match key.code {
                KeyCode::Esc => {
                    self.idle_typing = None;
                    self.error = None;
                    return Handled::Notice("idle rule unchanged".into());
                }
                // Open until the service takes it (or says why not).
                KeyCode::Enter => match idle_rule::parse_rule(typed) {
                    Ok(rule) => {
                        self.error = None;
                        return Handled::Ask(Request::SetIdle(rule));
                    }
                    Err(why) => self.error = Some(why),
                },
                code => {
                    if type_into(typed, code, MAX_FILTER_CHARS) {
                        self.error = None;
                    }
                }
            }
            return Handled::Yes;
        }
        if self.view == AdminView::Users {
            let handled = self.users.handle_key(key, self.keys_listed);
            if handled != Handled::No {
                return handled;
            }
        }
        if let Some(scope) = self.confirm_remove.take() {
            return match key.code {
                KeyCode::Char('y') => Handled::Ask(Request::Remove(scope)),
                _ => Handled::Notice("nothing removed".into()),
            };
        }
        if let Some(typed) = self.typing.as_mut() {
            match key.code {
                KeyCode::Esc => {
                    self.typing = None;
                    self.error = None;
                }
                KeyCode::Enter => {
                    let text = typed.trim().to_string();
                    let now_ms = crate::output::journal::now_ms();
                    match crate::lab::AuditQuery::parse(&text, now_ms) {
                        Ok(_) => {
                            self.filter = text;
                            self.typing = None;
                            self.error = None;
                            self.selected = 0;
                        }
                        Err(why) => self.error = Some(why),
                    }
                }
                code => {
                    type_into(typed, code, MAX_FILTER_CHARS);
                }
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
            KeyCode::Char('v') => {
                self.view = match self.view {
                    AdminView::Audit => AdminView::Costs,
                    AdminView::Costs => AdminView::Users,
                    AdminView::Users => AdminView::Quotas,
                    AdminView::Quotas => AdminView::HostLimits,
                    AdminView::HostLimits => AdminView::Idle,
                    AdminView::Idle => AdminView::Audit,
                };
                self.selected = 0;
            }
            KeyCode::Enter | KeyCode::Char('e') if self.view == AdminView::Quotas => {
                return Handled::Ask(Request::EditSelected);
            }
            KeyCode::Char('n') if self.view == AdminView::Quotas => {
                self.new_scope = Some(String::new());
                self.error = None;
            }
            KeyCode::Char('x') if self.view == AdminView::Quotas => {
                return Handled::Ask(Request::RemoveSelected);
            }
            KeyCode::Char('/') if self.view == AdminView::HostLimits => {
                return Handled::Notice("every host limit is listed (hostlimit set …)".into());
            }
            KeyCode::Char('e') if self.view == AdminView::Idle => {
                self.error = None;
                return Handled::Ask(Request::EditIdle);
            }
            KeyCode::Char('/') if self.view == AdminView::Idle => {
                return Handled::Notice("every running experiment is listed".into());
            }
            KeyCode::Char('/') if self.view == AdminView::Quotas => {
                return Handled::Notice("every quota is listed (n: a new one)".into());
            }
            KeyCode::Char('b') if self.view == AdminView::Costs => {
                use crate::lab::CostGrouping::{Month, Project, User};
                self.costs_by = match self.costs_by {
                    User => Project,
                    Project => Month,
                    Month => User,
                };
                self.selected = 0;
            }
            KeyCode::Char('/') if self.view == AdminView::Users => {
                return Handled::Notice("every user is listed".into());
            }
            KeyCode::Char('/') if self.view == AdminView::Costs => {
                return Handled::Notice(
                    "the costs are this month's (b: by user, project, month)".into(),
                );
            }
            KeyCode::Char('/') => {
                self.typing = Some(self.filter.clone());
                self.error = None;
            }
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.selected = 0;
                return Handled::Notice("filter cleared".into());
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

    #[test]
    fn the_idle_rule_is_typed_as_one_line_and_saved_only_when_it_reads() {
        let mut s = AdminState {
            view: AdminView::Idle,
            ..AdminState::default()
        };
        assert_eq!(
            s.handle_key(key(KeyCode::Char('e')), 0),
            Handled::Ask(Request::EditIdle)
        );
        // The session opens the prompt with the rule in force.
        s.idle_typing = Some("5 5 1h notify".into());
        assert!(s.takes_text());
        for _ in 0.."notify".len() {
            s.handle_key(key(KeyCode::Backspace), 0);
        }
        for c in "kill".chars() {
            s.handle_key(key(KeyCode::Char(c)), 0);
        }
        assert_eq!(s.handle_key(key(KeyCode::Enter), 0), Handled::Yes);
        assert!(
            s.error
                .as_deref()
                .is_some_and(|e| e.contains("notify or cancel"))
        );
        assert!(s.takes_text(), "stays open on a mistake");
        for _ in 0.."kill".len() {
            s.handle_key(key(KeyCode::Backspace), 0);
        }
        for c in "cancel 10m".chars() {
            s.handle_key(key(KeyCode::Char(c)), 0);
        }
        let asked = s.handle_key(key(KeyCode::Enter), 0);
        let Handled::Ask(Request::SetIdle(Some(rule))) = asked else {
            panic!("{asked:?}");
        };
        assert_eq!((rule.after_secs, rule.cancel_after_secs), (3600, Some(600)));
        assert!(s.takes_text(), "open until the service takes it");
        s.idle_typing = None;
        s.idle_typing = Some("off".into());
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 0),
            Handled::Ask(Request::SetIdle(None))
        );
        s.idle_typing = Some("5".into());
        assert_eq!(
            s.handle_key(key(KeyCode::Esc), 0),
            Handled::Notice("idle rule unchanged".into())
        );
        assert!(!s.takes_text());
    }

    #[test]
    fn a_filter_is_applied_only_when_it_parses_and_esc_clears_it() {
        let mut s = AdminState::default();
        s.handle_key(key(KeyCode::Char('/')), 5);
        assert!(s.takes_text());
        for c in "user:ana colour:red".chars() {
            s.handle_key(key(KeyCode::Char(c)), 5);
        }
        s.handle_key(key(KeyCode::Enter), 5);
        assert!(s.takes_text(), "stays open on a mistake");
        assert!(s.error.as_deref().is_some_and(|e| e.contains("colour")));
        for _ in 0.." colour:red".len() {
            s.handle_key(key(KeyCode::Backspace), 5);
        }
        s.handle_key(key(KeyCode::Enter), 5);
        assert_eq!(s.filter, "user:ana");
        assert!(!s.takes_text());
        s.handle_key(key(KeyCode::End), 5);
        assert_eq!(s.selected, 4);
        assert_eq!(
            s.handle_key(key(KeyCode::Esc), 5),
            Handled::Notice("filter cleared".into())
        );
        assert_eq!((s.filter.as_str(), s.selected), ("", 0));
        assert_eq!(s.handle_key(key(KeyCode::Char('z')), 5), Handled::No);
    }

    #[test]
    fn v_goes_through_the_views_and_b_through_what_costs_are_summed_by() {
        use crate::lab::CostGrouping;
        let mut s = AdminState::default();
        assert_eq!(s.handle_key(key(KeyCode::Char('b')), 5), Handled::No);
        s.handle_key(key(KeyCode::Char('v')), 5);
        assert_eq!(s.view, AdminView::Costs);
        for want in [
            CostGrouping::Project,
            CostGrouping::Month,
            CostGrouping::User,
        ] {
            s.handle_key(key(KeyCode::Char('b')), 5);
            assert_eq!(s.costs_by, want);
        }
        assert!(matches!(
            s.handle_key(key(KeyCode::Char('/')), 5),
            Handled::Notice(_)
        ));
        s.handle_key(key(KeyCode::Char('v')), 5);
        assert_eq!(s.view, AdminView::Users);
        s.handle_key(key(KeyCode::Char('v')), 5);
        assert_eq!(s.view, AdminView::Quotas);
        s.handle_key(key(KeyCode::Char('v')), 5);
        assert_eq!(s.view, AdminView::HostLimits);
        s.handle_key(key(KeyCode::Char('v')), 5);
        assert_eq!(s.view, AdminView::Idle);
        s.handle_key(key(KeyCode::Char('v')), 5);
        assert_eq!(s.view, AdminView::Audit);
    }

    #[test]
    fn the_quotas_view_asks_to_edit_create_and_remove_with_a_confirmation() {
        let mut s = AdminState {
            view: AdminView::Quotas,
            ..AdminState::default()
        };
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 3),
            Handled::Ask(Request::EditSelected)
        );
        s.handle_key(key(KeyCode::Char('n')), 3);
        assert!(s.takes_text());
        for c in "team x".chars() {
            s.handle_key(key(KeyCode::Char(c)), 3);
        }
        s.handle_key(key(KeyCode::Enter), 3);
        assert!(
            s.error.is_some() && s.takes_text(),
            "a scope it cannot name"
        );
        s.new_scope = Some("project churn".into());
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 3),
            Handled::Ask(Request::Edit(QuotaScope::Project("churn".into())))
        );
        s.editor = Some(QuotaEditor::new(
            QuotaScope::Project("churn".into()),
            &Quota::default(),
        ));
        s.handle_key(key(KeyCode::Char('3')), 3);
        let three = Quota {
            max_running: Some(3),
            ..Quota::default()
        };
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 3),
            Handled::Ask(Request::Save(QuotaScope::Project("churn".into()), three))
        );
        s.editor = None;
        s.confirm_remove = Some(QuotaScope::Default);
        assert!(matches!(
            s.handle_key(key(KeyCode::Char('n')), 3),
            Handled::Notice(_)
        ));
        assert_eq!(s.confirm_remove, None, "any other key keeps it");
        s.confirm_remove = Some(QuotaScope::Default);
        assert_eq!(
            s.handle_key(key(KeyCode::Char('y')), 3),
            Handled::Ask(Request::Remove(QuotaScope::Default))
        );
    }
}
