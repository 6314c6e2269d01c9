//! cgroup v1 confinement of one experiment: memory, CPU quota, process count,
//! freezing and killing the whole tree, and reading what it used.
//!
//! Each controller gets `labbench/exp-ID` under its mount. cgroup v2 (unified)
//! hosts are not handled yet: experiments there run with the process-group
//! fallback and the README says so.

use std::path::{Path, PathBuf};

/// Where cgroup v1 controllers are mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// Controllers an experiment is placed in (and must all be writable).
const CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];
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

/// Whether this host lets labbench create v1 cgroups.
pub fn available() -> bool {
    CONTROLLERS.iter().all(|c| {
        let dir = Path::new(ROOT).join(c).join("labbench");
        std::fs::create_dir_all(&dir).is_ok() && dir.join("cgroup.procs").exists()
    })
}

/// An experiment's cgroups.
#[derive(Debug, Clone)]
pub struct ExperimentCgroup {
    name: String,
}

/// Limits to apply.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// CPU cores.
    pub cpus: f64,
    /// Processes.
    pub pids: u32,
}

fn dir(controller: &str, name: &str) -> PathBuf {
    Path::new(ROOT).join(controller).join("labbench").join(name)
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl ExperimentCgroup {
    /// Creates (or re-opens) `labbench/INSTANCE/exp-ID` in every controller
    /// with `limits`; INSTANCE keeps daemons on different data directories apart.
    pub fn create(instance: &str, id: u64, limits: Limits) -> std::io::Result<ExperimentCgroup> {
        let name = format!("{instance}/exp-{id}");
        for controller in CONTROLLERS {
            std::fs::create_dir_all(dir(controller, &name))?;
        }
        let memory = dir("memory", &name);
        write(
            &memory.join("memory.limit_in_bytes"),
            &limits.memory_bytes.to_string(),
        )?;
        // Without swap accounting the memsw file is absent; the plain limit still holds.
        let _ = write(
            &memory.join("memory.memsw.limit_in_bytes"),
            &limits.memory_bytes.to_string(),
        );
        let cpu = dir("cpu", &name);
        write(&cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
        let quota = ((limits.cpus * CFS_PERIOD_US as f64).ceil() as u64).max(1000);
        write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
        write(
            &dir("pids", &name).join("pids.max"),
            &limits.pids.to_string(),
        )?;
        Ok(ExperimentCgroup { name })
    }

    /// Opens an existing experiment's cgroups (after a daemon restart).
    pub fn open(name: &str) -> Option<ExperimentCgroup> {
        dir("memory", name).exists().then(|| ExperimentCgroup {
            name: name.to_string(),
        })
    }

    /// The cgroup's name (`INSTANCE/exp-ID`), as recorded in the experiment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves process `pid` (and so everything it starts later) into every controller.
    pub fn add_process(&self, pid: u32) -> std::io::Result<()> {
        for controller in CONTROLLERS {
            write(
                &dir(controller, &self.name).join("cgroup.procs"),
                &pid.to_string(),
            )?;
        }
        Ok(())
    }

    /// Pids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(dir("pids", &self.name).join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Times the kernel's OOM killer killed a process here.
    pub fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(dir("memory", &self.name).join("memory.oom_control"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Memory in use now, bytes.
    pub fn memory_now(&self) -> u64 {
        read_u64(&dir("memory", &self.name).join("memory.usage_in_bytes"))
    }

    /// Peak memory, bytes.
    pub fn peak_memory(&self) -> u64 {
        read_u64(&dir("memory", &self.name).join("memory.max_usage_in_bytes"))
    }

    /// CPU time used, seconds (from the cpu controller's cpuacct when co-mounted, else 0).
    pub fn cpu_seconds(&self) -> f64 {
        let candidates = [
            dir("cpuacct", &self.name).join("cpuacct.usage"),
            dir("cpu", &self.name).join("cpuacct.usage"),
        ];
        candidates
            .iter()
            .map(|p| read_u64(p))
            .find(|v| *v > 0)
            .map(|ns| ns as f64 / 1e9)
            .unwrap_or(0.0)
    }

    /// Sends `signal` to every process in the cgroup, frozen so none can fork meanwhile.
    pub fn signal_all(&self, signal: i32) {
        let freezer = dir("freezer", &self.name).join("freezer.state");
        let _ = write(&freezer, "FROZEN");
        for pid in self.pids() {
            crate::sys::kill(pid, signal);
        }
        let _ = write(&freezer, "THAWED");
    }

    /// Removes the cgroups; false while processes remain (the kernel refuses).
    pub fn remove(&self) -> bool {
        let mut gone = true;
        for controller in CONTROLLERS {
            let d = dir(controller, &self.name);
            if d.exists() && std::fs::remove_dir(&d).is_err() {
                gone = false;
            }
        }
        gone
    }
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
