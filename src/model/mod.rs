//! Domain types: plain data with serde, no storage or I/O.
//!
//! Owns what a lab user, a role and a registered key are, and the rules for
//! valid names and keys; every type the store keeps is defined here. Must not touch the store, the network or the screen.

mod audit;
mod cost;
mod experiment;
mod gpu;
mod host_limit;
mod key;
mod metric;
mod notebook;
mod notice;
mod profile;
mod provenance;
mod quota;
mod usage;
mod user;

pub use audit::AuditEvent;
pub use cost::{CostRates, Hours};
pub use experiment::{
    CommandLine, EXPERIMENT_COLUMNS, Experiment, ExperimentSpec, MAX_DURATION_SECS, Outcome,
    ResourceUse, Resources, State, Stop, Transition, end_status, is_reserved_env, parse_duration,
    parse_size, signal_name,
};
pub use gpu::{HostGpu, cuda_visible};
pub use host_limit::HostLimit;
pub use key::{KeyError, KeyRecord, PROOF_NAMESPACE, PublicKeyInfo};
pub use metric::{
    MAX_METRIC_NAMES, MAX_METRIC_VALUES, MetricSample, MetricSource, MetricSummary, MetricsRead,
};
pub use notebook::{Comment, Conclusion, MAX_COMMENT_BYTES, Verdict};
pub use notice::{Announcement, MAX_NOTICE_CHARS, Notification};
pub use profile::{Spread, UseProfile, UseSample};
pub use provenance::{
    CachedHash, FileDigest, GitState, Interpreter, Package, Provenance, Skipped,
    normalize_package_name,
};
pub use quota::{Quota, QuotaScope};
pub use usage::{Bucket, ClosedBucket, METRICS, Metric, Usage};
pub use user::{NameError, Role, User, validate_user_name};
