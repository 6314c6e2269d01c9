//! `quota show|set|rm`: limits per user, per project (`--project P`) and a
//! default for everyone (`--default`); `set --preview` says what a change
//! would do without saving it.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{CommandOutput, exit};
use crate::lab::{Lab, Principal, QuotaChangePreview};
use crate::model::{Quota, QuotaScope, parse_duration, parse_size};
use crate::units::{human_duration, short_bytes};

/// Whom a quota command is about: a user, `--project P` or `--default`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ScopeArgs {
    /// Lab user.
    pub user: Option<String>,
    /// A project's quota (all its experiments together).
    #[arg(long, conflicts_with = "user")]
    pub project: Option<String>,
    /// The default, for every user whose own quota sets no such limit.
    #[arg(long, conflicts_with_all = ["user", "project"])]
    pub default: bool,
}

impl ScopeArgs {
    /// The scope named, if one is.
    fn scope(&self) -> Option<QuotaScope> {
        match (&self.user, &self.project, self.default) {
            (_, _, true) => Some(QuotaScope::Default),
            (_, Some(project), _) => Some(QuotaScope::Project(project.clone())),
            (Some(user), _, _) => Some(QuotaScope::User(user.clone())),
            _ => None,
        }
    }
}

/// `quota …` subcommands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum QuotaAction {
    /// Set the limits of a user, a project or the default (admin); omitted
    /// limits are not limited here (a user's then come from the default).
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Experiments running at once.
        #[arg(long)]
        max_running: Option<u32>,
        /// CPU cores in use at once.
        #[arg(long)]
        max_cpus: Option<f64>,
        /// Memory in use at once, e.g. 64G.
        #[arg(long, value_parser = parse_size)]
        max_mem: Option<u64>,
        /// GPUs in use at once.
        #[arg(long)]
        max_gpus: Option<u32>,
        /// Longest wall-time limit, e.g. 48h.
        #[arg(long, value_parser = parse_duration)]
        max_time: Option<u64>,
        /// Experiments queued at once (default: queue.max_queued_per_user).
        #[arg(long)]
        max_queued: Option<u32>,
        /// GPU-hours reserved in a calendar month.
        #[arg(long)]
        max_gpu_hours: Option<f64>,
        /// Cost reserved in a calendar month, in the currency of `[costs]`.
        #[arg(long)]
        max_cost: Option<f64>,
        /// Say what it would do (who is over, what would start or be held)
        /// and save nothing.
        #[arg(long)]
        preview: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show limits: yours by default; a user's (admin), a project's or
    /// the default; or every quota set (`--all`, admin).
    Show {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Every quota set.
        #[arg(long, conflicts_with_all = ["user", "project", "default"])]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the quota of a user (who then has the default's), a project
    /// or the default (admin).
    Rm {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

const NO_SCOPE: &str = "error: name a user, --project P or --default";

#[derive(Serialize)]
struct ScopedJson<'a> {
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(flatten)]
    quota: Quota,
}

fn scoped_json(scope: &QuotaScope, quota: Quota) -> ScopedJson<'_> {
    ScopedJson {
        scope: scope.to_string(),
        user: match scope {
            QuotaScope::User(u) => Some(u),
            _ => None,
        },
        quota,
    }
}

/// `quota set|show|rm`.
pub fn quota(lab: &Lab, p: &Principal, action: QuotaAction) -> CommandOutput {
    match action {
        QuotaAction::Set {
            scope,
            max_running,
            max_cpus,
            max_mem,
            max_gpus,
            max_time,
            max_queued,
            max_gpu_hours,
            max_cost,
            preview,
            json,
        } => {
            let Some(scope) = scope.scope() else {
                return CommandOutput::error(exit::USAGE, NO_SCOPE);
            };
            let quota = Quota {
                max_running,
                max_cpus,
                max_memory_bytes: max_mem,
                max_gpus,
                max_time_secs: max_time,
                max_queued,
                max_gpu_hours_month: max_gpu_hours,
                max_cost_month: max_cost,
            };
            if preview {
                return match lab.quota_preview(p, &scope, quota) {
                    Ok(preview) if json => CommandOutput::json(&preview),
                    Ok(preview) => CommandOutput::ok(preview_lines(&preview)),
                    Err(e) => e.into(),
                };
            }
            match lab.set_quota(p, &scope, quota) {
                Ok(()) if json => CommandOutput::json(&scoped_json(&scope, quota)),
                Ok(()) => CommandOutput::ok(format!("quota of {scope} set\n")),
                Err(e) => e.into(),
            }
        }
        QuotaAction::Show {
            scope,
            all: true,
            json,
        } => {
            let _ = scope;
            match lab.all_quotas(p) {
                Ok(all) if json => CommandOutput::json(
                    &all.iter()
                        .map(|(s, q)| scoped_json(s, *q))
                        .collect::<Vec<_>>(),
                ),
                Ok(all) => CommandOutput::ok(
                    all.iter()
                        .map(|(s, q)| format!("{s}: {}\n", limits_line(q)))
                        .collect::<String>(),
                ),
                Err(e) => e.into(),
            }
        }
        QuotaAction::Show { scope, json, .. } => {
            let scope = scope
                .scope()
                .unwrap_or_else(|| QuotaScope::User(p.user.clone()));
            match lab.quota_of(p, &scope) {
                Ok(shown) if json => CommandOutput::json(&serde_json::json!({
                    "scope": shown.scope,
                    "user": match &scope { QuotaScope::User(u) => Some(u), _ => None },
                    "set": shown.set,
                    "effective": shown.effective,
                })),
                Ok(shown) => {
                    let mut text = format!("{}: {}\n", shown.scope, limits_line(&shown.effective));
                    if shown.set != shown.effective {
                        text.push_str(&format!(
                            "  (set for {}: {}; the rest from the default)\n",
                            shown.scope,
                            limits_line(&shown.set)
                        ));
                    }
                    CommandOutput::ok(text)
                }
                Err(e) => e.into(),
            }
        }
        QuotaAction::Rm { scope, json } => {
            let Some(scope) = scope.scope() else {
                return CommandOutput::error(exit::USAGE, NO_SCOPE);
            };
            match lab.remove_quota(p, &scope) {
                Ok(()) if json => CommandOutput::json(&serde_json::json!({
                    "scope": scope.to_string(),
                    "removed": true,
                })),
                Ok(()) => CommandOutput::ok(format!("quota of {scope} removed\n")),
                Err(e) => e.into(),
            }
        }
    }
}

/// A quota's limits on one line (`running 4, CPUs unlimited, …`).
pub fn limits_line(q: &Quota) -> String {
    let show = |v: Option<String>| v.unwrap_or_else(|| "unlimited".into());
    format!(
        "running {}, CPUs {}, memory {}, GPUs {}, wall time {}, queued {}, GPU-hours/month {}, cost/month {}",
        show(q.max_running.map(|v| v.to_string())),
        show(q.max_cpus.map(|v| v.to_string())),
        show(q.max_memory_bytes.map(|v| short_bytes(v as f64))),
        show(q.max_gpus.map(|v| v.to_string())),
        show(q.max_time_secs.map(human_duration)),
        q.max_queued
            .map(|v| v.to_string())
            .unwrap_or_else(|| "the queue's default".into()),
        show(q.max_gpu_hours_month.map(|v| v.to_string())),
        show(q.max_cost_month.map(|v| v.to_string())),
    )
}

/// What `quota set --preview` prints.
pub fn preview_lines(p: &QuotaChangePreview) -> String {
    let ids = |ids: &[u64]| {
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
        }
    };
    let mut text = format!(
        "preview (nothing saved): quota of {}: {}\n",
        p.scope,
        limits_line(&p.quota)
    );
    if p.effect.over_now.is_empty() {
        text.push_str("over it now: nobody\n");
    }
    for over in &p.effect.over_now {
        text.push_str(&format!(
            "over it now: {}: {} (what runs keeps running; nothing more starts)\n",
            over.who, over.exceeded
        ));
    }
    text.push_str(&format!(
        "would start now: {}\nwould be held back: {}\n",
        ids(&p.effect.would_start),
        ids(&p.effect.would_hold)
    ));
    if !p.users.is_empty() {
        text.push_str(&format!(
            "{:<16} {:>7} {:>14} {:>14} {:>10} {:>15} {:>15}\n",
            "USER",
            "RUNNING",
            "CPUS NOW",
            "CPUS PEAK/P95",
            "MEM NOW",
            "MEM PEAK/P95",
            "GPUS PEAK/P95"
        ));
    }
    for u in &p.users {
        text.push_str(&format!(
            "{:<16} {:>7} {:>14} {:>14} {:>10} {:>15} {:>15}\n",
            u.user,
            u.running,
            format!("{}/{}", u.cpus, limit(u.limit.max_cpus)),
            format!("{:.1}/{:.1}", u.peak_7d.cpu_cores, u.p95_7d.cpu_cores),
            short_bytes(u.memory_bytes as f64),
            format!(
                "{}/{}",
                short_bytes(u.peak_7d.memory_bytes),
                short_bytes(u.p95_7d.memory_bytes)
            ),
            format!("{:.0}/{:.0}", u.peak_7d.gpus, u.p95_7d.gpus),
        ));
    }
    text
}

fn limit<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}
