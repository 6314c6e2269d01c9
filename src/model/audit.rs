//! The audit trail: who changed what, and when, from what to what.

use serde::{Deserialize, Serialize};

/// One entry of the audit trail of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Seconds since the epoch.
    pub at: i64,
    /// Lab user who acted.
    pub actor: String,
    /// What was done, in words.
    pub action: String,
    /// The kind of change, `area.verb` (`user.role`, `experiment.cancel`);
    /// empty in entries written before kinds existed.
    #[serde(default)]
    pub kind: String,
    /// What it changed (`user ana`, `experiment 12`, `project churn`).
    #[serde(default)]
    pub subject: String,
    /// The value before, when there was one.
    #[serde(default)]
    pub before: Option<String>,
    /// The value after, when there is one.
    #[serde(default)]
    pub after: Option<String>,
}

impl AuditEvent {
    /// `before → after` (`-` for a side without a value), when it says either.
    pub fn change(&self) -> Option<String> {
        if self.before.is_none() && self.after.is_none() {
            return None;
        }
        Some(format!(
            "{} → {}",
            self.before.as_deref().unwrap_or("-"),
            self.after.as_deref().unwrap_or("-")
        ))
    }
}
