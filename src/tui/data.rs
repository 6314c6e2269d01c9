//! The shared data a session draws, gathered by the session each frame
//! from the service (the view state is the session's own).

use std::collections::HashMap;
use std::sync::Arc;

use super::queue::logpane::LogLines;
use crate::lab::ConnectedUser;
use crate::model::Role;
use crate::monitor::{Usage, UsageSnapshot};

/// The shared data a session draws.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Who is looking.
    pub user: String,
    /// Their role.
    pub role: Option<Role>,
    /// Latest monitor figures (host, users, GPUs).
    pub usage: Arc<UsageSnapshot>,
    /// Unix user → lab user names.
    pub lab_names: HashMap<String, String>,
    /// Chart points for an open drill-down.
    pub drill_chart: Vec<(i64, Usage)>,
    /// Running experiments per Unix user (Dashboard's RUN column).
    pub running: HashMap<String, usize>,
    /// Of them, flagged idle (marked `!` in that column).
    pub idle: HashMap<String, usize>,
    /// Idle detection's rule, and every running experiment's standing
    /// (the Admin tab's Idle view).
    pub idle_report: (
        Option<crate::lab::IdleRuleShown>,
        Vec<crate::lab::IdleStatus>,
    ),
    /// Queued and running experiments on the Queue tab's screen.
    pub queue: Vec<crate::lab::ExperimentView>,
    /// Row of the first of them among all the Queue tab lists.
    pub queue_offset: usize,
    /// How many the Queue tab lists in all.
    pub queue_total: usize,
    /// Text of an open Queue details pane.
    pub queue_pane_text: Option<String>,
    /// The History tab's page, newest first.
    pub history: Vec<crate::lab::HistoryRow>,
    /// Where History's next page starts, when there is one.
    pub history_next: Option<u64>,
    /// Whether History's sort ranked only the newest of what matched.
    pub history_capped: bool,
    /// The activity feed, newest first (History's `f`).
    pub feed: Vec<crate::lab::FeedItem>,
    /// Each project's figures (History's `P`).
    pub projects: Vec<crate::lab::ProjectSummary>,
    /// Every package with the experiments that used it (History's `D`).
    pub packages: Vec<crate::lab::PackageSummary>,
    /// The experiments that used a package or read a source (History's
    /// `D` with a query).
    pub deps_uses: Vec<crate::lab::DepsUse>,
    /// The charts of an open experiment page.
    pub page_charts: Option<PageCharts>,
    /// Text of an open History pane (the experiment page, a comparison).
    pub history_pane_text: Option<String>,
    /// The comments the caller may change, listed to choose one (`e`, `x`
    /// on an experiment page).
    pub history_comments: Vec<crate::model::Comment>,
    /// What the user's experiments cost this month (`12.34 EUR`), when
    /// prices are set.
    pub month_cost: Option<String>,
    /// Host limits (Admin › Host limits).
    pub host_limits: Vec<crate::lab::HostLimitShown>,
    /// The keys of the user whose keys pane is open (Admin › Users).
    pub user_keys: Vec<crate::model::KeyRecord>,
    /// The users, as the Admin tab's Users view lists them.
    pub users: Vec<crate::lab::UserSummary>,
    /// What experiments cost, as the Admin tab's Costs view sums them.
    pub costs: Option<crate::lab::CostReport>,
    /// Every quota set, the default first (the Admin tab's Quotas view).
    pub quotas: Vec<(crate::model::QuotaScope, crate::model::Quota)>,
    /// What the limits typed in the quota editor would do, or why they
    /// cannot be previewed.
    pub quota_preview: Option<Result<crate::lab::QuotaChangePreview, String>>,
    /// The audit trail as the Admin tab's filter selects it, newest first.
    pub audit: Vec<crate::model::AuditEvent>,
    /// Lines of the log in an open log pane.
    pub log: Arc<LogLines>,
    /// Users with live sessions.
    pub connected: Vec<ConnectedUser>,
    /// Live sessions on the server.
    pub sessions: usize,
    /// Wall clock, already formatted.
    pub clock: String,
}

/// Which use an experiment page charts (`u` goes through them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UseChart {
    /// Memory in use, against the request.
    #[default]
    Memory,
    /// CPU cores busy, against the request.
    Cpu,
    /// GPU memory in use.
    GpuMemory,
}

impl UseChart {
    /// The next one.
    pub fn next(self) -> UseChart {
        match self {
            UseChart::Memory => UseChart::Cpu,
            UseChart::Cpu => UseChart::GpuMemory,
            UseChart::GpuMemory => UseChart::Memory,
        }
    }
}

/// The charts of History's experiment page, or of a comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageCharts {
    /// The metric charted.
    pub metric: Option<MetricChart>,
    /// Memory in use over the run: (seconds from its start, bytes).
    pub memory: Vec<(f64, f64)>,
    /// The memory asked for, bytes.
    pub memory_asked: f64,
    /// CPU cores busy over the run: (seconds from its start, cores).
    pub cpu: Vec<(f64, f64)>,
    /// The CPU cores asked for.
    pub cpu_asked: f64,
    /// GPU memory in use over the run: (seconds from its start, bytes).
    pub gpu_memory: Vec<(f64, f64)>,
    /// Which use is charted (`u`).
    pub shown: UseChart,
    /// The metric's values on a log scale.
    pub log: bool,
}

/// The metric an experiment page charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricChart {
    /// Its name.
    pub name: String,
    /// Its place among the experiment's metrics (by name).
    pub at: usize,
    /// How many metrics the experiment has.
    pub count: usize,
    /// Its lines: a label and (step, value) points each (one on a page,
    /// one per experiment in a comparison).
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
}
