//! Host limits (the login-node guard): caps on what a Unix user runs on
//! the host outside the queue, per Unix user or a default for every lab
//! user's account. Admins set them (audited); the guard ([`crate::guard`])
//! applies them each second. Root and the daemon's own account are never
//! capped.

use serde::Serialize;

use super::{Change, Lab, LabError, LabResult, Principal, require_admin};
use crate::model::HostLimit;
use crate::store::DEFAULT_HOST_LIMIT_KEY;

/// A host limit as `hostlimit show` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostLimitShown {
    /// A Unix user, or `default`.
    pub scope: String,
    /// CPU cores.
    pub cpus: Option<f64>,
    /// Memory, bytes.
    pub memory_bytes: Option<u64>,
}

/// One Unix account the guard caps now.
#[derive(Debug, Clone, PartialEq)]
pub struct CappedAccount {
    /// Unix user name.
    pub unix_user: String,
    /// Its uid.
    pub uid: u32,
    /// Its caps.
    pub limit: HostLimit,
}

impl Lab {
    /// Sets the host limit of Unix user `unix_user` (`None`: the default);
    /// `limit` `None` removes it. Admins only, audited.
    pub fn set_host_limit(
        &self,
        p: &Principal,
        unix_user: Option<&str>,
        limit: Option<HostLimit>,
    ) -> LabResult<()> {
        let p = &self.current(p)?;
        require_admin(p, "set host limits")?;
        if let Some(l) = &limit {
            if l.cpus.is_some_and(|c| !c.is_finite() || c < 0.01) {
                return Err(LabError::Invalid("--cpus: at least 0.01".into()));
            }
            if l.memory_bytes.is_some_and(|m| m < 16 << 20) {
                return Err(LabError::Invalid("--mem: at least 16M".into()));
            }
            if l.cpus.is_some_and(|c| c > 4096.0) {
                return Err(LabError::Invalid("--cpus: at most 4096".into()));
            }
            if !l.caps() {
                return Err(LabError::Invalid(
                    "give --cpus, --mem or both (hostlimit rm removes a limit)".into(),
                ));
            }
        }
        let key = match unix_user {
            None => DEFAULT_HOST_LIMIT_KEY.to_string(),
            // A limit is removed whatever became of its account.
            Some(name) if limit.is_none() => name.to_string(),
            Some(name) => {
                let account = crate::sys::accounts::by_name(name)
                    .map_err(LabError::Unavailable)?
                    .ok_or_else(|| LabError::NotFound(format!("no Unix user {name}")))?;
                if account.uid == rustix::process::geteuid().as_raw() {
                    return Err(LabError::Invalid(format!(
                        "{name} runs labbench itself: it is never capped"
                    )));
                }
                if crate::sys::accounts::is_system_uid(account.uid) {
                    return Err(LabError::Invalid(format!(
                        "{name} is a system account (its services would leave their own cgroups): only people's accounts are capped"
                    )));
                }
                name.to_string()
            }
        };
        let scope = unix_user.map_or("default".to_string(), |u| format!("unix user {u}"));
        let before = self
            .store
            .host_limits()?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, l)| describe(&l));
        self.store.set_host_limit(&key, limit.as_ref())?;
        self.audit(
            p,
            Change::new(
                if limit.is_some() {
                    "hostlimit.set"
                } else {
                    "hostlimit.rm"
                },
                scope.clone(),
                format!("set the host limit of {scope}"),
            )
            .changing(before, limit.as_ref().map(describe)),
        )
    }

    /// Every host limit set (admins).
    pub fn host_limits(&self, p: &Principal) -> LabResult<Vec<HostLimitShown>> {
        let p = &self.current(p)?;
        require_admin(p, "see host limits")?;
        Ok(self
            .store
            .host_limits()?
            .into_iter()
            .map(|(key, l)| HostLimitShown {
                scope: if key == DEFAULT_HOST_LIMIT_KEY {
                    "default".into()
                } else {
                    key
                },
                cpus: l.cpus,
                memory_bytes: l.memory_bytes,
            })
            .collect())
    }

    /// Who is in the login-node guard's penalty box, and until when, as
    /// last kept (the guard's own state; no caller decides it).
    pub(crate) fn kept_penalties(&self) -> LabResult<std::collections::BTreeMap<u32, i64>> {
        Ok(self.store.penalties()?)
    }

    /// Keeps who is in the penalty box, so that a restart does not let
    /// them out early.
    pub(crate) fn keep_penalties(
        &self,
        boxed: &std::collections::BTreeMap<u32, i64>,
    ) -> LabResult<()> {
        Ok(self.store.set_penalties(boxed)?)
    }

    /// The Unix accounts the guard caps now, with their caps: those with a
    /// limit of their own, and, under a default, the account of every lab
    /// user; never root, a system account nor the daemon's own account.
    /// Also whether every account could be looked up (if not, the guard
    /// keeps what it applied to the others rather than release them).
    pub fn capped_accounts(&self) -> LabResult<(Vec<CappedAccount>, bool)> {
        let limits = self.store.host_limits()?;
        let default = limits
            .iter()
            .find(|(k, _)| k == DEFAULT_HOST_LIMIT_KEY)
            .map(|(_, l)| *l)
            .unwrap_or_default();
        let mut names: std::collections::BTreeMap<String, HostLimit> = Default::default();
        if default.caps() {
            for user in self.store.users()? {
                if let Some(unix) = user.unix_user {
                    names.insert(unix, default);
                }
            }
        }
        for (key, limit) in limits {
            if key != DEFAULT_HOST_LIMIT_KEY {
                names.insert(key, limit.or(&default));
            }
        }
        let daemon = rustix::process::geteuid().as_raw();
        let mut capped = Vec::new();
        let mut complete = true;
        for (unix_user, limit) in names {
            // An account the name service does not answer for is skipped
            // this round, never capped by a guess.
            let account = match crate::sys::accounts::by_name(&unix_user) {
                Ok(Some(account)) => account,
                Ok(None) => continue,
                Err(_) => {
                    complete = false;
                    continue;
                }
            };
            if account.uid == 0
                || account.uid == daemon
                || crate::sys::accounts::is_system_uid(account.uid)
            {
                continue;
            }
            capped.push(CappedAccount {
                unix_user,
                uid: account.uid,
                limit,
            });
        }
        Ok((capped, complete))
    }
}

/// `4 CPUs, 8G` as the audit trail shows a limit.
fn describe(l: &HostLimit) -> String {
    let cpus = l
        .cpus
        .map_or("CPUs not capped".into(), |c| format!("{c} CPUs"));
    let mem = l.memory_bytes.map_or("memory not capped".into(), |m| {
        crate::units::short_bytes(m as f64)
    });
    format!("{cpus}, {mem}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{lab_with_admin, principal};
    use crate::model::Role;

    #[test]
    fn a_users_own_cap_wins_the_default_fills_the_rest_and_root_is_never_capped() {
        let (_d, lab) = lab_with_admin();
        let root = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let two_cpus = HostLimit {
            cpus: Some(2.0),
            memory_bytes: None,
        };
        assert!(matches!(
            lab.set_host_limit(&mike, None, Some(two_cpus)),
            Err(LabError::PermissionDenied(_))
        ));
        lab.set_host_limit(&root, None, Some(two_cpus))
            .expect("default");
        for system in ["root", "nobody"] {
            assert!(matches!(
                lab.set_host_limit(&root, Some(system), Some(two_cpus)),
                Err(LabError::Invalid(_))
            ));
        }
        lab.set_host_limit(&root, Some("gone"), None)
            .expect("removing needs no account");
        assert!(matches!(
            lab.set_host_limit(&root, Some("no-such-account"), Some(two_cpus)),
            Err(LabError::NotFound(_))
        ));
        let (capped, complete) = lab.capped_accounts().expect("capped");
        assert!(complete);
        assert!(
            capped
                .iter()
                .all(|a| a.uid != 0 && !crate::sys::accounts::is_system_uid(a.uid)),
            "{capped:?}"
        );
        let shown = lab.host_limits(&root).expect("show");
        assert_eq!(shown.len(), 1);
        assert!(lab.host_limits(&mike).is_err());
    }
}
