//! Emptied v1 cgroups kept for the next experiment. On v1 an experiment has
//! a directory in each of five hierarchies; making and removing five costs
//! far more than reusing them (measured here: ~240 µs, plus the kernel's
//! deferred clean-up of each removed memory cgroup), and a kept one has its
//! control files open already. So v1 cgroups are named `slot-N`, not after
//! an experiment, and keep their name from one experiment to the next. v2
//! makes one directory, not five, and cannot reset a cgroup's counters.
//!
//! A cgroup is kept only if its experiment ended with nothing left in it (its
//! process list read, not assumed), it is thawed, the OOM killer never acted
//! there (v1 cannot reset that count) and it is still charged for at most
//! [`max_leftover_bytes`]: 2 MiB for the kernel memory of the ended command,
//! which the kernel frees a moment later (about 1.1 MB for `true` here), plus
//! 64 pages per CPU of the host for the charges the kernel batches per CPU.
//! What is charged within that allowance counts toward the next experiment's
//! peak memory. Its CPU time and peak memory are reset when it is reused. At
//! most 8 are kept; the cgroups of experiments re-attached after a restart
//! are never kept.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::hierarchy::v1_controllers;
use super::{ExperimentCgroup, Hierarchy, Limits, instance_name, v1_dir};

/// One daemon's cgroups: its instance (which keeps daemons on different
/// data directories apart), the v1 slots kept for the next experiment,
/// those released while processes remained, and the next slot number.
/// The runner, the launching code and the daemon's shutdown share it.
#[derive(Debug)]
pub struct Slots {
    instance: String,
    /// Emptied v1 cgroups kept for the next experiment.
    spares: Mutex<Vec<ExperimentCgroup>>,
    /// Cgroups that still held processes when released (an experiment's
    /// dying leftovers, a retired supervisor): released once empty.
    emptying: Mutex<Vec<ExperimentCgroup>>,
    /// The number tried for the next new v1 slot.
    pub(super) next_slot: AtomicU64,
    /// Whether v2's instance directory was made (with its controllers).
    pub(super) v2_prepared: AtomicBool,
}

/// Spares kept at most.
const MAX_SPARES: usize = 8;
/// Memory a cgroup may still be charged for and be kept: 2 MiB, plus what
/// the kernel may have charged ahead per CPU (up to 64 pages on each CPU of
/// the host, whatever this process may run on), so that slots are reused on
/// many-core hosts too. The 2 MiB cover the kernel memory of a command that
/// just ended, which the kernel frees a moment later: right after a `true`
/// ended, slots were measured charged 1.5-1.6 MB (1.0-1.2 MB of it kernel
/// memory), and 0.5-1.0 MB 2 ms later; with 1 MiB, 2-4 in 1 000 were let go
/// for it. What is charged within the allowance is not told apart and
/// counts toward the next experiment's peak.
fn max_leftover_bytes() -> u64 {
    static MAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        let cpus = crate::sys::procfs::possible_cpus();
        (2 << 20) + cpus * 64 * crate::sys::procfs::page_size()
    })
}

impl Slots {
    /// The cgroups of the daemon whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> Slots {
        Slots::named(instance_name(data_dir))
    }

    /// The cgroups of instance `instance`.
    pub fn named(instance: String) -> Slots {
        Slots {
            instance,
            spares: Mutex::default(),
            emptying: Mutex::default(),
            next_slot: AtomicU64::new(0),
            v2_prepared: AtomicBool::new(false),
        }
    }

    /// The instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A cgroup for experiment `id` with `limits`: on v2
    /// `labbench/INSTANCE/exp-ID`, on v1 a kept `slot-N` of the instance or
    /// a new one.
    pub fn create(&self, id: u64, limits: Limits) -> std::io::Result<ExperimentCgroup> {
        ExperimentCgroup::create(self, &format!("exp-{id}"), limits)
    }

    /// A cgroup for helper process `n` (the provenance helper, which runs
    /// programs of the user's) with `limits`.
    pub fn create_for_helper(&self, n: u64, limits: Limits) -> std::io::Result<ExperimentCgroup> {
        ExperimentCgroup::create(self, &format!("helper-{n}"), limits)
    }

    /// A kept cgroup for a new experiment, with its CPU time and peak
    /// memory reset (its limits are still the last experiment's).
    pub(super) fn adopt(&self) -> Option<ExperimentCgroup> {
        loop {
            let spare = self
                .spares
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()?;
            if reset(&spare).is_ok() {
                return Some(spare);
            }
            // Removed behind our back, or broken: not reused.
            spare.remove();
        }
    }

    /// Ends the use of `cg` once its experiment ended: kept for the next
    /// experiment where that pays (v1, `clean`), else removed; false while
    /// processes remain.
    pub fn release(&self, cg: &ExperimentCgroup) -> bool {
        self.keep(cg) || cg.remove()
    }

    /// Keeps `cg`, whose experiment ended, for the next one if it is empty
    /// and [clean]; whether it was kept.
    fn keep(&self, cg: &ExperimentCgroup) -> bool {
        if !clean(cg, &[]) {
            return false;
        }
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        if spares.len() >= MAX_SPARES {
            return false;
        }
        spares.push(cg.clone());
        true
    }

    /// Releases `cg` now if nothing runs in it, else once it has emptied
    /// (see [`Slots::release_emptied`]).
    pub fn release_when_empty(&self, cg: ExperimentCgroup) {
        if !self.release(&cg) {
            self.emptying
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cg);
        }
    }

    /// Kills what is left in the cgroups released while processes remained
    /// and releases those that emptied (at the runner's ticks).
    pub fn release_emptied(&self) {
        let mut emptying = self.emptying.lock().unwrap_or_else(|e| e.into_inner());
        emptying.retain(|cg| {
            if cg.pid_list().is_none_or(|pids| !pids.is_empty()) {
                cg.signal_all(libc::SIGKILL);
            }
            !self.release(cg)
        });
    }

    /// Removes the emptying cgroups, killing what is left in them (when the
    /// daemon stops; waits up to 2 s for their processes to go).
    fn remove_emptying(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let left = {
                let mut emptying = self.emptying.lock().unwrap_or_else(|e| e.into_inner());
                emptying.retain(|cg| {
                    cg.signal_all(libc::SIGKILL);
                    !cg.remove()
                });
                !emptying.is_empty()
            };
            if !left || std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Removes the kept and the emptying cgroups (when the daemon stops).
    pub(super) fn remove_spares(&self) {
        self.remove_emptying();
        for spare in std::mem::take(&mut *self.spares.lock().unwrap_or_else(|e| e.into_inner())) {
            spare.remove();
        }
    }
}

/// Resets the CPU time and peak memory of a reused cgroup.
pub(super) fn reset(cg: &ExperimentCgroup) -> std::io::Result<()> {
    cg.set("cpuacct", "cpuacct.usage", "0")?;
    cg.set("memory", "memory.max_usage_in_bytes", "0")?;
    cg.seen_peak.store(0, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Whether `cg`, whose experiment ended, may serve another: v1, nothing
/// but `staying` (a kept supervisor) runs in it, the OOM killer never acted
/// there (v1 cannot reset that count), it is thawed, its limits are known
/// (one re-opened after a restart is not kept: the memory limits must be
/// written in an order that depends on the old ones) and it is still
/// charged for at most [`max_leftover_bytes`].
pub(super) fn clean(cg: &ExperimentCgroup, staying: &[i32]) -> bool {
    cg.hierarchy == Hierarchy::V1
        && cg.limits.is_some()
        && cg.pid_list().is_some_and(|pids| pids == staying)
        && cg.oom_kills() == 0
        && cg.memory_now() <= max_leftover_bytes()
        && cg.thawed()
}

/// Removes the empty cgroups an earlier daemon of `instance` left behind
/// (`slot-N`, and `exp-ID`/`spare-N` of older versions), except those
/// named in `in_use` (experiments it re-attached to). The kernel refuses to
/// remove one that still holds processes.
pub fn sweep_leftovers(instance: &str, in_use: &[&str]) {
    let Some(hierarchy) = super::hierarchy() else {
        return;
    };
    // On v1, every hierarchy: a removal cut short may have left a cgroup
    // in some of them only.
    let parents = match &hierarchy {
        Hierarchy::V2(mount) => vec![mount.join("labbench").join(instance)],
        Hierarchy::V1 => v1_controllers()
            .iter()
            .map(|c| v1_dir(c, instance))
            .collect(),
    };
    let leaves: std::collections::BTreeSet<String> = parents
        .iter()
        .filter_map(|parent| std::fs::read_dir(parent).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .collect();
    for leaf in leaves {
        let name = format!("{instance}/{leaf}");
        let ours = ["slot-", "exp-", "spare-", "helper-"]
            .iter()
            .any(|prefix| leaf.starts_with(prefix));
        if ours && !in_use.contains(&name.as_str()) {
            ExperimentCgroup::named(name, hierarchy.clone()).remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Limits;
    use super::*;
    use std::io::Write;

    fn limits(memory_mib: u64, cpus: f64) -> Limits {
        Limits {
            memory_bytes: memory_mib << 20,
            cpus,
            pids: 64,
            gpus: Default::default(),
        }
    }

    /// Waits (at most 5 s) until nothing runs in `cg`.
    fn wait_empty(cg: &ExperimentCgroup) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !cg.pids().is_empty() {
            assert!(std::time::Instant::now() < deadline, "{:?} left", cg.pids());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Runs a little CPU work inside `cg` and waits for it.
    fn busy_in(cg: &ExperimentCgroup) {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "read go; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        cg.add_process(child.id()).expect("join");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("go");
        assert!(child.wait().expect("wait").success());
    }

    #[test]
    fn an_ended_experiments_cgroup_serves_the_next_one_reset() {
        if !crate::sys::process::is_root() || super::super::hierarchy() != Some(Hierarchy::V1) {
            eprintln!("needs root and cgroup v1");
            return;
        }
        let slots = Slots::named(format!("spares-test-{}", std::process::id()));
        let instance = slots.instance().to_string();
        let first = slots.create(1, limits(64, 1.0)).expect("first");
        busy_in(&first);
        assert!(first.cpu_seconds() > 0.0);
        assert!(slots.release(&first), "empty and clean: kept");
        assert!(first.dir("memory").exists(), "kept under its name");

        let second = slots.create(2, limits(128, 0.5)).expect("second");
        assert_eq!(
            second.name(),
            first.name(),
            "the kept one serves experiment 2"
        );
        let slot_count = || {
            std::fs::read_dir(v1_dir("memory", &instance))
                .expect("instance")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("slot-"))
                .count()
        };
        assert_eq!(slot_count(), 1);
        assert_eq!(second.cpu_seconds(), 0.0, "CPU time starts from zero");
        let read = |controller, file| {
            std::fs::read_to_string(second.file(controller, file)).expect("read")
        };
        assert_eq!(
            read("memory", "memory.limit_in_bytes").trim(),
            (128u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
        busy_in(&second);
        assert!(second.cpu_seconds() > 0.0);

        // One with a process left in it is not kept.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        second.add_process(sleeper.id()).expect("join");
        assert!(!slots.release(&second), "busy: neither kept nor removed");
        assert!(second.dir("memory").exists());
        sleeper.kill().expect("kill");
        sleeper.wait().expect("reap");
        wait_empty(&second);
        assert!(second.remove());

        // One re-opened after a restart (its limits unknown) is not kept:
        // it is removed once empty.
        let before = slots.create(6, limits(64, 1.0)).expect("sixth");
        let reopened = ExperimentCgroup::open(before.name()).expect("reopened");
        assert!(slots.release(&reopened), "empty: done with");
        assert!(!reopened.dir("memory").exists(), "removed, not kept");

        // One left by an earlier daemon is swept unless in use; one that
        // still holds a process stays whatever it is called.
        let third = slots.create(3, limits(64, 1.0)).expect("third");
        let fourth = slots.create(4, limits(64, 1.0)).expect("fourth");
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        fourth.add_process(sleeper.id()).expect("join");
        let fifth = slots.create(5, limits(64, 1.0)).expect("fifth");
        assert_eq!(slot_count(), 3);
        // A removal cut short: left in the pids hierarchy only.
        let partial = v1_dir("pids", &format!("{instance}/slot-90"));
        std::fs::create_dir(&partial).expect("partial leftover");
        sweep_leftovers(&instance, &[fifth.name()]);
        assert!(!partial.exists(), "a leftover in one hierarchy only: swept");
        assert!(!third.dir("memory").exists(), "empty and unused: swept");
        assert!(fourth.dir("memory").exists(), "holds a process");
        assert!(fifth.dir("memory").exists(), "in use");
        sleeper.kill().expect("kill");
        sleeper.wait().expect("reap");
        wait_empty(&fourth);
        assert!(fourth.remove() && fifth.remove());
        slots.remove_all();
    }
}
