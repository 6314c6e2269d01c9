//! Stopping an experiment (SIGTERM, then SIGKILL after the grace) and
//! the limits the runner enforces itself: output size and the data disk's reserve.

use std::collections::HashMap;
use std::time::Duration;

use super::RunnerSettings;
use super::tracked::{Stopping, Tracked};
use crate::model::Outcome;
use crate::output::ExperimentFiles;

/// Sends SIGTERM to experiment `t`'s processes, and SIGKILL after `grace`
/// (see [`watch`]).
pub(super) fn stop(t: &mut Tracked, outcome: Outcome, reason: String, grace: Duration) {
    if t.stopping.is_some() {
        return;
    }
    signal_command(t, libc::SIGTERM);
    t.stopping = Some(Stopping {
        outcome,
        reason,
        kill_at: tokio::time::Instant::now() + grace,
        sent: Some(libc::SIGTERM),
        supervisor_killed: false,
        trim_to: None,
        retry: false,
    });
}

/// Sends `signal` to every process of experiment `t` but its supervisor,
/// which stays to record how the command ended.
pub(super) fn signal_command(t: &Tracked, signal: i32) {
    match &t.cgroup {
        Some(cg) => cg.signal_all_but(signal, Some(t.pid as i32)),
        // Without cgroups: the experiment's session (processes that started a
        // session of their own escape; the README says so).
        None => crate::sys::process::signal_session(t.pid, signal, Some(t.pid)),
    }
}

/// Sends `signal` to every process of experiment `t`, its supervisor too.
pub(super) fn signal_all(t: &Tracked, signal: i32) {
    match &t.cgroup {
        Some(cg) => cg.signal_all(signal),
        None => crate::sys::process::signal_session(t.pid, signal, None),
    }
}

/// Measures each experiment's output and stops those over their output
/// limit; when the data disk has fallen below its reserve, also the one
/// that wrote most since the last tick (the disk is shared: its reserve
/// is what lets every run's end be recorded).
pub(super) fn guard_output(tracked: &mut HashMap<u64, Tracked>, settings: &RunnerSettings) {
    for (id, t) in tracked.iter_mut() {
        check_output(*id, t, settings, true);
    }
    let reserve = settings.disk_reserve;
    let Some(free) = crate::sys::fs::free_bytes(&settings.launch.data_dir) else {
        return;
    };
    if reserve == 0 || free >= reserve {
        return;
    }
    // Only a run whose own writing is filling the disk is stopped: one that
    // wrote a good part of what is missing in this quarter second alone.
    let short = reserve - free;
    let writer = tracked
        .values_mut()
        .filter(|t| t.stopping.is_none())
        .filter_map(|t| {
            let grew = t.output.map_or(0, |(_, grew)| grew);
            (grew >= DISK_HOG_GROWTH.min(short / 2).max(1)).then_some((grew, t))
        })
        .max_by_key(|(grew, _)| *grew);
    if let Some((grew, t)) = writer {
        let reason = format!(
            "the data disk fell below its reserve ({} free, {} kept) while it wrote {} in a quarter second",
            crate::units::short_bytes(free as f64),
            crate::units::short_bytes(reserve as f64),
            crate::units::short_bytes(grew as f64)
        );
        stop(t, Outcome::KilledByLimit, reason, Duration::ZERO);
        // What it wrote since gives the disk its reserve back, and no more
        // than that is cut.
        let written = t.output.map_or(0, |(bytes, _)| bytes);
        trim(t, written.saturating_sub(grew.min(short + (1 << 20))));
    }
}

/// Growth of its output in a quarter second that marks an experiment as
/// the one filling the data disk (16 MiB/s).
pub(super) const DISK_HOG_GROWTH: u64 = 4 << 20;

/// Measures experiment `id`'s output; stops it (and has its output cut)
/// when over its limit.
pub(super) fn check_output(id: u64, t: &mut Tracked, settings: &RunnerSettings, running: bool) {
    let files = ExperimentFiles::new(&settings.launch.data_dir, id);
    let bytes: u64 = [files.stdout(), files.stderr(), files.metrics()]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum();
    let grew = t
        .output
        .map_or(0, |(before, _)| bytes.saturating_sub(before));
    t.output = Some((bytes, grew));
    let limit = settings.output_limit_of(t);
    if t.stopping.is_some() || bytes <= limit {
        return;
    }
    let reason = format!(
        "output limit {} exceeded",
        crate::units::short_bytes(limit as f64)
    );
    if running {
        stop(t, Outcome::KilledByLimit, reason, Duration::ZERO);
    } else {
        // Ended already: nothing to signal, only its output to cut.
        t.stopping = Some(Stopping {
            outcome: Outcome::KilledByLimit,
            reason,
            kill_at: tokio::time::Instant::now(),
            sent: None,
            supervisor_killed: false,
            trim_to: None,
            retry: false,
        });
    }
    trim(t, limit);
}

/// Has the output of the stopping experiment `t` cut to `keep` bytes once it ended.
pub(super) fn trim(t: &mut Tracked, keep: u64) {
    if let Some(s) = &mut t.stopping {
        s.trim_to = Some(keep);
    }
}

/// Cuts an ended experiment's output to `keep` bytes in all (stdout first,
/// then stderr, then metrics), each cut log ending with a note saying so.
pub(super) fn trim_output(files: &ExperimentFiles, keep: u64, why: &str) {
    let mut left = keep;
    for (path, note) in [
        (files.stdout(), true),
        (files.stderr(), true),
        (files.metrics(), false),
    ] {
        let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
            continue;
        };
        let kept = len.min(left);
        left -= kept;
        if kept == len {
            continue;
        }
        let cut = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(kept));
        if let Err(e) = cut {
            tracing::warn!("cannot cut {}: {e}", path.display());
            continue;
        }
        if note {
            let marker = format!("\n[labbench: {why}; the output after this point was dropped]\n");
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, marker.as_bytes()));
            if let Err(e) = appended {
                tracing::warn!("cannot note the cut in {}: {e}", path.display());
            }
        }
    }
}
