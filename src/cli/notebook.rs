//! `comment`, `comments` and `outcome`: what people say of an experiment.

use super::output::CommandOutput;
use crate::describe::discussion_lines;
use crate::lab::{Lab, Principal};
use crate::model::Verdict;

/// `comment ID TEXT`, `comment ID --edit CID TEXT`, `comment ID --rm CID`.
pub fn comment(
    lab: &Lab,
    p: &Principal,
    id: u64,
    edit: Option<u64>,
    rm: Option<u64>,
    text: &str,
    json: bool,
) -> CommandOutput {
    if let Some(cid) = rm {
        return match lab.remove_comment(p, id, cid) {
            Ok(()) if json => CommandOutput::json(
                &serde_json::json!({"experiment": id, "comment": cid, "removed": true}),
            ),
            Ok(()) => CommandOutput::ok(format!("removed comment {cid} on experiment {id}\n")),
            Err(e) => e.into(),
        };
    }
    let done = match edit {
        Some(cid) => lab.edit_comment(p, id, cid, text),
        None => lab.add_comment(p, id, text),
    };
    match done {
        Ok(c) if json => CommandOutput::json(&c),
        Ok(c) if edit.is_some() => {
            CommandOutput::ok(format!("edited comment {} on experiment {id}\n", c.id))
        }
        Ok(c) => CommandOutput::ok(format!("comment {} on experiment {id}\n", c.id)),
        Err(e) => e.into(),
    }
}

/// `comments ID`: the outcome and every comment.
pub fn comments(lab: &Lab, p: &Principal, id: u64, json: bool) -> CommandOutput {
    match lab.discussion(p, id) {
        Ok(d) if json => CommandOutput::json(&d),
        Ok(d) if d.outcome.is_none() && d.comments.is_empty() => CommandOutput::ok(format!(
            "experiment {id} has no outcome and no comments yet\n"
        )),
        Ok(d) => CommandOutput::ok(discussion_lines(&d, None)),
        Err(e) => e.into(),
    }
}

/// `outcome ID positive|negative|inconclusive|none [--note TEXT]`.
pub fn outcome(
    lab: &Lab,
    p: &Principal,
    id: u64,
    verdict: Option<Verdict>,
    note: Option<&str>,
    json: bool,
) -> CommandOutput {
    match lab.set_outcome(p, id, verdict, note) {
        Ok(c) if json => CommandOutput::json(&serde_json::json!({"id": id, "outcome": c})),
        Ok(Some(c)) => {
            CommandOutput::ok(format!("experiment {id}: outcome {}\n", c.verdict.name()))
        }
        Ok(None) => CommandOutput::ok(format!("experiment {id}: no outcome\n")),
        Err(e) => e.into(),
    }
}
