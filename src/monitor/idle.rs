//! Idle reservations: a running experiment that holds GPUs none of which
//! reached `gpu_percent` utilisation (or, without GPUs, whose CPU use never
//! reached `cpu_percent` of its request) for `after_secs` is idle.
//!
//! Decided on the peak within the window, never the mean: the experiment
//! is busy from any sample at or over the threshold, and idle only once a
//! whole window has passed without one, so work that is busy in bursts
//! (an evaluation every few minutes, a data loader between epochs) is never
//! idle. A GPU whose utilisation cannot be read counts as busy: nothing is
//! flagged on missing data. Only the time since the last busy sample is
//! kept per experiment, so the whole peak-over-window rule costs O(1).
//!
//! Pure: the service feeds it a sample per running experiment each second
//! and acts on what it returns ([`IdleEvent`]).

use std::collections::HashMap;

/// When an experiment is idle, and what is done then.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IdleRule {
    /// A GPU at or over this utilisation, percent, is busy.
    pub gpu_percent: u32,
    /// CPU use at or over this share of the request, percent, is busy.
    pub cpu_percent: f64,
    /// Seconds without a busy sample before an experiment is idle.
    pub after_secs: i64,
    /// Cancel an idle experiment this many seconds after it was flagged
    /// (`None`: only tell).
    pub cancel_after_secs: Option<i64>,
}

/// How long after its flag an idle run is cancelled, when cancelling is
/// asked for without saying (`[idle] cancel_after`, `idle set`, the prompt).
pub const DEFAULT_CANCEL_AFTER_SECS: i64 = 1800;

impl Default for IdleRule {
    fn default() -> Self {
        IdleRule {
            gpu_percent: 5,
            cpu_percent: 5.0,
            after_secs: 3600,
            cancel_after_secs: None,
        }
    }
}

/// One running experiment's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleSample {
    /// Utilisation of each GPU it holds, percent (`None`: unreadable).
    pub gpus: Vec<Option<u32>>,
    /// CPU cores busy.
    pub cpu_cores: f64,
    /// CPU cores it asked for.
    pub cpus_asked: f64,
}

impl IdleSample {
    /// Whether this reading shows work under `rule`: any of its GPUs at or
    /// over the threshold (or unreadable), else, without GPUs, its CPU use.
    pub fn busy(&self, rule: &IdleRule) -> bool {
        if !self.gpus.is_empty() {
            return self
                .gpus
                .iter()
                .any(|u| u.is_none_or(|u| u >= rule.gpu_percent));
        }
        self.cpu_cores * 100.0 >= rule.cpu_percent * self.cpus_asked
    }
}

/// What changed for one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEvent {
    /// Idle for `idle_secs` now: tell its owner and the admins.
    Flagged { id: u64, idle_secs: i64 },
    /// Flagged long enough: cancel it.
    Cancel { id: u64, idle_secs: i64 },
    /// Flagged before, busy again.
    Busy { id: u64 },
}

/// How one experiment stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdleState {
    /// First reading (seconds since the epoch).
    pub watched_since: i64,
    /// Last busy reading, if any.
    pub last_busy: Option<i64>,
    /// When it was flagged idle, while it is.
    pub flagged_at: Option<i64>,
    /// Whether its cancellation was asked for.
    pub cancel_asked: bool,
}

impl IdleState {
    /// Seconds without a busy reading at `now`.
    pub fn idle_secs(&self, now: i64) -> i64 {
        now - self
            .last_busy
            .unwrap_or(self.watched_since)
            .max(self.watched_since)
    }
}

/// The idle state of every running experiment.
#[derive(Debug, Clone, Default)]
pub struct IdleTracker {
    states: HashMap<u64, IdleState>,
}

impl IdleTracker {
    /// Takes this second's readings of the running experiments (those not
    /// listed have ended and are forgotten); what changed.
    pub fn observe(
        &mut self,
        rule: &IdleRule,
        now: i64,
        samples: impl IntoIterator<Item = (u64, IdleSample)>,
    ) -> Vec<IdleEvent> {
        let mut events = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, sample) in samples {
            seen.insert(id);
            let state = self.states.entry(id).or_insert(IdleState {
                watched_since: now,
                ..IdleState::default()
            });
            if sample.busy(rule) {
                state.last_busy = Some(now);
                if state.flagged_at.take().is_some() {
                    state.cancel_asked = false;
                    events.push(IdleEvent::Busy { id });
                }
                continue;
            }
            let idle_secs = state.idle_secs(now);
            if idle_secs < rule.after_secs {
                continue;
            }
            let flagged_at = *state.flagged_at.get_or_insert_with(|| {
                events.push(IdleEvent::Flagged { id, idle_secs });
                now
            });
            if let Some(grace) = rule.cancel_after_secs
                && !state.cancel_asked
                && now - flagged_at >= grace
            {
                state.cancel_asked = true;
                events.push(IdleEvent::Cancel { id, idle_secs });
            }
        }
        self.states.retain(|id, _| seen.contains(id));
        events
    }

    /// Each watched experiment's state.
    pub fn states(&self) -> &HashMap<u64, IdleState> {
        &self.states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(percent: u32) -> IdleSample {
        IdleSample {
            gpus: vec![Some(percent)],
            cpu_cores: 0.0,
            cpus_asked: 4.0,
        }
    }

    fn rule(cancel: Option<i64>) -> IdleRule {
        IdleRule {
            gpu_percent: 5,
            cpu_percent: 5.0,
            after_secs: 600,
            cancel_after_secs: cancel,
        }
    }

    /// Replays one reading a second of `trace(t)` for `secs`; the events.
    fn replay(
        rule: &IdleRule,
        secs: i64,
        trace: impl Fn(i64) -> IdleSample,
    ) -> Vec<(i64, IdleEvent)> {
        let mut tracker = IdleTracker::default();
        let mut events = Vec::new();
        for t in 0..secs {
            for e in tracker.observe(rule, 1_000 + t, [(7, trace(t))]) {
                events.push((t, e));
            }
        }
        events
    }

    #[test]
    fn bursts_of_20_seconds_every_5_minutes_are_never_idle() {
        // Mostly 0 %: its mean is under 7 %, yet it works every 5 minutes.
        let bursty = |t: i64| gpu(if t % 300 < 20 { 95 } else { 0 });
        assert_eq!(replay(&rule(Some(60)), 6 * 3600, bursty), vec![]);
    }

    #[test]
    fn a_flat_zero_trace_is_flagged_after_the_window_and_cancelled_after_the_grace() {
        let events = replay(&rule(Some(120)), 1_000, |_| gpu(0));
        assert_eq!(
            events,
            vec![
                (
                    600,
                    IdleEvent::Flagged {
                        id: 7,
                        idle_secs: 600
                    }
                ),
                (
                    720,
                    IdleEvent::Cancel {
                        id: 7,
                        idle_secs: 720
                    }
                ),
            ]
        );
        let told = replay(&rule(None), 1_000, |_| gpu(0));
        assert_eq!(
            told,
            vec![(
                600,
                IdleEvent::Flagged {
                    id: 7,
                    idle_secs: 600
                }
            )]
        );
    }

    #[test]
    fn work_after_a_flag_clears_it_and_the_window_starts_again() {
        let events = replay(&rule(None), 2_000, |t| gpu(if t == 900 { 50 } else { 0 }));
        assert_eq!(
            events,
            vec![
                (
                    600,
                    IdleEvent::Flagged {
                        id: 7,
                        idle_secs: 600
                    }
                ),
                (900, IdleEvent::Busy { id: 7 }),
                (
                    1500,
                    IdleEvent::Flagged {
                        id: 7,
                        idle_secs: 600
                    }
                ),
            ]
        );
    }

    #[test]
    fn unreadable_gpus_are_busy_and_cpu_jobs_are_judged_by_their_request() {
        let unread = IdleSample {
            gpus: vec![Some(0), None],
            cpu_cores: 0.0,
            cpus_asked: 1.0,
        };
        assert!(unread.busy(&rule(None)));
        let cpu = |cores: f64| IdleSample {
            gpus: Vec::new(),
            cpu_cores: cores,
            cpus_asked: 8.0,
        };
        assert!(!cpu(0.39).busy(&rule(None)), "under 5 % of 8 cores");
        assert!(cpu(0.4).busy(&rule(None)));
        // A GPU job busy on its CPUs only is still idle on the GPUs it holds.
        let preprocessing = IdleSample {
            gpus: vec![Some(0)],
            cpu_cores: 8.0,
            cpus_asked: 8.0,
        };
        assert!(!preprocessing.busy(&rule(None)));
    }

    #[test]
    fn ended_experiments_are_forgotten() {
        let mut tracker = IdleTracker::default();
        tracker.observe(&rule(None), 1, [(1, gpu(0)), (2, gpu(0))]);
        tracker.observe(&rule(None), 2, [(2, gpu(0))]);
        assert_eq!(
            tracker.states().keys().copied().collect::<Vec<_>>(),
            vec![2]
        );
    }
}
