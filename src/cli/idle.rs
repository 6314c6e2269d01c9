//! `idle`: the running experiments as idle detection sees them.

use serde::Serialize;

use super::output::CommandOutput;
use crate::lab::{IdleRuleShown, IdleStatus, Lab, Principal};
use crate::units::{human_duration, minute_time};

#[derive(Serialize)]
struct IdleJson {
    /// The rule in force (`null`: detection is off).
    rule: Option<IdleRuleShown>,
    experiments: Vec<IdleStatus>,
}

/// `idle [--json]`.
pub fn idle(lab: &Lab, p: &Principal, json: bool) -> CommandOutput {
    let experiments = match lab.idle_report(p) {
        Ok(report) => report,
        Err(e) => return e.into(),
    };
    let rule = lab.idle_rule();
    if json {
        return CommandOutput::json(&IdleJson { rule, experiments });
    }
    let Some(rule) = rule else {
        return CommandOutput::ok("idle detection is off ([idle] enabled = false)\n");
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
