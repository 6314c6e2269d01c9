//! `idle [show]`: the running experiments as idle detection sees them;
//! `idle set`: its rule (admins).

use clap::Subcommand;
use serde::Serialize;

use super::output::{CommandOutput, exit};
use crate::lab::{IdleRuleShown, IdleStatus, Lab, Principal};
use crate::model::parse_duration;
use crate::monitor::idle::IdleRule;
use crate::units::{human_duration, minute_time};

/// `idle …` subcommands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum IdleAction {
    /// The running experiments and the rule (what `idle` alone shows).
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the rule (admin); what is not given stays as it is.
    Set {
        /// A GPU at or over this utilisation, percent, is busy.
        #[arg(long)]
        gpu_percent: Option<u32>,
        /// Without GPUs: CPU use at or over this share of the request, percent.
        #[arg(long)]
        cpu_percent: Option<f64>,
        /// How long without work before a run is idle, e.g. 1h.
        #[arg(long, value_parser = parse_duration)]
        after: Option<u64>,
        /// What then: notify (the owner and admins) or cancel.
        #[arg(long, value_parser = ["notify", "cancel"])]
        action: Option<String>,
        /// How long after the flag an idle run is cancelled (with --action cancel).
        #[arg(long, value_parser = parse_duration)]
        cancel_after: Option<u64>,
        /// Turn idle detection off.
        #[arg(long, conflicts_with_all = ["gpu_percent", "cpu_percent", "after", "action", "cancel_after"])]
        off: bool,
        /// Print JSON: the rule now (`null`: off).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct IdleJson {
    /// The rule in force (`null`: detection is off).
    rule: Option<IdleRuleShown>,
    experiments: Vec<IdleStatus>,
}

/// `idle [show|set …]`.
pub fn idle(lab: &Lab, p: &Principal, action: Option<IdleAction>, json: bool) -> CommandOutput {
    match action {
        None => show(lab, p, json),
        Some(IdleAction::Show { json }) => show(lab, p, json),
        Some(IdleAction::Set {
            gpu_percent,
            cpu_percent,
            after,
            action,
            cancel_after,
            off,
            json,
        }) => {
            let rule = (!off).then(|| {
                let now = lab.idle_rule();
                let base = now.map_or(IdleRule::default(), |r| IdleRule {
                    gpu_percent: r.gpu_percent,
                    cpu_percent: r.cpu_percent,
                    after_secs: r.after_secs,
                    cancel_after_secs: r.cancel_after_secs,
                });
                let grace = cancel_after
                    .map(|g| g as i64)
                    .or(base.cancel_after_secs)
                    .unwrap_or(crate::monitor::idle::DEFAULT_CANCEL_AFTER_SECS);
                Ok(IdleRule {
                    gpu_percent: gpu_percent.unwrap_or(base.gpu_percent),
                    cpu_percent: cpu_percent.unwrap_or(base.cpu_percent),
                    after_secs: after.map_or(base.after_secs, |a| a as i64),
                    cancel_after_secs: match action.as_deref() {
                        Some("cancel") => Some(grace),
                        Some(_) => None,
                        None if cancel_after.is_some() && base.cancel_after_secs.is_none() => {
                            return Err(());
                        }
                        None => base.cancel_after_secs.map(|_| grace),
                    },
                })
            });
            let rule = match rule.transpose() {
                Ok(rule) => rule,
                Err(()) => {
                    return CommandOutput::error(
                        exit::USAGE,
                        "error: --cancel-after needs --action cancel (idle runs are only told of now)",
                    );
                }
            };
            match lab.set_idle_rule(p, rule) {
                Ok(()) if json => CommandOutput::json(&lab.idle_rule()),
                Ok(()) => show(lab, p, false),
                Err(e) => e.into(),
            }
        }
    }
}

/// What `idle` and `idle show` print.
fn show(lab: &Lab, p: &Principal, json: bool) -> CommandOutput {
    let experiments = match lab.idle_report(p) {
        Ok(report) => report,
        Err(e) => return e.into(),
    };
    let rule = lab.idle_rule();
    if json {
        return CommandOutput::json(&IdleJson { rule, experiments });
    }
    let Some(rule) = rule else {
        return CommandOutput::ok("idle detection is off (`idle set` turns it on)\n");
    };
    let then = rule.cancel_after_secs.map_or("told".to_string(), |g| {
        format!("told, and cancelled {} later", human_duration(g as u64))
    });
    let mut text = format!(
        "idle: no GPU at {} % or more (without GPUs: CPU under {} % of the request) for {}; then {then}\n",
        rule.gpu_percent,
        rule.cpu_percent,
        human_duration(rule.after_secs as u64)
    );
    text.push_str(&format!(
        "{:<6} {:<12} {:>4} {:>12} {:<17} {}\n",
        "ID", "OWNER", "GPUS", "WITHOUT WORK", "FLAGGED", "CANCEL AT"
    ));
    for e in &experiments {
        text.push_str(&format!(
            "{:<6} {:<12} {:>4} {:>12} {:<17} {}\n",
            e.id,
            crate::units::printable(&e.owner),
            e.gpus,
            human_duration(e.idle_secs.max(0) as u64),
            e.flagged_at.map_or("-".into(), minute_time),
            e.cancel_at.map_or("-".into(), minute_time),
        ));
    }
    CommandOutput::ok(text)
}
