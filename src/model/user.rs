use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a lab user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, keys and quotas.
    Admin,
    /// Submits and manages own experiments; sees shared usage and results.
    Member,
    /// Reads and comments: the business stakeholder.
    Viewer,
}

impl Role {
    /// All roles, most powerful first.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Viewer];

    /// The lowercase name used in commands and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected admin, member or viewer"))
    }
}

/// A person using the lab, identified by their SSH keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Lab user name (unique).
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The Unix account their experiments run as and their usage is
    /// measured by; `None` until an admin sets one (they cannot run
    /// experiments meanwhile).
    pub unix_user: Option<String>,
    /// Whether an admin allowed `unix_user` to be a system account (a uid
    /// below the host's `UID_MIN`, root included).
    #[serde(default)]
    pub system_account_allowed: bool,
    /// Seconds since the Unix epoch when the account was created.
    pub created_at: i64,
    /// Disabled by an admin: no login, no action, queued experiments held,
    /// until enabled again.
    #[serde(default)]
    pub disabled: bool,
}

/// A user or Unix name that breaks the naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// Which rule it breaks.
    pub reason: &'static str,
}

/// Checks a lab or Unix user name: 1–32 of `a-z A-Z 0-9 . _ -`, not starting with `-` or `.`.
pub fn validate_user_name(name: &str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("must not be empty");
    }
    if name.len() > 32 {
        return fail("at most 32 characters");
    }
    if name.starts_with('-') || name.starts_with('.') {
        return fail("must not start with '-' or '.'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return fail("use only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn user_names_follow_the_rules() {
        assert!(validate_user_name("alice").is_ok());
        assert!(validate_user_name("a.b_c-9").is_ok());
        assert!(validate_user_name("").is_err());
        assert!(validate_user_name("-x").is_err());
        assert!(validate_user_name("a b").is_err());
        assert!(validate_user_name("é").is_err());
        assert!(validate_user_name(&"x".repeat(33)).is_err());
    }
}
