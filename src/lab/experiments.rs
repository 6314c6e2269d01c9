//! One experiment for its reader: what each role sees of it (the read
//! rule for its output), cancelling, priorities and private projects.

use std::path::PathBuf;

use super::submit::MAX_LABEL;
use super::{Change, Lab, LabError, LabResult, Principal, now, require_admin};
use crate::model::{CommandLine, Experiment, Outcome, Role, State, Transition};

impl Lab {
    /// One experiment as the caller may see it (any role; see `seen_by`).
    pub fn experiment(&self, p: &Principal, id: u64) -> LabResult<Experiment> {
        let p = self.current(p)?;
        let e = self.stored_experiment(id)?;
        let private = self.is_private(&e)?;
        Ok(seen_by(&p, e, private))
    }

    /// One experiment as stored, secrets included: for the service's own use.
    pub(super) fn stored_experiment(&self, id: u64) -> LabResult<Experiment> {
        self.store
            .experiment(id)?
            .ok_or_else(|| LabError::NotFound(format!("no experiment {id}")))
    }

    /// The read rule for an experiment's output (logs, and whatever it
    /// writes for others to read): its owner and admins always; other
    /// members and viewers unless the experiment or its project is
    /// private. Every front end asks it before showing output.
    pub fn check_output_readable(&self, p: &Principal, id: u64) -> LabResult<Experiment> {
        let p = self.current(p)?;
        let e = self.stored_experiment(id)?;
        let private = self.is_private(&e)?;
        if private && !owns_or_admin(&p, &e) {
            return Err(LabError::PermissionDenied(format!(
                "experiment {id} is private: only {} and admins can read its output",
                e.owner
            )));
        }
        Ok(seen_by(&p, e, private))
    }

    /// Whether `e` is private, itself or through its project.
    pub(super) fn is_private(&self, e: &Experiment) -> LabResult<bool> {
        Ok(e.spec.private
            || match &e.spec.project {
                Some(project) => self.store.project_is_private(project)?,
                None => false,
            })
    }

    /// Whether an admin made `project` private (its experiments' output and
    /// commands are then for their owners and admins).
    pub fn project_is_private(&self, project: &str) -> LabResult<bool> {
        Ok(self.store.project_is_private(project)?)
    }

    /// Cancels experiments: the owner or an admin. Queued ones end at once
    /// (the finished state is returned); running ones are stopped by the
    /// executor (their current state is returned).
    pub fn cancel(&self, p: &Principal, id: u64) -> LabResult<State> {
        let p = &self.current(p)?;
        let experiment = self.stored_experiment(id)?;
        if !(p.is_admin() || (owns(p, &experiment) && p.role != Role::Viewer)) {
            return Err(LabError::PermissionDenied(format!(
                "only {} or an admin can cancel experiment {id}",
                experiment.owner
            )));
        }
        match &experiment.state {
            State::Finished { .. } => Err(LabError::Invalid(format!(
                "experiment {id} already ended ({})",
                experiment.state.name()
            ))),
            State::Queued => {
                let reason = format!("cancelled by {} while queued", p.user);
                let Some(state) = self.stage_cancel_if_queued(id, &reason)? else {
                    // The runner got there first: cancel what it started.
                    return self.cancel(p, id);
                };
                self.store.flush()?;
                self.audit(
                    p,
                    Change::new(
                        "experiment.cancel",
                        format!("experiment {id}"),
                        format!("cancelled experiment {id}"),
                    )
                    .changing(Some("queued".into()), Some(state.name().into())),
                )?;
                self.queue_changed();
                Ok(state)
            }
            State::Starting { .. } | State::Running { .. } => {
                let runner = self.runner.as_ref().ok_or_else(|| {
                    LabError::Invalid(format!(
                        "experiment {id} is running under the server: cancel it with `ssh lab@host cancel {id}`"
                    ))
                })?;
                if !runner.cancel(id, format!("cancelled by {}", p.user)) {
                    return Err(LabError::Unavailable(format!(
                        "the server is stopping; experiment {id} runs on (cancel it again once the server is back)"
                    )));
                }
                self.audit(
                    p,
                    Change::new(
                        "experiment.cancel",
                        format!("experiment {id}"),
                        format!("cancelled experiment {id}"),
                    )
                    .changing(
                        Some(experiment.state.name().into()),
                        Some("cancelled".into()),
                    ),
                )?;
                Ok(experiment.state)
            }
        }
    }

    /// Ends experiment `id` as cancelled with `reason` if it is still
    /// queued (decided on the record it writes over: the runner may start
    /// it meanwhile); not flushed. Its new state, or `None` if it was no
    /// longer queued.
    pub(super) fn stage_cancel_if_queued(&self, id: u64, reason: &str) -> LabResult<Option<State>> {
        let cancelled = self.store.update_experiment(id, |e| {
            if e.state != State::Queued {
                return Ok::<_, LabError>(None);
            }
            let at = now();
            e.state = State::Finished {
                outcome: Outcome::Cancelled,
                exit_code: None,
                signal: None,
                stop: None,
                started_at: None,
                ended_at: at,
            };
            e.transitions.push(Transition {
                at,
                to: "cancelled".into(),
                reason: reason.to_string(),
            });
            Ok(Some(e.state.clone()))
        })?;
        Ok(cancelled.flatten())
    }

    /// Cancels every queued experiment of `owner` with `reason` (their
    /// owner was removed); returns their ids.
    pub(super) fn cancel_queued_of(&self, owner: &str, reason: &str) -> LabResult<Vec<u64>> {
        let queued: Vec<u64> = self.store.with_active(|active| {
            active
                .values()
                .filter(|e| e.owner == owner && e.state == State::Queued)
                .map(|e| e.id)
                .collect()
        });
        let mut cancelled = Vec::new();
        for id in queued {
            if self.stage_cancel_if_queued(id, reason)?.is_some() {
                cancelled.push(id);
            }
        }
        if !cancelled.is_empty() {
            self.store.flush()?;
            self.queue_changed();
        }
        Ok(cancelled)
    }

    /// Changes a queued experiment's priority (admin only).
    pub fn set_priority(&self, p: &Principal, id: u64, priority: i32) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "change priorities")?;
        self.stored_experiment(id)?;
        // Decided on the record it writes over: the runner may start it meanwhile.
        let old = self
            .store
            .update_experiment(id, |experiment| {
                if experiment.state != State::Queued {
                    return Err(LabError::Invalid(format!(
                        "experiment {id} is {}; only queued experiments have a priority to change",
                        experiment.state.name()
                    )));
                }
                Ok(std::mem::replace(&mut experiment.spec.priority, priority))
            })?
            .ok_or_else(|| LabError::NotFound(format!("no experiment {id}")))?;
        self.audit(
            p,
            Change::new(
                "experiment.priority",
                format!("experiment {id}"),
                format!("changed priority of experiment {id} from {old} to {priority}"),
            )
            .changing(Some(old.to_string()), Some(priority.to_string())),
        )?;
        self.queue_changed();
        Ok(())
    }

    /// Marks `project` private (its experiments' output and what they run
    /// are for their owners and admins) or not (admin only).
    pub fn set_project_private(
        &self,
        p: &Principal,
        project: &str,
        private: bool,
    ) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "make projects private or public")?;
        if project.is_empty()
            || project.chars().count() > MAX_LABEL
            || project.chars().any(char::is_control)
        {
            return Err(LabError::Invalid(format!(
                "invalid project {project:?}: 1–{MAX_LABEL} printable characters"
            )));
        }
        let was = self.store.private_projects()?.contains(project);
        self.store.set_project_private(project, private)?;
        self.visibility_changed();
        let word = |private: bool| if private { "private" } else { "public" };
        self.audit(
            p,
            Change::new(
                "project.visibility",
                format!("project {project}"),
                format!("made project {project} {}", word(private)),
            )
            .changing(Some(word(was).into()), Some(word(private).into())),
        )?;
        self.notify_queue();
        Ok(())
    }

    pub(super) fn existing_user_record(&self, name: &str) -> LabResult<crate::model::User> {
        self.store
            .user(name)?
            .ok_or_else(|| LabError::NotFound(format!("no user named {name}")))
    }
}

/// Whether `p` owns `e` (theirs, not an earlier account's of the same
/// name) or is an admin.
pub(super) fn owns_or_admin(p: &Principal, e: &Experiment) -> bool {
    p.is_admin() || owns(p, e)
}

/// Whether `e` is `p`'s own.
pub(super) fn owns(p: &Principal, e: &Experiment) -> bool {
    p.user == e.owner && e.submitted_at >= p.since
}

/// What stands in for a value the caller may not see.
pub const HIDDEN: &str = "(hidden)";

/// What `p` may see of experiment `e`: everything for its owner and
/// admins. Others see the names of its environment variables but not their
/// values (they carry tokens and passwords); of a `private` one (itself or
/// through its project), its owner, name, project, tags, requests and
/// state, but not what it runs, where, or with what.
pub(super) fn seen_by(p: &Principal, mut e: Experiment, private: bool) -> Experiment {
    if owns_or_admin(p, &e) {
        return e;
    }
    for (_, value) in &mut e.spec.env {
        *value = HIDDEN.into();
    }
    if private {
        let spec = &mut e.spec;
        spec.command = CommandLine::Shell(HIDDEN.into());
        spec.workdir = PathBuf::from(HIDDEN);
        spec.env.clear();
        spec.params.clear();
        spec.inputs.clear();
        spec.outputs.clear();
    }
    e
}
