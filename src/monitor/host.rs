//! Host totals (name, cores, memory, load, uptime) through sysinfo.

use std::path::PathBuf;

use serde::Serialize;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// The host's state at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostSnapshot {
    /// Host name.
    pub hostname: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Busy share of all CPUs, 0–100.
    pub cpu_percent: f32,
    /// Physical memory, bytes.
    pub memory_total: u64,
    /// Memory in use (total minus available), bytes.
    pub memory_used: u64,
    /// Swap size, bytes.
    pub swap_total: u64,
    /// Swap in use, bytes.
    pub swap_used: u64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// Busy share of each CPU, 0–100.
    pub cpu_per_core: Vec<f32>,
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// Free bytes on the data directory's file system.
    pub disk_free: u64,
    /// Size of the data directory's file system, bytes.
    pub disk_total: u64,
    /// When sampled, seconds since the epoch (0: never).
    pub sampled_at: i64,
}

/// Reads host totals; keeps sysinfo's state between samples (CPU use needs two reads).
pub struct HostSampler {
    system: Option<System>,
    hostname: String,
    disk_path: Option<PathBuf>,
}

impl Default for HostSampler {
    fn default() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::everything())
                .with_cpu(CpuRefreshKind::nothing().with_usage()),
        )
        .ok();
        if system.is_none() {
            tracing::warn!("sysinfo could not read this host; host figures will show as zero");
        }
        HostSampler {
            system,
            hostname: crate::units::printable(
                &System::host_name().unwrap_or_else(|_| "localhost".into()),
            ),
            disk_path: None,
        }
    }
}

impl HostSampler {
    /// A sampler that also reports free space of the file system holding `path`.
    pub fn with_disk(path: PathBuf) -> HostSampler {
        HostSampler {
            disk_path: Some(path),
            ..HostSampler::default()
        }
    }

    /// Takes one sample.
    pub fn sample(&mut self) -> HostSnapshot {
        let load = System::load_average()
            .map(|l| [l.one, l.five, l.fifteen])
            .unwrap_or_default();
        let mut snapshot = HostSnapshot {
            hostname: self.hostname.clone(),
            load,
            uptime_secs: System::uptime().unwrap_or(0),
            sampled_at: chrono::Utc::now().timestamp(),
            ..HostSnapshot::default()
        };
        if let Some(system) = self.system.as_mut() {
            system.refresh_memory();
            system.refresh_cpu_usage();
            let available = system.available_memory();
            snapshot.cores = system.cpus().len();
            snapshot.cpu_percent = system.global_cpu_usage();
            snapshot.memory_total = system.total_memory();
            snapshot.memory_used = system.total_memory().saturating_sub(available);
            snapshot.swap_total = system.total_swap();
            snapshot.swap_used = system.used_swap();
            snapshot.cpu_per_core = system.cpus().iter().map(|c| c.usage()).collect();
        }
        if let Some(space) = self.disk_path.as_deref().and_then(crate::sys::fs::space) {
            snapshot.disk_free = space.free;
            snapshot.disk_total = space.total;
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_reads_this_host() {
        let mut sampler = HostSampler::default();
        let s = sampler.sample();
        assert!(s.cores >= 1, "{s:?}");
        assert!(s.memory_total > 0, "{s:?}");
        assert!(s.memory_used <= s.memory_total, "{s:?}");
        assert!(!s.hostname.is_empty());
        assert!(s.uptime_secs > 0);
        assert_eq!(s.cpu_per_core.len(), s.cores);
        let with_disk = HostSampler::with_disk(PathBuf::from("/")).sample();
        assert!(with_disk.disk_total >= with_disk.disk_free && with_disk.disk_total > 0);
    }
}
