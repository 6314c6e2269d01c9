//! What admins tell everyone: the announcement shown on connect, and
//! notifications to the sessions open now.

use serde::{Deserialize, Serialize};

/// Most characters of an announcement or a notification.
pub const MAX_NOTICE_CHARS: usize = 500;

/// The message of the day, set by an admin, shown on connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// What it says (one paragraph).
    pub text: String,
    /// The admin who set it.
    pub by: String,
    /// When (seconds since the epoch).
    pub at: i64,
}

/// A line for the open sessions of one user, or of everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its place in the order sent (a session asks for those after the
    /// last it showed).
    pub seq: u64,
    /// Its lab user; `None`: everyone.
    pub to: Option<String>,
    /// What it says.
    pub text: String,
    /// Who sent it (a lab user, or `labbench` for the server's own).
    pub by: String,
    /// When (seconds since the epoch).
    pub at: i64,
}
