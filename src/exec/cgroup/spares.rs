//! Emptied v1 cgroups kept for the next experiment. On v1 an experiment has
//! a directory in each of five hierarchies; renaming five directories costs
//! a fraction of making and removing them (measured here: ~32 µs against
//! ~240 µs, plus the kernel's deferred clean-up of each removed memory
//! cgroup). v2 cannot rename cgroups, and makes one directory, not five.
//!
//! A cgroup is kept only if nothing runs in it, the OOM killer never acted
//! there (v1 cannot reset that count) and it holds at most
//! [`MAX_LEFTOVER_BYTES`] of page cache, which the next experiment's peak
//! memory would otherwise include. Its CPU time and peak memory are reset
//! when it is reused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ExperimentCgroup, Hierarchy, Limits, V1_CONTROLLERS, v1_dir, write};

/// Spares kept at most (across instances).
const MAX_SPARES: usize = 8;
/// Memory (page cache) a cgroup may still be charged for and be kept.
const MAX_LEFTOVER_BYTES: u64 = 1 << 20;

/// A kept cgroup: its name (`INSTANCE/spare-N`) and the limits it has.
struct Spare {
    name: String,
    limits: Option<Limits>,
}

static SPARES: Mutex<Vec<Spare>> = Mutex::new(Vec::new());
static NEXT_SPARE: AtomicU64 = AtomicU64::new(0);
/// Instances whose spares left by an earlier daemon were removed.
static SWEPT: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn instance_of(name: &str) -> &str {
    name.split_once('/').map_or(name, |(instance, _)| instance)
}

/// Renames `from` to `to` in every v1 hierarchy, or in none.
fn rename_all(from: &str, to: &str) -> bool {
    for (done, controller) in V1_CONTROLLERS.iter().enumerate() {
        if std::fs::rename(v1_dir(controller, from), v1_dir(controller, to)).is_err() {
            for undo in &V1_CONTROLLERS[..done] {
                let _ = std::fs::rename(v1_dir(undo, to), v1_dir(undo, from));
            }
            return false;
        }
    }
    true
}

fn remove_all(name: &str) {
    for controller in V1_CONTROLLERS {
        let _ = std::fs::remove_dir(v1_dir(controller, name));
    }
}

/// Removes spares an earlier daemon of `instance` left behind (once).
fn sweep_once(instance: &str) {
    let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
    if swept.iter().any(|i| i == instance) {
        return;
    }
    swept.push(instance.to_string());
    let Ok(entries) = std::fs::read_dir(v1_dir("memory", instance)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if let Some(spare) = file_name.to_str().filter(|n| n.starts_with("spare-")) {
            remove_all(&format!("{instance}/{spare}"));
        }
    }
}

/// Gives `cg` (not yet made) the directories of a spare of its instance:
/// `Some(limits it has)` when one was renamed to it, `None` if none was.
/// Its CPU time and peak memory start from zero.
pub(super) fn adopt(cg: &ExperimentCgroup) -> Option<Option<Limits>> {
    let instance = instance_of(&cg.name);
    sweep_once(instance);
    let spare = {
        let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
        let at = spares
            .iter()
            .position(|s| instance_of(&s.name) == instance)?;
        spares.swap_remove(at)
    };
    if !rename_all(&spare.name, &cg.name) {
        remove_all(&spare.name);
        return None;
    }
    let _ = write(&cg.file("cpuacct", "cpuacct.usage"), "0");
    let _ = write(&cg.file("memory", "memory.max_usage_in_bytes"), "0");
    Some(spare.limits)
}

/// Keeps `cg`, whose experiment ended, as a spare if it is empty and clean
/// (see the module's text); whether it was kept.
pub(super) fn keep(cg: &ExperimentCgroup) -> bool {
    if cg.hierarchy != Hierarchy::V1
        || !cg.pids().is_empty()
        || cg.oom_kills() > 0
        || cg.memory_now() > MAX_LEFTOVER_BYTES
    {
        return false;
    }
    let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
    if spares.len() >= MAX_SPARES {
        return false;
    }
    let name = format!(
        "{}/spare-{}",
        instance_of(&cg.name),
        NEXT_SPARE.fetch_add(1, Ordering::Relaxed)
    );
    if !rename_all(&cg.name, &name) {
        return false;
    }
    spares.push(Spare {
        name,
        limits: cg.limits,
    });
    true
}

/// Removes the spares of `instance` (when its daemon stops).
pub(super) fn remove_spares(instance: &str) {
    let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
    spares.retain(|s| {
        let ours = instance_of(&s.name) == instance;
        if ours {
            remove_all(&s.name);
        }
        !ours
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits(memory_mib: u64, cpus: f64) -> Limits {
        Limits {
            memory_bytes: memory_mib << 20,
            cpus,
            pids: 64,
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
        if !crate::sys::is_root() || super::super::hierarchy() != Some(Hierarchy::V1) {
            eprintln!("needs root and cgroup v1");
            return;
        }
        let instance = format!("spares-test-{}", std::process::id());
        let first = ExperimentCgroup::create(&instance, 1, limits(64, 1.0)).expect("first");
        busy_in(&first);
        assert!(first.cpu_seconds() > 0.0);
        assert!(first.release(), "empty and clean: kept");
        assert!(!first.dir("memory").exists(), "renamed away");

        let second = ExperimentCgroup::create(&instance, 2, limits(128, 0.5)).expect("second");
        assert!(second.dir("cpu").exists());
        let spares_left = std::fs::read_dir(v1_dir("memory", &instance))
            .expect("instance")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("spare-"))
            .count();
        assert_eq!(spares_left, 0, "the spare became experiment 2");
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
        assert!(!second.release(), "busy: neither kept nor removed");
        assert!(second.dir("memory").exists());
        sleeper.kill().expect("kill");
        sleeper.wait().expect("reap");
        while !second.pids().is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(second.remove());
        remove_instance_dirs(&instance);
    }

    fn remove_instance_dirs(instance: &str) {
        remove_spares(instance);
        for controller in V1_CONTROLLERS {
            let _ = std::fs::remove_dir(v1_dir(controller, instance));
        }
    }
}
