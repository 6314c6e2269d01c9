//! The server's persistent ed25519 host key and key-pair generation.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{LineEnding, PrivateKey};

/// File name of the host key in the data directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// A host key failure.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// Reading or writing the key file failed.
    #[error("host key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an OpenSSH private key.
    #[error("host key {path} is not a valid OpenSSH private key: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The loaded host key and how to show it to users.
#[derive(Debug, Clone)]
pub struct HostKey {
    /// The private key russh serves with.
    pub key: PrivateKey,
    /// `SHA256:…` fingerprint.
    pub fingerprint: String,
    /// Public key line, `ssh-ed25519 AAAA…`.
    pub public_line: String,
    /// Whether it was created by this start.
    pub created: bool,
}

/// Loads `data_dir/ssh_host_ed25519_key`, creating it (mode 0600) on first start.
pub fn load_or_create_host_key(data_dir: &Path) -> Result<HostKey, HostKeyError> {
    let path = data_dir.join(HOST_KEY_FILE);
    let io = |source| HostKeyError::Io {
        path: path.clone(),
        source,
    };
    let (key, created) = if path.exists() {
        let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "host key {} has mode {:o}; tightening to 600",
                path.display(),
                mode & 0o777
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let key = PrivateKey::from_openssh(text).map_err(|e| HostKeyError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        (key, false)
    } else {
        let key = generate_ed25519("labbench host key").map_err(io)?;
        write_private_key(&path, &key).map_err(io)?;
        (key, true)
    };
    let public = key.public_key();
    let public_line = public
        .to_openssh()
        .map_err(|e| HostKeyError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?
        .trim()
        .to_string();
    if created {
        std::fs::write(
            data_dir.join(format!("{HOST_KEY_FILE}.pub")),
            format!("{public_line}\n"),
        )
        .map_err(io)?;
    }
    Ok(HostKey {
        fingerprint: crate::model::PublicKeyInfo::from_key(public)
            .map(|k| k.fingerprint)
            .unwrap_or_default(),
        public_line,
        key,
        created,
    })
}

/// A fresh ed25519 key pair from the kernel's random source.
pub fn generate_ed25519(comment: &str) -> std::io::Result<PrivateKey> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    Ok(key)
}

/// Writes a private key in OpenSSH format, created with mode 0600.
pub fn write_private_key(path: &Path, key: &PrivateKey) -> std::io::Result<()> {
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_is_created_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_host_key(dir.path()).expect("create");
        assert!(first.created);
        let mode = std::fs::metadata(dir.path().join(HOST_KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_host_key(dir.path()).expect("load");
        assert!(!second.created);
        assert_eq!(first.fingerprint, second.fingerprint);
        assert!(first.public_line.starts_with("ssh-ed25519 "));
    }

    #[test]
    fn corrupt_host_key_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(HOST_KEY_FILE);
        std::fs::write(&path, "garbage").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = load_or_create_host_key(dir.path()).expect_err("invalid");
        assert!(
            err.to_string().contains("not a valid OpenSSH private key"),
            "{err}"
        );
    }
}
