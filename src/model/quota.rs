//! What an admin allows: per user, per project, and a default for everyone.

use serde::{Deserialize, Serialize};

/// Limits set by admins (`None`: not limited here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// Experiments running at once.
    pub max_running: Option<u32>,
    /// CPU cores in use at once.
    pub max_cpus: Option<f64>,
    /// Memory in use at once, bytes.
    pub max_memory_bytes: Option<u64>,
    /// GPUs in use at once.
    pub max_gpus: Option<u32>,
    /// Longest wall-time limit of one experiment, seconds.
    pub max_time_secs: Option<u64>,
    /// Experiments queued at once (`None`: the queue's default).
    #[serde(default)]
    pub max_queued: Option<u32>,
    /// GPU-hours reserved in a calendar month (in the zone of costs).
    #[serde(default)]
    pub max_gpu_hours_month: Option<f64>,
    /// Cost reserved in a calendar month, in the currency of costs.
    #[serde(default)]
    pub max_cost_month: Option<f64>,
}

impl Quota {
    /// These limits, with `fallback`'s where these set none: a user's
    /// quota over the default.
    pub fn or(&self, fallback: &Quota) -> Quota {
        Quota {
            max_running: self.max_running.or(fallback.max_running),
            max_cpus: self.max_cpus.or(fallback.max_cpus),
            max_memory_bytes: self.max_memory_bytes.or(fallback.max_memory_bytes),
            max_gpus: self.max_gpus.or(fallback.max_gpus),
            max_time_secs: self.max_time_secs.or(fallback.max_time_secs),
            max_queued: self.max_queued.or(fallback.max_queued),
            max_gpu_hours_month: self.max_gpu_hours_month.or(fallback.max_gpu_hours_month),
            max_cost_month: self.max_cost_month.or(fallback.max_cost_month),
        }
    }

    /// Whether it limits anything by the month.
    pub fn has_monthly(&self) -> bool {
        self.max_gpu_hours_month.is_some() || self.max_cost_month.is_some()
    }
}

/// Whom a quota applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaScope {
    /// Every user, where their own quota sets no such limit.
    Default,
    /// One lab user's experiments.
    User(String),
    /// A project's experiments, whoever runs them (the sum of them all).
    Project(String),
}

impl QuotaScope {
    /// Its key in the store: a user's name (as quotas were first kept),
    /// `project:NAME`, or `default:` (user names have no `:`).
    pub fn key(&self) -> String {
        match self {
            QuotaScope::Default => "default:".into(),
            QuotaScope::User(u) => u.clone(),
            QuotaScope::Project(p) => format!("project:{p}"),
        }
    }

    /// The scope stored under `key`.
    pub fn from_key(key: &str) -> QuotaScope {
        match key.split_once(':') {
            Some(("default", "")) => QuotaScope::Default,
            Some(("project", p)) => QuotaScope::Project(p.to_string()),
            _ => QuotaScope::User(key.to_string()),
        }
    }
}

impl std::fmt::Display for QuotaScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaScope::Default => f.write_str("default"),
            QuotaScope::User(u) => write!(f, "user {u}"),
            QuotaScope::Project(p) => write!(f, "project {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_limits_win_and_the_default_fills_the_rest() {
        let user = Quota {
            max_gpus: Some(4),
            ..Quota::default()
        };
        let default = Quota {
            max_gpus: Some(1),
            max_cpus: Some(8.0),
            ..Quota::default()
        };
        let both = user.or(&default);
        assert_eq!((both.max_gpus, both.max_cpus), (Some(4), Some(8.0)));
        assert_eq!(both.max_running, None);
    }

    #[test]
    fn scopes_keep_their_keys() {
        for scope in [
            QuotaScope::Default,
            QuotaScope::User("ana".into()),
            QuotaScope::Project("churn:v2".into()),
        ] {
            assert_eq!(QuotaScope::from_key(&scope.key()), scope);
        }
        assert_eq!(QuotaScope::User("ana".into()).key(), "ana", "as before");
    }
}
