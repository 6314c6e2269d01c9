//! What admins tell everyone: the announcement (message of the day),
//! shown on connect, and notifications to the sessions open now. Setting
//! either is an admin's (decided here with the caller's current role, and
//! audited); everyone reads the announcement and their own notifications.
//! Notifications live in memory only: they are for the sessions open when
//! they are sent (the last [`KEPT_NOTIFICATIONS`] are kept for them).

use std::collections::VecDeque;

use super::{Change, Lab, LabError, LabResult, Principal, now, require_admin};
use crate::model::{Announcement, MAX_NOTICE_CHARS, Notification};

/// Notifications kept for the open sessions to pick up.
pub const KEPT_NOTIFICATIONS: usize = 256;

/// The notifications sent lately, oldest first.
#[derive(Debug, Default)]
pub(super) struct Notices {
    sent: std::sync::Mutex<VecDeque<Notification>>,
}

/// Refuses an empty or overlong text, or one with control characters but
/// newlines (which become spaces: a notice is one line).
fn checked(what: &str, text: &str) -> LabResult<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err(LabError::Invalid(format!("the {what} is empty")));
    }
    if text.chars().count() > MAX_NOTICE_CHARS {
        return Err(LabError::Invalid(format!(
            "the {what} has {} characters; at most {MAX_NOTICE_CHARS}",
            text.chars().count()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(LabError::Invalid(format!(
            "the {what} has control characters"
        )));
    }
    Ok(text)
}

impl Lab {
    /// The announcement, if one is set (every role reads it).
    pub fn announcement(&self, p: &Principal) -> LabResult<Option<Announcement>> {
        self.current(p)?;
        Ok(self.store.announcement()?)
    }

    /// Sets the announcement to `text`, or clears it (`None`); admins only.
    pub fn set_announcement(
        &self,
        p: &Principal,
        text: Option<&str>,
    ) -> LabResult<Option<Announcement>> {
        let p = self.current(p)?;
        require_admin(&p, "set the announcement")?;
        let announcement = text
            .map(|t| checked("announcement", t))
            .transpose()?
            .map(|text| Announcement {
                text,
                by: p.user.clone(),
                at: now(),
            });
        let before = self.store.announcement()?.map(|a| a.text);
        self.store.set_announcement(announcement.as_ref())?;
        let words = match &announcement {
            Some(_) => "set the announcement",
            None => "cleared the announcement",
        };
        self.audit(
            &p,
            Change::new("announcement.set", "announcement", words)
                .changing(before, announcement.as_ref().map(|a| a.text.clone())),
        )?;
        Ok(announcement)
    }

    /// Sends `text` to the open sessions of lab user `to` (`None`: of
    /// everyone); admins only. How many interface sessions are open to
    /// see it.
    pub fn notify(&self, p: &Principal, to: Option<&str>, text: &str) -> LabResult<usize> {
        let p = self.current(p)?;
        require_admin(&p, "send notifications")?;
        let text = checked("notification", text)?;
        if let Some(user) = to {
            self.existing_user_record(user)?;
        }
        let subject = to.map_or("everyone".to_string(), |u| format!("user {u}"));
        self.audit(
            &p,
            Change::new(
                "notify",
                subject.clone(),
                format!("notified {subject}: {text}"),
            ),
        )?;
        self.send_notification(to, &p.user, text);
        let open = self
            .sessions()
            .users()
            .iter()
            .filter(|u| to.is_none_or(|t| t == u.user))
            .map(|u| u.shells)
            .sum();
        Ok(open)
    }

    /// Tells the sessions of every lab user whose Unix account is
    /// `unix_user` (the guard's penalties).
    pub fn notify_unix_user(&self, unix_user: &str, text: String) {
        if let Ok(users) = self.store.users() {
            for user in users {
                if user.unix_user.as_deref() == Some(unix_user) {
                    self.send_notification(Some(&user.name), "labbench", text.clone());
                }
            }
        }
    }

    /// Tells `owner` and every admin (budget, idle and limit events).
    pub(super) fn tell_owner_and_admins(&self, owner: &str, text: String) {
        let mut told: Vec<String> = vec![owner.to_string()];
        if let Ok(users) = self.store.users() {
            told.extend(
                users
                    .into_iter()
                    .filter(|u| u.role == crate::model::Role::Admin && u.name != owner)
                    .map(|u| u.name),
            );
        }
        for user in told {
            self.send_notification(Some(&user), "labbench", text.clone());
        }
    }

    /// Queues a notification (the server's own events use it too).
    pub(crate) fn send_notification(&self, to: Option<&str>, by: &str, text: String) {
        let mut sent = self.notices.sent.lock().unwrap_or_else(|e| e.into_inner());
        let seq = sent.back().map_or(1, |n| n.seq + 1);
        sent.push_back(Notification {
            seq,
            to: to.map(str::to_string),
            text,
            by: by.to_string(),
            at: now(),
        });
        while sent.len() > KEPT_NOTIFICATIONS {
            sent.pop_front();
        }
    }

    /// The notifications for `p` after `seq` (theirs and everyone's),
    /// oldest first; a session starts from [`Lab::notification_seq`].
    pub fn notifications_after(&self, p: &Principal, seq: u64) -> Vec<Notification> {
        let sent = self.notices.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.iter()
            .filter(|n| n.seq > seq && n.to.as_ref().is_none_or(|to| *to == p.user))
            .cloned()
            .collect()
    }

    /// The last notification's place (a new session shows what comes after).
    pub fn notification_seq(&self) -> u64 {
        self.notices
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .back()
            .map_or(0, |n| n.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::model::Role;

    #[test]
    fn admins_set_the_announcement_everyone_reads_it_and_the_trail_says_so() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let vera = principal(&lab, "vera", Role::Viewer);
        assert_eq!(lab.announcement(&vera).expect("read"), None);
        assert!(matches!(
            lab.set_announcement(&vera, Some("hi")),
            Err(LabError::PermissionDenied(_))
        ));
        lab.set_announcement(&admin, Some("GPU 3 is down\nuntil Monday"))
            .expect("set");
        let shown = lab.announcement(&vera).expect("read").expect("set");
        assert_eq!(shown.text, "GPU 3 is down until Monday");
        assert_eq!(shown.by, admin.user);
        for bad in ["", "  ", &"x".repeat(MAX_NOTICE_CHARS + 1), "bell\u{7}"] {
            assert!(
                matches!(
                    lab.set_announcement(&admin, Some(bad)),
                    Err(LabError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        lab.set_announcement(&admin, None).expect("clear");
        assert_eq!(lab.announcement(&vera).expect("read"), None);
        let trail = lab
            .audit_log(
                &admin,
                &crate::lab::AuditQuery {
                    action: Some("announcement".into()),
                    ..Default::default()
                },
            )
            .expect("trail");
        assert_eq!(trail.len(), 2, "{trail:?}");
        assert_eq!(
            trail[0].before.as_deref(),
            Some("GPU 3 is down until Monday")
        );
        assert_eq!(trail[0].after, None);
    }

    #[test]
    fn a_notification_reaches_its_user_or_everyone_and_nobody_else() {
        let (_d, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let mary = principal(&lab, "mary", Role::Member);
        let start = lab.notification_seq();
        assert!(matches!(
            lab.notify(&mike, None, "hello"),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.notify(&admin, Some("nobody"), "hello"),
            Err(LabError::NotFound(_))
        ));
        lab.notify(&admin, Some("mike"), "your job is idle")
            .expect("to mike");
        lab.notify(&admin, None, "maintenance at 18:00")
            .expect("to all");
        let texts = |p: &Principal| -> Vec<String> {
            lab.notifications_after(p, start)
                .into_iter()
                .map(|n| n.text)
                .collect()
        };
        assert_eq!(texts(&mike), ["your job is idle", "maintenance at 18:00"]);
        assert_eq!(texts(&mary), ["maintenance at 18:00"]);
        let last = lab.notification_seq();
        assert!(lab.notifications_after(&mike, last).is_empty());
        for n in 0..KEPT_NOTIFICATIONS + 10 {
            lab.send_notification(None, "labbench", format!("n{n}"));
        }
        assert_eq!(lab.notifications_after(&mary, 0).len(), KEPT_NOTIFICATIONS);
    }
}
