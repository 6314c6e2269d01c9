//! Unix uid ↔ account name, from the name service (NSS: local files, LDAP,
//! SSSD, extrausers), so that an account created while the daemon runs is
//! named within 5 s: a uid without a name is asked about again every 5 s (at
//! most 64 such lookups a second), one whose lookup failed after 30 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::sys::accounts;

/// How long a uid whose lookup failed (a directory service not answering)
/// is left unnamed before it is asked about again: the sampler must not
/// wait on it every second.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(30);

/// How long a uid the name service does not know is left unnamed before
/// it is asked about again.
const ASK_UNNAMED_EVERY: Duration = Duration::from_secs(5);
/// Most lookups of uids without a name in one second: a user running
/// processes under thousands of unnamed uids (a container's range) must
/// not turn the sampler into a flood of lookups.
const MAX_LOOKUPS_PER_SECOND: u32 = 64;

/// Names of uids, as the name service gives them.
#[derive(Debug, Default)]
pub struct UidNames {
    /// Uids whose lookup failed, and when.
    failed: HashMap<u32, Instant>,
    /// Uids the name service did not know, and when it was last asked.
    unnamed: HashMap<u32, Instant>,
    /// Lookups of unnamed uids in the current second, and when it began.
    budget: Option<(Instant, u32)>,
}

impl UidNames {
    /// The name of `uid`, or `uid N` while the name service does not know
    /// it (asked again at the next call: its answers are kept briefly).
    pub fn name_of(&mut self, uid: u32) -> String {
        let unnamed = || format!("uid {uid}");
        if self
            .failed
            .get(&uid)
            .is_some_and(|at| at.elapsed() < RETRY_FAILED_AFTER)
        {
            return unnamed();
        }
        if let Some(asked) = self.unnamed.get(&uid) {
            if asked.elapsed() < ASK_UNNAMED_EVERY {
                return unnamed();
            }
            let (since, used) = self.budget.get_or_insert((Instant::now(), 0));
            if since.elapsed() >= Duration::from_secs(1) {
                (*since, *used) = (Instant::now(), 0);
            }
            if *used >= MAX_LOOKUPS_PER_SECOND {
                return unnamed();
            }
            *used += 1;
        }
        match accounts::by_uid(uid) {
            Ok(Some(account)) if printable(&account.name) => {
                self.failed.remove(&uid);
                self.unnamed.remove(&uid);
                account.name
            }
            Ok(_) => {
                if self.unnamed.len() > 65_536 {
                    self.unnamed
                        .retain(|_, at| at.elapsed() < ASK_UNNAMED_EVERY);
                }
                self.unnamed.insert(uid, Instant::now());
                unnamed()
            }
            Err(e) => {
                tracing::warn!("{e}; uid {uid} is shown unnamed for a while");
                self.failed.insert(uid, Instant::now());
                unnamed()
            }
        }
    }

    /// The uid of an account name (or of `uid N`).
    pub fn uid_of(&mut self, name: &str) -> Option<u32> {
        if let Some(uid) = name.strip_prefix("uid ").and_then(|n| n.parse().ok()) {
            return Some(uid);
        }
        accounts::by_name(name).ok().flatten().map(|a| a.uid)
    }
}

/// Whether a name can be shown as it is (no control characters, no spaces).
fn printable(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_named_by_the_name_service() {
        let mut names = UidNames::default();
        assert_eq!(names.name_of(0), "root");
        assert_eq!(names.uid_of("root"), Some(0));
        assert_eq!(names.name_of(4_000_000_000), "uid 4000000000");
        assert_eq!(names.uid_of("uid 42"), Some(42));
        assert_eq!(names.uid_of("no-such-user-here"), None);
        assert!(!printable("\u{1b}[31m"));
    }
}
