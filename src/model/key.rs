use russh::keys::ssh_key::{self, Algorithm, HashAlg};
use serde::{Deserialize, Serialize};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;

/// A validated SSH public key as labbench stores and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    /// Algorithm name, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key without its comment: `ALGORITHM BASE64`.
    pub openssh: String,
    /// The comment that followed the key, often `user@host`.
    pub comment: String,
}

/// Why a public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not an OpenSSH one-line public key.
    #[error(
        "not an OpenSSH public key ({0}); expected one line like 'ssh-ed25519 AAAA... comment'"
    )]
    Malformed(String),
    /// A key type labbench does not accept.
    #[error("key type {0} is not accepted; use ed25519, ecdsa or rsa (at least 2048 bits)")]
    UnsupportedType(String),
    /// An RSA key that is too small.
    #[error("rsa key of {0} bits is too weak; use at least 2048 bits or an ed25519 key")]
    WeakRsa(u32),
    /// A proof of possession that is not a valid signature by the key.
    #[error("the signature is not {0}'s own over the challenge ({1})")]
    BadProof(String, String),
}

/// The namespace of signatures that prove the possession of a key
/// (`ssh-keygen -Y sign -n labbench`).
pub const PROOF_NAMESPACE: &str = "labbench";

impl PublicKeyInfo {
    /// Parses and checks one OpenSSH public key line.
    pub fn parse(line: &str) -> Result<PublicKeyInfo, KeyError> {
        let line = line.trim();
        if line.is_empty() {
            return Err(KeyError::Malformed("empty input".into()));
        }
        if line.contains('\n') {
            return Err(KeyError::Malformed("more than one line".into()));
        }
        let key = ssh_key::PublicKey::from_openssh(line)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        PublicKeyInfo::from_key(&key)
    }

    /// Describes a key received during authentication, applying the same rules.
    pub fn from_key(key: &ssh_key::PublicKey) -> Result<PublicKeyInfo, KeyError> {
        let algorithm = key.algorithm();
        match &algorithm {
            Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
            Algorithm::Rsa { .. } => {
                let bits = key.key_data().rsa().map(|k| k.key_size()).unwrap_or(0);
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::WeakRsa(bits));
                }
            }
            other => return Err(KeyError::UnsupportedType(other.as_str().to_string())),
        }
        let mut bare = key.clone();
        bare.set_comment("");
        let openssh = bare
            .to_openssh()
            .map_err(|e| KeyError::Malformed(e.to_string()))?
            .trim()
            .to_string();
        Ok(PublicKeyInfo {
            algorithm: algorithm.as_str().to_string(),
            fingerprint: fingerprint(key),
            openssh,
            // Comments are shown to admins: no control characters, bounded length.
            comment: key
                .comment()
                .as_str_lossy()
                .chars()
                .filter(|c| !c.is_control())
                .take(256)
                .collect(),
        })
    }
}

impl PublicKeyInfo {
    /// Checks that `armored` (what `ssh-keygen -Y sign -n labbench` writes)
    /// is this key's signature over `message`: proof that whoever sent it
    /// holds the private key.
    pub fn verify_proof(&self, message: &[u8], armored: &str) -> Result<(), KeyError> {
        let bad = |why: String| KeyError::BadProof(self.fingerprint.clone(), why);
        let key =
            ssh_key::PublicKey::from_openssh(&self.openssh).map_err(|e| bad(e.to_string()))?;
        let signature =
            ssh_key::SshSig::from_pem(armored.trim()).map_err(|e| bad(e.to_string()))?;
        key.verify(PROOF_NAMESPACE, message, &signature)
            .map_err(|e| bad(e.to_string()))
    }
}

/// The `SHA256:…` fingerprint of a key.
pub fn fingerprint(key: &ssh_key::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A registered SSH key and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Owning lab user.
    pub user: String,
    /// The key itself.
    pub key: PublicKeyInfo,
    /// Seconds since the epoch when it was registered.
    pub added_at: i64,
    /// Who registered it.
    pub added_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsmWNLTwvIyW9lRhCopauIQbWxrZzUVvjXMnud4kAdR alice@laptop";

    #[test]
    fn parses_ed25519_with_comment() {
        let info = PublicKeyInfo::parse(ED25519).expect("valid key");
        assert_eq!(info.algorithm, "ssh-ed25519");
        assert_eq!(info.comment, "alice@laptop");
        assert!(info.fingerprint.starts_with("SHA256:"));
        assert!(!info.openssh.contains("alice"));
    }

    #[test]
    fn rejects_garbage_and_multiple_lines() {
        assert!(matches!(
            PublicKeyInfo::parse("hello"),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            PublicKeyInfo::parse(&format!("{ED25519}\n{ED25519}")),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            PublicKeyInfo::parse("  "),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn comments_lose_control_characters() {
        let line = ED25519.replace("alice@laptop", "evil\u{1b}]52;c;aGk=\u{7}x");
        let info = PublicKeyInfo::parse(&line).expect("valid key");
        assert!(
            !info.comment.chars().any(char::is_control),
            "{:?}",
            info.comment
        );
    }

    #[test]
    fn rejects_small_rsa() {
        // A 1024-bit RSA key.
        let small = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCsbcoXczaWUINvQmf4UXkqPe/ow+ifiuhr22pvzOje2+rTGDpa1jlqg6u6djZ/anR48b++XQasYTRIVO0Po+kaLjNQ/RH4TdLUd05VJSAidixUlzWxfgX9RoD8wBDW3zW08UdOUJzAC3tk6xz15hZToYGwGHtnOuzSBNIVNC8cPw== small";
        match PublicKeyInfo::parse(small) {
            Err(KeyError::WeakRsa(bits)) => assert!(bits < 2048),
            other => panic!("expected a weak-key error, got {other:?}"),
        }
    }
}
