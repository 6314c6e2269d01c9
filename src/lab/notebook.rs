//! Comments and outcomes. Anyone who may read an experiment's output
//! comments on it (viewers included: stakeholders discuss results); the
//! author of a comment and admins edit or remove it; the experiment's owner
//! (while not a viewer) and admins give its finished result an outcome.
//! Each change is audited; none is written while the data disk is below
//! its reserve.

use super::experiments::owns_or_admin;
use super::{Change, Lab, LabError, LabResult, Principal, now};
use crate::model::{Comment, Conclusion, MAX_COMMENT_BYTES, Role, Verdict};

/// Most comments on one experiment.
pub const MAX_COMMENTS: usize = 1000;

/// An experiment's comments and outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discussion {
    /// The experiment.
    pub id: u64,
    /// The outcome given to it, if any.
    pub outcome: Option<Conclusion>,
    /// Its comments, oldest first.
    pub comments: Vec<Comment>,
}

/// Refuses an empty or oversized text (`what`: "comment", "note").
fn checked_text(what: &str, text: &str) -> LabResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(LabError::Invalid(format!("the {what} is empty")));
    }
    if text.len() > MAX_COMMENT_BYTES {
        return Err(LabError::Invalid(format!(
            "the {what} has {} bytes; at most {MAX_COMMENT_BYTES}",
            text.len()
        )));
    }
    Ok(text.to_string())
}

impl Lab {
    /// Adds `p`'s comment `text` to experiment `id`.
    pub fn add_comment(&self, p: &Principal, id: u64, text: &str) -> LabResult<Comment> {
        let p = self.current(p)?;
        self.check_output_readable(&p, id)?;
        let text = checked_text("comment", text)?;
        if self.store.comments(id)?.len() >= MAX_COMMENTS {
            return Err(LabError::Invalid(format!(
                "experiment {id} has {MAX_COMMENTS} comments, the most it may have"
            )));
        }
        self.check_disk_room()?;
        let comment = Comment {
            id: self.store.next_comment_id()?,
            experiment: id,
            author: p.user.clone(),
            author_since: p.since,
            text,
            at: now(),
            edited_at: None,
        };
        self.store.put_comment(&comment)?;
        self.audit(
            &p,
            Change::new(
                "comment.add",
                format!("experiment {id}"),
                format!("commented on experiment {id} (comment {})", comment.id),
            ),
        )?;
        Ok(comment)
    }

    /// Replaces the text of comment `comment` on experiment `id` (its
    /// author's, or an admin's doing).
    pub fn edit_comment(
        &self,
        p: &Principal,
        id: u64,
        comment: u64,
        text: &str,
    ) -> LabResult<Comment> {
        let p = self.current(p)?;
        let mut found = self.own_comment(&p, id, comment)?;
        let before = std::mem::replace(&mut found.text, checked_text("comment", text)?);
        self.check_disk_room()?;
        found.edited_at = Some(now());
        self.store.put_comment(&found)?;
        self.audit(
            &p,
            // Lengths, not texts: a comment removed for what it said is
            // gone from the trail too.
            Change::new(
                "comment.edit",
                format!("experiment {id}"),
                format!("edited comment {comment} on experiment {id}"),
            )
            .changing(
                Some(format!("{} characters", before.chars().count())),
                Some(format!("{} characters", found.text.chars().count())),
            ),
        )?;
        Ok(found)
    }

    /// Removes comment `comment` on experiment `id` (its author's, or an
    /// admin's doing).
    pub fn remove_comment(&self, p: &Principal, id: u64, comment: u64) -> LabResult<()> {
        let p = self.current(p)?;
        let found = self.own_comment(&p, id, comment)?;
        self.store.remove_comment(id, comment)?;
        self.audit(
            &p,
            Change::new(
                "comment.remove",
                format!("experiment {id}"),
                format!("removed comment {comment} on experiment {id}"),
            )
            .changing(
                Some(format!("{} characters", found.text.chars().count())),
                None,
            ),
        )
    }

    /// Refuses a write while the data disk is below its reserve: the
    /// records of running experiments come first.
    fn check_disk_room(&self) -> LabResult<()> {
        match self.disk_short() {
            Some((free, _)) => Err(LabError::Unavailable(format!(
                "the data disk is full ({} free): nothing was written; try again when space is freed",
                crate::units::short_bytes(free as f64)
            ))),
            None => Ok(()),
        }
    }

    /// Comment `comment` on experiment `id`, if `p` wrote it (this account,
    /// not an earlier one of the same name) or is an admin.
    fn own_comment(&self, p: &Principal, id: u64, comment: u64) -> LabResult<Comment> {
        self.check_output_readable(p, id)?;
        let found = self
            .store
            .comments(id)?
            .into_iter()
            .find(|c| c.id == comment)
            .ok_or_else(|| {
                LabError::NotFound(format!("experiment {id} has no comment {comment}"))
            })?;
        let authored = found.author == p.user && found.author_since == p.since;
        if !authored && p.role != Role::Admin {
            return Err(LabError::PermissionDenied(format!(
                "comment {comment} is {}'s: only they and admins change it",
                found.author
            )));
        }
        Ok(found)
    }

    /// Gives finished experiment `id` the outcome `verdict` (its owner or an
    /// admin); `None` takes it back.
    pub fn set_outcome(
        &self,
        p: &Principal,
        id: u64,
        verdict: Option<Verdict>,
        note: Option<&str>,
    ) -> LabResult<Option<Conclusion>> {
        let p = self.current(p)?;
        let e = self.check_output_readable(&p, id)?;
        let stored = self.stored_experiment(id)?;
        if !owns_or_admin(&p, &stored) || p.role == Role::Viewer {
            return Err(LabError::PermissionDenied(format!(
                "experiment {id} is {}'s: only they and admins give it an outcome",
                e.owner
            )));
        }
        if !stored.state.is_finished() {
            return Err(LabError::Invalid(format!(
                "experiment {id} has not finished: an outcome is given to a result"
            )));
        }
        self.check_disk_room()?;
        let conclusion = match verdict {
            Some(verdict) => Some(Conclusion {
                verdict,
                note: note.map(|n| checked_text("note", n)).transpose()?,
                by: p.user.clone(),
                at: now(),
            }),
            None => None,
        };
        let was = self.store.conclusion(id)?;
        self.store.put_conclusion(id, conclusion.as_ref())?;
        let said =
            |c: Option<&Conclusion>| c.map_or("none".to_string(), |c| c.verdict.name().to_string());
        self.audit(
            &p,
            Change::new(
                "experiment.outcome",
                format!("experiment {id}"),
                format!("experiment {id}: outcome {}", said(conclusion.as_ref())),
            )
            .changing(Some(said(was.as_ref())), Some(said(conclusion.as_ref()))),
        )?;
        Ok(conclusion)
    }

    /// The comments on experiment `id` that `p` may edit or remove: their
    /// own (this account's), or every one for an admin; oldest first.
    pub fn changeable_comments(&self, p: &Principal, id: u64) -> LabResult<Vec<Comment>> {
        let p = self.current(p)?;
        self.check_output_readable(&p, id)?;
        let mut comments = self.store.comments(id)?;
        comments
            .retain(|c| p.role == Role::Admin || (c.author == p.user && c.author_since == p.since));
        Ok(comments)
    }

    /// Experiment `id`'s outcome and comments, for a caller who may read its
    /// output.
    pub fn discussion(&self, p: &Principal, id: u64) -> LabResult<Discussion> {
        self.check_output_readable(p, id)?;
        Ok(Discussion {
            id,
            outcome: self.store.conclusion(id)?,
            comments: self.store.comments(id)?,
        })
    }
}
