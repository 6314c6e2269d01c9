//! The audit trail: who changed what, and when.

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
}
