//! The audit trail for admins: every administrative and state-changing
//! action (who, when, what, from what to what), newest first, narrowed by
//! time, user and kind (`audit`, the Admin tab's Audit view). Entries are
//! written by the service as it makes each change ([`super::Change`]);
//! the trail is append-only: nothing here edits or removes an entry.

use super::{Lab, LabError, LabResult, Principal, require_admin};
use crate::model::AuditEvent;

/// Entries a page has unless asked otherwise.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;
/// Most entries one page may ask for.
pub const MAX_AUDIT_LIMIT: usize = 10_000;

/// Which entries of the trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Only changes this lab user made, or made to this user.
    pub user: Option<String>,
    /// Only this kind (`user.role`), area (`user`), or entries whose words
    /// contain this text.
    pub action: Option<String>,
    /// At most this many (0: [`DEFAULT_AUDIT_LIMIT`]).
    pub limit: usize,
}

impl AuditQuery {
    /// Reads the interface's filter: `user:U action:A since:T` in any
    /// order, each at most once (`since` as `audit --since` takes it, with
    /// `now_ms` the time now in milliseconds).
    pub fn parse(text: &str, now_ms: i64) -> Result<AuditQuery, String> {
        let mut query = AuditQuery::default();
        for word in text.split_whitespace() {
            let (key, value) = word
                .split_once(':')
                .filter(|(_, v)| !v.is_empty())
                .ok_or_else(|| format!("{word:?}: write user:U, action:A or since:T"))?;
            let taken = match key {
                "user" => query.user.replace(value.to_string()).is_some(),
                "action" => query.action.replace(value.to_string()).is_some(),
                "since" => {
                    let ms = crate::output::journal::parse_since(value, now_ms)
                        .map_err(|e| format!("since:{value}: {e}"))?;
                    query.since.replace(ms.div_euclid(1000)).is_some()
                }
                _ => return Err(format!("{key}: not user, action or since")),
            };
            if taken {
                return Err(format!("{key}: given twice"));
            }
        }
        Ok(query)
    }

    /// Whether `event` is one of the entries asked for (its time aside).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let user = self
            .user
            .as_deref()
            .is_none_or(|u| event.actor == u || event.subject.strip_prefix("user ") == Some(u));
        let action = self.action.as_deref().is_none_or(|a| {
            event.kind == a
                || event
                    .kind
                    .strip_prefix(a)
                    .is_some_and(|rest| rest.starts_with('.'))
                || event.action.to_lowercase().contains(&a.to_lowercase())
        });
        user && action
    }
}

/// The fields in which `before` and `after` differ, each side as
/// `field=value, …` (`none` for an absent value): what an audit entry says
/// of a record with many fields, such as a quota.
pub(super) fn changed_fields<T: serde::Serialize>(before: &T, after: &T) -> (String, String) {
    let fields = |value: &T| match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (fields(before), fields(after));
    let shown = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "none".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut was = Vec::new();
    let mut now = Vec::new();
    for key in old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)))
    {
        if old.get(key) != new.get(key) {
            was.push(format!("{key}={}", shown(old.get(key))));
            now.push(format!("{key}={}", shown(new.get(key))));
        }
    }
    (was.join(", "), now.join(", "))
}

impl Lab {
    /// The entries of the audit trail `query` asks for, newest first
    /// (admins only).
    pub fn audit_log(&self, p: &Principal, query: &AuditQuery) -> LabResult<Vec<AuditEvent>> {
        let p = self.current(p)?;
        require_admin(&p, "read the audit trail")?;
        if query.limit > MAX_AUDIT_LIMIT {
            return Err(LabError::Invalid(format!(
                "--limit {}: at most {MAX_AUDIT_LIMIT} at once",
                query.limit
            )));
        }
        let limit = match query.limit {
            0 => DEFAULT_AUDIT_LIMIT,
            n => n,
        };
        let mut found = Vec::new();
        self.store.walk_audit_newest(|event| {
            if query.since.is_some_and(|since| event.at < since) {
                return false;
            }
            if query.matches(&event) {
                found.push(event);
            }
            found.len() < limit
        })?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::model::Role;

    fn event(actor: &str, kind: &str, subject: &str, words: &str) -> AuditEvent {
        AuditEvent {
            at: 0,
            actor: actor.into(),
            action: words.into(),
            kind: kind.into(),
            subject: subject.into(),
            before: None,
            after: None,
        }
    }

    #[test]
    fn a_query_matches_by_who_acted_or_was_acted_on_and_by_kind_area_or_words() {
        let e = event(
            "root",
            "user.role",
            "user ana",
            "changed role of ana from member to viewer",
        );
        let q = |user: Option<&str>, action: Option<&str>| AuditQuery {
            user: user.map(str::to_string),
            action: action.map(str::to_string),
            ..AuditQuery::default()
        };
        assert!(q(None, None).matches(&e));
        assert!(q(Some("root"), None).matches(&e));
        assert!(q(Some("ana"), None).matches(&e));
        assert!(!q(Some("an"), None).matches(&e));
        assert!(q(None, Some("user.role")).matches(&e));
        assert!(q(None, Some("user")).matches(&e));
        assert!(!q(None, Some("use")).matches(&e), "an area is a whole word");
        assert!(q(None, Some("VIEWER")).matches(&e), "words, any case");
        assert!(!q(None, Some("quota")).matches(&e));
        // An entry of an earlier build: words only.
        let old = event("root", "", "", "removed user bob");
        assert!(q(None, Some("removed")).matches(&old));
        assert!(!q(Some("bob"), None).matches(&old));
    }

    #[test]
    fn a_change_of_a_record_names_only_the_fields_that_changed() {
        #[derive(serde::Serialize)]
        struct Limits {
            running: Option<u32>,
            mem: Option<u64>,
            name: String,
        }
        let a = Limits {
            running: Some(2),
            mem: None,
            name: "x".into(),
        };
        let b = Limits {
            running: Some(4),
            mem: Some(64),
            name: "x".into(),
        };
        assert_eq!(
            changed_fields(&a, &b),
            ("mem=none, running=2".into(), "mem=64, running=4".into())
        );
        assert_eq!(changed_fields(&a, &a), (String::new(), String::new()));
    }

    #[test]
    fn the_interfaces_filter_reads_user_action_and_since_or_says_what_is_wrong() {
        let q = AuditQuery::parse("action:quota user:ana since:1h", 7_200_000).expect("parse");
        assert_eq!(q.user.as_deref(), Some("ana"));
        assert_eq!(q.action.as_deref(), Some("quota"));
        assert_eq!(q.since, Some(3600));
        assert_eq!(AuditQuery::parse("", 0), Ok(AuditQuery::default()));
        for bad in ["ana", "colour:red", "user:", "user:a user:b", "since:soon"] {
            assert!(AuditQuery::parse(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_admins_read_the_trail_and_it_says_from_what_to_what() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        lab.set_role(&admin, "mike", Role::Viewer).expect("demote");
        match lab.audit_log(&mike, &AuditQuery::default()) {
            Err(LabError::PermissionDenied(_)) => {}
            other => panic!("a non-admin read the trail: {other:?}"),
        }
        let roles = AuditQuery {
            action: Some("user.role".into()),
            ..AuditQuery::default()
        };
        let found = lab.audit_log(&admin, &roles).expect("read");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].subject, "user mike");
        assert_eq!(found[0].before.as_deref(), Some("member"));
        assert_eq!(found[0].after.as_deref(), Some("viewer"));
        assert_eq!(found[0].actor, admin.user);
        let newest_first = lab.audit_log(&admin, &AuditQuery::default()).expect("all");
        assert_eq!(newest_first[0].kind, "user.role", "{newest_first:?}");
        let too_many = AuditQuery {
            limit: MAX_AUDIT_LIMIT + 1,
            ..AuditQuery::default()
        };
        assert!(matches!(
            lab.audit_log(&admin, &too_many),
            Err(LabError::Invalid(_))
        ));
    }
}
