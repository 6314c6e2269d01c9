//! The Users view's actions: add a user, change a role, map a Unix
//! account, add a key by pasting it (its fingerprint is shown before it is
//! saved), list and remove keys, disable or enable, remove: each asked in
//! a prompt on the view's last line, and each the same service call as the
//! `user …` and `key …` commands.

use terminput::{KeyCode, KeyEvent};

use super::Request;
use crate::model::Role;
use crate::tui::component::Handled;
use crate::tui::input::type_into;

/// Most characters typed in a prompt (a pasted RSA key is long).
const MAX_PROMPT_CHARS: usize = 16 * 1024;

/// What the Users view asks before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPrompt {
    /// `a`: `NAME ROLE [UNIX_USER]`.
    Add(String),
    /// `r`: the new role of a user.
    Role { name: String, typed: String },
    /// `u`: the Unix account of a user (empty: none).
    Unix { name: String, typed: String },
    /// `p`: a public key line for a user, pasted.
    Key { name: String, typed: String },
    /// The key's fingerprint, shown before it is saved (`y`).
    ConfirmKey {
        name: String,
        line: String,
        fingerprint: String,
    },
    /// `d`: disable or enable a user (`y`).
    Toggle { name: String, disable: bool },
    /// `x`: remove a user (`y`).
    Remove { name: String },
    /// `x` in the keys pane: remove a key (`y`).
    RemoveKey { name: String, fingerprint: String },
}

/// A change the Users view asks the service for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// `user add NAME --role ROLE [--unix-user U]`.
    Add {
        name: String,
        role: Role,
        unix: Option<String>,
    },
    /// `user set-role`.
    Role { name: String, role: Role },
    /// `user set-unix` (`None`: no account).
    Unix { name: String, unix: Option<String> },
    /// Check a pasted key and show its fingerprint.
    OfferKey { name: String, line: String },
    /// `key add NAME` (an admin's: no proof needed).
    AddKey { name: String, line: String },
    /// `user disable|enable`.
    Disabled { name: String, disable: bool },
    /// `user rm`.
    Remove { name: String },
    /// `key rm NAME FINGERPRINT`.
    RemoveKey { name: String, fingerprint: String },
}

/// What the selected user is asked for (resolved by the session, which
/// knows the rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForSelected {
    /// Open their keys.
    Keys,
    /// Change their role.
    Role,
    /// Map their Unix account.
    Unix,
    /// Paste a key for them.
    Key,
    /// Disable or enable them.
    Toggle,
    /// Remove them.
    Remove,
}

/// The Users view's own state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersState {
    /// The prompt open.
    pub prompt: Option<UserPrompt>,
    /// Whose keys are listed (Enter), and the key selected.
    pub keys_of: Option<(String, usize)>,
    /// Why the last prompt was refused.
    pub error: Option<String>,
}

impl UsersState {
    /// Whether keys are text (a prompt that is typed into).
    pub fn takes_text(&self) -> bool {
        matches!(
            self.prompt,
            Some(
                UserPrompt::Add(_)
                    | UserPrompt::Role { .. }
                    | UserPrompt::Unix { .. }
                    | UserPrompt::Key { .. }
            )
        )
    }

    /// Pasted text goes into the prompt typed into (a key line, whole).
    pub fn paste(&mut self, text: &str) {
        if let Some(typed) = self.typed() {
            for c in text.chars().filter(|c| !c.is_control()) {
                type_into(typed, KeyCode::Char(c), MAX_PROMPT_CHARS);
            }
        }
    }

    fn typed(&mut self) -> Option<&mut String> {
        match self.prompt.as_mut()? {
            UserPrompt::Add(typed)
            | UserPrompt::Role { typed, .. }
            | UserPrompt::Unix { typed, .. }
            | UserPrompt::Key { typed, .. } => Some(typed),
            _ => None,
        }
    }

    /// Applies one key; `keys`: how many keys the open keys pane lists.
    pub fn handle_key(&mut self, key: KeyEvent, keys: usize) -> Handled<Request> {
        if let Some(prompt) = self.prompt.clone() {
            return self.prompt_key(prompt, key);
        }
        if let Some((name, selected)) = self.keys_of.as_mut() {
            match key.code {
                KeyCode::Esc => self.keys_of = None,
                KeyCode::Up | KeyCode::Char('k') => *selected = selected.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => {
                    *selected = (*selected + 1).min(keys.saturating_sub(1))
                }
                KeyCode::Char('x') => return Handled::Ask(Request::RemoveSelectedKey),
                KeyCode::Char('a') => {
                    self.prompt = Some(UserPrompt::Key {
                        name: name.clone(),
                        typed: String::new(),
                    })
                }
                _ => return Handled::Notice("keys: ↑↓ · a: paste a key · x: remove · Esc".into()),
            }
            return Handled::Yes;
        }
        let ask = |what| Handled::Ask(Request::ForSelectedUser(what));
        match key.code {
            KeyCode::Char('a') => {
                self.prompt = Some(UserPrompt::Add(String::new()));
                self.error = None;
                Handled::Yes
            }
            KeyCode::Enter => ask(ForSelected::Keys),
            KeyCode::Char('r') => ask(ForSelected::Role),
            KeyCode::Char('u') => ask(ForSelected::Unix),
            KeyCode::Char('p') => ask(ForSelected::Key),
            KeyCode::Char('d') => ask(ForSelected::Toggle),
            KeyCode::Char('x') => ask(ForSelected::Remove),
            _ => Handled::No,
        }
    }

    fn prompt_key(&mut self, prompt: UserPrompt, key: KeyEvent) -> Handled<Request> {
        let change = |c| Handled::Ask(Request::User(c));
        if key.code == KeyCode::Esc {
            self.prompt = None;
            self.error = None;
            return Handled::Notice("nothing changed".into());
        }
        match prompt {
            UserPrompt::ConfirmKey { name, line, .. } => {
                self.prompt = None;
                match key.code {
                    KeyCode::Char('y') => change(UserChange::AddKey { name, line }),
                    _ => Handled::Notice("the key was not added".into()),
                }
            }
            UserPrompt::Toggle { name, disable } => {
                self.prompt = None;
                match key.code {
                    KeyCode::Char('y') => change(UserChange::Disabled { name, disable }),
                    _ => Handled::Notice("nothing changed".into()),
                }
            }
            UserPrompt::Remove { name } => {
                self.prompt = None;
                match key.code {
                    KeyCode::Char('y') => change(UserChange::Remove { name }),
                    _ => Handled::Notice("nothing removed".into()),
                }
            }
            UserPrompt::RemoveKey { name, fingerprint } => {
                self.prompt = None;
                match key.code {
                    KeyCode::Char('y') => change(UserChange::RemoveKey { name, fingerprint }),
                    _ => Handled::Notice("nothing removed".into()),
                }
            }
            typed_prompt if key.code == KeyCode::Enter => match parse_prompt(&typed_prompt) {
                Ok(c) => change(c),
                Err(why) => {
                    self.error = Some(why);
                    Handled::Yes
                }
            },
            _ => {
                if let Some(typed) = self.typed() {
                    type_into(typed, key.code, MAX_PROMPT_CHARS);
                }
                self.error = None;
                Handled::Yes
            }
        }
    }
}

/// Opens what `what` asks about `user` (the selected row).
pub fn ask_about(state: &mut UsersState, user: &crate::lab::UserSummary, what: ForSelected) {
    let name = user.name.clone();
    state.error = None;
    match what {
        ForSelected::Keys => state.keys_of = Some((name, 0)),
        ForSelected::Role => {
            state.prompt = Some(UserPrompt::Role {
                name,
                typed: user.role.to_string(),
            })
        }
        ForSelected::Unix => {
            state.prompt = Some(UserPrompt::Unix {
                name,
                typed: user.unix_user.clone().unwrap_or_default(),
            })
        }
        ForSelected::Key => {
            state.prompt = Some(UserPrompt::Key {
                name,
                typed: String::new(),
            })
        }
        ForSelected::Toggle => {
            state.prompt = Some(UserPrompt::Toggle {
                name,
                disable: !user.disabled,
            })
        }
        ForSelected::Remove => state.prompt = Some(UserPrompt::Remove { name }),
    }
}

/// What a change came to: done (the line to show), or a question first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the notice says what.
    Done(String),
    /// Asked before anything is saved (a key's fingerprint).
    Ask(UserPrompt),
}

/// Carries `change` out through the service, with the caller's current
/// role, as the command of the same name does.
pub fn carry_out(
    lab: &crate::lab::Lab,
    p: &crate::lab::Principal,
    change: UserChange,
) -> Result<Outcome, String> {
    use crate::lab::UnixMapping;
    let mapping = |account: Option<String>| UnixMapping {
        account,
        allow_system_account: false,
        allow_shared: false,
    };
    let done = |text: String| Ok(Outcome::Done(text));
    let failed = |e: crate::lab::LabError| e.to_string();
    match change {
        UserChange::Add { name, role, unix } => {
            let account = unix.or_else(|| Some(name.clone()));
            let user = lab
                .add_user(p, &name, role, &mapping(account))
                .map_err(failed)?;
            done(format!(
                "added {} as {} (p pastes a key for them)",
                user.name, user.role
            ))
        }
        UserChange::Role { name, role } => {
            lab.set_role(p, &name, role).map_err(failed)?;
            done(format!("{name} is now {role}"))
        }
        UserChange::Unix { name, unix } => {
            let user = lab
                .set_unix_user(p, &name, &mapping(unix))
                .map_err(failed)?;
            done(match user.unix_user {
                Some(u) => format!("{name} now runs as unix user {u}"),
                None => format!("{name} has no unix user (cannot run experiments)"),
            })
        }
        UserChange::OfferKey { name, line } => {
            let key = crate::model::PublicKeyInfo::parse(&line).map_err(|e| e.to_string())?;
            Ok(Outcome::Ask(UserPrompt::ConfirmKey {
                name,
                line,
                fingerprint: key.fingerprint,
            }))
        }
        UserChange::AddKey { name, line } => {
            let record = lab.add_key(p, &name, &line).map_err(failed)?;
            done(format!("added key {} to {name}", record.key.fingerprint))
        }
        UserChange::Disabled { name, disable } => {
            lab.set_disabled(p, &name, disable).map_err(failed)?;
            done(if disable {
                format!("{name} is disabled: sessions end, queued experiments held")
            } else {
                format!("{name} is enabled again")
            })
        }
        UserChange::Remove { name } => {
            let cancelled = lab.remove_user(p, &name).map_err(failed)?;
            done(format!(
                "removed {name}; {} queued experiment(s) cancelled",
                cancelled.len()
            ))
        }
        UserChange::RemoveKey { name, fingerprint } => {
            lab.remove_key(p, &name, &fingerprint).map_err(failed)?;
            done(format!("removed key {fingerprint} of {name}"))
        }
    }
}

/// The change a typed prompt asks for, or what is wrong with it.
fn parse_prompt(prompt: &UserPrompt) -> Result<UserChange, String> {
    let role = |text: &str| {
        text.trim()
            .parse::<Role>()
            .map_err(|_| format!("{:?}: admin, member or viewer", text.trim()))
    };
    match prompt {
        UserPrompt::Add(typed) => {
            let words: Vec<&str> = typed.split_whitespace().collect();
            match words.as_slice() {
                [name, r] | [name, r, _] => Ok(UserChange::Add {
                    name: (*name).to_string(),
                    role: role(r)?,
                    unix: words.get(2).map(|u| (*u).to_string()),
                }),
                _ => Err("type NAME ROLE [UNIX_USER], e.g. ana member ana".into()),
            }
        }
        UserPrompt::Role { name, typed } => Ok(UserChange::Role {
            name: name.clone(),
            role: role(typed)?,
        }),
        UserPrompt::Unix { name, typed } => Ok(UserChange::Unix {
            name: name.clone(),
            unix: Some(typed.trim())
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        }),
        UserPrompt::Key { name, typed } => Ok(UserChange::OfferKey {
            name: name.clone(),
            line: typed.trim().to_string(),
        }),
        _ => Err("nothing to type here".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terminput::KeyModifiers;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code).modifiers(KeyModifiers::empty())
    }

    fn typed(s: &mut UsersState, text: &str) {
        for c in text.chars() {
            s.handle_key(key(KeyCode::Char(c)), 0);
        }
    }

    #[test]
    fn a_user_is_added_from_what_is_typed_and_a_mistake_keeps_the_prompt() {
        let mut s = UsersState::default();
        s.handle_key(key(KeyCode::Char('a')), 0);
        assert!(s.takes_text());
        typed(&mut s, "ana boss");
        assert_eq!(s.handle_key(key(KeyCode::Enter), 0), Handled::Yes);
        assert!(
            s.error
                .as_deref()
                .is_some_and(|e| e.contains("admin, member or viewer"))
        );
        for _ in 0.."boss".len() {
            s.handle_key(key(KeyCode::Backspace), 0);
        }
        typed(&mut s, "member lbana");
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), 0),
            Handled::Ask(Request::User(UserChange::Add {
                name: "ana".into(),
                role: Role::Member,
                unix: Some("lbana".into()),
            }))
        );
    }

    #[test]
    fn confirmations_act_only_on_y() {
        let mut s = UsersState {
            prompt: Some(UserPrompt::Toggle {
                name: "bob".into(),
                disable: true,
            }),
            ..UsersState::default()
        };
        assert!(matches!(
            s.handle_key(key(KeyCode::Char('n')), 0),
            Handled::Notice(_)
        ));
        assert_eq!(s.prompt, None);
        s.prompt = Some(UserPrompt::ConfirmKey {
            name: "bob".into(),
            line: "ssh-ed25519 AAAA".into(),
            fingerprint: "SHA256:x".into(),
        });
        assert_eq!(
            s.handle_key(key(KeyCode::Char('y')), 0),
            Handled::Ask(Request::User(UserChange::AddKey {
                name: "bob".into(),
                line: "ssh-ed25519 AAAA".into()
            }))
        );
        assert_eq!(
            s.handle_key(key(KeyCode::Char('d')), 0),
            Handled::Ask(Request::ForSelectedUser(ForSelected::Toggle))
        );
    }

    #[test]
    fn the_keys_pane_selects_and_asks_to_remove_the_selected_key() {
        let mut s = UsersState {
            keys_of: Some(("bob".into(), 0)),
            ..UsersState::default()
        };
        s.handle_key(key(KeyCode::Down), 2);
        s.handle_key(key(KeyCode::Down), 2);
        assert_eq!(s.keys_of, Some(("bob".into(), 1)));
        assert_eq!(
            s.handle_key(key(KeyCode::Char('x')), 2),
            Handled::Ask(Request::RemoveSelectedKey)
        );
        s.handle_key(key(KeyCode::Esc), 2);
        assert_eq!(s.keys_of, None);
    }
}
