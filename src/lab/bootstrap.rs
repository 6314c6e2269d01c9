//! First start: create the admin account from configured, flagged or found keys.

use std::path::{Path, PathBuf};

use super::{Lab, LabError, LabResult, now};
use crate::model::{AuditEvent, KeyRecord};
use crate::model::{PublicKeyInfo, Role, User, validate_user_name};

/// Where a bootstrap key came from, for the start-up report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapSource {
    /// `bootstrap.initial_admin_keys` in the config.
    Config,
    /// A `--admin-key FILE` flag.
    Flag(PathBuf),
    /// The invoking user's `~/.ssh/*.pub`.
    UserSshDir(PathBuf),
    /// A key pair generated in the data directory; the private key's path.
    Generated(PathBuf),
}

impl std::fmt::Display for BootstrapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootstrapSource::Config => write!(f, "config bootstrap.initial_admin_keys"),
            BootstrapSource::Flag(p) => write!(f, "--admin-key {}", p.display()),
            BootstrapSource::UserSshDir(p) => write!(f, "{}", p.display()),
            BootstrapSource::Generated(p) => write!(f, "generated, private key {}", p.display()),
        }
    }
}

/// The admin account to create on first start.
#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    /// Lab user name.
    pub name: String,
    /// Unix account, chosen by the operator (an explicit choice may be a
    /// system account); `None`: none until an admin sets one.
    pub unix_user: Option<String>,
    /// Keys with their origin.
    pub keys: Vec<(PublicKeyInfo, BootstrapSource)>,
}

/// What the bootstrap did, to print at start.
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    /// The admin's name.
    pub admin: String,
    /// The admin's Unix account, if one was set.
    pub unix_user: Option<String>,
    /// Keys registered, with their origin.
    pub keys: Vec<(PublicKeyInfo, BootstrapSource)>,
}

impl AdminBootstrap {
    /// Gathers admin keys: config entries and flag files first; when there are
    /// none, `~/.ssh/*.pub`; when there are none either, `generate` is called.
    pub fn collect(
        name: &str,
        unix_user: Option<&str>,
        config_entries: &[String],
        flag_files: &[PathBuf],
        home: Option<&Path>,
        generate: impl FnOnce() -> Result<(String, PathBuf), String>,
    ) -> LabResult<AdminBootstrap> {
        validate_user_name(name)?;
        let mut keys = Vec::new();
        for entry in config_entries {
            let line = if looks_like_key(entry) {
                entry.clone()
            } else {
                read_key_file(Path::new(entry))?
            };
            keys.push((parse(&line, entry)?, BootstrapSource::Config));
        }
        for file in flag_files {
            let line = read_key_file(file)?;
            keys.push((
                parse(&line, &file.display().to_string())?,
                BootstrapSource::Flag(file.clone()),
            ));
        }
        if keys.is_empty()
            && let Some(home) = home
        {
            keys = user_ssh_keys(&home.join(".ssh"));
        }
        if keys.is_empty() {
            let (line, private) = generate().map_err(LabError::Invalid)?;
            keys.push((
                parse(&line, "generated key")?,
                BootstrapSource::Generated(private),
            ));
        }
        Ok(AdminBootstrap {
            name: name.to_string(),
            unix_user: unix_user.map(str::to_string),
            keys,
        })
    }
}

impl Lab {
    /// True when the store has no users yet and a bootstrap is due.
    pub fn needs_bootstrap(&self) -> bool {
        self.store.has_no_users()
    }

    /// Creates the first admin with their keys. Refused once any user exists.
    pub fn bootstrap_admin(&self, admin: AdminBootstrap) -> LabResult<BootstrapReport> {
        if !self.needs_bootstrap() {
            return Err(LabError::Conflict(
                "users already exist; bootstrap happens only on first start".into(),
            ));
        }
        let at = now();
        self.store.put_user(&User {
            name: admin.name.clone(),
            role: Role::Admin,
            unix_user: admin.unix_user.clone(),
            // The operator named the account: a system account is meant.
            system_account_allowed: admin.unix_user.is_some(),
            disabled: false,
            created_at: at,
        })?;
        for (key, _) in &admin.keys {
            if self.store.key(&key.fingerprint)?.is_none() {
                self.store.put_key(&KeyRecord {
                    user: admin.name.clone(),
                    key: key.clone(),
                    added_at: at,
                    added_by: "bootstrap".into(),
                })?;
            }
        }
        self.store.audit(&AuditEvent {
            at,
            actor: "bootstrap".into(),
            action: format!(
                "created admin {} with {} key(s)",
                admin.name,
                admin.keys.len()
            ),
            kind: "user.add".into(),
            subject: format!("user {}", admin.name),
            before: None,
            after: Some("admin".into()),
        })?;
        Ok(BootstrapReport {
            admin: admin.name,
            unix_user: admin.unix_user,
            keys: admin.keys,
        })
    }
}

fn looks_like_key(entry: &str) -> bool {
    let first = entry.split_whitespace().next().unwrap_or("");
    first.starts_with("ssh-") || first.starts_with("ecdsa-")
}

fn read_key_file(path: &Path) -> LabResult<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().next().unwrap_or("").to_string())
        .map_err(|e| LabError::Invalid(format!("cannot read key file {}: {e}", path.display())))
}

fn parse(line: &str, origin: &str) -> LabResult<PublicKeyInfo> {
    PublicKeyInfo::parse(line).map_err(|e| LabError::Invalid(format!("admin key {origin}: {e}")))
}

/// Every acceptable key in `dir/*.pub`; unreadable or weak ones are skipped.
fn user_ssh_keys(dir: &Path) -> Vec<(PublicKeyInfo, BootstrapSource)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let line = std::fs::read_to_string(&path).ok()?;
            let key = PublicKeyInfo::parse(line.lines().next()?).ok()?;
            Some((key, BootstrapSource::UserSshDir(path)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{KEY_A, KEY_B};

    #[test]
    fn config_and_flag_keys_win_over_ssh_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("admin.pub");
        std::fs::write(&file, format!("{KEY_B}\n")).expect("write");
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir(&ssh).expect("mkdir");
        std::fs::write(ssh.join("id.pub"), KEY_A).expect("write");
        let b = AdminBootstrap::collect(
            "root",
            Some("root"),
            &[KEY_A.to_string()],
            std::slice::from_ref(&file),
            Some(dir.path()),
            || Err("must not generate".into()),
        )
        .expect("collect");
        assert_eq!(b.keys.len(), 2);
        assert_eq!(b.keys[1].1, BootstrapSource::Flag(file));
    }

    #[test]
    fn falls_back_to_ssh_dir_then_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir(&ssh).expect("mkdir");
        std::fs::write(ssh.join("id_ed25519.pub"), KEY_A).expect("write");
        std::fs::write(ssh.join("junk.pub"), "not a key").expect("write");
        let b = AdminBootstrap::collect("root", Some("root"), &[], &[], Some(dir.path()), || {
            Err("must not generate".into())
        })
        .expect("collect");
        assert_eq!(b.keys.len(), 1);
        assert!(matches!(b.keys[0].1, BootstrapSource::UserSshDir(_)));

        let empty = tempfile::tempdir().expect("tempdir");
        let b = AdminBootstrap::collect("root", Some("root"), &[], &[], Some(empty.path()), || {
            Ok((KEY_B.to_string(), PathBuf::from("/x/admin_ed25519")))
        })
        .expect("collect");
        assert!(matches!(b.keys[0].1, BootstrapSource::Generated(_)));
    }

    #[test]
    fn bad_flag_key_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.pub");
        std::fs::write(&file, "ssh-ed25519 nonsense").expect("write");
        let err =
            AdminBootstrap::collect(
                "root",
                Some("root"),
                &[],
                &[file],
                None,
                || Err("no".into()),
            )
            .expect_err("bad key");
        assert!(err.to_string().contains("bad.pub"), "{err}");
    }
}
