//! `comment`, `comments`, `outcome`, `feed` and `projects`: what people say
//! of experiments, what happened lately, and how each project goes.

use super::output::{CommandOutput, exit};
use crate::describe::discussion_lines;
use crate::lab::{BestBy, FeedEvent, Lab, Principal};
use crate::model::Verdict;
use crate::units::{minute_time, printable};

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

/// `feed [--since T] [--project P] [--limit N]`: what happened lately.
pub fn feed(
    lab: &Lab,
    p: &Principal,
    since: Option<&str>,
    project: Option<&str>,
    limit: usize,
    json: bool,
) -> CommandOutput {
    use crate::output::journal::{now_ms, parse_since};
    let since_ms = match parse_since(since.unwrap_or("7d"), now_ms()) {
        Ok(ms) => ms,
        Err(e) => {
            return CommandOutput::error(exit::USAGE, format!("error: --since: {e}"));
        }
    };
    let items = match lab.feed(p, since_ms.div_euclid(1000), project, limit) {
        Ok(items) => items,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&items);
    }
    if items.is_empty() {
        return CommandOutput::ok("nothing happened in that time\n".to_string());
    }
    let mut out = String::new();
    for item in &items {
        let when = minute_time(item.at);
        let what = match &item.event {
            FeedEvent::Result { state } => format!("ended: {state}"),
            FeedEvent::Comment { author, text } => {
                format!("{} commented: {}", printable(author), printable(text))
            }
            FeedEvent::Outcome { verdict, by, note } => format!(
                "{} gave it the outcome {}{}",
                printable(by),
                verdict.name(),
                note.as_deref()
                    .map(|n| format!(": {}", printable(n)))
                    .unwrap_or_default()
            ),
        };
        out.push_str(&format!(
            "{when}  experiment {}{}{}  {what}\n",
            item.experiment,
            item.name
                .as_deref()
                .map(|n| format!(" {}", printable(n)))
                .unwrap_or_default(),
            item.project
                .as_deref()
                .map(|p| format!(" [{}]", printable(p)))
                .unwrap_or_default(),
        ));
    }
    CommandOutput::ok(out)
}

/// `projects`: a line a project.
pub fn projects(lab: &Lab, p: &Principal, best: Option<&BestBy>, json: bool) -> CommandOutput {
    let projects = match lab.projects(p, best) {
        Ok(projects) => projects,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&projects);
    }
    if projects.is_empty() {
        return CommandOutput::ok("no experiments yet\n".to_string());
    }
    let width = projects
        .iter()
        .map(|s| printable(&s.project).chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "{:<width$}  {:>9}  {:>8}  {:>9}  {:>8}  {:>8}  {:<16}  {:>8}  {:>8}\n",
        "PROJECT",
        "SUBMITTED",
        "FINISHED",
        "SUCCEEDED",
        "POSITIVE",
        "NEGATIVE",
        "LAST",
        "CPU-H",
        "GPU-H"
    );
    for s in &projects {
        let last = minute_time(s.last_activity);
        out.push_str(&format!(
            "{:<width$}  {:>9}  {:>8}  {:>9}  {:>8}  {:>8}  {:<16}  {:>8.1}  {:>8.1}\n",
            printable(&s.project),
            s.submitted,
            s.finished,
            s.succeeded,
            s.positive,
            s.negative,
            last,
            s.cpu_hours,
            s.gpu_hours
        ));
    }
    if let Some(by) = best {
        for s in &projects {
            let best = match s.best {
                Some((id, value)) => format!("experiment {id} ({} {value})", printable(&by.metric)),
                None => format!("no run reported {}", printable(&by.metric)),
            };
            out.push_str(&format!("best of {}: {best}\n", printable(&s.project)));
        }
    }
    CommandOutput::ok(out)
}
