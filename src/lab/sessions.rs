//! Who is connected right now: a registry of live SSH sessions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

/// What a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// The full-screen interface.
    Shell,
    /// A one-shot command.
    Exec,
}

/// A user with live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectedUser {
    /// Lab user name.
    pub user: String,
    /// Open interactive sessions.
    pub shells: usize,
    /// Running commands.
    pub commands: usize,
}

#[derive(Debug)]
struct Entry {
    user: String,
    kind: SessionKind,
}

/// Live sessions; registering returns a guard that unregisters on drop.
#[derive(Debug)]
pub struct SessionRegistry {
    entries: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    changes: watch::Sender<u64>,
}

impl Default for SessionRegistry {
    fn default() -> Self {
        SessionRegistry {
            entries: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            changes: watch::Sender::new(0),
        }
    }
}

/// Keeps a session registered while alive.
#[derive(Debug)]
pub struct SessionGuard {
    registry: Arc<SessionRegistry>,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

impl SessionRegistry {
    /// Registers a session of `user`; it stays until the guard drops.
    pub fn register(self: &Arc<Self>, user: &str, kind: SessionKind) -> SessionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            Entry {
                user: user.to_string(),
                kind,
            },
        );
        self.changes.send_modify(|n| *n += 1);
        SessionGuard {
            registry: Arc::clone(self),
            id,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.changes.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding this lock leaves the map consistent, so recover it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live sessions.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Connected users, by name.
    pub fn users(&self) -> Vec<ConnectedUser> {
        let mut by_user: BTreeMap<String, ConnectedUser> = BTreeMap::new();
        for entry in self.lock().values() {
            let u = by_user
                .entry(entry.user.clone())
                .or_insert_with(|| ConnectedUser {
                    user: entry.user.clone(),
                    shells: 0,
                    commands: 0,
                });
            match entry.kind {
                SessionKind::Shell => u.shells += 1,
                SessionKind::Exec => u.commands += 1,
            }
        }
        by_user.into_values().collect()
    }

    /// A receiver that changes whenever a session starts or ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_register_and_unregister() {
        let registry = Arc::new(SessionRegistry::default());
        let a = registry.register("alice", SessionKind::Shell);
        let b = registry.register("alice", SessionKind::Exec);
        let c = registry.register("bob", SessionKind::Shell);
        assert_eq!(registry.count(), 3);
        assert_eq!(
            registry.users()[0],
            ConnectedUser {
                user: "alice".into(),
                shells: 1,
                commands: 1
            }
        );
        drop((a, b));
        assert_eq!(registry.count(), 1);
        drop(c);
        assert!(registry.users().is_empty());
    }
}
