//! The penalty box of the login-node guard (as Arbiter2's): a Unix user
//! whose processes outside the queue keep at least `over_percent` of their
//! CPU cap busy for `after_secs` gets `cpus_percent` of that cap for
//! `for_secs`, and is told why. Pure: the guard feeds it each second's use.

use std::collections::HashMap;

/// When overuse is sustained, and what it costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PenaltyRule {
    /// Use at or over this share of the cap, percent, counts as overuse.
    pub over_percent: f64,
    /// Seconds of unbroken overuse before the penalty.
    pub after_secs: i64,
    /// The cap during the penalty, percent of the usual one.
    pub cpus_percent: f64,
    /// Seconds the penalty lasts.
    pub for_secs: i64,
}

/// What changed for one user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PenaltyEvent {
    /// Boxed until `until` (seconds since the epoch), at `cpus` cores.
    Boxed { until: i64, cpus: f64 },
    /// Out of the box: the usual cap again.
    Released,
}

#[derive(Debug, Clone, Copy, Default)]
struct Standing {
    over_since: Option<i64>,
    until: Option<i64>,
}

/// Every capped user's standing.
#[derive(Debug, Clone, Default)]
pub struct PenaltyBox {
    users: HashMap<u32, Standing>,
}

impl PenaltyBox {
    /// Takes `uid`'s use this second (`cores`, under a cap of `cap` cores).
    pub fn observe(
        &mut self,
        rule: &PenaltyRule,
        now: i64,
        uid: u32,
        cores: f64,
        cap: f64,
    ) -> Option<PenaltyEvent> {
        let s = self.users.entry(uid).or_default();
        if let Some(until) = s.until {
            if now < until {
                return None;
            }
            *s = Standing::default();
            return Some(PenaltyEvent::Released);
        }
        if cores * 100.0 < rule.over_percent * cap {
            s.over_since = None;
            return None;
        }
        let since = *s.over_since.get_or_insert(now);
        if now - since < rule.after_secs {
            return None;
        }
        let until = now + rule.for_secs;
        *s = Standing {
            over_since: None,
            until: Some(until),
        };
        Some(PenaltyEvent::Boxed {
            until,
            cpus: cap * rule.cpus_percent / 100.0,
        })
    }

    /// The cap of `uid` now: `cap`, or the penalty's share of it.
    pub fn cap(&self, rule: &PenaltyRule, uid: u32, cap: f64) -> f64 {
        match self.users.get(&uid).and_then(|s| s.until) {
            Some(_) => cap * rule.cpus_percent / 100.0,
            None => cap,
        }
    }

    /// Forgets users no longer capped.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        self.users.retain(|uid, _| keep(*uid));
    }

    /// The users in the box, and until when (to keep across a restart).
    pub fn boxed(&self) -> std::collections::BTreeMap<u32, i64> {
        self.users
            .iter()
            .filter_map(|(uid, s)| Some((*uid, s.until?)))
            .collect()
    }

    /// Puts `uid` back in the box until `until`, as kept before a restart.
    pub fn restore(&mut self, uid: u32, until: i64) {
        self.users.insert(
            uid,
            Standing {
                over_since: None,
                until: Some(until),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: PenaltyRule = PenaltyRule {
        over_percent: 90.0,
        after_secs: 60,
        cpus_percent: 50.0,
        for_secs: 300,
    };

    #[test]
    fn sustained_overuse_is_boxed_for_a_while_and_a_pause_resets_the_clock() {
        let mut pb = PenaltyBox::default();
        let mut events = Vec::new();
        for t in 0..500 {
            // At the 4-core cap, but for one quiet second at t = 30.
            let cores = if t == 30 { 0.5 } else { 3.9 };
            if let Some(e) = pb.observe(&RULE, t, 7, cores, 4.0) {
                events.push((t, e));
            }
            if t == 100 {
                assert_eq!(pb.cap(&RULE, 7, 4.0), 2.0, "boxed at half");
            }
        }
        assert_eq!(
            events,
            vec![
                (
                    91,
                    PenaltyEvent::Boxed {
                        until: 391,
                        cpus: 2.0
                    }
                ),
                (391, PenaltyEvent::Released),
                (
                    452,
                    PenaltyEvent::Boxed {
                        until: 752,
                        cpus: 2.0
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_box_kept_across_a_restart_holds_until_its_end() {
        let mut before = PenaltyBox::default();
        for t in 0..=60 {
            before.observe(&RULE, t, 7, 3.9, 4.0);
        }
        let kept = before.boxed();
        assert_eq!(kept, std::collections::BTreeMap::from([(7, 360)]));
        let mut after = PenaltyBox::default();
        for (uid, until) in kept {
            after.restore(uid, until);
        }
        assert_eq!(after.cap(&RULE, 7, 4.0), 2.0);
        assert_eq!(after.observe(&RULE, 359, 7, 0.0, 4.0), None);
        assert_eq!(
            after.observe(&RULE, 360, 7, 0.0, 4.0),
            Some(PenaltyEvent::Released)
        );
        assert!(after.boxed().is_empty());
    }

    #[test]
    fn use_under_the_threshold_is_never_boxed() {
        let mut pb = PenaltyBox::default();
        for t in 0..10_000 {
            assert_eq!(pb.observe(&RULE, t, 7, 3.5, 4.0), None);
        }
    }
}
