//! Queue commands: submit, ls, show, cancel, priority, wait.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio::sync::Semaphore;

use super::output::{CommandOutput, StreamSink, TableLayout, exit};
use crate::describe::experiment_details;
use crate::lab::{
    DEFAULT_LIST_LIMIT, Lab, ListFilter, ListFrom, MAX_LIST_LIMIT, Principal, SubmitRequest,
    parse_env_pair, parse_pair,
};
use crate::model::{CommandLine, EXPERIMENT_COLUMNS, State, parse_duration, parse_size};
use crate::units::printable;

/// `submit` flags.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct SubmitArgs {
    /// Short name.
    #[arg(long)]
    pub name: Option<String>,
    /// Project.
    #[arg(long)]
    pub project: Option<String>,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// CPU cores to reserve (default from config).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Memory to reserve and enforce, e.g. 512M or 8G.
    #[arg(long, value_parser = parse_size)]
    pub mem: Option<u64>,
    /// GPUs.
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Wall-time limit, e.g. 90s, 30m, 2h.
    #[arg(long, value_parser = parse_duration)]
    pub time: Option<u64>,
    /// Priority (admins may go above 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Working directory (default: your Unix user's home).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Environment variable K=V (repeatable; not CUDA_VISIBLE_DEVICES,
    /// NVIDIA_VISIBLE_DEVICES or LABBENCH_*, which labbench sets).
    #[arg(long = "env", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Declared input file or directory (repeatable).
    #[arg(long = "input")]
    pub inputs: Vec<PathBuf>,
    /// Declared output file or directory (repeatable).
    #[arg(long = "output")]
    pub outputs: Vec<PathBuf>,
    /// Parameter K=V, recorded for comparison (repeatable).
    #[arg(long = "param", value_parser = parse_pair)]
    pub params: Vec<(String, String)>,
    /// Start only after experiment ID succeeded (repeatable).
    #[arg(long = "after")]
    pub after: Vec<u64>,
    /// Run this shell command line instead of `-- CMD ARGS…`.
    #[arg(long)]
    pub sh: Option<String>,
    /// Only you and admins may read its output and see what it runs.
    #[arg(long)]
    pub private: bool,
    /// Most output it may write (stdout, stderr and metrics together), e.g.
    /// 1G; more than queue.max_output only as admin.
    #[arg(long, value_parser = parse_size)]
    pub max_output: Option<u64>,
    /// Print JSON: {"id": N}.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments: after submit's own flags (`--`
    /// before it is allowed, and needed for a command that starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = false,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// `project …` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ProjectAction {
    /// Make a project private: only each experiment's owner and admins read
    /// its output and see what it runs (admin).
    Private {
        /// Project name.
        name: String,
    },
    /// Make a project public again (admin).
    Public {
        /// Project name.
        name: String,
    },
}

/// `submit`.
pub fn submit(lab: &Lab, p: &Principal, args: SubmitArgs) -> CommandOutput {
    let command = match (args.sh, args.command.is_empty()) {
        (Some(_), false) => {
            return CommandOutput::error(
                exit::USAGE,
                "error: give either --sh 'CMD' or -- CMD ARGS…, not both",
            );
        }
        (Some(line), true) => Some(CommandLine::Shell(line)),
        (None, false) => Some(CommandLine::Argv(args.command)),
        (None, true) => None,
    };
    let request = SubmitRequest {
        name: args.name,
        project: args.project,
        tags: args.tags,
        command,
        workdir: args.workdir,
        env: args.env,
        inputs: args.inputs,
        outputs: args.outputs,
        params: args.params,
        after: args.after,
        cpus: args.cpus,
        memory_bytes: args.mem,
        gpus: args.gpus,
        time_limit_secs: args.time,
        priority: args.priority.unwrap_or(0),
        private: args.private,
        max_output_bytes: args.max_output,
    };
    let told_before = lab.notification_seq();
    let mut out = match lab.submit(p, request) {
        Ok(id) if args.json => CommandOutput::json(&serde_json::json!({ "id": id })),
        Ok(id) => CommandOutput::ok(format!("submitted experiment {id}\n")),
        Err(e) => return e.into(),
    };
    // What this submission told its owner (a budget nearly spent) shows
    // here too, for those who never open the interface.
    for n in lab.notifications_after(p, told_before) {
        if n.to.as_deref() == Some(p.user.as_str()) && n.by == "labbench" {
            out.stderr
                .extend(format!("warning: {}\n", printable(&n.text)).into_bytes());
        }
    }
    out
}

/// Experiments read and written at once by a long `ls`: few, so that many
/// long listings at once cost the daemon little memory (bench (d)).
const LS_PAGE: usize = 16;

/// How many listings longer than a page one user has streamed at once;
/// more wait their turn. Each holds up to its client's window of output in
/// the daemon (2 MiB for OpenSSH) while the client reads: many at once grew
/// the daemon by that much each (bench (d): 16 at once, 1.27x its idle
/// figure; in turns of two, 1.12x, and sooner done). Per user, so that a
/// member who stops reading holds up only their own.
const LISTING_TURNS: usize = 2;

/// `user`'s turns at long listings.
fn listing_turns(user: &str) -> Arc<Semaphore> {
    static TURNS: Mutex<BTreeMap<String, Arc<Semaphore>>> = Mutex::new(BTreeMap::new());
    let mut turns = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    // Kept only while someone lists.
    turns.retain(|_, s| Arc::strong_count(s) > 1);
    turns
        .entry(user.to_string())
        .or_insert_with(|| Arc::new(Semaphore::new(LISTING_TURNS)))
        .clone()
}

/// `ls`: written page by page to `sink` (a long listing is never held
/// whole); returns the exit status. Text output says on stderr when more
/// experiments match than were shown.
pub async fn ls<S: StreamSink>(
    lab: &Lab,
    p: &Principal,
    filter: ListFilter,
    json: bool,
    sink: &mut S,
) -> u32 {
    let limit = if filter.limit == 0 {
        DEFAULT_LIST_LIMIT
    } else {
        filter.limit
    };
    let _turn = if limit > LS_PAGE {
        listing_turns(&p.user).acquire_owned().await.ok()
    } else {
        None
    };
    let now = crate::lab::now();
    let mut from = ListFrom::Start;
    let mut shown = 0;
    let mut layout: Option<TableLayout> = None;
    let mut total = None;
    let mut more = false;
    if json && sink.out(b"[".to_vec()).await.is_err() {
        return exit::OK;
    }
    while shown < limit {
        let page = match lab.list_page(p, &filter, from, (limit - shown).min(LS_PAGE)) {
            Ok(page) => page,
            Err(e) => {
                let out = CommandOutput::from(e);
                let _ = sink.err(out.stderr).await;
                return out.status;
            }
        };
        total = page.total;
        let text = if json {
            let mut text = String::new();
            for view in &page.views {
                text.push_str(if shown == 0 && text.is_empty() {
                    "\n"
                } else {
                    ",\n"
                });
                match serde_json::to_string_pretty(view) {
                    Ok(item) => text.push_str(&item),
                    Err(e) => {
                        let _ = sink
                            .err(format!("error: cannot encode JSON: {e}\n").into_bytes())
                            .await;
                        return exit::FAILURE;
                    }
                }
            }
            text
        } else {
            let rows: Vec<Vec<String>> = page.views.iter().map(|v| ls_row(v, now)).collect();
            match &layout {
                Some(layout) => layout.rows(&rows),
                None => {
                    let (new, header) = TableLayout::new(&EXPERIMENT_COLUMNS, &rows);
                    let text = header + &new.rows(&rows);
                    layout = Some(new);
                    text
                }
            }
        };
        shown += page.views.len();
        if !text.is_empty() && sink.out(text.into_bytes()).await.is_err() {
            return exit::OK;
        }
        match page.next {
            Some(next) => from = next,
            None => break,
        }
        more = shown >= limit;
    }
    if json {
        let end: &[u8] = if shown == 0 { b"]\n" } else { b"\n]\n" };
        let _ = sink.out(end.to_vec()).await;
        return exit::OK;
    }
    if layout.is_none() {
        let (_, header) = TableLayout::new(&EXPERIMENT_COLUMNS, &[]);
        let _ = sink.out(header.into_bytes()).await;
    }
    let note = match total {
        Some(total) if total > shown => Some(format!(
            "{shown} of {total} shown (--limit N shows up to {MAX_LIST_LIMIT})"
        )),
        None if more => Some(format!(
            "{shown} shown; more match (--limit N shows up to {MAX_LIST_LIMIT})"
        )),
        _ => None,
    };
    if let Some(note) = note {
        let _ = sink.err(format!("{note}\n").into_bytes()).await;
    }
    exit::OK
}

/// One experiment's row in `ls`.
fn ls_row(v: &crate::lab::ExperimentView, now: i64) -> Vec<String> {
    let e = &v.experiment;
    vec![
        e.id.to_string(),
        printable(e.spec.name.as_deref().unwrap_or("-")),
        e.owner.clone(),
        e.state.name().to_string(),
        crate::units::human_duration(e.age_secs(now)),
        e.spec.resources.summary(),
        printable(&v.note()),
    ]
}

/// `show`.
pub fn show(lab: &Lab, p: &Principal, id: u64, json: bool) -> CommandOutput {
    let e = match lab.experiment(p, id) {
        Ok(e) => e,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&e);
    }
    let private_project = e
        .spec
        .project
        .as_deref()
        .is_some_and(|project| lab.project_is_private(project).unwrap_or(false));
    let mut text = experiment_details(&e, private_project);
    if let Ok(d) = lab.discussion(p, id) {
        text.push_str(&crate::describe::discussion_lines(
            &d,
            Some(crate::describe::COMMENTS_SHOWN),
        ));
    }
    CommandOutput::ok(text)
}

/// `cancel ID…`: every id is tried; the worst status wins.
pub fn cancel(lab: &Lab, p: &Principal, ids: &[u64], json: bool) -> CommandOutput {
    let mut out = CommandOutput::default();
    let mut items = Vec::new();
    for id in ids {
        match lab.cancel(p, *id) {
            Ok(state) => {
                let stopping = !matches!(state, State::Queued | State::Finished { .. });
                let (verb, word) = if stopping {
                    ("stopping", "stopping")
                } else {
                    ("cancelled", state.name())
                };
                out.stdout
                    .extend(format!("{verb} experiment {id}\n").bytes());
                items.push(serde_json::json!({"id": id, "state": word}));
            }
            Err(e) => {
                let message = e.to_string();
                let failed = CommandOutput::from(e);
                out.stderr.extend(failed.stderr);
                out.status = out.status.max(failed.status);
                items.push(serde_json::json!({
                    "id": id, "error": message, "status": failed.status
                }));
            }
        }
    }
    if json {
        out.stdout = CommandOutput::json(&items).stdout;
    }
    out
}

/// `project private|public NAME` (admin).
pub fn project(lab: &Lab, p: &Principal, action: ProjectAction, json: bool) -> CommandOutput {
    let (name, private) = match action {
        ProjectAction::Private { name } => (name, true),
        ProjectAction::Public { name } => (name, false),
    };
    match lab.set_project_private(p, &name, private) {
        Ok(()) if json => {
            CommandOutput::json(&serde_json::json!({"project": name, "private": private}))
        }
        Ok(()) if private => CommandOutput::ok(format!(
            "project {name} is private: its experiments' output and commands are for their owners and admins\n"
        )),
        Ok(()) => CommandOutput::ok(format!("project {name} is public\n")),
        Err(e) => e.into(),
    }
}

/// `priority ID N` (admin).
pub fn priority(lab: &Lab, p: &Principal, id: u64, value: i32, json: bool) -> CommandOutput {
    match lab.set_priority(p, id, value) {
        Ok(()) if json => CommandOutput::json(&serde_json::json!({"id": id, "priority": value})),
        Ok(()) => CommandOutput::ok(format!("experiment {id} now has priority {value}\n")),
        Err(e) => e.into(),
    }
}

/// `wait ID…`: until all end; exits with the status of the last one that
/// did not succeed (see [`State::exit_status`]), 0 when all succeeded.
pub async fn wait(lab: &Lab, p: &Principal, ids: &[u64], json: bool) -> CommandOutput {
    let mut changes = lab.queue_changes();
    loop {
        let mut done = Vec::new();
        for id in ids {
            match lab.experiment(p, *id) {
                Ok(e) if e.state.is_finished() => done.push(e),
                Ok(_) => break,
                Err(e) => return e.into(),
            }
        }
        if done.len() == ids.len() {
            let mut out = String::new();
            let mut status = exit::OK;
            for e in &done {
                out.push_str(&format!("experiment {} {}\n", e.id, e.state.name()));
                match e.state.exit_status() {
                    Some(0) | None => {}
                    Some(code) => status = code,
                }
            }
            let mut output = if json {
                let items: Vec<_> = done
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "id": e.id, "state": e.state.name(), "exit_status": e.state.exit_status()
                        })
                    })
                    .collect();
                CommandOutput::json(&items)
            } else {
                CommandOutput::ok(out)
            };
            output.status = status;
            return output;
        }
        // Wake on a queue change, or poll each second.
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member whose long listings stall (a client that stopped reading)
    /// holds up only their own next one.
    #[test]
    fn long_listings_take_turns_per_user() {
        let mine = [listing_turns("mallory"), listing_turns("mallory")];
        let held: Vec<_> = mine
            .iter()
            .map(|s| s.clone().try_acquire_owned().expect("a turn"))
            .collect();
        assert!(listing_turns("mallory").try_acquire_owned().is_err());
        assert!(listing_turns("alice").try_acquire_owned().is_ok());
        drop(held);
        assert!(listing_turns("mallory").try_acquire_owned().is_ok());
    }
}
