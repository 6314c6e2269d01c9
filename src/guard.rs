//! The login-node guard: each second, what capped Unix users run on the
//! host outside the queue is moved into their cgroup
//! ([`crate::exec::cgroup::UserCgroups`]) and held to its caps (set with
//! `hostlimit`), and sustained overuse of the CPU cap puts a user in the
//! penalty box ([`crate::monitor::penalty`]) for a while, their sessions
//! told why; the box is kept in the store, so a restart lets nobody out
//! early. Off unless `host_limits.enabled`; without cgroup access it
//! does not start (the daemon's start line says so).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;

use crate::exec::cgroup::UserCgroups;
use crate::lab::Lab;
use crate::monitor::penalty::{PenaltyBox, PenaltyEvent, PenaltyRule};

/// What the guard keeps between rounds.
#[derive(Debug, Default)]
struct GuardState {
    /// Caps written per uid: (CPU cores, memory bytes).
    applied: HashMap<u32, (Option<f64>, Option<u64>)>,
    /// CPU time read last per uid, and when (ns, seconds).
    cpu_seen: HashMap<u32, (u64, f64)>,
    penalties: PenaltyBox,
    /// Who was last kept in the store as boxed.
    kept: std::collections::BTreeMap<u32, i64>,
    /// Keeping them failed (warned once until it works again).
    keep_failed: bool,
}

/// Runs the guard until the daemon stops.
pub async fn run(lab: Lab, cgroups: UserCgroups, rule: PenaltyRule) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Caps an earlier daemon left are checked against the limits now: all
    // are written again, or released.
    let mut first = GuardState::default();
    for uid in cgroups.existing_uids() {
        first.applied.insert(uid, (Some(f64::NAN), None));
    }
    // Those in the penalty box stay there until their time is up.
    match lab.kept_penalties() {
        Ok(kept) => {
            let now = crate::lab::now();
            // Never longer than the rule now allows (a clock set back, a
            // shorter `penalty_for`).
            for (&uid, &until) in kept.iter().filter(|(_, until)| **until > now) {
                first.penalties.restore(uid, until.min(now + rule.for_secs));
            }
            first.kept = kept;
        }
        Err(e) => tracing::warn!("the penalty box could not be read: {e}"),
    }
    let mut state = Some(first);
    loop {
        tick.tick().await;
        let (l, c) = (lab.clone(), cgroups.clone());
        let mut s = state.take().unwrap_or_default();
        let done = tokio::task::spawn_blocking(move || {
            round(&l, &c, &rule, &mut s);
            s
        })
        .await;
        state = done.ok();
    }
}

/// One second of the guard's work.
fn round(lab: &Lab, cgroups: &UserCgroups, rule: &PenaltyRule, state: &mut GuardState) {
    let Ok((capped, complete)) = lab.capped_accounts() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let uids: HashSet<u32> = capped.iter().map(|a| a.uid).collect();
    for account in &capped {
        let uid = account.uid;
        let mut cpus = account.limit.cpus;
        if let (Some(cap), Some(used)) = (cpus, cgroups.cpu_used_ns(uid)) {
            if let Some((seen, at)) = state.cpu_seen.insert(uid, (used, now))
                && now > at
            {
                let cores = used.saturating_sub(seen) as f64 / 1e9 / (now - at);
                let event = state.penalties.observe(rule, now as i64, uid, cores, cap);
                tell(lab, &account.unix_user, event, cap);
            }
            cpus = Some(state.penalties.cap(rule, uid, cap));
        }
        let caps = (cpus, account.limit.memory_bytes);
        if state.applied.get(&uid) != Some(&caps) {
            match cgroups.apply(uid, caps.0, caps.1) {
                Ok(()) => {
                    state.applied.insert(uid, caps);
                }
                Err(e) => tracing::warn!(uid, "host limit not applied: {e}"),
            }
        }
    }
    // No longer capped: their cgroups keep their processes, uncapped. Not
    // while an account could not be looked up: it may still be capped.
    let released: Vec<u32> = state
        .applied
        .keys()
        .filter(|uid| complete && !uids.contains(uid))
        .copied()
        .collect();
    for uid in released {
        if cgroups.apply(uid, None, None).is_ok() {
            state.applied.remove(&uid);
            state.cpu_seen.remove(&uid);
        }
    }
    // Not while an account could not be looked up: it may still be capped.
    if complete {
        state.penalties.retain(|uid| uids.contains(&uid));
    }
    let boxed = state.penalties.boxed();
    if boxed != state.kept {
        match lab.keep_penalties(&boxed) {
            Ok(()) => {
                state.kept = boxed;
                state.keep_failed = false;
            }
            Err(e) if !state.keep_failed => {
                state.keep_failed = true;
                tracing::warn!("the penalty box could not be kept (tried again each second): {e}");
            }
            Err(_) => {}
        }
    }
    if !uids.is_empty() {
        adopt_processes(cgroups, &uids);
    }
}

/// Moves every process of a capped uid that runs outside the queue and
/// outside its cgroup into it.
fn adopt_processes(cgroups: &UserCgroups, uids: &HashSet<u32>) {
    crate::sys::procfs::for_each_process(|pid, entry| {
        let Ok(meta) = entry.metadata() else {
            return;
        };
        if !uids.contains(&meta.uid()) {
            return;
        }
        let Ok(membership) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            return;
        };
        if cgroups.should_adopt(meta.uid(), &membership) {
            // A process that ended meanwhile cannot be moved: nothing to do.
            let _ = cgroups.adopt(meta.uid(), pid);
        }
    });
}

/// Tells `unix_user`'s sessions of a penalty that began or ended.
fn tell(lab: &Lab, unix_user: &str, event: Option<PenaltyEvent>, cap: f64) {
    let text = match event {
        None => return,
        Some(PenaltyEvent::Boxed { until, cpus }) => format!(
            "your processes outside the queue kept their {cap} CPUs busy: they get {cpus} CPUs until {} (submit long work to the queue: `submit`)",
            crate::units::minute_time(until)
        ),
        Some(PenaltyEvent::Released) => {
            format!("your processes outside the queue have their {cap} CPUs again")
        }
    };
    lab.notify_unix_user(unix_user, text);
}
