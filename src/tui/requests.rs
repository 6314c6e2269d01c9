//! What the interface's requests do. Each that reads or changes anything
//! is decided by the service (`Lab`, which reads the caller's role anew), as
//! the command of the same name is: the interface adds no rule of its own.

use super::app::{Request, ViewState};
use super::dashboard::draw::sorted_rows;
use super::dashboard::{self, DrillDown};
use super::data::Snapshot;
use super::history::{self, HistoryPane};
use super::queue::draw::visible_rows;
use super::queue::logpane::LogPaneState;
use super::queue::{self, QueuePane};
use crate::lab::{Lab, Principal};
use crate::monitor::Window;

/// Carries out `request` for `principal`, leaving its outcome in `view`
/// (a notice, an open pane) as the next frame shows it.
pub fn carry_out(
    lab: &Lab,
    principal: &Principal,
    view: &mut ViewState,
    snapshot: &Snapshot,
    request: Request,
) {
    match request {
        Request::History(request) => history_request(lab, principal, view, snapshot, request),
        Request::Admin(request) => admin_request(lab, principal, view, snapshot, request),
        Request::Dashboard(dashboard::Request::OpenSelected) => {
            let rows = sorted_rows(snapshot, &view.dashboard);
            let index = view.dashboard.selected.min(rows.len().saturating_sub(1));
            if let Some(row) = rows.get(index) {
                view.dashboard.drill = Some(DrillDown {
                    uid: row.usage.uid,
                    unix_user: row.usage.unix_user.clone(),
                    window: Window::Hour,
                });
            }
        }
        Request::Queue(request) => {
            let rows = visible_rows(snapshot);
            let selected = view
                .queue
                .selected
                .checked_sub(snapshot.queue_offset)
                .and_then(|i| rows.get(i))
                .map(|v| v.experiment.id);
            match (request, selected) {
                (queue::Request::ShowSelected, Some(id)) => {
                    view.queue.pane = Some(QueuePane::Details(id));
                }
                (queue::Request::LogSelected, Some(id)) => {
                    // Reading output is checked by the service like `logs`.
                    view.queue.pane = match lab.check_output_readable(principal, id) {
                        Ok(_) => Some(QueuePane::Log(LogPaneState::new(id))),
                        Err(e) => {
                            view.notice = Some(e.to_string());
                            None
                        }
                    };
                }
                (queue::Request::PrioritySelected, Some(id)) => {
                    view.queue.pane = Some(QueuePane::Priority(id, String::new()));
                }
                (queue::Request::SetPriority(id, typed), _) => match typed.parse::<i32>() {
                    Err(_) => {
                        view.notice = Some(format!("{typed:?} is not a whole number"));
                    }
                    Ok(priority) => match lab.set_priority(principal, id, priority) {
                        Ok(()) => {
                            view.queue.pane = None;
                            view.notice =
                                Some(format!("experiment {id} now has priority {priority}"));
                        }
                        Err(e) => view.notice = Some(e.to_string()),
                    },
                },
                (queue::Request::Submit(request), _) => {
                    let outcome = lab.submit(principal, *request).map_err(|e| e.to_string());
                    match (&mut view.queue.pane, outcome) {
                        (_, Ok(id)) => {
                            view.queue.pane = None;
                            view.notice = Some(format!("submitted experiment {id}"));
                        }
                        (Some(QueuePane::Submit(form)), Err(why)) => form.error = Some(why),
                        (_, Err(why)) => view.notice = Some(why),
                    }
                }
                (queue::Request::FindInLog { older }, _) => {
                    if let Some(QueuePane::Log(log)) = &mut view.queue.pane
                        && !log.find(&snapshot.log, older)
                    {
                        view.notice = Some(format!(
                            "no {} match for {:?}",
                            if older { "older" } else { "newer" },
                            log.search.as_deref().unwrap_or("")
                        ));
                    }
                }
                (queue::Request::NextProject, _) => {
                    let projects = lab.active_projects();
                    let next = match &view.queue.project {
                        None => projects.first().cloned(),
                        Some(current) => projects.iter().find(|p| *p > current).cloned(),
                    };
                    if projects.is_empty() {
                        view.notice = Some("no experiment here has a project".into());
                    }
                    view.queue.project = next;
                    view.queue.selected = 0;
                    view.queue.anchor = None;
                }
                (queue::Request::CancelSelected, Some(id)) => {
                    view.queue.pane = Some(QueuePane::ConfirmCancel(id));
                }
                (queue::Request::RerunSelected, Some(id)) => {
                    view.notice = Some(
                        match lab.rerun(principal, id, crate::lab::SubmitRequest::default()) {
                            Ok(new) => format!("submitted experiment {new} (rerun of {id})"),
                            Err(e) => e.to_string(),
                        },
                    );
                }
                (queue::Request::ConfirmCancel(id), _) => {
                    view.notice = Some(match lab.cancel(principal, id) {
                        Ok(state) if state.is_finished() => {
                            format!("cancelled experiment {id}")
                        }
                        Ok(_) => format!("stopping experiment {id}"),
                        Err(e) => e.to_string(),
                    });
                }
                _ => view.notice = Some("no experiment selected".into()),
            }
        }
    }
}

/// The Admin tab's requests: the quota editor opened, saved and quotas
/// removed, each by the service with the caller's current role.
fn admin_request(
    lab: &Lab,
    principal: &Principal,
    view: &mut ViewState,
    snapshot: &Snapshot,
    request: super::admin::Request,
) {
    use super::admin::Request;
    use super::admin::quota_editor::QuotaEditor;
    let selected = || {
        snapshot
            .quotas
            .get(view.admin.selected)
            .map(|(scope, _)| scope.clone())
    };
    match request {
        Request::EditSelected => match selected() {
            Some(scope) => admin_request(lab, principal, view, snapshot, Request::Edit(scope)),
            None => view.notice = Some("no quota selected (n: a new one)".into()),
        },
        Request::Edit(scope) => match lab.quota_of(principal, &scope) {
            Ok(shown) => view.admin.editor = Some(QuotaEditor::new(scope, &shown.set)),
            Err(e) => view.notice = Some(e.to_string()),
        },
        Request::Save(scope, quota) => match lab.set_quota(principal, &scope, quota) {
            Ok(()) => {
                view.admin.editor = None;
                view.notice = Some(format!(
                    "quota of {scope} saved: the scheduler applies it now"
                ));
            }
            Err(e) => {
                let why = e.to_string();
                match view.admin.editor.as_mut() {
                    Some(editor) => editor.error = Some(why),
                    None => view.notice = Some(why),
                }
            }
        },
        Request::RemoveSelected => match selected() {
            Some(scope) => view.admin.confirm_remove = Some(scope),
            None => view.notice = Some("no quota selected".into()),
        },
        Request::Remove(scope) => {
            view.notice = Some(match lab.remove_quota(principal, &scope) {
                Ok(()) => format!("quota of {scope} removed"),
                Err(e) => e.to_string(),
            })
        }
        Request::EditIdle => {
            let rule = lab.idle_rule();
            view.admin.idle_typing = Some(super::admin::idle_rule::rule_text(rule.as_ref()));
        }
        Request::SetIdle(rule) => {
            let on = rule.is_some();
            match lab.set_idle_rule(principal, rule) {
                Ok(()) => {
                    view.admin.idle_typing = None;
                    view.notice = Some(if on {
                        "idle rule saved: it applies from the next second".into()
                    } else {
                        "idle detection is off".into()
                    })
                }
                // The prompt stays open with what was typed.
                Err(e) if view.admin.idle_typing.is_some() => {
                    view.admin.error = Some(e.to_string())
                }
                Err(e) => view.notice = Some(e.to_string()),
            }
        }
        Request::ForSelectedUser(what) => {
            let Some(user) = snapshot.users.get(view.admin.selected) else {
                view.notice = Some("no user selected".into());
                return;
            };
            super::admin::users::ask_about(&mut view.admin.users, user, what);
        }
        Request::RemoveSelectedKey => {
            let chosen = view.admin.users.keys_of.as_ref().and_then(|(name, i)| {
                snapshot
                    .user_keys
                    .get(*i)
                    .map(|k| (name.clone(), k.key.fingerprint.clone()))
            });
            match chosen {
                Some((name, fingerprint)) => {
                    view.admin.users.prompt =
                        Some(super::admin::users::UserPrompt::RemoveKey { name, fingerprint })
                }
                None => view.notice = Some("no key selected".into()),
            }
        }
        Request::User(change) => {
            let users = &mut view.admin.users;
            match super::admin::users::carry_out(lab, principal, change) {
                Ok(super::admin::users::Outcome::Done(done)) => {
                    users.prompt = None;
                    users.error = None;
                    view.notice = Some(done);
                }
                Ok(super::admin::users::Outcome::Ask(prompt)) => {
                    users.prompt = Some(prompt);
                    users.error = None;
                }
                // The typed prompt stays open with the reason.
                Err(why) if users.takes_text() => users.error = Some(why),
                Err(why) => view.notice = Some(why),
            }
        }
    }
}

/// Carries out a History request: it acts on the rows shown (what they
/// open is read through the service when drawn).
fn history_request(
    lab: &Lab,
    principal: &Principal,
    view: &mut ViewState,
    snapshot: &Snapshot,
    request: history::Request,
) {
    let selected_at = view.history.selected;
    let at = |len: usize| selected_at.min(len.saturating_sub(1));
    match (&request, view.history.shown) {
        // A project opens its experiments.
        (history::Request::OpenSelected, history::Shown::Projects) => {
            if let Some(p) = snapshot.projects.get(at(snapshot.projects.len())) {
                if p.project == "-" {
                    view.notice = Some("these experiments have no project".into());
                    return;
                }
                view.history.filter = format!("project:{}", crate::lab::filter::quote(&p.project));
                view.history.shown = history::Shown::Experiments;
                view.history.pages.clear();
                view.history.selected = 0;
            }
            return;
        }
        (history::Request::OpenSelected, history::Shown::Dependencies)
            if !snapshot.deps_uses.is_empty() =>
        {
            if let Some(u) = snapshot.deps_uses.get(at(snapshot.deps_uses.len())) {
                view.history.pane = Some(HistoryPane::Page {
                    id: u.id,
                    scroll: 0,
                });
                view.history.chart_metric = 0;
            }
            return;
        }
        (history::Request::OpenSelected, history::Shown::Dependencies) => {
            if let Some(p) = snapshot.packages.get(at(snapshot.packages.len())) {
                // Its experiments: the same view, asked for that package.
                view.history.deps_query = format!("package:{}", p.package);
                view.history.selected = 0;
            }
            return;
        }
        _ => {}
    }
    let selected = if view.history.shown == history::Shown::Feed {
        snapshot
            .feed
            .get(at(snapshot.feed.len()))
            .map(|item| item.experiment)
    } else {
        let rows = &snapshot.history;
        rows.get(view.history.selected.min(rows.len().saturating_sub(1)))
            .map(|r| r.id)
    };
    match (request, selected) {
        (history::Request::OpenSelected, Some(id)) => {
            view.history.pane = Some(HistoryPane::Page { id, scroll: 0 });
            view.history.chart_metric = 0;
        }
        (history::Request::MarkSelected, Some(id)) => {
            if !view.history.marked.remove(&id) {
                if view.history.marked.len() >= crate::lab::MAX_COMPARED {
                    view.notice = Some(format!(
                        "at most {} experiments are compared at once",
                        crate::lab::MAX_COMPARED
                    ));
                    return;
                }
                view.history.marked.insert(id);
            }
        }
        (history::Request::CompareMarked, _) => {
            view.history.chart_metric = 0;
            view.history.pane = Some(HistoryPane::Compare {
                ids: view.history.marked.iter().copied().collect(),
                scroll: 0,
            });
        }
        (history::Request::NextPage, _) => match snapshot.history_next {
            Some(before) => {
                view.history.pages.push(Some(before));
                view.history.selected = 0;
            }
            None => view.notice = Some("this is the oldest page".into()),
        },
        // Reading output is checked by the service like `logs`; the log
        // pane is the Queue tab's (History keeps its page for `3`).
        (history::Request::Log(id), _) => match lab.check_output_readable(principal, id) {
            Ok(_) => {
                view.queue.pane = Some(QueuePane::Log(LogPaneState::new(id)));
                view.tab = super::app::Tab::Queue;
                view.notice = Some(format!(
                    "log of experiment {id}; Esc, then 3: back to its page"
                ));
            }
            Err(e) => view.notice = Some(e.to_string()),
        },
        (history::Request::RemoveComment(id, comment), _) => {
            match lab.remove_comment(principal, id, comment) {
                Ok(()) => {
                    view.notice = Some(format!("comment {comment} removed"));
                    view.history.pane = Some(HistoryPane::Page { id, scroll: 0 });
                }
                Err(e) => view.notice = Some(e.to_string()),
            }
        }
        (history::Request::EditComment(id, comment, text), _) => {
            match lab.edit_comment(principal, id, comment, &text) {
                Ok(c) => {
                    view.notice = Some(format!("comment {} edited", c.id));
                    view.history.pane = Some(HistoryPane::Page { id, scroll: 0 });
                }
                Err(e) => view.notice = Some(e.to_string()),
            }
        }
        // The comment as the list on screen showed it; the service decides.
        (history::Request::PickComment(id, nth, remove), _) => {
            match snapshot.history_comments.get(nth) {
                None => view.notice = Some("no comment of yours here to change".into()),
                Some(c) if remove => {
                    let first = c.text.lines().next().unwrap_or("");
                    view.history.pane = Some(HistoryPane::ConfirmRemove {
                        id,
                        comment: c.id,
                        what: format!("{}: {first}", c.author),
                    });
                }
                Some(c) => {
                    view.history.pane = Some(HistoryPane::Comment {
                        id,
                        text: c.text.clone(),
                        editing: Some(c.id),
                    });
                }
            }
        }
        // Decided by the service with the current role, as `comment` is.
        (history::Request::Comment(id, text), _) => match lab.add_comment(principal, id, &text) {
            Ok(c) => {
                view.notice = Some(format!("comment {} on experiment {id}", c.id));
                view.history.pane = Some(HistoryPane::Page { id, scroll: 0 });
            }
            Err(e) => view.notice = Some(e.to_string()),
        },
        (history::Request::Outcome(id, verdict, note), _) => {
            let note = Some(note.trim()).filter(|n| !n.is_empty());
            match lab.set_outcome(principal, id, verdict, note) {
                Ok(c) => {
                    view.notice = Some(format!(
                        "experiment {id}: outcome {}",
                        c.map_or("none", |c| c.verdict.name())
                    ));
                    view.history.pane = Some(HistoryPane::Page { id, scroll: 0 });
                }
                Err(e) => view.notice = Some(e.to_string()),
            }
        }
        (_, None) => view.notice = Some("no experiment selected".into()),
    }
}

/// The interface's side of the authorization matrix (tests/authz.rs has the
/// commands'): every request × admin, owner, other member, viewer.
#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::lab::{ListFilter, SubmitRequest};
    use crate::model::{CommandLine, Role, State};
    use crate::tui::admin;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Want {
        /// Carried out (or a pane opened), no refusal.
        Done,
        /// "permission denied", nothing changed.
        Denied,
    }
    use Want::{Denied, Done};

    /// What admin, owner, other member and viewer get. No wildcard: a new
    /// request does not compile until it has its row.
    fn row(request: &Request) -> [Want; 4] {
        match request {
            Request::Dashboard(dashboard::Request::OpenSelected)
            | Request::Queue(queue::Request::ShowSelected)
            | Request::Queue(queue::Request::CancelSelected)
            | Request::Queue(queue::Request::PrioritySelected)
            | Request::Queue(queue::Request::FindInLog { .. })
            | Request::Queue(queue::Request::NextProject) => [Done; 4],
            // Of a private experiment.
            Request::Queue(queue::Request::LogSelected) => [Done, Done, Denied, Denied],
            Request::Queue(queue::Request::ConfirmCancel(_)) => [Done, Done, Denied, Denied],
            Request::Queue(queue::Request::RerunSelected) => [Done, Done, Denied, Denied],
            Request::Queue(queue::Request::Submit(_)) => [Done, Done, Done, Denied],
            Request::Queue(queue::Request::SetPriority(..)) => [Done, Denied, Denied, Denied],
            // Of a private experiment, as `comment` and `outcome` are.
            Request::History(history::Request::Comment(..)) => [Done, Done, Denied, Denied],
            Request::History(history::Request::Outcome(..)) => [Done, Done, Denied, Denied],
            Request::History(history::Request::Log(_)) => [Done, Done, Denied, Denied],
            // The owner's comment, as `comment --edit/--rm` are.
            Request::History(history::Request::EditComment(..)) => [Done, Done, Denied, Denied],
            Request::History(history::Request::RemoveComment(..)) => [Done, Done, Denied, Denied],
            // They open panes; what a pane shows is read through the
            // service as it is drawn (tui/session.rs tests it).
            Request::History(
                history::Request::OpenSelected
                | history::Request::MarkSelected
                | history::Request::CompareMarked
                | history::Request::NextPage
                | history::Request::PickComment(..),
            ) => [Done; 4],
            // Reading a quota (a project's: anyone's to read) opens the
            // editor; saving and removing are the admins'.
            Request::Admin(
                admin::Request::EditSelected
                | admin::Request::Edit(_)
                | admin::Request::RemoveSelected
                | admin::Request::ForSelectedUser(_)
                | admin::Request::RemoveSelectedKey
                | admin::Request::EditIdle,
            ) => [Done; 4],
            // As `idle set` is.
            Request::Admin(admin::Request::SetIdle(_)) => [Done, Denied, Denied, Denied],
            // As `user …` and `key …` are (a key offered is only checked).
            Request::Admin(admin::Request::User(admin::users::UserChange::OfferKey { .. })) => {
                [Done; 4]
            }
            // Mike's own key: his to remove, as `key rm` is.
            Request::Admin(admin::Request::User(admin::users::UserChange::RemoveKey {
                ..
            })) => [Done, Done, Denied, Denied],
            Request::Admin(admin::Request::User(_)) => [Done, Denied, Denied, Denied],
            Request::Admin(admin::Request::Save(..) | admin::Request::Remove(_)) => {
                [Done, Denied, Denied, Denied]
            }
        }
    }

    /// Every experiment's id, state and priority, as an admin sees them.
    fn state(lab: &Lab) -> Vec<(u64, State, i32)> {
        let admin = lab.local_operator().expect("admin");
        let filter = ListFilter {
            all: true,
            ..ListFilter::default()
        };
        let mut all: Vec<_> = lab
            .list_experiments(&admin, &filter)
            .expect("ls")
            .views
            .into_iter()
            .map(|v| {
                (
                    v.experiment.id,
                    v.experiment.state,
                    v.experiment.spec.priority,
                )
            })
            .collect();
        all.sort_by_key(|(id, ..)| *id);
        all
    }

    #[test]
    fn a_refused_idle_rule_keeps_its_prompt_open_with_the_reason() {
        let (_d, lab) = lab_with_admin();
        let mike = principal(&lab, "mike", Role::Member);
        let mut view = ViewState::new(Role::Member);
        view.admin.idle_typing = Some("5 5 1h notify".into());
        let rule = Some(crate::monitor::idle::IdleRule::default());
        let request = Request::Admin(admin::Request::SetIdle(rule));
        carry_out(&lab, &mike, &mut view, &Snapshot::default(), request);
        assert_eq!(view.admin.idle_typing.as_deref(), Some("5 5 1h notify"));
        assert!(
            view.admin
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("permission denied")),
            "{:?}",
            view.admin.error
        );
        assert_eq!(lab.idle_rule(), None);
        let root = lab.local_operator().expect("admin");
        let mut view = ViewState::new(Role::Admin);
        view.admin.idle_typing = Some("5 5 1h notify".into());
        let request = Request::Admin(admin::Request::SetIdle(rule));
        carry_out(&lab, &root, &mut view, &Snapshot::default(), request);
        assert_eq!(view.admin.idle_typing, None, "closed once saved");
        assert!(lab.idle_rule().is_some());
    }

    #[test]
    fn every_request_is_decided_by_the_role_of_who_makes_it() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let people = [
            admin,
            mike.clone(),
            principal(&lab, "mary", Role::Member),
            principal(&lab, "vera", Role::Viewer),
        ];
        let private_run = || {
            lab.submit(
                &mike,
                SubmitRequest {
                    command: Some(CommandLine::Argv(vec!["true".into()])),
                    workdir: Some(PathBuf::from("/tmp")),
                    private: true,
                    ..SubmitRequest::default()
                },
            )
            .expect("submit")
        };
        let form = SubmitRequest {
            command: Some(CommandLine::Shell("true".into())),
            workdir: Some(PathBuf::from("/tmp")),
            ..SubmitRequest::default()
        };
        let churn = crate::model::QuotaScope::Project("churn".into());
        let two_running = crate::model::Quota {
            max_running: Some(2),
            ..crate::model::Quota::default()
        };
        let mut failures = Vec::new();
        for (n, p) in people.iter().enumerate() {
            // Fresh targets, each request acting on the selected one.
            let target = private_run();
            let comment = lab
                .add_comment(&mike, target, "first look")
                .expect("comment");
            let requests = [
                Request::Dashboard(dashboard::Request::OpenSelected),
                Request::Queue(queue::Request::ShowSelected),
                Request::Queue(queue::Request::LogSelected),
                Request::Queue(queue::Request::CancelSelected),
                Request::Queue(queue::Request::PrioritySelected),
                Request::Queue(queue::Request::FindInLog { older: true }),
                Request::Queue(queue::Request::NextProject),
                Request::Queue(queue::Request::SetPriority(target, "5".into())),
                Request::Queue(queue::Request::RerunSelected),
                Request::Queue(queue::Request::Submit(Box::new(form.clone()))),
                Request::Queue(queue::Request::ConfirmCancel(target)),
                Request::History(history::Request::OpenSelected),
                Request::History(history::Request::MarkSelected),
                Request::History(history::Request::CompareMarked),
                Request::History(history::Request::NextPage),
                Request::History(history::Request::Comment(target, "looks right".into())),
                Request::History(history::Request::Outcome(
                    target,
                    Some(crate::model::Verdict::Negative),
                    "no lift".into(),
                )),
                Request::History(history::Request::EditComment(
                    target,
                    comment.id,
                    "second look".into(),
                )),
                Request::History(history::Request::Log(target)),
                // Choosing the comment listed (a pane that asks), then
                // removing it.
                Request::History(history::Request::PickComment(target, 0, true)),
                Request::History(history::Request::RemoveComment(target, comment.id)),
                Request::Admin(admin::Request::EditSelected),
                Request::Admin(admin::Request::Edit(churn.clone())),
                Request::Admin(admin::Request::RemoveSelected),
                Request::Admin(admin::Request::Save(churn.clone(), two_running)),
                Request::Admin(admin::Request::Remove(churn.clone())),
                Request::Admin(admin::Request::ForSelectedUser(
                    admin::users::ForSelected::Toggle,
                )),
                Request::Admin(admin::Request::RemoveSelectedKey),
                Request::Admin(admin::Request::EditIdle),
                Request::Admin(admin::Request::SetIdle(Some(
                    crate::monitor::idle::IdleRule::default(),
                ))),
                Request::Admin(admin::Request::User(admin::users::UserChange::Add {
                    name: format!("added{n}"),
                    role: Role::Viewer,
                    unix: None,
                })),
                Request::Admin(admin::Request::User(admin::users::UserChange::Role {
                    name: format!("added{n}"),
                    role: Role::Member,
                })),
                Request::Admin(admin::Request::User(admin::users::UserChange::Disabled {
                    name: "nobody".into(),
                    disable: true,
                })),
                Request::Admin(admin::Request::User(admin::users::UserChange::RemoveKey {
                    name: "mike".into(),
                    fingerprint: "SHA256:none".into(),
                })),
            ];
            for request in requests {
                let want = row(&request)[n];
                let mut view = ViewState::new(p.role);
                let snapshot = Snapshot {
                    queue: lab
                        .list_experiments(p, &ListFilter::default())
                        .expect("ls")
                        .views
                        .into_iter()
                        .filter(|v| v.experiment.id == target)
                        .collect(),
                    history_comments: vec![comment.clone()],
                    quotas: vec![(churn.clone(), two_running)],
                    ..Snapshot::default()
                };
                let before = (state(&lab), lab.idle_rule());
                let shown = format!("{} {request:?}", p.user);
                carry_out(&lab, p, &mut view, &snapshot, request);
                let denied = view
                    .notice
                    .as_deref()
                    .is_some_and(|n| n.starts_with("permission denied"));
                match want {
                    Done if denied => failures.push(format!("{shown}: refused: {:?}", view.notice)),
                    Denied if !denied => {
                        failures.push(format!("{shown}: not refused: {:?}", view.notice))
                    }
                    Denied if (state(&lab), lab.idle_rule()) != before => {
                        failures.push(format!("{shown}: refused but changed something"))
                    }
                    _ => {}
                }
            }
            // What the allowed ones did.
            let after: Vec<_> = state(&lab)
                .into_iter()
                .filter(|(id, ..)| *id == target)
                .collect();
            let (_, target_state, priority) = &after[0];
            assert!(lab.idle_rule().is_some(), "set by the admin, first");
            let owner_or_admin = n <= 1;
            assert_eq!(priority == &5, n == 0, "{}: priority {priority}", p.user);
            assert_eq!(
                target_state.is_finished(),
                owner_or_admin,
                "{}: {target_state:?}",
                p.user
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
