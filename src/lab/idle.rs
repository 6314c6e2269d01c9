//! Idle detection in the service ([`crate::monitor::idle`] decides). Each
//! second, as the runner publishes what running experiments use, each one
//! becomes a reading: the utilisation of the GPUs it holds (GPUs are given
//! whole, so a GPU's utilisation is its experiment's) from the latest GPU
//! sample, else its CPU use against its request. An experiment flagged
//! idle is shown in `ls`, the Queue tab, the Dashboard and the Admin tab's
//! Idle view, and its owner's and the admins' sessions are told; with
//! `idle.cancel_after_secs` it is cancelled that long after, its reason
//! starting with `idle:`, and the cancellation is audited as `labbench`'s.
//! A daemon restart starts every window anew.

use std::collections::HashMap;

use serde::Serialize;

use super::{Change, Lab, LabResult, LiveUse, Principal, now};
use crate::model::{Role, State};
use crate::monitor::idle::{IdleEvent, IdleRule, IdleSample, IdleTracker};

/// A rule in words, for the audit trail.
fn words(r: &IdleRuleShown) -> String {
    format!(
        "GPUs under {} %, else CPU under {} %, for {} s; {}",
        r.gpu_percent,
        r.cpu_percent,
        r.after_secs,
        r.cancel_after_secs
            .map_or("notify".to_string(), |g| format!("cancel {g} s later"))
    )
}

/// A GPU sample older than this, seconds, says nothing of now.
const STALE_AFTER_SECS: i64 = 5;

/// Idle detection's rule and what it has seen.
#[derive(Debug, Default)]
pub(super) struct IdleWatch {
    /// `None`: detection is off.
    rule: std::sync::RwLock<Option<IdleRule>>,
    tracker: std::sync::Mutex<IdleTracker>,
}

/// One running experiment as idle detection sees it (`idle --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleStatus {
    /// Experiment id.
    pub id: u64,
    /// Its owner.
    pub owner: String,
    /// GPUs it holds.
    pub gpus: usize,
    /// Seconds since its last busy reading (or since it was first read).
    pub idle_secs: i64,
    /// When it was flagged idle, while it is (seconds since the epoch).
    pub flagged_at: Option<i64>,
    /// When it will be cancelled, if it will.
    pub cancel_at: Option<i64>,
}

/// Idle detection as configured, for `idle` and the views.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IdleRuleShown {
    /// A GPU at or over this utilisation, percent, is busy.
    pub gpu_percent: u32,
    /// CPU use at or over this share of the request, percent, is busy.
    pub cpu_percent: f64,
    /// Seconds without a busy reading before an experiment is idle.
    pub after_secs: i64,
    /// Seconds from the flag to the cancellation, if idle ones are cancelled.
    pub cancel_after_secs: Option<i64>,
}

impl Lab {
    /// Watches running experiments for idleness under `rule` (`None`:
    /// off), unless an admin set another with `idle set` (kept in the store).
    pub fn with_idle_rule(mut self, rule: Option<IdleRule>) -> Lab {
        let rule = match self.store.idle_rule() {
            Ok(Some(set)) => set,
            _ => rule,
        };
        self.idle = std::sync::Arc::new(IdleWatch {
            rule: std::sync::RwLock::new(rule),
            tracker: Default::default(),
        });
        self
    }

    fn rule_now(&self) -> Option<IdleRule> {
        *self.idle.rule.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the idle rule (`None`: detection off) for now and after
    /// restarts (admins; audited). It applies from the next second.
    pub fn set_idle_rule(&self, p: &Principal, rule: Option<IdleRule>) -> LabResult<()> {
        let p = &self.current(p)?;
        super::require_admin(p, "change idle detection")?;
        if let Some(r) = &rule {
            let bad = |what: &str| Err(super::LabError::Invalid(what.to_string()));
            if r.gpu_percent > 100 {
                return bad("--gpu-percent: 0–100");
            }
            if !r.cpu_percent.is_finite() || !(0.0..=100.0).contains(&r.cpu_percent) {
                return bad("--cpu-percent: 0–100");
            }
            let limit = crate::model::MAX_DURATION_SECS as i64;
            if !(1..=limit).contains(&r.after_secs)
                || r.cancel_after_secs
                    .is_some_and(|g| !(0..=limit).contains(&g))
            {
                return bad("--after and --cancel-after: at most 365d");
            }
        }
        let before = self.idle_rule().map(|r| words(&r));
        self.store.set_idle_rule(rule.as_ref())?;
        *self.idle.rule.write().unwrap_or_else(|e| e.into_inner()) = rule;
        let after = self.idle_rule().map(|r| words(&r));
        self.audit(
            p,
            Change::new("idle.set", "idle detection", "changed idle detection")
                .changing(before.or(Some("off".into())), after.or(Some("off".into()))),
        )
    }

    /// The rule in force, if detection is on (any role).
    pub fn idle_rule(&self) -> Option<IdleRuleShown> {
        self.rule_now().map(|r| IdleRuleShown {
            gpu_percent: r.gpu_percent,
            cpu_percent: r.cpu_percent,
            after_secs: r.after_secs,
            cancel_after_secs: r.cancel_after_secs,
        })
    }

    /// Every running experiment's idle standing, longest idle first (any
    /// role: everyone sees everyone's use).
    pub fn idle_report(&self, p: &Principal) -> LabResult<Vec<IdleStatus>> {
        self.current(p)?;
        let Some(rule) = self.rule_now() else {
            return Ok(Vec::new());
        };
        let states = self
            .idle
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .states()
            .clone();
        let at = now();
        let mut report: Vec<IdleStatus> = self.store.with_active(|active| {
            states
                .iter()
                .filter_map(|(id, s)| {
                    let e = active.get(id)?;
                    let State::Running { gpus, .. } = &e.state else {
                        return None;
                    };
                    Some(IdleStatus {
                        id: *id,
                        owner: e.owner.clone(),
                        gpus: gpus.len(),
                        idle_secs: s.idle_secs(at),
                        flagged_at: s.flagged_at,
                        cancel_at: s.flagged_at.zip(rule.cancel_after_secs).map(|(f, g)| f + g),
                    })
                })
                .collect()
        });
        report.sort_by(|a, b| b.idle_secs.cmp(&a.idle_secs).then(a.id.cmp(&b.id)));
        Ok(report)
    }

    /// The ids of the experiments flagged idle now, with how long.
    pub fn idle_flags(&self) -> HashMap<u64, i64> {
        let at = now();
        self.idle
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .states()
            .iter()
            .filter(|(_, s)| s.flagged_at.is_some())
            .map(|(id, s)| (*id, s.idle_secs(at)))
            .collect()
    }

    /// Experiments flagged idle per Unix user (the Dashboard marks them).
    pub fn idle_by_unix_user(&self) -> HashMap<String, usize> {
        let flagged = self.idle_flags();
        if flagged.is_empty() {
            return HashMap::new();
        }
        self.store.with_active(|active| {
            let mut counts = HashMap::new();
            for id in flagged.keys() {
                if let Some(e) = active.get(id) {
                    *counts.entry(e.unix_user.clone()).or_insert(0) += 1;
                }
            }
            counts
        })
    }

    /// Takes this second's readings (the runner's `live` use, the latest
    /// GPU sample) and acts on what changed.
    pub(super) fn observe_idle(&self, live: &HashMap<u64, LiveUse>) {
        let Some(rule) = self.rule_now() else {
            return;
        };
        let snapshot = self.monitor.latest();
        // Readings of this moment only: a GPU whose use the driver cannot
        // give, or a sample older than a few seconds (a stalled source),
        // is unknown, and an unknown GPU is busy.
        let fresh = now() - snapshot.at <= STALE_AFTER_SECS;
        let gpu_use: HashMap<u32, u32> = snapshot
            .gpus
            .iter()
            .filter(|g| fresh && !g.device.utilization_unknown)
            .map(|g| (g.device.index, g.device.utilization_percent))
            .collect();
        let samples: Vec<(u64, IdleSample)> = self.store.with_active(|active| {
            active
                .values()
                .filter_map(|e| {
                    let State::Running { gpus, .. } = &e.state else {
                        return None;
                    };
                    // Not measured this second: busy, never flagged on
                    // missing data.
                    let cpu_cores = live.get(&e.id).map_or(f64::INFINITY, |l| l.cpu_cores);
                    Some((
                        e.id,
                        IdleSample {
                            gpus: gpus.iter().map(|g| gpu_use.get(g).copied()).collect(),
                            cpu_cores,
                            cpus_asked: e.spec.resources.cpus,
                        },
                    ))
                })
                .collect()
        });
        let events = self
            .idle
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&rule, now(), samples);
        for event in events {
            self.act_on_idle(&rule, event);
        }
    }

    fn act_on_idle(&self, rule: &IdleRule, event: IdleEvent) {
        let (id, idle_secs, cancel) = match event {
            IdleEvent::Flagged { id, idle_secs } => (id, idle_secs, false),
            IdleEvent::Cancel { id, idle_secs } => (id, idle_secs, true),
            IdleEvent::Busy { .. } => return,
        };
        let Ok(Some(e)) = self.store.experiment(id) else {
            return;
        };
        let what = match &e.state {
            State::Running { gpus, .. } if !gpus.is_empty() => format!(
                "its {} GPU(s) under {} % utilisation for {}",
                gpus.len(),
                rule.gpu_percent,
                crate::units::human_duration(idle_secs.max(0) as u64)
            ),
            _ => format!(
                "its CPU use under {} % of the {} cores it asked for, for {}",
                rule.cpu_percent,
                e.spec.resources.cpus,
                crate::units::human_duration(idle_secs.max(0) as u64)
            ),
        };
        if !cancel {
            let then = rule.cancel_after_secs.map_or(String::new(), |g| {
                format!(
                    "; it will be cancelled in {} unless it works",
                    crate::units::human_duration(g.max(0) as u64)
                )
            });
            self.tell_owner_and_admins(
                &e.owner,
                format!("experiment {id} of {} looks idle: {what}{then}", e.owner),
            );
            return;
        }
        let reason = format!("idle: {what}");
        let Some(runner) = &self.runner else {
            return;
        };
        if runner.cancel(id, reason.clone()) {
            self.tell_owner_and_admins(
                &e.owner,
                format!("experiment {id} of {} was cancelled: {reason}", e.owner),
            );
            let system = Principal {
                user: "labbench".into(),
                role: Role::Admin,
                unix_user: None,
                key_fingerprint: None,
                since: 0,
            };
            let change = Change::new(
                "experiment.cancel",
                format!("experiment {id}"),
                format!("cancelled experiment {id} ({reason})"),
            )
            .changing(Some("running".into()), Some("cancelled".into()));
            if let Err(err) = self.audit(&system, change) {
                tracing::warn!(id, "idle cancellation not audited: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::{finished_run, lab_with_admin, principal};
    use crate::model::Role;

    #[test]
    fn a_flag_tells_the_owner_and_the_admins_and_shows_in_the_listing() {
        let (_d, lab) = lab_with_admin();
        let lab = lab.with_idle_rule(Some(IdleRule {
            after_secs: 0,
            ..IdleRule::default()
        }));
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        let mut run = finished_run(5, "mike", now() - 60, 0);
        run.state = State::Running {
            started_at: now() - 60,
            pid: 0,
            pid_start_time: 0,
            cgroup: None,
            gpus: Vec::new(),
        };
        lab.store().put_experiment(&run).expect("put");
        let seq = lab.notification_seq();
        // Measured: no CPU use of the one core it asked for.
        let live = HashMap::from([(5, LiveUse::default())]);
        lab.publish_live_use(live.clone());
        let told = |p: &Principal| lab.notifications_after(p, seq);
        assert_eq!(told(&mike).len(), 1);
        assert!(
            told(&mike)[0]
                .text
                .contains("experiment 5 of mike looks idle: its CPU use under 5 %"),
            "{:?}",
            told(&mike)
        );
        assert_eq!((told(&admin).len(), told(&vera).len()), (1, 0));
        lab.publish_live_use(live);
        assert_eq!(told(&mike).len(), 1, "told once per flag");
        assert!(lab.idle_flags().contains_key(&5));
        let report = lab.idle_report(&vera).expect("everyone reads it");
        assert_eq!(report[0].id, 5);
        assert!(report[0].flagged_at.is_some() && report[0].cancel_at.is_none());
    }

    #[test]
    fn a_rule_an_admin_sets_applies_at_once_and_outlives_a_restart() {
        let (_d, lab) = lab_with_admin();
        let lab = lab.with_idle_rule(Some(IdleRule::default()));
        let root = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let cancel = IdleRule {
            after_secs: 600,
            cancel_after_secs: Some(60),
            ..IdleRule::default()
        };
        assert!(matches!(
            lab.set_idle_rule(&mike, None),
            Err(crate::lab::LabError::PermissionDenied(_))
        ));
        assert!(
            lab.set_idle_rule(
                &root,
                Some(IdleRule {
                    gpu_percent: 101,
                    ..cancel
                })
            )
            .is_err()
        );
        lab.set_idle_rule(&root, Some(cancel)).expect("set");
        assert_eq!(lab.idle_rule().map(|r| r.cancel_after_secs), Some(Some(60)));
        // A restart with the configuration's rule keeps the admin's.
        let again = Lab::new(lab.store().clone(), lab.monitor.clone())
            .with_idle_rule(Some(IdleRule::default()));
        assert_eq!(again.idle_rule().map(|r| r.after_secs), Some(600));
        lab.set_idle_rule(&root, None).expect("off");
        let again = Lab::new(lab.store().clone(), lab.monitor.clone())
            .with_idle_rule(Some(IdleRule::default()));
        assert_eq!(again.idle_rule(), None, "turned off stays off");
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::lab::testing::finished_run;
    use crate::monitor::{GpuDevice, GpuStatus, MonitorHandle, UsageSnapshot};

    /// A lab whose monitor shows one GPU at 0 %, readable or not, sampled now.
    fn lab_with_gpu(unknown: bool) -> (tempfile::TempDir, Lab) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path()).expect("store");
        let snapshot = UsageSnapshot {
            at: now(),
            gpus: vec![GpuStatus {
                device: GpuDevice {
                    index: 0,
                    name: "H100 MIG".into(),
                    utilization_percent: 0,
                    utilization_unknown: unknown,
                    memory_used: 0,
                    memory_total: 80 << 30,
                    temperature_c: None,
                    power_watts: None,
                    minor: None,
                    uuid: None,
                },
                owners: Vec::new(),
            }],
            ..UsageSnapshot::default()
        };
        let lab = Lab::new(store, MonitorHandle::fixed(snapshot, Default::default()))
            .with_idle_rule(Some(IdleRule {
                after_secs: 0,
                ..IdleRule::default()
            }));
        let mut run = finished_run(3, "mike", now() - 60, 0);
        run.state = State::Running {
            started_at: now() - 60,
            pid: 0,
            pid_start_time: 0,
            cgroup: None,
            gpus: vec![0],
        };
        lab.store().put_experiment(&run).expect("put");
        (dir, lab)
    }

    #[test]
    fn a_gpu_whose_use_cannot_be_read_is_busy_and_a_readable_idle_one_is_flagged() {
        for (unknown, flagged) in [(true, false), (false, true)] {
            let (_d, lab) = lab_with_gpu(unknown);
            // Busy on its CPUs: only the GPU decides.
            let live = HashMap::from([(
                3,
                LiveUse {
                    cpu_cores: 1.0,
                    ..LiveUse::default()
                },
            )]);
            lab.publish_live_use(live);
            assert_eq!(
                lab.idle_flags().contains_key(&3),
                flagged,
                "unknown {unknown}"
            );
        }
    }
}
