//! Host totals (name, cores, memory, load, uptime) through sysinfo.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokio::sync::watch;

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
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// When sampled, seconds since the epoch (0: never).
    pub sampled_at: i64,
}

/// Reads host totals; keeps sysinfo's state between samples (CPU use needs two reads).
pub struct HostSampler {
    system: Option<System>,
    hostname: String,
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
            hostname: System::host_name().unwrap_or_else(|_| "localhost".into()),
        }
    }
}

impl HostSampler {
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
        }
        snapshot
    }
}

/// Samples the host every `period` on a blocking thread and publishes the latest snapshot.
pub fn spawn_host_sampler(period: Duration) -> watch::Receiver<Arc<HostSnapshot>> {
    let mut sampler = HostSampler::default();
    let (tx, rx) = watch::channel(Arc::new(sampler.sample()));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let result = tokio::task::spawn_blocking(move || {
                let snapshot = sampler.sample();
                (sampler, snapshot)
            })
            .await;
            let Ok((returned, snapshot)) = result else {
                tracing::error!("host sampler thread failed; host figures stop updating");
                return;
            };
            sampler = returned;
            if tx.send(Arc::new(snapshot)).is_err() {
                return;
            }
        }
    });
    rx
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
    }
}
