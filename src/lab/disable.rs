//! Disabling a user: their key no longer logs in, their open sessions end
//! (every action decides with the account as it is now), their queued
//! experiments are held (the scheduler starts none), running ones run on.
//! Enabling restores all of it; nothing was deleted. Admins only, audited;
//! nobody disables themselves or the last enabled admin.

use super::{Change, Lab, LabError, LabResult, Principal, require_admin};
use crate::model::Role;

impl Lab {
    /// Disables (`true`) or enables user `name` (admin only).
    pub fn set_disabled(&self, p: &Principal, name: &str, disabled: bool) -> LabResult<()> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_admin(p, "disable or enable users")?;
        let mut user = self.existing_user(name)?;
        if disabled && user.name == p.user {
            return Err(LabError::Invalid(
                "you cannot disable your own account; ask another admin".into(),
            ));
        }
        if disabled && user.role == Role::Admin {
            let enabled_admins = self
                .store
                .users()?
                .iter()
                .filter(|u| u.role == Role::Admin && !u.disabled)
                .count();
            if enabled_admins <= 1 {
                return Err(LabError::Invalid(format!(
                    "{name} is the last enabled admin"
                )));
            }
        }
        if user.disabled == disabled {
            return Ok(());
        }
        user.disabled = disabled;
        self.store.put_user(&user)?;
        let word = |d: bool| if d { "disabled" } else { "enabled" };
        self.audit(
            p,
            Change::new(
                if disabled {
                    "user.disable"
                } else {
                    "user.enable"
                },
                format!("user {name}"),
                format!("{} user {name}", word(disabled)),
            )
            .changing(Some(word(!disabled).into()), Some(word(disabled).into())),
        )?;
        // Open sessions check the account again now; the queue is planned
        // again (held experiments start once enabled).
        self.revoked();
        self.queue_changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::SubmitRequest;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::model::CommandLine;
    use crate::sched::{Decision, WaitReason};

    #[test]
    fn a_disabled_user_does_nothing_and_their_queue_is_held_until_enabled() {
        let (_d, lab) = lab_with_admin();
        let root = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let id = lab
            .submit(
                &mike,
                SubmitRequest {
                    command: Some(CommandLine::Argv(vec!["true".into()])),
                    workdir: Some("/tmp".into()),
                    ..SubmitRequest::default()
                },
            )
            .expect("submit");
        assert!(matches!(
            lab.set_disabled(&mike, "mike", true),
            Err(LabError::PermissionDenied(_))
        ));
        lab.set_disabled(&root, "mike", true).expect("disable");
        assert!(matches!(
            lab.whoami(&mike),
            Err(LabError::PermissionDenied(m)) if m.contains("disabled")
        ));
        let plan = lab.plan().expect("plan");
        assert_eq!(
            plan,
            vec![Decision::Wait {
                id,
                reason: WaitReason::OwnerDisabled
            }]
        );
        assert_eq!(
            WaitReason::OwnerDisabled.to_string(),
            "held: its owner's account is disabled"
        );
        let listed = lab.list_users(&root).expect("users");
        assert!(listed.iter().any(|u| u.name == "mike" && u.disabled));
        lab.set_disabled(&root, "mike", false).expect("enable");
        assert!(lab.whoami(&mike).is_ok());
        assert!(matches!(
            lab.plan().expect("plan")[0],
            Decision::Start { .. }
        ));
        assert!(matches!(
            lab.set_disabled(&root, "root", true),
            Err(LabError::Invalid(_))
        ));
        // A disabled admin does not count: root stays the last one who acts.
        lab.set_role(&root, "mike", Role::Admin).expect("admin");
        lab.set_disabled(&root, "mike", true).expect("disable");
        assert!(matches!(
            lab.set_role(&root, "root", Role::Member),
            Err(LabError::Invalid(m)) if m.contains("last admin")
        ));
        assert_eq!(lab.local_operator().expect("operator").user, "root");
    }
}
