//! The service: the one API every front end (SSH exec, TUI, local CLI) calls.
//!
//! Owns authorization (role and ownership checks) and validation of every
//! action, then acts through the store. Must not know about SSH channels,
//! terminals or output formats.

mod audit;
mod bootstrap;
mod budgets;
mod compare;
mod costs;
mod deps;
mod disable;
mod engine;
#[cfg(test)]
mod experiment_tests;
mod experiments;
mod feed;
pub mod filter;
mod history;
mod history_sort;
mod host_limits;
mod idle;
mod listing;
mod metrics;
mod notebook;
mod notices;
mod output;
mod profile;
mod projects;
mod provenance;
#[cfg(test)]
mod quota_tests;
mod quotas;
mod sessions;
mod submit;
mod usage;
mod users;

use std::sync::Arc;

use crate::model::AuditEvent;
use crate::model::{KeyError, NameError, Role};
use crate::monitor::MonitorHandle;
use crate::store::{Store, StoreError};
use tokio::sync::watch;

pub use audit::{AuditQuery, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT};
pub use bootstrap::{AdminBootstrap, BootstrapReport, BootstrapSource};
pub use budgets::{BudgetAction, BudgetScope, BudgetStatus, WARN_AT};
pub use compare::{ComparedRun, Comparison, MAX_COMPARED, differences, downsample};
pub use costs::{CostGrouping, CostQuery, CostReport, CostRow, CostSettings, CostZone};
pub use deps::{
    DepsAnswer, DepsQuery, DepsUse, PackageQuery, PackageSummary, compare_versions,
    parse_deps_query,
};
pub use engine::{Engine, LiveUse, QueueNews, StateChange};
pub use experiments::HIDDEN;
pub use feed::{FeedEvent, FeedItem, MAX_FEED};
pub use history::{
    DEFAULT_HISTORY_LIMIT, HistoryPage, HistoryRow, MAX_EXAMINED, MAX_HISTORY_LIMIT,
};
pub use history_sort::{HistorySort, MAX_SORTED_MATCHES, MAX_SORTED_OFFSET, SortColumn};
pub use host_limits::{CappedAccount, HostLimitShown};
pub use idle::{IdleRuleShown, IdleStatus};
pub use listing::{
    DEFAULT_LIST_LIMIT, ExperimentView, ListFilter, ListFrom, ListOrder, ListPage, MAX_LIST_LIMIT,
};
pub use metrics::{MetricPoint, MetricSeries, MetricsBrief, MetricsReport};
pub use notebook::Discussion;
pub use notices::KEPT_NOTIFICATIONS;
pub use profile::ResourceSeries;
pub use projects::{BestBy, ProjectSummary};
pub use quotas::{QuotaChangePreview, QuotaShown, UserFigures};
pub use sessions::{ConnectedUser, SessionGuard, SessionKind, SessionRegistry};
pub use submit::{QueueSettings, SubmitRequest, parse_env_pair, parse_pair, reserved_env_message};
pub use usage::{UsageReport, sizing_hint};
pub use users::{CHALLENGE_VALID_SECS, KeyOffer, UnixMapping, UserSummary};

/// Who is asking: the authenticated lab user behind a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// Lab user name.
    pub user: String,
    /// Their role at authentication time.
    pub role: Role,
    /// Their Unix account, if one is set.
    pub unix_user: Option<String>,
    /// Fingerprint of the key they authenticated with; `None` for the local operator.
    pub key_fingerprint: Option<String>,
    /// When their account was created: experiments an earlier account of
    /// the same name submitted are not theirs.
    pub since: i64,
}

impl Principal {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why the service refused or failed an action.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The caller's role or ownership does not allow the action.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or not allowed in this state.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The host cannot take the request now (e.g. its disk is full); a
    /// later try may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LabError {
    /// Whether the caller is refused for who they are (removed, demoted, a
    /// key withdrawn, not allowed): what ends their sessions, unlike a
    /// passing failure of the store.
    pub fn is_refusal(&self) -> bool {
        matches!(self, LabError::PermissionDenied(_) | LabError::NotFound(_))
    }
}

impl From<NameError> for LabError {
    fn from(e: NameError) -> Self {
        LabError::Invalid(e.to_string())
    }
}

impl From<KeyError> for LabError {
    fn from(e: KeyError) -> Self {
        LabError::Invalid(e.to_string())
    }
}

/// Result of service calls.
pub type LabResult<T> = Result<T, LabError>;

/// The labbench service.
#[derive(Clone)]
pub struct Lab {
    store: Store,
    sessions: Arc<SessionRegistry>,
    monitor: MonitorHandle,
    queue: Arc<QueueSettings>,
    runner: Option<RunnerHandle>,
    queue_changes: Arc<watch::Sender<u64>>,
    data_dir: Arc<std::path::PathBuf>,
    /// What the accounts' side keeps (users.rs).
    accounts: Arc<users::AccountsState>,
    /// Accounts whose `--workdir` check has not returned (submit.rs).
    workdir_checks: Arc<submit::WorkdirChecks>,
    /// Users with a search of the whole history running (history.rs).
    searching: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// What the runner's side keeps (engine.rs).
    engine: Arc<engine::EngineState>,
    /// Idle detection (idle.rs).
    idle: Arc<idle::IdleWatch>,
    /// Notifications for the open sessions (notices.rs).
    notices: Arc<notices::Notices>,
    /// Rates and the zone of months (costs.rs).
    costs: Arc<costs::CostSettings>,
    /// Budgets warned of this month (budgets.rs).
    budget_warnings: Arc<budgets::BudgetWarnings>,
    /// What users and projects reserved this month, as last read (costs.rs).
    spend: Arc<costs::SpendCache>,
}

/// How the service asks the experiment runner to act.
#[derive(Debug, Clone)]
pub struct RunnerHandle {
    commands: tokio::sync::mpsc::UnboundedSender<RunnerCommand>,
}

/// A request to the experiment runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerCommand {
    /// Stop a running experiment and record it as cancelled.
    Cancel {
        /// Experiment id.
        id: u64,
        /// Why, for the record.
        reason: String,
    },
    /// Finish the current round and stop (the daemon is stopping; running
    /// experiments run on, to be re-attached).
    Stop,
}

impl RunnerHandle {
    /// A handle and the receiver the runner reads.
    pub fn new() -> (
        RunnerHandle,
        tokio::sync::mpsc::UnboundedReceiver<RunnerCommand>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (RunnerHandle { commands: tx }, rx)
    }

    /// Asks the runner to cancel `id`; false once the runner has stopped.
    pub fn cancel(&self, id: u64, reason: String) -> bool {
        self.commands
            .send(RunnerCommand::Cancel { id, reason })
            .is_ok()
    }

    /// Asks the runner to stop after its current round.
    pub fn stop(&self) {
        let _ = self.commands.send(RunnerCommand::Stop);
    }
}

impl Lab {
    /// A service over `store`, reporting use from `monitor`.
    pub fn new(store: Store, monitor: MonitorHandle) -> Lab {
        Lab {
            store,
            sessions: Arc::new(SessionRegistry::default()),
            monitor,
            queue: Arc::new(QueueSettings::default()),
            runner: None,
            queue_changes: Arc::new(watch::Sender::new(0)),
            data_dir: Arc::new(std::path::PathBuf::from(".")),
            accounts: Arc::default(),
            workdir_checks: Arc::default(),
            searching: Arc::default(),
            notices: Arc::default(),
            costs: Arc::default(),
            budget_warnings: Arc::default(),
            spend: Arc::default(),
            engine: Arc::default(),
            idle: Arc::default(),
        }
    }

    /// Uses `dir` as the data directory (experiment logs live there).
    pub fn with_data_dir(mut self, dir: std::path::PathBuf) -> Lab {
        self.data_dir = Arc::new(dir);
        self
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Uses these queue defaults.
    pub fn with_queue_settings(mut self, settings: QueueSettings) -> Lab {
        self.queue = Arc::new(settings);
        self
    }

    /// Attaches the experiment runner (the server does; local commands do not).
    pub fn with_runner(mut self, runner: RunnerHandle) -> Lab {
        self.runner = Some(runner);
        self
    }

    /// Asks the experiment runner, if any, to stop after its current round
    /// (when the daemon stops).
    pub fn stop_runner(&self) {
        if let Some(runner) = &self.runner {
            runner.stop();
        }
    }

    /// A receiver that changes whenever the queue changes.
    pub fn queue_changes(&self) -> watch::Receiver<u64> {
        self.queue_changes.subscribe()
    }

    /// Tells the runner and screens that the queue changed.
    pub fn notify_queue(&self) {
        self.queue_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Notes a change that can alter scheduling decisions, and notifies.
    fn queue_changed(&self) {
        self.engine.note_other_change();
        self.notify_queue();
    }

    /// Notes a new submission asking for `resources`, and notifies.
    fn queue_grew(&self, resources: crate::model::Resources) {
        self.engine.note_submission(resources);
        self.notify_queue();
    }

    /// What changed since the last call (the runner's).
    pub fn take_queue_news(&self) -> QueueNews {
        self.engine.take_news()
    }

    /// The connected-sessions registry.
    pub fn sessions(&self) -> &Arc<SessionRegistry> {
        &self.sessions
    }

    /// The store (for the bootstrap and tests; front ends use the methods).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records a change in the audit trail.
    fn audit(&self, actor: &Principal, change: Change) -> LabResult<()> {
        self.audit_with_next_flush(actor, change)?;
        self.store.flush()?;
        Ok(())
    }

    /// Audits an action whose own write follows at once and flushes both.
    fn audit_with_next_flush(&self, actor: &Principal, change: Change) -> LabResult<()> {
        tracing::info!(actor = %actor.user, kind = change.kind, "{}", change.words);
        self.store
            .audit_with_next_flush(&change.event(now(), &actor.user))?;
        Ok(())
    }
}

/// A change for the audit trail: its kind (`area.verb`), what it changed,
/// the values before and after where there are any, and the same in words.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    kind: &'static str,
    subject: String,
    before: Option<String>,
    after: Option<String>,
    words: String,
}

impl Change {
    /// A change of kind `kind` to `subject`, said in `words`.
    fn new(kind: &'static str, subject: impl Into<String>, words: impl Into<String>) -> Change {
        Change {
            kind,
            subject: subject.into(),
            before: None,
            after: None,
            words: words.into(),
        }
    }

    /// From `before` to `after`.
    fn changing(mut self, before: Option<String>, after: Option<String>) -> Change {
        self.before = before;
        self.after = after;
        self
    }

    /// The entry of the trail: this change, made by `actor` at `at`.
    fn event(self, at: i64, actor: &str) -> AuditEvent {
        AuditEvent {
            at,
            actor: actor.to_string(),
            action: self.words,
            kind: self.kind.to_string(),
            subject: self.subject,
            before: self.before,
            after: self.after,
        }
    }
}

/// Refuses unless the caller is an admin.
fn require_admin(p: &Principal, what: &str) -> LabResult<()> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(LabError::PermissionDenied(format!(
            "only admins can {what} (you are {}, a {})",
            p.user, p.role
        )))
    }
}

/// Refuses unless the caller is `owner` or an admin.
fn require_self_or_admin(p: &Principal, owner: &str, what: &str) -> LabResult<()> {
    if p.is_admin() || p.user == owner {
        Ok(())
    } else {
        Err(LabError::PermissionDenied(format!(
            "only {owner} or an admin can {what}"
        )))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fixtures for service tests.

    use super::*;

    /// A finished run of `owner`'s, in project churn: one core from
    /// `start` for `secs`.
    pub fn finished_run(id: u64, owner: &str, start: i64, secs: i64) -> crate::model::Experiment {
        use crate::model::{CommandLine, ExperimentSpec, Outcome, ResourceUse, Resources, State};
        let mut spec = ExperimentSpec::new(
            CommandLine::Argv(vec!["train".into()]),
            "/tmp".into(),
            Resources {
                cpus: 1.0,
                memory_bytes: 0,
                gpus: 0,
                time_limit_secs: 3600,
            },
        );
        spec.project = Some("churn".into());
        crate::model::Experiment {
            id,
            owner: owner.into(),
            unix_user: "root".into(),
            spec,
            submitted_at: start,
            state: State::Finished {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                signal: None,
                stop: None,
                started_at: Some(start),
                ended_at: start + secs,
            },
            transitions: Vec::new(),
            host: "box".into(),
            backend: "local".into(),
            usage: ResourceUse::default(),
        }
    }

    /// An ed25519 public key registered to the bootstrap admin `root`.
    pub const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsmWNLTwvIyW9lRhCopauIQbWxrZzUVvjXMnud4kAdR alice@laptop";
    /// A third ed25519 public key, unregistered at first.
    pub const KEY_C: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFeJa0Y4QC9QPSp66qQdOIC6kGLMTCVG+3P8Xh6UvBC carol@box";
    /// Another ed25519 public key, unregistered at first.
    pub const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAqcYuAKE6ko+LQJyTPa97dsNu1sgRU0TEQgv27Cnufs bob@desk";

    /// Adds lab user `name` with `role`, running as root (shared, allowed
    /// for tests); their principal.
    pub fn principal(lab: &Lab, name: &str, role: Role) -> Principal {
        let admin = lab.local_operator().expect("admin");
        let root = UnixMapping {
            account: Some("root".into()),
            allow_system_account: true,
            allow_shared: true,
        };
        lab.add_user(&admin, name, role, &root).expect("add");
        Principal {
            user: name.into(),
            role,
            unix_user: Some("root".into()),
            key_fingerprint: None,
            since: 0,
        }
    }

    /// A fresh store with admin `root` owning `KEY_A`.
    pub fn lab_with_admin() -> (tempfile::TempDir, Lab) {
        lab_with_admin_seeing(Vec::new())
    }

    /// [`lab_with_admin`] whose monitor sees `gpus`.
    pub fn lab_with_admin_seeing(gpus: Vec<crate::monitor::GpuStatus>) -> (tempfile::TempDir, Lab) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let mut snapshot = crate::monitor::UsageSnapshot::default();
        snapshot.host.cores = 8;
        snapshot.host.memory_total = 32 << 30;
        snapshot.gpus = gpus;
        let monitor = MonitorHandle::fixed(snapshot, Default::default());
        let lab = Lab::new(store, monitor).with_data_dir(dir.path().to_path_buf());
        let admin =
            AdminBootstrap::collect("root", Some("root"), &[KEY_A.into()], &[], None, || {
                Err("no generation in tests".into())
            })
            .expect("collect");
        lab.bootstrap_admin(admin).expect("bootstrap");
        (dir, lab)
    }
}
