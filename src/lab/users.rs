//! Users and keys: identity management and authentication lookups.

use serde::Serialize;

use super::{
    Change, Lab, LabError, LabResult, Principal, now, require_admin, require_self_or_admin,
};
use crate::model::KeyRecord;
use crate::model::{PROOF_NAMESPACE, PublicKeyInfo, Role, User, validate_user_name};

/// The Unix account an admin maps a lab user to, and what they allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixMapping {
    /// The account; `None`: none (the user cannot run experiments).
    pub account: Option<String>,
    /// A system account (uid below `UID_MIN`, root included) is meant.
    pub allow_system_account: bool,
    /// An account another lab user maps to is meant.
    pub allow_shared: bool,
}

impl UnixMapping {
    /// The account `account`, nothing else allowed.
    pub fn account(account: &str) -> UnixMapping {
        UnixMapping {
            account: Some(account.to_string()),
            ..UnixMapping::default()
        }
    }
}

/// "unix user alice", "no unix user".
fn mapping_words(user: &User) -> String {
    match &user.unix_user {
        Some(account) if user.system_account_allowed => {
            format!("unix user {account}, a system account")
        }
        Some(account) => format!("unix user {account}"),
        None => "no unix user".into(),
    }
}

/// A public key offered to `key add`, with the proof that its sender holds
/// its private key when they add it to their own account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOffer {
    /// The OpenSSH public key line.
    pub line: String,
    /// The key's signature over a challenge (`ssh-keygen -Y sign -n labbench`).
    pub proof: Option<String>,
}

/// Seconds a key challenge holds.
pub const CHALLENGE_VALID_SECS: i64 = 600;
/// Open key challenges by user: (message to sign, valid until).
type Challenges = std::collections::HashMap<String, Vec<(String, i64)>>;

/// What the service keeps for the accounts' side between calls.
pub(super) struct AccountsState {
    /// Serialises changes to users and keys, so checks and writes cannot interleave.
    identity: std::sync::Mutex<()>,
    /// Open key challenges by user.
    challenges: std::sync::Mutex<Challenges>,
    /// Bumped when a user or a key is removed: connections then check that
    /// their user and key still exist, and close if not.
    revocations: tokio::sync::watch::Sender<u64>,
    /// Bumped when who may read what changed (a role, a removal, a project
    /// made private or public): what a session keeps is read again.
    visibility: std::sync::atomic::AtomicU64,
}

impl Default for AccountsState {
    fn default() -> Self {
        AccountsState {
            identity: std::sync::Mutex::new(()),
            challenges: std::sync::Mutex::default(),
            revocations: tokio::sync::watch::Sender::new(0),
            visibility: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Lab {
    /// A receiver that changes whenever a user or a key is removed.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.accounts.revocations.subscribe()
    }

    /// Tells connections that a user or a key was removed.
    pub(super) fn revoked(&self) {
        self.accounts
            .revocations
            .send_modify(|n| *n = n.wrapping_add(1));
        self.visibility_changed();
    }

    /// A number that changes whenever who may read what changed: a session
    /// that keeps what it read reads it again when this moves.
    pub fn visibility_generation(&self) -> u64 {
        self.accounts
            .visibility
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Moves [`Lab::visibility_generation`].
    pub(super) fn visibility_changed(&self) {
        self.accounts
            .visibility
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub(super) fn identity_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.accounts
            .identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Most open challenges one user has (older ones are dropped).
const MAX_CHALLENGES: usize = 8;

/// A user as listed by `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// Lab user name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Unix account, if one is set.
    pub unix_user: Option<String>,
    /// Number of registered keys.
    pub keys: usize,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// Disabled by an admin.
    pub disabled: bool,
}

impl Lab {
    /// Resolves a key offered at SSH authentication to the lab user owning it.
    pub fn authenticate(&self, key: &PublicKeyInfo) -> LabResult<Option<Principal>> {
        let Some(record) = self.store.key(&key.fingerprint)? else {
            return Ok(None);
        };
        // A stored fingerprint with different key material would be a collision or tampering.
        if record.key.openssh != key.openssh {
            return Ok(None);
        }
        Ok(self
            .store
            .user(&record.user)?
            .filter(|u| !u.disabled)
            .map(|user| Principal {
                user: user.name,
                role: user.role,
                unix_user: user.unix_user,
                key_fingerprint: Some(key.fingerprint.clone()),
                since: user.created_at,
            }))
    }

    /// The principal for the local operator: the first admin in the store.
    pub fn local_operator(&self) -> LabResult<Principal> {
        let admin = self
            .store
            .users()?
            .into_iter()
            .find(|u| u.role == Role::Admin && !u.disabled)
            .ok_or_else(|| {
                LabError::NotFound(
                    "no admin exists yet: start `labbench serve` once to bootstrap one".into(),
                )
            })?;
        Ok(Principal {
            user: admin.name,
            role: admin.role,
            unix_user: admin.unix_user,
            key_fingerprint: None,
            since: admin.created_at,
        })
    }

    /// Who the caller is (any role): [`Lab::current`].
    pub fn whoami(&self, p: &Principal) -> LabResult<Principal> {
        self.current(p)
    }

    /// The caller as they are now. Every action of the service decides
    /// with it, not with the role the caller had when they connected: the
    /// account is re-read, so a role change, a removed user or a removed
    /// key takes effect at once, also on a connection or a screen opened
    /// before the change.
    pub fn current(&self, p: &Principal) -> LabResult<Principal> {
        let user = self.store.user(&p.user)?.ok_or_else(|| {
            LabError::PermissionDenied(format!("the account {} no longer exists", p.user))
        })?;
        if user.disabled {
            return Err(LabError::PermissionDenied(format!(
                "the account {} is disabled (ask an admin)",
                p.user
            )));
        }
        if let Some(fingerprint) = &p.key_fingerprint {
            let still_theirs = self
                .store
                .key(fingerprint)?
                .is_some_and(|k| k.user == p.user);
            if !still_theirs {
                return Err(LabError::PermissionDenied(format!(
                    "the key {fingerprint} is no longer registered to {}",
                    p.user
                )));
            }
        }
        Ok(Principal {
            role: user.role,
            unix_user: user.unix_user,
            since: user.created_at,
            ..p.clone()
        })
    }

    /// All users with their key counts (any role).
    pub fn list_users(&self, p: &Principal) -> LabResult<Vec<UserSummary>> {
        self.current(p)?;
        let keys = self.store.all_keys()?;
        Ok(self
            .store
            .users()?
            .into_iter()
            .map(|u| UserSummary {
                keys: keys.iter().filter(|k| k.user == u.name).count(),
                disabled: u.disabled,
                name: u.name,
                role: u.role,
                unix_user: u.unix_user,
                created_at: u.created_at,
            })
            .collect())
    }

    /// Creates a user (admin only), mapped to the Unix account `unix`
    /// asks for (see [`UnixMapping`]).
    pub fn add_user(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        unix: &UnixMapping,
    ) -> LabResult<User> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_admin(p, "add users")?;
        validate_user_name(name)?;
        if name == "labbench" {
            return Err(LabError::Invalid(
                "the name labbench is reserved: the audit trail and notifications use it for what labbench itself does".into(),
            ));
        }
        if self.store.user(name)?.is_some() {
            return Err(LabError::Conflict(format!("user {name} already exists")));
        }
        let system_account_allowed = self.check_mapping(name, unix)?;
        let user = User {
            name: name.to_string(),
            role,
            unix_user: unix.account.clone(),
            system_account_allowed,
            created_at: now(),
            disabled: false,
        };
        self.store.put_user(&user)?;
        self.audit(
            p,
            Change::new(
                "user.add",
                format!("user {name}"),
                format!("added user {name} as {role} ({})", mapping_words(&user)),
            )
            .changing(None, Some(format!("{role}, {}", mapping_words(&user)))),
        )?;
        Ok(user)
    }

    /// Maps user `name` to another Unix account, or to none (admin only).
    pub fn set_unix_user(&self, p: &Principal, name: &str, unix: &UnixMapping) -> LabResult<User> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_admin(p, "change Unix accounts")?;
        let mut user = self.existing_user(name)?;
        let before = mapping_words(&user);
        user.system_account_allowed = self.check_mapping(name, unix)?;
        user.unix_user = unix.account.clone();
        self.store.put_user(&user)?;
        self.audit(
            p,
            Change::new(
                "user.unix",
                format!("user {name}"),
                format!("mapped {name} to {}", mapping_words(&user)),
            )
            .changing(Some(before), Some(mapping_words(&user))),
        )?;
        Ok(user)
    }

    /// Refuses a mapping of lab user `name` that `unix` does not allow:
    /// to a system account (a uid below the host's `UID_MIN`, root
    /// included), or to an account another lab user has. Whether a system
    /// account is allowed, for the record.
    fn check_mapping(&self, name: &str, unix: &UnixMapping) -> LabResult<bool> {
        let Some(account) = &unix.account else {
            return Ok(false);
        };
        validate_user_name(account)?;
        let found = crate::sys::accounts::by_name(account).map_err(LabError::Unavailable)?;
        let system = found
            .as_ref()
            .is_some_and(|f| crate::sys::accounts::is_system_uid(f.uid));
        if let Some(found) = &found
            && system
            && !unix.allow_system_account
        {
            return Err(LabError::Invalid(format!(
                "unix user {account} is a system account (uid {}: root, a service, nobody, or \
                 outside UID_MIN..UID_MAX of /etc/login.defs): {name}'s experiments would run with \
                 its rights; pass --allow-system-account if that is meant",
                found.uid
            )));
        }
        if !unix.allow_shared {
            // The same account under another name counts too (same uid).
            let uid = found.as_ref().map(|f| f.uid);
            let shared = self.store.users()?.into_iter().find(|u| {
                u.name != name
                    && u.unix_user.as_deref().is_some_and(|other| {
                        other == account.as_str()
                            || uid.is_some_and(|uid| {
                                crate::sys::accounts::by_name(other)
                                    .ok()
                                    .flatten()
                                    .is_some_and(|o| o.uid == uid)
                            })
                    })
            });
            if let Some(other) = shared {
                return Err(LabError::Conflict(format!(
                    "unix user {account} is already {}'s: two lab users would act as one account \
                     (each could read and stop the other's runs); pass --allow-shared-unix-user if \
                     that is meant",
                    other.name
                )));
            }
        }
        Ok(system)
    }

    /// Changes a user's role (admin only); the last admin cannot be demoted.
    pub fn set_role(&self, p: &Principal, name: &str, role: Role) -> LabResult<User> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_admin(p, "change roles")?;
        let mut user = self.existing_user(name)?;
        if user.role == Role::Admin
            && !user.disabled
            && role != Role::Admin
            && self.admin_count()? == 1
        {
            return Err(LabError::Invalid(format!(
                "{name} is the last admin; make another user admin first"
            )));
        }
        let old = user.role;
        user.role = role;
        self.store.put_user(&user)?;
        self.visibility_changed();
        self.audit(
            p,
            Change::new(
                "user.role",
                format!("user {name}"),
                format!("changed role of {name} from {old} to {role}"),
            )
            .changing(Some(old.to_string()), Some(role.to_string())),
        )?;
        Ok(user)
    }

    /// Deletes a user and their keys (admin only; not yourself, not the
    /// last admin), closes their connections and cancels their queued
    /// experiments (returned; running ones run on, for an admin to cancel).
    pub fn remove_user(&self, p: &Principal, name: &str) -> LabResult<Vec<u64>> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_admin(p, "remove users")?;
        let user = self.existing_user(name)?;
        if user.name == p.user {
            return Err(LabError::Invalid(
                "you cannot remove your own account; ask another admin".into(),
            ));
        }
        if user.role == Role::Admin && !user.disabled && self.admin_count()? == 1 {
            return Err(LabError::Invalid(format!("{name} is the last admin")));
        }
        self.store.remove_user(name)?;
        // A later account of the same name starts without them.
        self.store.set_budget(&format!("user:{name}"), None)?;
        self.store
            .remove_quota(&crate::model::QuotaScope::User(name.to_string()))?;
        self.audit(
            p,
            Change::new(
                "user.remove",
                format!("user {name}"),
                format!("removed user {name}"),
            )
            .changing(
                Some(format!("{}, {}", user.role, mapping_words(&user))),
                None,
            ),
        )?;
        self.revoked();
        let cancelled =
            self.cancel_queued_of(name, &format!("its owner {name} was removed by {}", p.user))?;
        Ok(cancelled)
    }

    /// Registers a public key for `name` (an admin; see [`Lab::add_keys`]).
    pub fn add_key(&self, p: &Principal, name: &str, key_line: &str) -> LabResult<KeyRecord> {
        let offer = KeyOffer {
            line: key_line.to_string(),
            proof: None,
        };
        let mut added = self.add_keys(p, name, &[offer])?;
        added
            .pop()
            .ok_or_else(|| LabError::Invalid("no key given".into()))
    }

    /// A challenge for the caller to sign with a key they want to add to
    /// their own account (see [`Lab::add_keys`]); valid for
    /// [`CHALLENGE_VALID_SECS`] and once.
    pub fn key_challenge(&self, p: &Principal) -> LabResult<String> {
        let p = self.current(p)?;
        let nonce = crate::sys::fs::random_hex(16)
            .map_err(|e| LabError::Unavailable(format!("cannot make a challenge: {e}")))?;
        let expires = now() + CHALLENGE_VALID_SECS;
        let message = format!("labbench: {} holds this key ({nonce})", p.user);
        let mut challenges = self
            .accounts
            .challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = challenges.entry(p.user.clone()).or_default();
        mine.retain(|(_, until)| *until > now());
        if mine.len() >= MAX_CHALLENGES {
            mine.remove(0);
        }
        mine.push((message.clone(), expires));
        Ok(message)
    }

    /// Registers several keys for `name`: all are checked (syntax, already
    /// registered, repeated, proof) before any is added. An admin may add
    /// any key to anyone; a user adding keys to their own account must
    /// prove, for each, that they hold its private key: a signature by it
    /// over a challenge of [`Lab::key_challenge`] (else a member could
    /// register somebody else's public key, whose later logins would then
    /// act as the member).
    pub fn add_keys(
        &self,
        p: &Principal,
        name: &str,
        offers: &[KeyOffer],
    ) -> LabResult<Vec<KeyRecord>> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_self_or_admin(p, name, "add keys to this account")?;
        self.existing_user(name)?;
        let mut keys: Vec<PublicKeyInfo> = Vec::with_capacity(offers.len());
        let mut used = Vec::new();
        for (i, offer) in offers.iter().enumerate() {
            let key = PublicKeyInfo::parse(&offer.line)
                .map_err(|e| LabError::Invalid(format!("key {}: {e}; no key was added", i + 1)))?;
            if !p.is_admin() {
                used.push(self.proven(&p.user, &key, offer.proof.as_deref())?);
            }
            if let Some(existing) = self.store.key(&key.fingerprint)? {
                return Err(LabError::Conflict(format!(
                    "key {} is already registered to {}; no key was added",
                    key.fingerprint, existing.user
                )));
            }
            if keys.iter().any(|k| k.fingerprint == key.fingerprint) {
                return Err(LabError::Invalid(format!(
                    "line {}: key {} is given twice; no key was added",
                    i + 1,
                    key.fingerprint
                )));
            }
            keys.push(key);
        }
        if !used.is_empty() {
            let mut challenges = self
                .accounts
                .challenges
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(mine) = challenges.get_mut(&p.user) {
                mine.retain(|(message, _)| !used.contains(message));
            }
        }
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            let record = KeyRecord {
                user: name.to_string(),
                key,
                added_at: now(),
                added_by: p.user.clone(),
            };
            self.store.put_key(&record)?;
            self.audit(
                p,
                Change::new(
                    "key.add",
                    format!("user {name}"),
                    format!(
                        "added key {} ({}) to {name}",
                        record.key.fingerprint, record.key.algorithm
                    ),
                )
                .changing(None, Some(record.key.fingerprint.clone())),
            )?;
            records.push(record);
        }
        Ok(records)
    }

    /// The challenge of `user` that `proof` signs with `key`, or why there is none.
    fn proven(&self, user: &str, key: &PublicKeyInfo, proof: Option<&str>) -> LabResult<String> {
        let Some(proof) = proof else {
            return Err(LabError::PermissionDenied(format!(
                "a key you add to your own account needs proof that you hold its private key: \
                 run `key challenge`, sign what it prints (printf '%s' \"$CHALLENGE\" | ssh-keygen -Y \
                 sign -f KEY -n {PROOF_NAMESPACE} > KEY.sig), then send the key and the signature \
                 (cat KEY.pub KEY.sig | ssh lab@host key add {user}); or ask an admin to add it"
            )));
        };
        let challenges = self
            .accounts
            .challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let open: Vec<&String> = challenges
            .get(user)
            .into_iter()
            .flatten()
            .filter(|(_, until)| *until > now())
            .map(|(message, _)| message)
            .collect();
        if open.is_empty() {
            return Err(LabError::PermissionDenied(
                "no open challenge: run `key challenge` first (a challenge holds 10 minutes, once)"
                    .into(),
            ));
        }
        let mut why = String::new();
        for message in open {
            match key.verify_proof(message.as_bytes(), proof) {
                Ok(()) => return Ok(message.clone()),
                Err(e) => why = e.to_string(),
            }
        }
        Err(LabError::PermissionDenied(format!(
            "{why}; no key was added"
        )))
    }

    /// Removes one of `name`'s keys (that user or an admin); never your own last key.
    pub fn remove_key(&self, p: &Principal, name: &str, fingerprint: &str) -> LabResult<()> {
        let _guard = self.identity_lock();
        let p = &self.current(p)?;
        require_self_or_admin(p, name, "remove keys from this account")?;
        self.existing_user(name)?;
        let keys = self.store.keys_of(name)?;
        if !keys.iter().any(|k| k.key.fingerprint == fingerprint) {
            return Err(LabError::NotFound(format!(
                "{name} has no key {fingerprint} (see `keys {name}`)"
            )));
        }
        if name == p.user && keys.len() == 1 {
            return Err(LabError::Invalid(format!(
                "refusing to remove your last key {fingerprint}: you would be locked out; add another key first (`key add {name}`)"
            )));
        }
        self.store.remove_key(fingerprint)?;
        self.audit(
            p,
            Change::new(
                "key.remove",
                format!("user {name}"),
                format!("removed key {fingerprint} from {name}"),
            )
            .changing(Some(fingerprint.to_string()), None),
        )?;
        self.revoked();
        Ok(())
    }

    /// Keys of `name`, or of the caller when `None` (own keys, or any as admin).
    pub fn list_keys(&self, p: &Principal, name: Option<&str>) -> LabResult<Vec<KeyRecord>> {
        let p = &self.current(p)?;
        match name {
            None => Ok(self.store.keys_of(&p.user)?),
            Some(name) => {
                require_self_or_admin(p, name, "list this account's keys")?;
                self.existing_user(name)?;
                Ok(self.store.keys_of(name)?)
            }
        }
    }

    pub(super) fn existing_user(&self, name: &str) -> LabResult<User> {
        self.store
            .user(name)?
            .ok_or_else(|| LabError::NotFound(format!("no user named {name} (see `users`)")))
    }

    /// Admins who can act: the last of them is never demoted, removed or
    /// disabled.
    pub(super) fn admin_count(&self) -> LabResult<usize> {
        Ok(self
            .store
            .users()?
            .iter()
            .filter(|u| u.role == Role::Admin && !u.disabled)
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{KEY_A, KEY_B, KEY_C, lab_with_admin};

    fn as_role(lab: &Lab, name: &str, role: Role) -> Principal {
        let admin = lab.local_operator().expect("admin");
        lab.add_user(&admin, name, role, &UnixMapping::account(name))
            .expect("add");
        Principal {
            user: name.into(),
            role,
            unix_user: Some(name.into()),
            key_fingerprint: None,
            since: 0,
        }
    }

    #[test]
    fn viewer_cannot_add_users_and_nothing_changes() {
        let (_dir, lab) = lab_with_admin();
        let viewer = as_role(&lab, "vera", Role::Viewer);
        let before = lab.list_users(&viewer).expect("list");
        let err = lab
            .add_user(&viewer, "mallory", Role::Admin, &UnixMapping::default())
            .expect_err("denied");
        assert!(matches!(err, LabError::PermissionDenied(_)));
        assert_eq!(lab.list_users(&viewer).expect("list"), before);
    }

    #[test]
    fn member_cannot_change_roles_or_remove_users() {
        let (_dir, lab) = lab_with_admin();
        let member = as_role(&lab, "mike", Role::Member);
        assert!(matches!(
            lab.set_role(&member, "mike", Role::Admin),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.remove_user(&member, "root"),
            Err(LabError::PermissionDenied(_))
        ));
    }

    /// A key pair made from `seed`, its public line, and its signature
    /// over `message` as `ssh-keygen -Y sign -n labbench` makes it.
    fn signed(seed: u8, message: &str) -> (String, String) {
        use russh::keys::ssh_key::{HashAlg, LineEnding, PrivateKey, private::Ed25519Keypair};
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
        let line = key.public_key().to_openssh().expect("public line");
        let signature = key
            .sign(
                crate::model::PROOF_NAMESPACE,
                HashAlg::Sha512,
                message.as_bytes(),
            )
            .expect("sign")
            .to_pem(LineEnding::LF)
            .expect("armor");
        (line, signature)
    }

    #[test]
    fn a_key_added_to_ones_own_account_needs_proof_of_possession() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let member = as_role(&lab, "mike", Role::Member);
        let offer = |line: &str, proof: Option<String>| KeyOffer {
            line: line.to_string(),
            proof,
        };
        // Somebody else's public key, without proof: refused.
        let err = lab
            .add_keys(&member, "mike", &[offer(KEY_B, None)])
            .expect_err("no proof");
        assert!(err.to_string().contains("key challenge"), "{err}");
        // With a signature by the key over a challenge of his own: added.
        let challenge = lab.key_challenge(&member).expect("challenge");
        let (mine, proof) = signed(7, &challenge);
        lab.add_keys(&member, "mike", &[offer(&mine, Some(proof.clone()))])
            .expect("proven");
        // The challenge is spent; another key's signature does not prove this one.
        let (other, _) = signed(8, &challenge);
        let err = lab
            .add_keys(&member, "mike", &[offer(&other, Some(proof))])
            .expect_err("spent");
        assert!(matches!(err, LabError::PermissionDenied(_)), "{err}");
        let challenge = lab.key_challenge(&member).expect("challenge");
        let (_, wrong) = signed(9, &challenge);
        let err = lab
            .add_keys(&member, "mike", &[offer(&other, Some(wrong))])
            .expect_err("signed by another key");
        assert!(err.to_string().contains("not"), "{err}");
        // Another user's challenge proves nothing for mike.
        let vera = as_role(&lab, "vera", Role::Viewer);
        let hers = lab.key_challenge(&vera).expect("challenge");
        let (_, for_her) = signed(8, &hers);
        assert!(
            lab.add_keys(&member, "mike", &[offer(&other, Some(for_her))])
                .is_err()
        );
        // An admin adds any key to anyone.
        lab.add_key(&admin, "mike", KEY_B).expect("admin");
        assert_eq!(lab.list_keys(&member, None).expect("own").len(), 2);
    }

    #[test]
    fn member_manages_own_keys_but_not_others() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let member = as_role(&lab, "mike", Role::Member);
        lab.add_key(&admin, "mike", KEY_B).expect("own key");
        assert!(matches!(
            lab.add_key(&member, "root", KEY_B),
            Err(LabError::PermissionDenied(_))
        ));
        assert!(matches!(
            lab.list_keys(&member, Some("root")),
            Err(LabError::PermissionDenied(_))
        ));
        assert_eq!(lab.list_keys(&member, None).expect("own").len(), 1);
    }

    #[test]
    fn removing_own_last_key_is_refused() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let fp = lab.list_keys(&admin, None).expect("keys")[0]
            .key
            .fingerprint
            .clone();
        let err = lab
            .remove_key(&admin, &admin.user, &fp)
            .expect_err("refused");
        assert!(err.to_string().contains("locked out"), "{err}");
        assert_eq!(lab.list_keys(&admin, None).expect("keys").len(), 1);
    }

    #[test]
    fn duplicate_key_is_a_conflict() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        as_role(&lab, "mike", Role::Member);
        let err = lab.add_key(&admin, "mike", KEY_A).expect_err("taken");
        assert!(
            err.to_string().contains("already registered to root"),
            "{err}"
        );
    }

    #[test]
    fn last_admin_cannot_be_demoted_or_removed() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        assert!(matches!(
            lab.set_role(&admin, "root", Role::Member),
            Err(LabError::Invalid(_))
        ));
        assert!(matches!(
            lab.remove_user(&admin, "root"),
            Err(LabError::Invalid(_))
        ));
    }

    #[test]
    fn authenticate_maps_key_to_user_and_rejects_unknown() {
        let (_dir, lab) = lab_with_admin();
        let known = PublicKeyInfo::parse(KEY_A).expect("key");
        let p = lab.authenticate(&known).expect("ok").expect("known");
        assert_eq!(p.user, "root");
        assert_eq!(p.role, Role::Admin);
        let unknown = PublicKeyInfo::parse(KEY_B).expect("key");
        assert!(lab.authenticate(&unknown).expect("ok").is_none());
    }

    #[test]
    fn a_removed_key_or_user_stops_working_on_open_connections() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        lab.add_user(&admin, "mike", Role::Member, &UnixMapping::account("mike"))
            .expect("add");
        let key = lab.add_key(&admin, "mike", KEY_B).expect("key");
        let mike = lab
            .authenticate(&PublicKeyInfo::parse(KEY_B).expect("key"))
            .expect("ok")
            .expect("known");
        assert!(lab.whoami(&mike).is_ok());
        lab.add_key(&admin, "mike", KEY_C).expect("second key");
        lab.remove_key(&admin, "mike", &key.key.fingerprint)
            .expect("remove");
        assert!(matches!(
            lab.whoami(&mike),
            Err(LabError::PermissionDenied(_))
        ));
        lab.remove_user(&admin, "mike").expect("remove user");
        let ghost = Principal {
            key_fingerprint: None,
            ..mike
        };
        assert!(matches!(
            lab.whoami(&ghost),
            Err(LabError::PermissionDenied(_))
        ));
    }

    #[test]
    fn system_and_shared_unix_accounts_need_an_explicit_flag() {
        let (_dir, lab) = lab_with_admin();
        let admin = lab.local_operator().expect("admin");
        let err = lab
            .add_user(&admin, "ops", Role::Member, &UnixMapping::account("root"))
            .expect_err("root is a system account");
        assert!(err.to_string().contains("--allow-system-account"), "{err}");
        // Named like a system account by default, too.
        let err = lab
            .add_user(
                &admin,
                "daemon",
                Role::Member,
                &UnixMapping::account("daemon"),
            )
            .expect_err("daemon is a system account");
        assert!(err.to_string().contains("system account"), "{err}");
        assert!(lab.store().user("ops").expect("read").is_none());
        // The bootstrapped admin has root already.
        let allowed = UnixMapping {
            allow_system_account: true,
            allow_shared: true,
            ..UnixMapping::account("root")
        };
        let ops = lab
            .add_user(&admin, "ops", Role::Member, &allowed)
            .expect("allowed");
        assert!(ops.system_account_allowed);

        lab.add_user(
            &admin,
            "mike",
            Role::Member,
            &UnixMapping::account("lbshared"),
        )
        .expect("mike");
        let err = lab
            .add_user(
                &admin,
                "mary",
                Role::Member,
                &UnixMapping::account("lbshared"),
            )
            .expect_err("shared");
        assert!(err.to_string().contains("already mike's"), "{err}");
        let shared = UnixMapping {
            allow_shared: true,
            ..UnixMapping::account("lbshared")
        };
        lab.add_user(&admin, "mary", Role::Member, &shared)
            .expect("allowed");

        let none = lab
            .set_unix_user(&admin, "mary", &UnixMapping::default())
            .expect("none");
        assert_eq!(none.unix_user, None);
        let mary = Principal {
            user: "mary".into(),
            role: Role::Member,
            unix_user: None,
            key_fingerprint: None,
            since: 0,
        };
        let request = crate::lab::SubmitRequest {
            command: Some(crate::model::CommandLine::Argv(vec!["true".into()])),
            workdir: Some("/tmp".into()),
            ..Default::default()
        };
        let err = lab.submit(&mary, request).expect_err("no account");
        assert!(
            err.to_string().contains("no Unix account is set for mary"),
            "{err}"
        );
        assert!(matches!(
            lab.set_unix_user(&mary, "mary", &UnixMapping::account("lbmary")),
            Err(LabError::PermissionDenied(_))
        ));
    }

    #[test]
    fn changes_are_audited() {
        let (_dir, lab) = lab_with_admin();
        as_role(&lab, "mike", Role::Member);
        let audit = lab.store().recent_audit(10).expect("audit");
        assert!(audit.iter().any(|e| e.action.contains("added user mike")));
    }
}
