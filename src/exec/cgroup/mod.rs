//! cgroup confinement of one experiment: memory, CPU quota, process count,
//! freezing and killing the whole tree, and reading what it used.
//!
//! cgroup v2 (unified) is used where the unified hierarchy (`/sys/fs/cgroup`,
//! or `/sys/fs/cgroup/unified` on hybrid hosts) offers the memory, cpu and
//! pids controllers, which labbench enables in `labbench/cgroup.subtree_control`:
//! one directory `labbench/INSTANCE/exp-ID` under the v2 mount. Otherwise
//! cgroup v1, where memory, cpu, cpuacct, pids and freezer are writable under
//! `/sys/fs/cgroup`: a directory `labbench/INSTANCE/slot-N` under each of
//! them, reused by later experiments (see "Kept slots"; this development
//! host is v1, with an empty v2 mount beside it). With neither, or with
//! `queue.cgroups = false`, experiments run with the session fallback of
//! [`crate::runner`]. Either way the name an experiment's cgroup got is
//! recorded with its start (`show ID --json` names it while it runs).
//!
//! The v2 path is written to the kernel documentation. Its parts that need no
//! controller (joining, listing, `cpu.stat`, `cgroup.freeze`, `cgroup.kill`,
//! removal) are tested on the development host's v2 mount; the limits
//! (`memory.max`, `cpu.max`, `pids.max`, `memory.events` oom_kill,
//! `memory.peak`) have not yet run on a v2 host: none was available.
//!
//! Stopping an experiment freezes its cgroup and signals every process in it
//! but the supervisor ([`ExperimentCgroup::signal_all_but`]), so nothing
//! escapes, not even processes that called `setsid`; leftovers are killed
//! when the experiment's main process ends. CPU time and peak memory come
//! from the cgroup.
//!
//! Kept slots (v1, see the `spares` submodule): the cgroup of an experiment
//! that ended empty and clean serves the next one under the same name
//! (`slot-N`), with its control files still open and its CPU time and peak
//! memory reset; at most 8 are kept. Other cgroups, and those of
//! experiments re-attached after a restart, are removed. A daemon that
//! stops lets its runner finish the round in hand (a start half made, say),
//! then removes the ones it kept and its `labbench/INSTANCE` directory,
//! unless experiments still run there; a restarted daemon removes the empty
//! ones an earlier run left ([`sweep_leftovers`]), except those of the
//! experiments it re-attached to. v2 makes one directory per experiment.
//!
//! GPUs: on v1, where the `devices` controller is mounted under a parent
//! that allows every device (the daemon's start line says "GPU device files
//! fenced"), an experiment's cgroup also denies the NVIDIA device files
//! (`/dev/nvidiaN`, character major 195) of the GPUs it was not given:
//! those the GPU source lists and any found in `/dev`, so a GPU the source
//! lost is fenced too. Opening one fails with "Operation not permitted",
//! so `CUDA_VISIBLE_DEVICES` is not the only fence; the control devices
//! (`nvidiactl`, `nvidia-uvm`) stay open to all. Under a parent that denies
//! by default (a container's) a deny rule is taken and does nothing, so
//! none is claimed there. v2 controls devices only through BPF programs,
//! which labbench does not load: there the variable alone says which GPUs
//! to use.
//!
//! The control files an experiment's cgroup is read and written through
//! stay open for as long as the cgroup is used (by one experiment, or by
//! the next ones that reuse it): opening a cgroup file costs a path walk
//! through the cgroup file system each time.

mod devices;
mod hierarchy;
mod spares;
mod users;

pub use devices::{GpuAccess, NVIDIA_MAJOR, gpu_device_minors};
pub use hierarchy::{Hierarchy, available, gpu_devices_enforced, has_v2_controllers, hierarchy};
pub use spares::{Slots, sweep_leftovers};
pub use users::{UserCgroups, UserLayout};

use hierarchy::{V2_CONTROLLERS, v1_controllers};

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Where cgroups are mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// CFS period used for CPU quotas, microseconds.
const CFS_PERIOD_US: u64 = 100_000;

/// A short, stable name for the daemon owning `data_dir` (FNV-1a of its path).
pub fn instance_name(data_dir: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data_dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// An experiment's cgroup(s).
#[derive(Debug, Clone)]
pub struct ExperimentCgroup {
    name: String,
    hierarchy: Hierarchy,
    /// The limits written (`None`: unknown, e.g. re-opened after a restart).
    limits: Option<Limits>,
    /// Highest memory use seen (v2 kernels before 5.19 have no memory.peak).
    seen_peak: Arc<AtomicU64>,
    /// Its control files opened so far.
    files: Arc<OpenFiles>,
}

/// Control files of one cgroup, opened on first use and kept open.
#[derive(Debug, Default)]
struct OpenFiles {
    open: Mutex<Vec<OpenFile>>,
}

#[derive(Debug)]
struct OpenFile {
    controller: &'static str,
    name: &'static str,
    writable: bool,
    file: File,
}

impl OpenFiles {
    /// Runs `f` on `dir/name` of `controller`, opened for writing or reading.
    fn with<T>(
        &self,
        dir: impl FnOnce() -> PathBuf,
        (controller, name): (&'static str, &'static str),
        writable: bool,
        f: impl FnOnce(&File) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let known = open
            .iter()
            .position(|o| o.controller == controller && o.name == name && o.writable == writable);
        let at = match known {
            Some(at) => at,
            None => {
                let path = dir().join(name);
                let file = std::fs::OpenOptions::new()
                    .read(!writable)
                    .write(writable)
                    .open(&path)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                open.push(OpenFile {
                    controller,
                    name,
                    writable,
                    file,
                });
                open.len() - 1
            }
        };
        f(&open[at].file)
    }
}

/// Limits to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// CPU cores.
    pub cpus: f64,
    /// Processes.
    pub pids: u32,
    /// Which GPU device files it may open.
    pub gpus: GpuAccess,
}

/// The v1 directory of `name` (`INSTANCE` or `INSTANCE/…`) under `controller`.
fn v1_dir(controller: &str, name: &str) -> PathBuf {
    Path::new(ROOT).join(controller).join("labbench").join(name)
}

/// Makes one cgroup directory; one left from an earlier run is reused.
fn create_dir(dir: &Path) -> std::io::Result<()> {
    match make_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Makes one cgroup directory (and its parents); fails if it exists.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir),
        other => other,
    }
    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

/// Creates v2's `labbench/INSTANCE` with the controllers delegated to its
/// children, once per instance (again if it was removed meanwhile).
fn prepare_v2_instance(mount: &Path, slots: &Slots) -> std::io::Result<()> {
    let parent = mount.join("labbench").join(slots.instance());
    if slots.v2_prepared.load(Ordering::Acquire) && parent.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&parent)?;
    let enable = V2_CONTROLLERS.map(|c| format!("+{c}")).join(" ");
    write(&parent.join("cgroup.subtree_control"), &enable)?;
    slots.v2_prepared.store(true, Ordering::Release);
    Ok(())
}

/// Makes a new v1 cgroup `INSTANCE/slot-N` in every hierarchy. A number
/// whose memory directory exists (left by an earlier daemon, perhaps with
/// an experiment still in it) is skipped.
fn new_v1_slot(slots: &Slots) -> std::io::Result<ExperimentCgroup> {
    let instance = slots.instance();
    for _ in 0..10_000 {
        let name = format!(
            "{instance}/slot-{}",
            slots.next_slot.fetch_add(1, Ordering::Relaxed)
        );
        match make_dir(&v1_dir("memory", &name)) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let cg = ExperimentCgroup::named(name, Hierarchy::V1);
        for controller in &v1_controllers()[1..] {
            if let Err(e) = create_dir(&cg.dir(controller)) {
                cg.remove();
                return Err(e);
            }
        }
        return Ok(cg);
    }
    Err(std::io::Error::other(format!(
        "no free cgroup name under {}",
        v1_dir("memory", instance).display()
    )))
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// CPU quota per period for `cpus` cores, microseconds (at least 1 ms).
fn quota_us(cpus: f64) -> u64 {
    ((cpus * CFS_PERIOD_US as f64).ceil() as u64).max(1000)
}

impl ExperimentCgroup {
    /// Creates a cgroup of `slots` with `limits`: on v2
    /// `labbench/INSTANCE/LEAF` (`exp-ID` for an experiment), on v1 a kept
    /// `slot-N` of INSTANCE or a new one.
    fn create(slots: &Slots, leaf: &str, limits: Limits) -> std::io::Result<ExperimentCgroup> {
        let hierarchy =
            hierarchy().ok_or_else(|| std::io::Error::other("no usable cgroup hierarchy"))?;
        let instance = slots.instance();
        match &hierarchy {
            Hierarchy::V2(mount) => {
                let cg = ExperimentCgroup::named(format!("{instance}/{leaf}"), hierarchy.clone());
                prepare_v2_instance(mount, slots)?;
                create_dir(&cg.dir("memory"))?;
                let memory = limits.memory_bytes.to_string();
                cg.set("", "memory.max", &memory)?;
                // No swap beyond the limit (absent without swap accounting).
                let _ = cg.set("", "memory.swap.max", "0");
                cg.set(
                    "",
                    "cpu.max",
                    &format!("{} {CFS_PERIOD_US}", quota_us(limits.cpus)),
                )?;
                cg.set("", "pids.max", &limits.pids.to_string())?;
                Ok(ExperimentCgroup {
                    limits: Some(limits),
                    ..cg
                })
            }
            Hierarchy::V1 => {
                // A kept slot if there is one (its CPU time and peak memory
                // reset), else a new one; either way only limits it does not
                // have yet are written.
                let (cg, adopted) = match slots.adopt() {
                    Some(spare) => (spare, true),
                    None => (new_v1_slot(slots)?, false),
                };
                cg.set_v1_limits(limits, adopted).inspect_err(|_| {
                    cg.remove();
                })?;
                Ok(ExperimentCgroup {
                    limits: Some(limits),
                    ..cg
                })
            }
        }
    }

    /// v1: writes the `limits` this cgroup does not have yet (all of them
    /// when it is new, `adopted` false).
    fn set_v1_limits(&self, limits: Limits, adopted: bool) -> std::io::Result<()> {
        let had = self.limits;
        let changed = |field: fn(&Limits) -> u64| had.is_none_or(|h| field(&h) != field(&limits));
        if changed(|l| l.memory_bytes) {
            self.set_v1_memory_limit(limits.memory_bytes, had.map(|h| h.memory_bytes))?;
        }
        // A new cgroup's period is the kernel's default, which is ours; it
        // is written only where it is not (checked once).
        static DEFAULT_PERIOD: OnceLock<bool> = OnceLock::new();
        if !adopted
            && !*DEFAULT_PERIOD
                .get_or_init(|| self.get_u64("cpu", "cpu.cfs_period_us") == CFS_PERIOD_US)
        {
            self.set("cpu", "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        }
        if changed(|l| quota_us(l.cpus)) {
            self.set(
                "cpu",
                "cpu.cfs_quota_us",
                &quota_us(limits.cpus).to_string(),
            )?;
        }
        if changed(|l| u64::from(l.pids)) {
            self.set("pids", "pids.max", &limits.pids.to_string())?;
        }
        if v1_controllers().contains(&"devices") && had.is_none_or(|h| h.gpus != limits.gpus) {
            for (file, rule) in limits.gpus.v1_rules() {
                self.set("devices", file, &rule)?;
            }
        }
        Ok(())
    }

    /// A handle on cgroup `name` (limits unknown, nothing opened yet).
    fn named(name: String, hierarchy: Hierarchy) -> ExperimentCgroup {
        ExperimentCgroup {
            name,
            hierarchy,
            limits: None,
            seen_peak: Arc::default(),
            files: Arc::default(),
        }
    }

    /// v1: sets the memory limit (and the memory+swap one where swap is
    /// accounted, which must never be below it: raised first, lowered last).
    fn set_v1_memory_limit(&self, bytes: u64, before: Option<u64>) -> std::io::Result<()> {
        static SWAP_ACCOUNTING: OnceLock<bool> = OnceLock::new();
        const MEMSW: &str = "memory.memsw.limit_in_bytes";
        let swap_accounted = *SWAP_ACCOUNTING.get_or_init(|| self.file("memory", MEMSW).exists());
        let value = bytes.to_string();
        let raising = before.is_some_and(|b| bytes > b);
        // Without swap accounting the memsw file is absent; the plain limit still holds.
        if swap_accounted && raising {
            let _ = self.set("memory", MEMSW, &value);
        }
        self.set("memory", "memory.limit_in_bytes", &value)?;
        if swap_accounted && !raising {
            let _ = self.set("memory", MEMSW, &value);
        }
        Ok(())
    }

    /// Opens an existing experiment's cgroups (after a daemon restart).
    pub fn open(name: &str) -> Option<ExperimentCgroup> {
        let cg = ExperimentCgroup::named(name.to_string(), hierarchy()?);
        cg.dir("memory").exists().then_some(cg)
    }

    /// Where the cgroup `name` (as recorded in an experiment) of
    /// `controller` is or would be on this host (whether or not it exists).
    pub fn path_of(name: &str, controller: &str) -> Option<PathBuf> {
        Some(ExperimentCgroup::named(name.to_string(), hierarchy()?).dir(controller))
    }

    /// The cgroup's name (`INSTANCE/exp-ID` or `INSTANCE/slot-N`), as
    /// recorded in the experiment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory of `controller` (v2: the one directory).
    pub fn dir(&self, controller: &str) -> PathBuf {
        match &self.hierarchy {
            Hierarchy::V2(mount) => mount.join("labbench").join(&self.name),
            Hierarchy::V1 => v1_dir(controller, &self.name),
        }
    }

    fn file(&self, controller: &str, file: &str) -> PathBuf {
        self.dir(controller).join(file)
    }

    /// Writes `value` to control file `name` of `controller` (kept open).
    fn set(
        &self,
        controller: &'static str,
        name: &'static str,
        value: &str,
    ) -> std::io::Result<()> {
        self.files.with(
            || self.dir(controller),
            (controller, name),
            true,
            |f| f.write_at(value.as_bytes(), 0).map(drop),
        )
    }

    /// The text of control file `name` of `controller` (kept open).
    fn get(&self, controller: &'static str, name: &'static str) -> Option<String> {
        self.files
            .with(
                || self.dir(controller),
                (controller, name),
                false,
                |f| {
                    let mut text = Vec::with_capacity(256);
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = f.read_at(&mut chunk, text.len() as u64)?;
                        if n == 0 {
                            break;
                        }
                        text.extend_from_slice(&chunk[..n]);
                    }
                    Ok(String::from_utf8_lossy(&text).into_owned())
                },
            )
            .ok()
    }

    /// A number in control file `name` of `controller` (0 if unreadable).
    fn get_u64(&self, controller: &'static str, name: &'static str) -> u64 {
        self.get(controller, name)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn directories(&self) -> Vec<PathBuf> {
        match &self.hierarchy {
            Hierarchy::V2(_) => vec![self.dir("memory")],
            Hierarchy::V1 => v1_controllers().iter().map(|c| self.dir(c)).collect(),
        }
    }

    /// Moves process `pid` (and so everything it starts later) into the cgroup(s).
    pub fn add_process(&self, pid: u32) -> std::io::Result<()> {
        let pid = pid.to_string();
        match self.hierarchy {
            Hierarchy::V2(_) => self.set("", "cgroup.procs", &pid),
            Hierarchy::V1 => v1_controllers()
                .iter()
                .try_for_each(|c| self.set(c, "cgroup.procs", &pid)),
        }
    }

    /// Pids currently in the cgroup. Read through a new descriptor each
    /// time: v1 serves a descriptor that read the list before the same list
    /// again for a second (the kernel's pid-list cache).
    pub fn pids(&self) -> Vec<i32> {
        self.pid_list().unwrap_or_default()
    }

    /// Pids currently in the cgroup; `None` if the list could not be read
    /// (so that a caller deciding whether it is empty can assume it is not).
    pub fn pid_list(&self) -> Option<Vec<i32>> {
        let text = std::fs::read_to_string(self.file("pids", "cgroup.procs")).ok()?;
        Some(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Whether the cgroup is not frozen (v1 freezer; v2 `cgroup.freeze`).
    pub fn thawed(&self) -> bool {
        match self.hierarchy {
            Hierarchy::V2(_) => self
                .get("", "cgroup.freeze")
                .is_some_and(|s| s.trim() == "0"),
            Hierarchy::V1 => self
                .get("freezer", "freezer.state")
                .is_some_and(|s| s.trim() == "THAWED"),
        }
    }

    /// Times the kernel's OOM killer killed a process here.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.hierarchy {
            Hierarchy::V2(_) => ("memory.events", "oom_kill"),
            Hierarchy::V1 => ("memory.oom_control", "oom_kill"),
        };
        self.get("memory", file)
            .and_then(|text| parse_keyed(&text, key))
            .unwrap_or(0)
    }

    /// Memory in use now, bytes.
    pub fn memory_now(&self) -> u64 {
        let file = match self.hierarchy {
            Hierarchy::V2(_) => "memory.current",
            Hierarchy::V1 => "memory.usage_in_bytes",
        };
        let now = self.get_u64("memory", file);
        self.seen_peak.fetch_max(now, Ordering::Relaxed);
        now
    }

    /// Peak memory, bytes (v2 without `memory.peak`: the highest seen by
    /// this daemon's readings).
    pub fn peak_memory(&self) -> u64 {
        let file = match self.hierarchy {
            Hierarchy::V2(_) => "memory.peak",
            Hierarchy::V1 => "memory.max_usage_in_bytes",
        };
        self.get_u64("memory", file)
            .max(self.seen_peak.load(Ordering::Relaxed))
    }

    /// CPU time used, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        if let Hierarchy::V2(_) = self.hierarchy {
            return self
                .get("cpu", "cpu.stat")
                .and_then(|text| parse_keyed(&text, "usage_usec"))
                .map(|us| us as f64 / 1e6)
                .unwrap_or(0.0);
        }
        // cpuacct on its own mount, or co-mounted with cpu.
        [("cpuacct", "cpuacct.usage"), ("cpu", "cpuacct.usage")]
            .into_iter()
            .map(|(controller, file)| self.get_u64(controller, file))
            .find(|v| *v > 0)
            .map(|ns| ns as f64 / 1e9)
            .unwrap_or(0.0)
    }

    /// Sends `signal` to every process in the cgroup, frozen so none can fork meanwhile.
    pub fn signal_all(&self, signal: i32) {
        self.signal_all_but(signal, None);
    }

    /// Sends `signal` to every process in the cgroup but `spared` (a kept
    /// supervisor), frozen so none can fork meanwhile.
    pub fn signal_all_but(&self, signal: i32, spared: Option<i32>) {
        let (freezer, frozen, thawed) = match self.hierarchy {
            Hierarchy::V2(_) => {
                // cgroup.kill (5.14+) kills everything at once, forks included.
                if signal == libc::SIGKILL
                    && spared.is_none()
                    && self.set("", "cgroup.kill", "1").is_ok()
                {
                    return;
                }
                (("", "cgroup.freeze"), "1", "0")
            }
            Hierarchy::V1 => (("freezer", "freezer.state"), "FROZEN", "THAWED"),
        };
        let _ = self.set(freezer.0, freezer.1, frozen);
        for pid in self.pids().into_iter().filter(|pid| Some(*pid) != spared) {
            crate::sys::process::kill(pid, signal);
        }
        let _ = self.set(freezer.0, freezer.1, thawed);
    }

    /// Whether this cgroup, whose experiment ended, may serve another with
    /// supervisor `shim` staying in it (v1 only; see `spares`).
    pub fn fit_for_another(&self, shim: u32) -> bool {
        spares::clean(self, &[shim as i32])
    }

    /// This cgroup with its limits unknown (written in part, say): then it
    /// is never kept for another experiment.
    pub fn with_unknown_limits(&self) -> ExperimentCgroup {
        ExperimentCgroup {
            limits: None,
            ..self.clone()
        }
    }

    /// Readies this cgroup, which served an experiment, for the next: its
    /// CPU time and peak memory reset and `limits` written where they
    /// differ from the last experiment's.
    pub fn renew(&self, limits: Limits) -> std::io::Result<ExperimentCgroup> {
        spares::reset(self)?;
        self.set_v1_limits(limits, true)?;
        Ok(ExperimentCgroup {
            limits: Some(limits),
            ..self.clone()
        })
    }

    /// Removes the cgroups; false while processes remain (the kernel refuses).
    pub fn remove(&self) -> bool {
        let mut gone = true;
        for d in self.directories() {
            match std::fs::remove_dir(&d) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => gone = false,
                _ => {}
            }
        }
        gone
    }
}

impl Slots {
    /// Removes what the daemon keeps in the cgroup hierarchies (spares,
    /// and its instance directory unless experiments still run there).
    pub fn remove_all(&self) {
        self.remove_spares();
        remove_instance_dirs(self.instance());
    }
}

/// Removes the instance directories of `instance` (those still holding
/// experiments stay: the kernel refuses).
fn remove_instance_dirs(instance: &str) {
    let dirs: Vec<PathBuf> = match hierarchy() {
        Some(Hierarchy::V2(mount)) => vec![mount.join("labbench").join(instance)],
        Some(Hierarchy::V1) => v1_controllers()
            .iter()
            .map(|c| v1_dir(c, instance))
            .collect(),
        None => Vec::new(),
    };
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HostGpu;

    #[test]
    fn v2_needs_memory_cpu_and_pids() {
        assert!(has_v2_controllers(
            "cpuset cpu io memory hugetlb pids rdma misc"
        ));
        assert!(!has_v2_controllers("cpuset cpu io pids"), "memory missing");
        assert!(!has_v2_controllers(""), "hybrid host: empty v2 mount");
    }

    #[test]
    fn flat_keyed_files_parse() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_keyed(events, "oom_kill"), Some(1));
        assert_eq!(parse_keyed(events, "oom"), Some(2));
        let stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n";
        assert_eq!(parse_keyed(stat, "usage_usec"), Some(2_500_000));
        assert_eq!(parse_keyed(stat, "nr_throttled"), None);
    }

    #[test]
    fn gpu_access_denies_the_device_files_of_the_gpus_not_given() {
        let gpu = |index, minor| HostGpu {
            index,
            minor,
            uuid: None,
        };
        // Index 1 is /dev/nvidia3, index 2 /dev/nvidia70; /dev/nvidia9 has
        // a device file but the GPU source lost it; 255 is nvidiactl.
        let host = [gpu(0, 0), gpu(1, 3), gpu(2, 70)];
        let access = GpuAccess::new(&host, &[9, 255, 0], &[1]);
        let rules: Vec<_> = access.v1_rules().collect();
        let rule = |file, minor| (file, format!("c 195:{minor} rwm"));
        assert_eq!(
            rules,
            [
                rule("devices.deny", 0),
                rule("devices.allow", 3),
                rule("devices.deny", 9),
                rule("devices.deny", 70),
            ]
        );
        assert_eq!(GpuAccess::new(&[], &[], &[]).v1_rules().count(), 0);
    }

    #[test]
    fn gpu_device_files_are_found_by_their_major() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not devices, or not named like a GPU's: none counts.
        for name in ["nvidia0", "nvidiactl", "nvidia-uvm"] {
            std::fs::write(dir.path().join(name), "").expect("file");
        }
        assert!(gpu_device_minors(dir.path()).is_empty());
        if crate::sys::process::is_root() {
            let node = dir.path().join("nvidia7");
            let made = std::process::Command::new("mknod")
                .arg(&node)
                .args(["c", "195", "7"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(made, "mknod");
            assert_eq!(gpu_device_minors(dir.path()), [7]);
        }
    }

    #[test]
    fn quotas_round_up_and_have_a_floor() {
        assert_eq!(quota_us(2.0), 200_000);
        assert_eq!(quota_us(0.333), 33_300);
        assert_eq!(quota_us(0.001), 1000);
    }

    /// The v2 paths that need no controller (joining, listing, CPU time
    /// from `cpu.stat`, freezing, `cgroup.kill`, removal) on this host's v2
    /// mount, even where its controllers are bound to v1 (a hybrid host, as
    /// the development host is). Limits need the controllers: not here.
    #[test]
    fn v2_membership_kill_and_cpu_time_work_on_a_v2_mount() {
        let mount = [PathBuf::from(ROOT), Path::new(ROOT).join("unified")]
            .into_iter()
            .find(|m| m.join("cgroup.controllers").exists());
        let (true, Some(mount)) = (crate::sys::process::is_root(), mount) else {
            eprintln!("needs root and a cgroup v2 mount");
            return;
        };
        let name = format!("v2-test-{}/exp-1", std::process::id());
        let cg = ExperimentCgroup::named(name.clone(), Hierarchy::V2(mount.clone()));
        create_dir(&cg.dir("")).expect("v2 cgroup");
        let in_cgroup = |script: &str| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", &format!("read go; {script}")])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("sh");
            cg.add_process(child.id()).expect("join");
            use std::io::Write;
            writeln!(child.stdin.take().expect("stdin"), "go").expect("go");
            child
        };
        // Whether `pids` comes to hold a count `enough` says within 5 s.
        let wait_for = |enough: &dyn Fn(usize) -> bool| {
            for _ in 0..500 {
                if enough(cg.pids().len()) {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            false
        };
        let wait_empty = || wait_for(&|n| n == 0);

        let mut busy = in_cgroup("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done");
        assert!(busy.wait().expect("wait").success());
        assert!(cg.cpu_seconds() > 0.0, "cpu.stat usage_usec counts it");

        // SIGTERM: frozen, signalled, thawed; a process in its own session goes too.
        let mut child = in_cgroup("setsid sleep 60 & sleep 60");
        assert!(wait_for(&|n| n == 3), "sh and both sleeps: {:?}", cg.pids());
        cg.signal_all(libc::SIGTERM);
        assert!(wait_empty(), "left: {:?}", cg.pids());
        assert!(!child.wait().expect("wait").success());
        assert_eq!(
            std::fs::read_to_string(cg.file("", "cgroup.freeze"))
                .expect("cgroup.freeze")
                .trim(),
            "0",
            "thawed again"
        );

        // SIGKILL: cgroup.kill, forks and new sessions included.
        let mut child = in_cgroup("setsid sh -c 'sleep 60 & sleep 60' & sleep 60");
        assert!(wait_for(&|n| n >= 4), "{:?}", cg.pids());
        cg.signal_all(libc::SIGKILL);
        assert!(wait_empty(), "left: {:?}", cg.pids());
        assert!(!child.wait().expect("wait").success());

        assert!(cg.remove(), "an empty cgroup is removed");
        assert!(!cg.dir("").exists());
        let _ = std::fs::remove_dir(
            mount
                .join("labbench")
                .join(name.split('/').next().unwrap_or("")),
        );
    }

    #[test]
    fn this_host_picks_a_hierarchy_its_mounts_support() {
        let v2_ready = [PathBuf::from(ROOT), Path::new(ROOT).join("unified")]
            .iter()
            .any(|m| {
                std::fs::read_to_string(m.join("cgroup.controllers"))
                    .is_ok_and(|c| has_v2_controllers(&c))
            });
        if !crate::sys::process::is_root() {
            return;
        }
        match hierarchy() {
            Some(Hierarchy::V2(mount)) => {
                assert!(
                    v2_ready,
                    "chose v2 at {} without its controllers",
                    mount.display()
                )
            }
            Some(Hierarchy::V1) => assert!(!v2_ready, "v2 is usable but v1 was chosen"),
            None => eprintln!("no usable cgroups here (not root?)"),
        }
    }
}
