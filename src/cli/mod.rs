//! Commands: the scriptable front end, shared by `ssh lab@host CMD` and `labbench CMD`.
//!
//! Owns parsing a command line into a [`LabCommand`], calling the service and
//! rendering the result as aligned text or stable JSON with an exit status.
//! Must not check permissions itself: the service does.

mod accounts;
mod audit;
mod budgets;
mod commands;
mod compare;
mod costs;
mod deps;
mod history;
mod hostlimit;
mod idle;
pub mod logs;
mod metrics;
mod notebook;
mod notices;
pub mod output;
mod parse;
mod provenance;
pub mod queue;
mod quota;
mod report;
mod resources;
mod run;
mod stdin;
mod usage;

pub use commands::{KeyAction, LabCommand, UserAction};
pub use output::{CollectSink, CommandOutput, StreamSink, exit};
pub use parse::{command_leaves, parse_exec_argv, parse_exec_line};
pub use run::run_command;
pub use stdin::StdinSource;
