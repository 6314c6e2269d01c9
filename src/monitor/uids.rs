//! Unix uid ↔ user name, from `/etc/passwd`, re-read when an unknown uid shows up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shortest pause between two re-reads of the password file.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// A cache of the password file.
#[derive(Debug, Default)]
pub struct UidNames {
    by_uid: HashMap<u32, String>,
    loaded_at: Option<Instant>,
}

impl UidNames {
    fn reload_if_due(&mut self) {
        if self.loaded_at.is_some_and(|t| t.elapsed() < RELOAD_EVERY) {
            return;
        }
        self.loaded_at = Some(Instant::now());
        if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
            self.by_uid = parse_passwd(&text);
        }
    }

    /// The name of `uid`, or `uid N` when the password file does not know it.
    pub fn name_of(&mut self, uid: u32) -> String {
        if !self.by_uid.contains_key(&uid) {
            self.reload_if_due();
        }
        self.by_uid
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| format!("uid {uid}"))
    }

    /// The uid of a user name.
    pub fn uid_of(&mut self, name: &str) -> Option<u32> {
        if let Some(uid) = name.strip_prefix("uid ").and_then(|n| n.parse().ok()) {
            return Some(uid);
        }
        let find =
            |map: &HashMap<u32, String>| map.iter().find(|(_, n)| *n == name).map(|(u, _)| *u);
        find(&self.by_uid).or_else(|| {
            self.reload_if_due();
            find(&self.by_uid)
        })
    }
}

/// `name:x:uid:…` lines to a uid → name map; names are kept only if printable.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            let printable = !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic());
            printable.then(|| (uid, name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let map = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbad line\nalice:x:1001:1001::/home/alice:/bin/sh\n\x1b[31m:x:5:5::/:/\n",
        );
        assert_eq!(map.get(&0).map(String::as_str), Some("root"));
        assert_eq!(map.get(&1001).map(String::as_str), Some("alice"));
        assert!(!map.contains_key(&5));
    }

    #[test]
    fn unknown_uid_gets_a_readable_name() {
        let mut names = UidNames::default();
        assert_eq!(names.name_of(4_000_000_000), "uid 4000000000");
        assert_eq!(names.uid_of("uid 42"), Some(42));
        assert_eq!(names.name_of(0), "root");
    }
}
