//! `hostlimit set|rm|show`: caps on what a Unix user runs on the host
//! outside the queue (the login-node guard; admins).

use clap::Subcommand;

use super::output::{CommandOutput, exit};
use crate::lab::{Lab, Principal};
use crate::model::{HostLimit, parse_size};
use crate::units::short_bytes;

/// `hostlimit …` subcommands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum HostLimitAction {
    /// Cap a Unix user's processes outside the queue (or every lab user's
    /// account by default).
    Set {
        /// Unix user.
        unix_user: Option<String>,
        /// The default, for the Unix account of every lab user.
        #[arg(long, conflicts_with = "unix_user")]
        default: bool,
        /// CPU cores.
        #[arg(long)]
        cpus: Option<f64>,
        /// Memory, e.g. 16G.
        #[arg(long, value_parser = parse_size)]
        mem: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a cap.
    Rm {
        /// Unix user.
        unix_user: Option<String>,
        /// The default.
        #[arg(long, conflicts_with = "unix_user")]
        default: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every cap set.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hostlimit set|rm|show`.
pub fn hostlimit(lab: &Lab, p: &Principal, action: HostLimitAction) -> CommandOutput {
    let who = |unix_user: Option<String>, default: bool| match (unix_user, default) {
        (Some(u), false) => Ok(Some(u)),
        (None, true) => Ok(None),
        _ => Err(CommandOutput::error(
            exit::USAGE,
            "error: name a Unix user or --default",
        )),
    };
    match action {
        HostLimitAction::Set {
            unix_user,
            default,
            cpus,
            mem,
            json,
        } => {
            let user = match who(unix_user, default) {
                Ok(u) => u,
                Err(out) => return out,
            };
            let limit = HostLimit {
                cpus,
                memory_bytes: mem,
            };
            match lab.set_host_limit(p, user.as_deref(), Some(limit)) {
                Ok(()) if json => CommandOutput::json(&serde_json::json!({
                    "scope": user.as_deref().unwrap_or("default"),
                    "cpus": cpus,
                    "memory_bytes": mem,
                })),
                Ok(()) => CommandOutput::ok(format!(
                    "host limit of {} set\n",
                    user.as_deref().unwrap_or("the default")
                )),
                Err(e) => e.into(),
            }
        }
        HostLimitAction::Rm {
            unix_user,
            default,
            json,
        } => {
            let user = match who(unix_user, default) {
                Ok(u) => u,
                Err(out) => return out,
            };
            match lab.set_host_limit(p, user.as_deref(), None) {
                Ok(()) if json => CommandOutput::json(&serde_json::json!({
                    "scope": user.as_deref().unwrap_or("default"),
                    "removed": true,
                })),
                Ok(()) => CommandOutput::ok(format!(
                    "host limit of {} removed\n",
                    user.as_deref().unwrap_or("the default")
                )),
                Err(e) => e.into(),
            }
        }
        HostLimitAction::Show { json } => match lab.host_limits(p) {
            Ok(limits) if json => CommandOutput::json(&limits),
            Ok(limits) if limits.is_empty() => {
                CommandOutput::ok("no host limits (hostlimit set UNIX_USER|--default …)\n")
            }
            Ok(limits) => CommandOutput::ok(
                limits
                    .iter()
                    .map(|l| {
                        format!(
                            "{}: CPUs {}, memory {}\n",
                            l.scope,
                            l.cpus.map_or("not capped".into(), |c| c.to_string()),
                            l.memory_bytes
                                .map_or("not capped".into(), |m| short_bytes(m as f64))
                        )
                    })
                    .collect::<String>(),
            ),
            Err(e) => e.into(),
        },
    }
}
