//! The command set: clap definitions, their names and their log lines;
//! parsing a command line is in `parse.rs`, running one in `run.rs`.

use clap::Subcommand;

use super::logs::LogsArgs;
use super::notices::MotdAction;
use super::queue::{ProjectAction, SubmitArgs};
use super::quota::QuotaAction;
use crate::lab::{Lab, ListFilter, Principal};
use crate::model::{Role, Verdict};
use crate::monitor::Window;

/// Everything a lab user can ask for by command.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum LabCommand {
    /// Print the labbench version.
    Version {
        /// Print JSON: {"version"}.
        #[arg(long)]
        json: bool,
    },
    /// Show who you are: user, role, Unix user and the key you used.
    Whoami {
        /// Print JSON: {"user","role","unix_user","key_fingerprint"}.
        #[arg(long)]
        json: bool,
    },
    /// List lab users with their roles and key counts.
    Users {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add, re-role or remove users (admin).
    User {
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: UserAction,
    },
    /// Add or remove SSH public keys.
    Key {
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Queue an experiment: submit [FLAGS] -- CMD ARGS…, or submit --sh 'CMD'.
    Submit(Box<SubmitArgs>),
    /// List queued and running experiments (--all: finished ones too).
    Ls {
        /// Include finished experiments.
        #[arg(long)]
        all: bool,
        /// Only this owner.
        #[arg(long)]
        user: Option<String>,
        /// Only this state (queued, running, succeeded, failed, …).
        #[arg(long)]
        state: Option<String>,
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// At most this many (up to 10000).
        #[arg(long, default_value_t = crate::lab::DEFAULT_LIST_LIMIT, value_parser = parse_limit)]
        limit: usize,
        /// Running ones first, then queued ones in the order they will
        /// start (default: newest first).
        #[arg(long)]
        next_first: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one experiment with its history.
    Show {
        /// Experiment id.
        id: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// An experiment's metrics: `@metric name=value` lines of its output and
    /// JSON lines of `$LABBENCH_METRICS`, with last, min and max.
    Metrics {
        /// Experiment id.
        id: u64,
        /// Only this metric.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON: {"id","metrics":[{"name","count","last","min","max",
        /// "points":[{"step","value","time"}]}],"malformed","last_malformed"}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, a row a value: name,step,value,time.
        #[arg(long)]
        csv: bool,
    },
    /// Comment on an experiment (any role that may read its output): comment
    /// ID TEXT…, or the text on standard input; --edit CID or --rm CID
    /// changes a comment of yours (any, as admin).
    Comment {
        /// Experiment id.
        id: u64,
        /// Replace comment CID with the text.
        #[arg(long, value_name = "CID", conflicts_with = "rm")]
        edit: Option<u64>,
        /// Remove comment CID.
        #[arg(long, value_name = "CID")]
        rm: Option<u64>,
        /// Print JSON: the comment {"id","experiment","author","text","at",
        /// "edited_at"}, or {"experiment","comment","removed"}.
        #[arg(long)]
        json: bool,
        /// The text (read from standard input when not given).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        text: Vec<String>,
    },
    /// What happened lately: results, comments and outcomes, newest first,
    /// of the experiments whose output you may read.
    Feed {
        /// Since T: an age (10m, 2h, 7d), an RFC 3339 time, a local
        /// 'YYYY-MM-DD HH:MM' or Unix seconds (default: 7d).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// At most N items (default 100, at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON: [{"at","experiment","name","project","kind",…}], kind
        /// result {"state"}, comment {"author","text"} or outcome
        /// {"verdict","by","note"}.
        #[arg(long)]
        json: bool,
    },
    /// Projects at a glance: experiments submitted, finished, succeeded,
    /// given a positive or negative outcome; last activity; CPU- and
    /// GPU-hours (of the experiments whose output you may read).
    Projects {
        /// Name each project's best run by this metric (its largest value).
        #[arg(long, value_name = "NAME")]
        best: Option<String>,
        /// Best is the smallest value (a loss).
        #[arg(long, requires = "best")]
        lowest: bool,
        /// Print JSON: [{"project","submitted","finished","succeeded",
        /// "positive","negative","last_activity","cpu_hours","gpu_hours",
        /// "best": null or [id, value]}].
        #[arg(long)]
        json: bool,
    },
    /// Every experiment you may see, newest first, that the filter selects:
    /// project:P user:U state:S (or active, finished) tag:T outcome:O
    /// name:TEXT metric:NAME>V param:K=V since:7d until:2026-12-01; -TERM
    /// negates (after `--`, or inside a quoted filter: `history --json --
    /// -tag:wip`); other words search names, projects, owners, commands, tags.
    History {
        /// The filter's terms (all must hold).
        filter: Vec<String>,
        /// Show this metric's last value as a column (repeatable; default:
        /// the metrics the filter names).
        #[arg(long = "metric", value_name = "NAME")]
        metrics: Vec<String>,
        /// At most this many (default 100, at most 10000).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Only experiments older than this id (the next page).
        #[arg(long, value_name = "ID", conflicts_with = "sort")]
        before: Option<u64>,
        /// Sort what the filter matches (its newest 100000) by a column:
        /// id, name, owner, project, state, outcome, ran, peak, gpu-hours or
        /// metric:NAME (smallest first; those without a value last).
        #[arg(long, value_name = "COLUMN")]
        sort: Option<String>,
        /// Sort largest first.
        #[arg(long, requires = "sort")]
        desc: bool,
        /// Skip this many sorted rows (the next sorted page; at most 10000).
        #[arg(long, default_value_t = 0, requires = "sort")]
        offset: usize,
        /// Print JSON: {"rows":[{"id","name","owner","project","tags","state",
        /// "outcome","submitted_at","duration_secs","peak_memory_bytes",
        /// "memory_request_bytes","gpu_hours","metrics","commit","dirty"}],
        /// "next","next_offset","sorted_among","sort_partial","examined"}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, a row per experiment.
        #[arg(long)]
        csv: bool,
    },
    /// Experiments side by side: params, metrics, resources, commits,
    /// packages and inputs, a `*` before each row that differs.
    Compare {
        /// Two to twenty experiment ids.
        #[arg(required = true, num_args = 2..)]
        ids: Vec<u64>,
        /// Also give each one's values of this metric (--json), to overlay
        /// (at most 1000 each: a longer curve keeps each stretch's extremes).
        #[arg(long, value_name = "NAME")]
        metric: Option<String>,
        /// Print JSON: {"runs":[{"id","name","owner","project","state",
        /// "command","params","metrics","resources","usage","commit","dirty",
        /// "packages","inputs","curve"}],"differs":["param:lr",…]}.
        #[arg(long)]
        json: bool,
    },
    /// Dependencies across experiments: which used a package (`--package
    /// 'pandas<2'`), which read a source (`--source mysql://warehouse`),
    /// which packages nobody used lately (`--unused-since 90d`); without
    /// them, every package with how many experiments used it.
    Deps {
        /// `[ECOSYSTEM:]NAME[OP VERSION]`, OP one of < <= > >= == !=.
        #[arg(long, value_name = "PACKAGE")]
        package: Option<String>,
        /// Text a source must contain.
        #[arg(long, value_name = "PATTERN")]
        source: Option<String>,
        /// Only this project's experiments.
        #[arg(long)]
        project: Option<String>,
        /// Packages no experiment submitted within this age used.
        #[arg(long, value_name = "AGE")]
        unused_since: Option<String>,
        /// Print JSON: [{"id","project","owner","submitted_at","package",
        /// "sources"}], or [{"package","versions","experiments","projects",
        /// "last_used"}].
        #[arg(long)]
        json: bool,
    },
    /// An experiment's use over its run: CPU, memory and GPU memory each
    /// second (a longer run in longer stretches, each its maximum), with
    /// peak, p95 and mean against what it asked for.
    Resources {
        /// Experiment id.
        id: u64,
        /// Print JSON: {"id","request","profile":{"cpu_cores","memory_bytes",
        /// "gpu_memory_bytes": {"peak","p95","mean"},"seconds"},"samples":
        /// [{"at","secs","cpu_cores","memory_bytes","gpu_memory_bytes"}]}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, a row a stretch.
        #[arg(long)]
        csv: bool,
    },
    /// A self-contained HTML page for people without a terminal: report ID
    /// --html (provenance, metrics, resources, outcome, comments with
    /// charts), report --project P --html, or report FILTER… --html.
    Report {
        /// An experiment id, or filter terms (as history takes them).
        target: Vec<String>,
        /// A project's experiments.
        #[arg(long)]
        project: Option<String>,
        /// Most experiments a report of many lists (default 500).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Write HTML.
        #[arg(long, conflicts_with = "json")]
        html: bool,
        /// Print what the page shows as JSON instead: {"experiment",
        /// "provenance","metrics","resources","discussion"} (null where you
        /// may not read it), or {"title","filter","rows","next","examined"}.
        #[arg(long)]
        json: bool,
    },
    /// Where an experiment came from: git state (commit, branch, remote,
    /// dirty, diff), hashes of its inputs and outputs, interpreters,
    /// packages and data sources, as captured at its start and end.
    Provenance {
        /// Experiment id.
        id: u64,
        /// Print its git diff against its commit instead.
        #[arg(long, conflicts_with = "json")]
        diff: bool,
        /// Print JSON: {"id","provenance":{"captured_at","git","inputs",
        /// "outputs","interpreters","packages","dependency_files","sources",
        /// "skipped","cache_hits","hashed_bytes"}}.
        #[arg(long)]
        json: bool,
    },
    /// An experiment's outcome and comments.
    Comments {
        /// Experiment id.
        id: u64,
        /// Print JSON: {"id","outcome","comments"}.
        #[arg(long)]
        json: bool,
    },
    /// Give a finished experiment's result an outcome (its owner or an
    /// admin): positive, negative or inconclusive, with a note; none takes
    /// it back.
    Outcome {
        /// Experiment id.
        id: u64,
        /// positive, negative, inconclusive or none.
        #[arg(value_enum)]
        verdict: VerdictArg,
        /// Why, in a few words.
        #[arg(long)]
        note: Option<String>,
        /// Print JSON: {"id","outcome"}.
        #[arg(long)]
        json: bool,
    },
    /// Cancel experiments (your own; any as admin).
    Cancel {
        /// Experiment ids.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Print JSON: [{"id", "state"} or {"id", "error", "status"}].
        #[arg(long)]
        json: bool,
    },
    /// Submit a copy of an experiment, optionally with other resources.
    Rerun {
        /// Experiment id.
        id: u64,
        /// Short name.
        #[arg(long)]
        name: Option<String>,
        /// CPU cores.
        #[arg(long)]
        cpus: Option<f64>,
        /// Memory, e.g. 8G.
        #[arg(long, value_parser = crate::model::parse_size)]
        mem: Option<u64>,
        /// GPUs.
        #[arg(long)]
        gpus: Option<u32>,
        /// Wall-time limit, e.g. 2h.
        #[arg(long, value_parser = crate::model::parse_duration)]
        time: Option<u64>,
        /// Priority (admins may go above 0).
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
        /// Print JSON: {"id": N}.
        #[arg(long)]
        json: bool,
    },
    /// Change a queued experiment's priority (admin).
    Priority {
        /// Experiment id.
        id: u64,
        /// New priority (higher runs first).
        #[arg(allow_negative_numbers = true)]
        priority: i32,
        /// Print JSON: {"id", "priority"}.
        #[arg(long)]
        json: bool,
    },
    /// Set or show per-user limits.
    #[command(subcommand)]
    Quota(QuotaAction),
    /// Caps on what Unix users run outside the queue (admin).
    #[command(subcommand)]
    Hostlimit(super::hostlimit::HostLimitAction),
    /// Make a project private or public (admin).
    Project {
        /// Print JSON: {"project", "private"}.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: ProjectAction,
    },
    /// Show an experiment's output (-f: follow until it ends).
    Logs(LogsArgs),
    /// Wait until experiments end; exits with the experiment's status.
    Wait {
        /// Experiment ids.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Print JSON: [{"id", "state", "exit_status"}].
        #[arg(long)]
        json: bool,
    },
    /// One text snapshot of per-user use: now and peaks (like the Dashboard).
    Top {
        /// Print JSON (as `usage --json`).
        #[arg(long)]
        json: bool,
    },
    /// Per-user use with peaks, means and p95 per window, and a sizing hint.
    Usage {
        /// Only this user (lab or Unix name).
        #[arg(long)]
        user: Option<String>,
        /// Only this window: 1m, 1h, 24h or 7d.
        #[arg(long, value_parser = parse_window)]
        window: Option<Window>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What experiments reserved (asked for × time run) and used
    /// (measured), in core-, GiB- and GPU-hours and priced at the rates in
    /// `[costs]`: everyone's for admins, your own otherwise.
    Costs {
        /// Sum by user, project or month.
        #[arg(long, value_enum, default_value = "user")]
        by: CostBy,
        /// From this day (2026-11-01) or month (2026-11); default: the
        /// start of this month.
        #[arg(long, value_name = "D")]
        from: Option<String>,
        /// Up to the end of this day or month; default: now.
        #[arg(long, value_name = "D")]
        to: Option<String>,
        /// Print JSON: {"currency","from","to","by","rows":[{"key",
        /// "experiments","reserved":{"cpu_hours","gib_hours","gpu_hours",
        /// "cost"},"used":{…}}],"total"}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, a row per key, then the total.
        #[arg(long)]
        csv: bool,
    },
    /// Monthly budgets per user or project: at 80 % the owner and admins
    /// are told; once spent, new submissions are held (costs.budget_action).
    Budget {
        /// Print JSON: [{"scope","amount","spent","currency","month"}].
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: super::budgets::BudgetCommand,
    },
    /// The audit trail (admins): every administrative and state-changing
    /// action, newest first, with who, when, what and from what to what.
    Audit {
        /// Since T: an age (10m, 2h, 7d), an RFC 3339 time, a local
        /// 'YYYY-MM-DD HH:MM' or Unix seconds (default: all).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only what this lab user did, or what was done to them.
        #[arg(long)]
        user: Option<String>,
        /// Only this kind (user.role), area (user, key, quota, experiment,
        /// comment, project) or entries whose words contain this.
        #[arg(long)]
        action: Option<String>,
        /// At most N (default 100, at most 10000).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Print JSON: [{"at","actor","action","kind","subject","before","after"}].
        #[arg(long)]
        json: bool,
    },
    /// The announcement shown on connect (in the interface, and above a
    /// command's output with `ssh -t`).
    Motd {
        /// Print JSON: {"text","by","at"} or null.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: MotdAction,
    },
    /// Send a line to the open sessions of a user, or of everyone (admins):
    /// `notify USER TEXT…` or `notify --all TEXT…`.
    Notify {
        /// Everyone's sessions.
        #[arg(long)]
        all: bool,
        /// The user (unless --all), then the words of the text (after `--`
        /// when one starts with `-`).
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
        /// Print JSON: {"to","sessions"}.
        #[arg(long)]
        json: bool,
    },
    /// Host totals, peaks and GPUs.
    Host {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Running experiments and how long each has been without work, those
    /// flagged idle first (`idle show`); `idle set` changes the rule (admin).
    #[command(args_conflicts_with_subcommands = true)]
    Idle {
        #[command(subcommand)]
        action: Option<super::idle::IdleAction>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List your keys, or NAME's keys (admin).
    Keys {
        /// Whose keys (default: yours).
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `user …` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum UserAction {
    /// Create a user.
    Add {
        /// Lab user name.
        name: String,
        /// admin, member or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        unix: UnixArgs,
    },
    /// Map a user to another Unix account, or to none.
    SetUnix {
        /// Lab user name.
        name: String,
        /// The Unix account their experiments run as and their use is measured by.
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        unix_user: Option<String>,
        /// No Unix account: they cannot run experiments.
        #[arg(long)]
        none: bool,
        /// The account is a system account (uid below UID_MIN, root included) on purpose.
        #[arg(long)]
        allow_system_account: bool,
        /// Another lab user maps to the account too, on purpose.
        #[arg(long)]
        allow_shared_unix_user: bool,
    },
    /// Change a user's role.
    SetRole {
        /// Lab user name.
        name: String,
        /// admin, member or viewer.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Remove a user and their keys.
    Rm {
        /// Lab user name.
        name: String,
    },
    /// Disable a user: no login, sessions end, queued experiments held.
    Disable {
        /// Lab user name.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Lab user name.
        name: String,
    },
}

/// How `user add` maps the new user to a Unix account.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct UnixArgs {
    /// Unix account for their experiments and usage (default: NAME).
    #[arg(long, conflicts_with = "no_unix_user")]
    pub unix_user: Option<String>,
    /// No Unix account (they cannot run experiments until one is set).
    #[arg(long)]
    pub no_unix_user: bool,
    /// The account is a system account (uid below UID_MIN, root included) on purpose.
    #[arg(long)]
    pub allow_system_account: bool,
    /// Another lab user maps to the account too, on purpose.
    #[arg(long)]
    pub allow_shared_unix_user: bool,
}

/// `key …` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum KeyAction {
    /// Register public keys for NAME: as arguments, or on stdin, each
    /// followed by its proof (`key challenge`) when you add it to yourself.
    Add {
        /// Lab user name.
        name: String,
        /// The key ("ssh-ed25519 AAAA… comment"); read from stdin when absent.
        key: Vec<String>,
    },
    /// Print a challenge to sign with a key you will add to your account.
    Challenge,
    /// Remove one of NAME's keys by fingerprint.
    Rm {
        /// Lab user name.
        name: String,
        /// SHA256:… fingerprint (see `keys NAME`).
        fingerprint: String,
    },
}

fn parse_limit(s: &str) -> Result<usize, String> {
    let limit: usize = s
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of experiments"))?;
    if limit > crate::lab::MAX_LIST_LIMIT {
        return Err(format!(
            "{limit} is more than one listing shows ({})",
            crate::lab::MAX_LIST_LIMIT
        ));
    }
    Ok(limit)
}

/// An outcome as typed: a verdict, or none to take it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerdictArg {
    /// It showed what was hoped for.
    Positive,
    /// It showed it does not hold.
    Negative,
    /// It did not tell.
    Inconclusive,
    /// No outcome.
    None,
}

impl VerdictArg {
    /// The verdict meant (`None` for none).
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            VerdictArg::Positive => Some(Verdict::Positive),
            VerdictArg::Negative => Some(Verdict::Negative),
            VerdictArg::Inconclusive => Some(Verdict::Inconclusive),
            VerdictArg::None => None,
        }
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn parse_window(s: &str) -> Result<Window, String> {
    s.parse()
}

impl LabCommand {
    /// Whether the command reports measured use (so a local run must measure first).
    pub fn needs_usage(&self) -> bool {
        matches!(
            self,
            LabCommand::Top { .. } | LabCommand::Usage { .. } | LabCommand::Host { .. }
        )
    }

    /// Whether the command answers at once: it neither waits for
    /// experiments nor reads standard input, and does little (a few store
    /// reads, a durable write or two), so the SSH server may run it on the
    /// connection's own task and send its whole reply in one write.
    pub fn answers_at_once(&self) -> bool {
        matches!(
            self,
            LabCommand::Version { .. }
                | LabCommand::Whoami { .. }
                | LabCommand::Submit(_)
                | LabCommand::Show { .. }
                | LabCommand::Rerun { .. }
                | LabCommand::Priority { .. }
        )
    }

    /// What the daemon's log says of the command: its name and the ids it
    /// acts on, never the values of its arguments (commands, environment
    /// variables, keys and names can carry secrets).
    pub fn log_summary(&self) -> String {
        let ids = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        let name = self.name().trim_end_matches(" …");
        let name = name.split(' ').next().unwrap_or(name);
        match self {
            LabCommand::Show { id, .. }
            | LabCommand::Metrics { id, .. }
            | LabCommand::Comment { id, .. }
            | LabCommand::Comments { id, .. }
            | LabCommand::Provenance { id, .. }
            | LabCommand::Resources { id, .. }
            | LabCommand::Outcome { id, .. }
            | LabCommand::Rerun { id, .. }
            | LabCommand::Priority { id, .. } => format!("{name} {id}"),
            LabCommand::Logs(args) => format!("logs {}", args.id),
            LabCommand::Cancel { ids: list, .. }
            | LabCommand::Wait { ids: list, .. }
            | LabCommand::Compare { ids: list, .. } => {
                format!("{name} {}", ids(list))
            }
            LabCommand::User { action, .. } => match action {
                UserAction::Add { .. } => "user add",
                UserAction::SetRole { .. } => "user set-role",
                UserAction::Rm { .. } => "user rm",
                UserAction::SetUnix { .. } => "user set-unix",
                UserAction::Disable { .. } => "user disable",
                UserAction::Enable { .. } => "user enable",
            }
            .into(),
            LabCommand::Key { action, .. } => match action {
                KeyAction::Add { .. } => "key add",
                KeyAction::Rm { .. } => "key rm",
                KeyAction::Challenge => "key challenge",
            }
            .into(),
            _ => name.to_string(),
        }
    }

    /// Whether the command's output is written as it is produced (long
    /// listings, logs that may be followed for hours), never held whole.
    pub fn streams(&self) -> bool {
        matches!(self, LabCommand::Ls { .. } | LabCommand::Logs(_))
    }

    /// Runs a command that [streams](LabCommand::streams) to `sink` for
    /// `caller` (already the current one); its exit status, `None` for any
    /// other command.
    pub async fn stream<S: super::output::StreamSink>(
        &self,
        lab: &Lab,
        caller: &Principal,
        sink: &mut S,
    ) -> Option<u32> {
        match self {
            LabCommand::Ls {
                all,
                user,
                state,
                project,
                limit,
                next_first,
                json,
            } => {
                let filter = ListFilter {
                    all: *all,
                    user: user.clone(),
                    state: state.clone(),
                    project: project.clone(),
                    limit: *limit,
                    order: if *next_first {
                        crate::lab::ListOrder::NextToStart
                    } else {
                        crate::lab::ListOrder::Newest
                    },
                };
                Some(super::queue::ls(lab, caller, filter, *json, sink).await)
            }
            LabCommand::Logs(args) => Some(super::logs::logs(lab, caller, args, sink).await),
            _ => None,
        }
    }

    /// The command's name, for hints.
    pub fn name(&self) -> &'static str {
        match self {
            LabCommand::Version { .. } => "version",
            LabCommand::Whoami { .. } => "whoami",
            LabCommand::Users { .. } => "users",
            LabCommand::User { .. } => "user …",
            LabCommand::Key { .. } => "key …",
            LabCommand::Keys { .. } => "keys",
            LabCommand::Top { .. } => "top",
            LabCommand::Submit(_) => "submit …",
            LabCommand::Ls { .. } => "ls",
            LabCommand::Show { .. } => "show ID",
            LabCommand::Metrics { .. } => "metrics ID",
            LabCommand::Comment { .. } => "comment ID",
            LabCommand::Comments { .. } => "comments ID",
            LabCommand::Provenance { .. } => "provenance ID",
            LabCommand::History { .. } => "history",
            LabCommand::Compare { .. } => "compare ID ID…",
            LabCommand::Deps { .. } => "deps",
            LabCommand::Resources { .. } => "resources ID",
            LabCommand::Report { .. } => "report",
            LabCommand::Feed { .. } => "feed",
            LabCommand::Projects { .. } => "projects",
            LabCommand::Outcome { .. } => "outcome ID",
            LabCommand::Cancel { .. } => "cancel ID",
            LabCommand::Priority { .. } => "priority ID N",
            LabCommand::Quota(_) => "quota …",
            LabCommand::Hostlimit(_) => "hostlimit …",
            LabCommand::Project { .. } => "project …",
            LabCommand::Wait { .. } => "wait ID",
            LabCommand::Logs(_) => "logs ID",
            LabCommand::Rerun { .. } => "rerun ID",
            LabCommand::Usage { .. } => "usage",
            LabCommand::Host { .. } => "host",
            LabCommand::Idle { .. } => "idle",
            LabCommand::Audit { .. } => "audit",
            LabCommand::Costs { .. } => "costs",
            LabCommand::Budget { .. } => "budget …",
            LabCommand::Motd { .. } => "motd …",
            LabCommand::Notify { .. } => "notify",
        }
    }
}

/// What `costs` sums by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CostBy {
    /// The experiment's owner.
    User,
    /// Its project.
    Project,
    /// The month it ran in.
    Month,
}

impl From<CostBy> for crate::lab::CostGrouping {
    fn from(by: CostBy) -> Self {
        match by {
            CostBy::User => crate::lab::CostGrouping::User,
            CostBy::Project => crate::lab::CostGrouping::Project,
            CostBy::Month => crate::lab::CostGrouping::Month,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{
        CommandOutput, StdinSource, command_leaves, exit, parse_exec_line, run_command,
    };
    use crate::lab::testing::{KEY_B, lab_with_admin};

    fn run(lab: &Lab, p: &Principal, line: &str, stdin: &[u8]) -> CommandOutput {
        let command = match parse_exec_line(line) {
            Ok(c) => c,
            Err(out) => return out,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(run_command(
            lab,
            p,
            command,
            &mut StdinSource::Bytes(stdin.to_vec()),
            4096,
        ))
    }

    #[test]
    fn unknown_command_is_a_usage_error_with_hint() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let out = run(&lab, &admin, "frobnicate --now", b"");
        assert_eq!(out.status, exit::USAGE);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("frobnicate"), "{err}");
        assert!(err.contains("hint: run 'help'"), "{err}");
        assert!(err.lines().count() <= 3, "{err}");
    }

    #[test]
    fn help_lists_commands_and_exits_zero() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let out = run(&lab, &admin, "help", b"");
        assert_eq!(out.status, exit::OK);
        let text = String::from_utf8_lossy(&out.stdout);
        for cmd in ["whoami", "users", "user", "key", "keys", "version"] {
            assert!(text.contains(cmd), "{text}");
        }
        let out = run(&lab, &admin, "help user", b"");
        assert!(String::from_utf8_lossy(&out.stdout).contains("set-role"));
    }

    #[test]
    fn the_log_summary_names_the_command_and_ids_never_values() {
        let cases = [
            (
                "submit --env API_TOKEN=s3cret -- curl -H 'token: s3cret' x",
                "submit",
            ),
            ("show 12 --json", "show 12"),
            ("cancel 3 4", "cancel 3 4"),
            ("key add bob ssh-ed25519 AAAAs3cret", "key add"),
            ("user add s3cret --role member", "user add"),
            ("logs 7 -f", "logs 7"),
        ];
        for (line, summary) in cases {
            let command = parse_exec_line(line).expect(line);
            assert_eq!(command.log_summary(), summary);
        }
    }

    #[test]
    fn whoami_json_has_the_documented_fields() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let out = run(&lab, &admin, "whoami --json", b"");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["user"], "root");
        assert_eq!(v["role"], "admin");
        assert_eq!(v["unix_user"], "root");
        assert!(v["key_fingerprint"].is_null());
    }

    /// Scripts do what people do: every command has `--json`, so one added
    /// without it fails here.
    #[test]
    fn every_command_can_answer_in_json() {
        let found = command_leaves();
        let without: Vec<&str> = found
            .iter()
            .filter(|(_, c)| !c.get_arguments().any(|a| a.get_long() == Some("json")))
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(found.len() > 20, "{:?}", found.len());
        assert!(without.is_empty(), "commands without --json: {without:?}");
    }

    #[test]
    fn changes_answer_in_json_with_what_they_did() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let json = |line: &str, stdin: &[u8]| {
            let out = run(&lab, &admin, line, stdin);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{line}: {e}: {out:?}"));
            (out.status, v)
        };
        let (status, v) = json("user add bob --role member --no-unix-user --json", b"");
        assert_eq!(status, exit::OK);
        assert_eq!(
            (v["name"].as_str(), v["role"].as_str()),
            (Some("bob"), Some("member"))
        );
        assert!(v["unix_user"].is_null());
        let (_, v) = json("user set-role bob viewer --json", b"");
        assert_eq!(v["role"], "viewer");
        let (_, v) = json("key add bob --json", KEY_B.as_bytes());
        assert_eq!(v[0]["user"], "bob");
        let fingerprint = v[0]["fingerprint"]
            .as_str()
            .expect("fingerprint")
            .to_string();
        let (_, v) = json(&format!("key rm bob {fingerprint} --json"), b"");
        assert_eq!(v["removed"], true);
        let (_, v) = json("quota set root --max-running 3 --json", b"");
        assert_eq!(
            (v["user"].as_str(), v["max_running"].as_u64()),
            (Some("root"), Some(3))
        );
        let (_, v) = json("submit --json --workdir /tmp -- true", b"");
        let id = v["id"].as_u64().expect("id");
        let (_, v) = json(&format!("priority {id} 7 --json"), b"");
        assert_eq!(v["priority"], 7);
        let (status, v) = json(&format!("cancel {id} 999 --json"), b"");
        assert_eq!(status, exit::FAILURE, "one of two was no experiment");
        assert_eq!(
            (v[0]["id"].as_u64(), v[0]["state"].as_str()),
            (Some(id), Some("cancelled"))
        );
        assert_eq!(v[1]["id"], 999);
        assert!(
            v[1]["error"].as_str().is_some_and(|e| e.contains("999")),
            "{v}"
        );
        let (status, v) = json(&format!("wait {id} --json"), b"");
        assert_eq!(status, 130, "a cancelled run's wait exits 130");
        assert_eq!(v[0]["exit_status"], 130);
        let (_, v) = json("user rm bob --json", b"");
        assert_eq!(v["removed"], "bob");
        assert_eq!(v["cancelled"], serde_json::json!([]));
    }

    #[test]
    fn show_text_says_everything_the_spec_has() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let out = run(
            &lab,
            &admin,
            "submit --json --workdir /tmp --project vision --tag a --tag b --param lr=0.1 \
             --env SEED=7 --input /tmp/data.csv --output /tmp/model.pt --private \
             --max-output 1G -- true",
            b"",
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let id = v["id"].as_u64().expect("id");
        let after = run(
            &lab,
            &admin,
            &format!("submit --json --workdir /tmp --after {id} -- true"),
            b"",
        );
        let v: serde_json::Value = serde_json::from_slice(&after.stdout).expect("json");
        let text =
            String::from_utf8(run(&lab, &admin, &format!("show {id}"), b"").stdout).expect("utf-8");
        for line in [
            "  project   vision\n",
            "  tags      a b\n",
            "  params    lr=0.1\n",
            "  env       SEED=7\n",
            "  inputs    /tmp/data.csv\n",
            "  outputs   /tmp/model.pt\n",
            "  private   ",
            "  output    at most 1.0G\n",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
        let second = v["id"].as_u64().expect("id");
        let text = String::from_utf8(run(&lab, &admin, &format!("show {second}"), b"").stdout)
            .expect("utf-8");
        assert!(text.contains(&format!("  after     {id}\n")), "{text}");
        assert!(
            !text.contains("project"),
            "nothing for what is not set:\n{text}"
        );
        let out = run(
            &lab,
            &admin,
            "submit --json --workdir /tmp --project secret -- true",
            b"",
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            run(&lab, &admin, "project private secret", b"").status,
            exit::OK
        );
        let id = v["id"].as_u64().expect("id");
        let text =
            String::from_utf8(run(&lab, &admin, &format!("show {id}"), b"").stdout).expect("utf-8");
        assert!(text.contains("(its project is private)"), "{text}");
    }

    /// The SSH server runs these before their input arrives: none reads it.
    #[test]
    fn commands_that_answer_at_once_never_read_stdin() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let lines = [
            "version",
            "whoami --json",
            "submit --json --workdir /tmp -- true",
            "show 1 --json",
            "priority 1 5",
            "rerun 1 --json",
        ];
        for line in lines {
            let command = parse_exec_line(line).expect("parses");
            assert!(command.answers_at_once(), "{line}");
            let out = rt.block_on(run_command(
                &lab,
                &admin,
                command,
                &mut StdinSource::NotRead,
                4096,
            ));
            assert_eq!(out.status, exit::OK, "{line}: {out:?}");
        }
        let key_add = parse_exec_line("key add root").expect("parses");
        assert!(!key_add.answers_at_once());
        let out = rt.block_on(run_command(
            &lab,
            &admin,
            key_add,
            &mut StdinSource::NotRead,
            4096,
        ));
        assert_eq!(out.status, exit::FAILURE);
        assert!(String::from_utf8_lossy(&out.stderr).contains("without its standard input"));
    }

    #[test]
    fn key_add_reads_stdin_and_rejects_all_on_one_bad_line() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        run(&lab, &admin, "user add bob --role member", b"");
        let bad = format!("{KEY_B}\nnot-a-key\n");
        let out = run(&lab, &admin, "key add bob", bad.as_bytes());
        assert_eq!(out.status, exit::FAILURE);
        assert!(String::from_utf8_lossy(&out.stderr).contains("key 2"));
        assert!(lab.list_keys(&admin, Some("bob")).expect("keys").is_empty());
        let out = run(&lab, &admin, "key add bob", KEY_B.as_bytes());
        assert_eq!(out.status, exit::OK, "{out:?}");
        assert_eq!(lab.list_keys(&admin, Some("bob")).expect("keys").len(), 1);
    }

    #[test]
    fn oversized_stdin_is_refused() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let out = run(&lab, &admin, "key add root", &vec![b'a'; 10_000]);
        assert_eq!(out.status, exit::FAILURE);
        assert!(String::from_utf8_lossy(&out.stderr).contains("larger than the limit"));
    }

    #[test]
    fn bad_role_and_unbalanced_quotes_are_usage_errors() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        assert_eq!(
            run(&lab, &admin, "user add x --role king", b"").status,
            exit::USAGE
        );
        assert_eq!(run(&lab, &admin, "users 'oops", b"").status, exit::USAGE);
    }

    #[test]
    fn viewer_user_add_exits_77() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        run(&lab, &admin, "user add vera --role viewer", b"");
        let vera = Principal {
            user: "vera".into(),
            role: Role::Viewer,
            unix_user: Some("vera".into()),
            key_fingerprint: None,
            since: 0,
        };
        let out = run(&lab, &vera, "user add eve --role admin", b"");
        assert_eq!(out.status, exit::PERMISSION_DENIED);
    }
}

#[cfg(test)]
mod queue_command_tests {
    use super::*;
    use crate::cli::{exit, parse_exec_line};

    #[test]
    fn submit_flags_parse_and_bad_sizes_are_usage_errors() {
        let cmd = parse_exec_line(
            "submit --name t --cpus 2 --mem 8G --time 2h --env A=1 -- python train.py --lr 0.1",
        )
        .expect("parses");
        let LabCommand::Submit(args) = cmd else {
            panic!("not submit")
        };
        assert_eq!(args.mem, Some(8 << 30));
        assert_eq!(args.time, Some(7200));
        assert_eq!(args.command, vec!["python", "train.py", "--lr", "0.1"]);
        // Without `--`: the command starts at the first word that is not
        // submit's own flag, and its flags are its own.
        for line in [
            "submit --cpus 2 python3 train.py --lr 0.1 --mem 3",
            "submit --cpus 2 -- python3 train.py --lr 0.1 --mem 3",
        ] {
            let Ok(LabCommand::Submit(args)) = parse_exec_line(line) else {
                panic!("{line}: not submit");
            };
            assert_eq!(args.cpus, Some(2.0), "{line}");
            assert_eq!(args.mem, None, "{line}");
            assert_eq!(
                args.command,
                vec!["python3", "train.py", "--lr", "0.1", "--mem", "3"],
                "{line}"
            );
        }
        // A usage error shows how submit is used.
        let err = parse_exec_line("submit --cpus").expect_err("missing value");
        let text = String::from_utf8_lossy(&err.stderr);
        assert!(text.contains("Usage: ssh lab@host submit"), "{text}");
        let err = parse_exec_line("submit --mem 8Q -- true").expect_err("bad size");
        assert_eq!(err.status, exit::USAGE);
        assert!(String::from_utf8_lossy(&err.stderr).contains("expected a size like 512M or 8G"));
        let err = parse_exec_line("submit --frob -- true").expect_err("unknown flag");
        assert_eq!(err.status, exit::USAGE);
        assert!(parse_exec_line("priority 3 -2").is_ok());
    }

    /// The parser is built once and reused: what one line leaves in it
    /// (values, errors, help) must never show in the next.
    #[test]
    fn the_reused_parser_answers_every_line_afresh() {
        let submit = |line: &str| match parse_exec_line(line) {
            Ok(LabCommand::Submit(args)) => args,
            other => panic!("{line}: {other:?}"),
        };
        for _ in 0..3 {
            let full = submit("submit --name a --mem 1G --env K=V --tag x -- echo one");
            assert_eq!(full.mem, Some(1 << 30));
            assert_eq!(full.command, vec!["echo", "one"]);
            let help = parse_exec_line("help submit").expect_err("help is output");
            assert_eq!(help.status, 0);
            assert!(String::from_utf8_lossy(&help.stdout).contains("--mem"));
            let bad = parse_exec_line("submit --mem 8Q -- true").expect_err("bad size");
            assert_eq!(bad.status, exit::USAGE);
            // Nothing of the earlier lines carries over.
            let bare = submit("submit -- true");
            assert_eq!(bare.mem, None);
            assert_eq!(bare.name, None);
            assert!(bare.env.is_empty() && bare.tags.is_empty());
            assert_eq!(bare.command, vec!["true"]);
        }
    }
}
