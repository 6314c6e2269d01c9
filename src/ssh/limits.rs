//! Connection and session limits, counted with guards that release on drop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Live connections per key and sessions on the whole server.
#[derive(Debug)]
pub struct ConnectionLimits {
    per_key: Mutex<HashMap<String, usize>>,
    sessions: AtomicUsize,
    max_per_key: usize,
    max_sessions: usize,
}

/// Holds one connection slot of a key.
#[derive(Debug)]
pub struct KeySlot {
    limits: Arc<ConnectionLimits>,
    fingerprint: String,
}

/// Holds one server-wide session slot.
#[derive(Debug)]
pub struct SessionSlot {
    limits: Arc<ConnectionLimits>,
}

impl ConnectionLimits {
    /// Limits allowing `max_per_key` connections per key and `max_sessions` sessions.
    pub fn new(max_per_key: usize, max_sessions: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            per_key: Mutex::new(HashMap::new()),
            sessions: AtomicUsize::new(0),
            max_per_key,
            max_sessions,
        })
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.per_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a connection slot for `fingerprint`, or `None` at the limit.
    pub fn acquire_key(self: &Arc<Self>, fingerprint: &str) -> Option<KeySlot> {
        let mut keys = self.keys();
        let count = keys.entry(fingerprint.to_string()).or_insert(0);
        if *count >= self.max_per_key {
            return None;
        }
        *count += 1;
        Some(KeySlot {
            limits: Arc::clone(self),
            fingerprint: fingerprint.to_string(),
        })
    }

    /// Takes a session slot, or `None` at the limit.
    pub fn acquire_session(self: &Arc<Self>) -> Option<SessionSlot> {
        self.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_sessions).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot {
                limits: Arc::clone(self),
            })
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut keys = self.limits.keys();
        if let Some(count) = keys.get_mut(&self.fingerprint) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                keys.remove(&self.fingerprint);
            }
        }
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.limits.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_are_limited_and_released() {
        let limits = ConnectionLimits::new(2, 10);
        let a = limits.acquire_key("k").expect("first");
        let _b = limits.acquire_key("k").expect("second");
        assert!(limits.acquire_key("k").is_none());
        assert!(limits.acquire_key("other").is_some());
        drop(a);
        assert!(limits.acquire_key("k").is_some());
    }

    #[test]
    fn session_slots_are_limited_and_released() {
        let limits = ConnectionLimits::new(2, 1);
        let s = limits.acquire_session().expect("first");
        assert!(limits.acquire_session().is_none());
        drop(s);
        assert!(limits.acquire_session().is_some());
    }
}
