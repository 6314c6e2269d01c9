//! Running a parsed command for a caller against the service.

use super::accounts::{add_keys, keys, user_action, users, whoami};
use super::commands::{KeyAction, LabCommand};
use super::output::{CommandOutput, exit};
use super::stdin::StdinSource;
use crate::lab::{Lab, Principal};

/// Runs one command for `caller` through the service.
pub async fn run_command(
    lab: &Lab,
    caller: &Principal,
    command: LabCommand,
    stdin: &mut StdinSource,
    max_stdin_bytes: usize,
) -> CommandOutput {
    // Re-read the caller so a role change or removal takes effect at once.
    let caller = match lab.whoami(caller) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    match command {
        LabCommand::Version { json: true } => {
            CommandOutput::json(&serde_json::json!({"version": env!("CARGO_PKG_VERSION")}))
        }
        LabCommand::Version { json: false } => {
            CommandOutput::ok(format!("labbench {}\n", env!("CARGO_PKG_VERSION")))
        }
        LabCommand::Whoami { json } => whoami(&caller, json),
        LabCommand::Users { json } => users(lab, &caller, json),
        LabCommand::User { action, json } => user_action(lab, &caller, action, json),
        LabCommand::Keys { name, json } => keys(lab, &caller, name.as_deref(), json),
        LabCommand::Top { json: false } => super::usage::top(lab, &caller),
        LabCommand::Top { json: true } => super::usage::usage(lab, &caller, None, None, true),
        LabCommand::Submit(args) => super::queue::submit(lab, &caller, *args),
        LabCommand::Ls { .. } => {
            let mut sink = super::output::CollectSink::default();
            let status = command.stream(lab, &caller, &mut sink).await;
            let mut out = sink.0;
            out.status = status.unwrap_or(exit::OK);
            out
        }
        LabCommand::Show { id, json } => super::queue::show(lab, &caller, id, json),
        LabCommand::Comments { id, json } => super::notebook::comments(lab, &caller, id, json),
        LabCommand::History {
            filter,
            metrics,
            limit,
            before,
            sort,
            desc,
            offset,
            json,
            csv,
        } => {
            use super::history::{HistoryFormat, Paging, history};
            let format = match (json, csv) {
                (true, _) => HistoryFormat::Json,
                (_, true) => HistoryFormat::Csv,
                _ => HistoryFormat::Text,
            };
            let paging = match sort {
                None => Paging::Before(before),
                Some(column) => match column.parse() {
                    Ok(column) => Paging::Sorted(
                        crate::lab::HistorySort {
                            column,
                            descending: desc,
                        },
                        offset,
                    ),
                    Err(why) => {
                        return CommandOutput::error(exit::USAGE, format!("error: {why}\n"));
                    }
                },
            };
            let lab = lab.clone();
            blocking(move || history(&lab, &caller, &filter, &metrics, paging, limit, format)).await
        }
        LabCommand::Deps {
            package,
            source,
            project,
            unused_since,
            json,
        } => {
            let lab = lab.clone();
            blocking(move || {
                super::deps::deps(
                    &lab,
                    &caller,
                    package.as_deref(),
                    source.as_deref(),
                    project.as_deref(),
                    unused_since.as_deref(),
                    json,
                )
            })
            .await
        }
        LabCommand::Report {
            target,
            project,
            limit,
            html,
            json,
        } => {
            use super::report::{ReportFormat, report};
            let format = match (html, json) {
                (true, _) => Some(ReportFormat::Html),
                (_, true) => Some(ReportFormat::Json),
                _ => None,
            };
            let lab = lab.clone();
            blocking(move || report(&lab, &caller, &target, project.as_deref(), limit, format))
                .await
        }
        LabCommand::Resources { id, json, csv } => {
            super::resources::resources(lab, &caller, id, json, csv)
        }
        LabCommand::Compare { ids, metric, json } => {
            let lab = lab.clone();
            blocking(move || super::compare::compare(&lab, &caller, &ids, metric.as_deref(), json))
                .await
        }
        LabCommand::Provenance { id, json, diff } => {
            super::provenance::provenance(lab, &caller, id, json, diff)
        }
        LabCommand::Projects { best, lowest, json } => {
            let best = best.map(|metric| crate::lab::BestBy { metric, lowest });
            super::notebook::projects(lab, &caller, best.as_ref(), json)
        }
        LabCommand::Feed {
            since,
            project,
            limit,
            json,
        } => super::notebook::feed(
            lab,
            &caller,
            since.as_deref(),
            project.as_deref(),
            limit,
            json,
        ),
        LabCommand::Outcome {
            id,
            verdict,
            note,
            json,
        } => super::notebook::outcome(lab, &caller, id, verdict.verdict(), note.as_deref(), json),
        LabCommand::Metrics {
            id,
            name,
            json,
            csv,
        } => super::metrics::metrics(lab, &caller, id, name.as_deref(), json, csv),
        LabCommand::Rerun {
            id,
            name,
            cpus,
            mem,
            gpus,
            time,
            priority,
            json,
        } => {
            let changes = crate::lab::SubmitRequest {
                name,
                cpus,
                memory_bytes: mem,
                gpus,
                time_limit_secs: time,
                priority: priority.unwrap_or(0),
                ..Default::default()
            };
            match lab.rerun(&caller, id, changes) {
                Ok(new) if json => CommandOutput::json(&serde_json::json!({ "id": new })),
                Ok(new) => {
                    CommandOutput::ok(format!("submitted experiment {new} (a rerun of {id})\n"))
                }
                Err(e) => e.into(),
            }
        }
        LabCommand::Cancel { ids, json } => super::queue::cancel(lab, &caller, &ids, json),
        LabCommand::Priority { id, priority, json } => {
            super::queue::priority(lab, &caller, id, priority, json)
        }
        LabCommand::Quota(action) => super::quota::quota(lab, &caller, action),
        LabCommand::Hostlimit(action) => super::hostlimit::hostlimit(lab, &caller, action),
        LabCommand::Project { action, json } => super::queue::project(lab, &caller, action, json),
        LabCommand::Wait { ids, json } => super::queue::wait(lab, &caller, &ids, json).await,
        LabCommand::Logs(_) => {
            let mut sink = super::output::CollectSink::default();
            let status = command.stream(lab, &caller, &mut sink).await;
            let mut out = sink.0;
            out.status = status.unwrap_or(exit::OK);
            out
        }
        LabCommand::Usage { user, window, json } => {
            super::usage::usage(lab, &caller, user.as_deref(), window, json)
        }
        LabCommand::Host { json } => super::usage::host(lab, &caller, json),
        LabCommand::Idle { action, json } => super::idle::idle(lab, &caller, action, json),
        LabCommand::Costs {
            by,
            from,
            to,
            json,
            csv,
        } => {
            use super::costs::{CostFormat, costs};
            let format = match (json, csv) {
                (true, _) => CostFormat::Json,
                (_, true) => CostFormat::Csv,
                _ => CostFormat::Text,
            };
            let query = crate::lab::CostQuery {
                by: by.into(),
                from,
                to,
            };
            // It reads the experiments of the window and before.
            let lab = lab.clone();
            blocking(move || costs(&lab, &caller, &query, format)).await
        }
        LabCommand::Budget { json, command } => {
            let lab = lab.clone();
            blocking(move || super::budgets::budget(&lab, &caller, command, json)).await
        }
        LabCommand::Motd { json, action } => super::notices::motd(lab, &caller, action, json),
        LabCommand::Notify { all, words, json } => {
            super::notices::notify(lab, &caller, all, &words, json)
        }
        LabCommand::Audit {
            since,
            user,
            action,
            limit,
            json,
        } => {
            // A filter that matches little reads the whole trail.
            let lab = lab.clone();
            blocking(move || {
                super::audit::audit(&lab, &caller, since.as_deref(), user, action, limit, json)
            })
            .await
        }
        LabCommand::Key {
            action: KeyAction::Rm { name, fingerprint },
            json,
        } => match lab.remove_key(&caller, &name, &fingerprint) {
            Ok(()) if json => CommandOutput::json(&serde_json::json!({
                "user": name, "fingerprint": fingerprint, "removed": true
            })),
            Ok(()) => CommandOutput::ok(format!("removed key {fingerprint} from {name}\n")),
            Err(e) => e.into(),
        },
        LabCommand::Key {
            action: KeyAction::Challenge,
            json,
        } => match lab.key_challenge(&caller) {
            Ok(challenge) if json => CommandOutput::json(&serde_json::json!({
                "challenge": challenge,
                "valid_secs": crate::lab::CHALLENGE_VALID_SECS,
                "namespace": crate::model::PROOF_NAMESPACE,
            })),
            Ok(challenge) => {
                let mut out = CommandOutput::ok(format!("{challenge}\n"));
                out.stderr = format!(
                    "sign it with the key to add, within {} minutes, and send both:\n  \
                     printf '%s' \"$CHALLENGE\" | ssh-keygen -Y sign -f KEY -n {} > KEY.sig\n  \
                     cat KEY.pub KEY.sig | ssh lab@host key add {}\n",
                    crate::lab::CHALLENGE_VALID_SECS / 60,
                    crate::model::PROOF_NAMESPACE,
                    caller.user
                )
                .into_bytes();
                out
            }
            Err(e) => e.into(),
        },
        LabCommand::Comment {
            id,
            edit,
            rm,
            json,
            text,
        } => {
            let text = if text.is_empty() && rm.is_none() {
                match stdin.read_all(max_stdin_bytes).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => return CommandOutput::error(exit::FAILURE, format!("error: {e}")),
                }
            } else {
                text.join(" ")
            };
            super::notebook::comment(lab, &caller, id, edit, rm, &text, json)
        }
        LabCommand::Key {
            action: KeyAction::Add { name, key },
            json,
        } => {
            let text = if key.is_empty() {
                match stdin.read_all(max_stdin_bytes).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => return CommandOutput::error(exit::FAILURE, format!("error: {e}")),
                }
            } else {
                key.join(" ")
            };
            add_keys(lab, &caller, &name, &text, json)
        }
    }
}

/// Runs a command that may read much of the history (a whole scan when
/// no index narrows it) on a blocking thread, so that it holds up no
/// other session, nor the runner.
async fn blocking(command: impl FnOnce() -> CommandOutput + Send + 'static) -> CommandOutput {
    tokio::task::spawn_blocking(command)
        .await
        .unwrap_or_else(|e| CommandOutput::error(exit::FAILURE, format!("error: {e}\n")))
}
