//! Lab users, their SSH keys and their quotas.

use super::codec::{decode, encode};
use super::{KEYS_TREE, QUOTAS_TREE, Store, StoreResult, USERS_TREE, transaction_error};
use crate::model::{KeyRecord, Quota, QuotaScope, User};
use sled::Transactional;

impl Store {
    /// True when no user exists yet (first start).
    pub fn has_no_users(&self) -> bool {
        self.t().is_ok_and(|t| t.users.is_empty())
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> StoreResult<Option<User>> {
        self.t()?
            .users
            .get(name.as_bytes())?
            .map(|v| decode(USERS_TREE, &v))
            .transpose()
    }

    /// All users, ordered by name.
    pub fn users(&self) -> StoreResult<Vec<User>> {
        self.t()?
            .users
            .iter()
            .map(|entry| decode(USERS_TREE, &entry?.1))
            .collect()
    }

    /// Creates or replaces a user record, durably.
    pub fn put_user(&self, user: &User) -> StoreResult<()> {
        self.t()?
            .users
            .insert(user.name.as_bytes(), encode(USERS_TREE, user)?)?;
        self.flush()
    }

    /// Removes a user and all their keys in one transaction, durably.
    pub fn remove_user(&self, name: &str) -> StoreResult<()> {
        let fingerprints: Vec<String> = self
            .keys_of(name)?
            .into_iter()
            .map(|k| k.key.fingerprint)
            .collect();
        (&self.t()?.users, &self.t()?.keys)
            .transaction(|(users, keys)| {
                users.remove(name.as_bytes())?;
                for fp in &fingerprints {
                    keys.remove(fp.as_bytes())?;
                }
                Ok(())
            })
            .map_err(transaction_error(USERS_TREE))?;
        self.flush()
    }

    /// The key with this `SHA256:…` fingerprint.
    pub fn key(&self, fingerprint: &str) -> StoreResult<Option<KeyRecord>> {
        self.t()?
            .keys
            .get(fingerprint.as_bytes())?
            .map(|v| decode(KEYS_TREE, &v))
            .transpose()
    }

    /// All keys of one user.
    pub fn keys_of(&self, user: &str) -> StoreResult<Vec<KeyRecord>> {
        Ok(self
            .all_keys()?
            .into_iter()
            .filter(|k| k.user == user)
            .collect())
    }

    /// Every registered key.
    pub fn all_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        self.t()?
            .keys
            .iter()
            .map(|entry| decode(KEYS_TREE, &entry?.1))
            .collect()
    }

    /// Registers a key, durably.
    pub fn put_key(&self, record: &KeyRecord) -> StoreResult<()> {
        self.t()?.keys.insert(
            record.key.fingerprint.as_bytes(),
            encode(KEYS_TREE, record)?,
        )?;
        self.flush()
    }

    /// Removes a key, durably.
    pub fn remove_key(&self, fingerprint: &str) -> StoreResult<()> {
        self.t()?.keys.remove(fingerprint.as_bytes())?;
        self.flush()
    }

    /// The quota set for `scope` (default: none).
    pub fn quota(&self, scope: &QuotaScope) -> StoreResult<Quota> {
        Ok(self
            .t()?
            .quotas
            .get(scope.key().as_bytes())?
            .map(|v| decode(QUOTAS_TREE, &v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every quota that was set.
    pub fn quotas(&self) -> StoreResult<Vec<(QuotaScope, Quota)>> {
        self.t()?
            .quotas
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((
                    QuotaScope::from_key(&String::from_utf8_lossy(&k)),
                    decode(QUOTAS_TREE, &v)?,
                ))
            })
            .collect()
    }

    /// Sets the quota of `scope`, durably.
    pub fn put_quota(&self, scope: &QuotaScope, quota: &Quota) -> StoreResult<()> {
        self.t()?
            .quotas
            .insert(scope.key().as_bytes(), encode(QUOTAS_TREE, quota)?)?;
        self.flush()
    }

    /// Removes the quota of `scope`, durably.
    pub fn remove_quota(&self, scope: &QuotaScope) -> StoreResult<()> {
        self.t()?.quotas.remove(scope.key().as_bytes())?;
        self.flush()
    }
}
