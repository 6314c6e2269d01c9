//! A lean per-process sweep of `/proc`: CPU time and resident memory per Unix uid.
//!
//! For every pid it reads only `/proc/PID/stat` (into one reused buffer,
//! parsed by [`crate::sys::procfs::parse_stat`]) and takes the uid from the
//! `/proc/PID` directory's owner; `status` is never parsed. Memory is RSS
//! (resident set, shared pages counted in every process that maps them, so
//! a uid's sum can overstate what it really holds). Kernel threads are left
//! out; a process that starts and ends between two sweeps is not seen.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use crate::sys::procfs::parse_stat;

/// Kernel threads carry this flag in `stat`; they are not anyone's work.
const PF_KTHREAD: u64 = 0x0020_0000;

/// One process's use during the last sweep interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessUse {
    /// Process id.
    pub pid: u32,
    /// Command name (`comm`, at most 15 bytes, sanitised).
    pub command: String,
    /// CPU cores busy on average over the interval.
    pub cpu_cores: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// Everything one uid ran during the last sweep interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UidUse {
    /// CPU cores busy on average over the interval.
    pub cpu_cores: f64,
    /// Resident memory of all its processes, bytes.
    pub rss_bytes: u64,
    /// Number of processes.
    pub processes: u32,
    /// Its processes, busiest first (at most `TOP_PROCESSES`).
    pub top: Vec<ProcessUse>,
}

/// Processes kept per uid for drill-downs.
pub const TOP_PROCESSES: usize = 8;

/// The result of one sweep.
#[derive(Debug, Clone, Default)]
pub struct ProcSweep {
    /// Use per uid.
    pub by_uid: BTreeMap<u32, UidUse>,
    /// Processes seen.
    pub processes: usize,
    /// Owner uid of every pid seen (for mapping GPU processes).
    pub owners: HashMap<u32, u32>,
}

/// Reads `/proc` repeatedly, keeping what it needs between sweeps.
pub struct ProcSampler {
    root: PathBuf,
    buffer: Vec<u8>,
    previous: HashMap<u32, Seen>,
    /// Open `stat` files, re-read with one `pread` per sweep instead of
    /// open + read + close; a dead process's file fails and is dropped.
    open_files: HashMap<u32, File>,
    max_open_files: usize,
    last_sweep: Option<Instant>,
    ticks_per_second: f64,
    page_size: u64,
}

/// Sweeps between two re-reads of a known process's owner: a uid rarely
/// changes after a process starts (setuid logins), and skipping the `stat`
/// call for known processes saves a quarter of the system calls.
const OWNER_RECHECK_SWEEPS: u32 = 16;

/// What a sweep remembers of a process for the next one.
#[derive(Debug, Clone, Copy)]
struct Seen {
    start_time: u64,
    cpu_ticks: u64,
    uid: u32,
    owner_age: u32,
}

impl Default for ProcSampler {
    fn default() -> Self {
        ProcSampler::new(PathBuf::from("/proc"))
    }
}

impl ProcSampler {
    /// A sampler over a proc file system mounted at `root`.
    pub fn new(root: PathBuf) -> ProcSampler {
        ProcSampler {
            root,
            buffer: Vec::with_capacity(1024),
            previous: HashMap::new(),
            open_files: HashMap::new(),
            // A quarter of the limit (at least 256) stays free for the rest
            // of the daemon: SSH connections, logs, and each experiment's
            // cgroup control files (about 17 on v1).
            max_open_files: {
                let limit = crate::sys::process::raise_open_file_limit();
                limit.saturating_sub((limit / 4).max(256))
            },
            last_sweep: None,
            ticks_per_second: crate::sys::procfs::clock_ticks_per_second(),
            page_size: crate::sys::procfs::page_size(),
        }
    }

    /// Sweeps every process once. CPU figures are averages since the previous
    /// sweep (zero on the first).
    pub fn sweep(&mut self) -> ProcSweep {
        let now = Instant::now();
        let elapsed = self
            .last_sweep
            .map(|t| now.duration_since(t).as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut sweep = ProcSweep::default();
        let mut current = HashMap::with_capacity(self.previous.len().max(256));
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return sweep;
        };
        let mut path = self.root.clone();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if !self.read_stat(pid, &name, &mut path) {
                continue; // the process ended mid-sweep
            }
            let Some(stat) = parse_stat(&self.buffer) else {
                continue;
            };
            if stat.flags & PF_KTHREAD != 0 {
                continue;
            }
            let known = self
                .previous
                .get(&pid)
                .filter(|seen| seen.start_time == stat.start_time)
                .copied();
            let (uid, owner_age) = match known {
                Some(seen) if seen.owner_age < OWNER_RECHECK_SWEEPS => {
                    (seen.uid, seen.owner_age + 1)
                }
                // fstatat relative to the open /proc directory: no path walk.
                _ => match entry.metadata() {
                    Ok(meta) => (meta.uid(), 0),
                    Err(_) => continue,
                },
            };
            sweep.processes += 1;
            sweep.owners.insert(pid, uid);
            let delta = match known {
                Some(seen) => stat.cpu_ticks.saturating_sub(seen.cpu_ticks),
                // A pid new since the last sweep: all its time was spent in the interval.
                None if elapsed.is_some() => stat.cpu_ticks,
                None => 0,
            };
            current.insert(
                pid,
                Seen {
                    start_time: stat.start_time,
                    cpu_ticks: stat.cpu_ticks,
                    uid,
                    owner_age,
                },
            );
            let cpu_cores = elapsed
                .map(|secs| delta as f64 / self.ticks_per_second / secs)
                .unwrap_or(0.0);
            let rss_bytes = stat.rss_pages * self.page_size;
            let usage = sweep.by_uid.entry(uid).or_default();
            usage.cpu_cores += cpu_cores;
            usage.rss_bytes += rss_bytes;
            usage.processes += 1;
            usage.top.push(ProcessUse {
                pid,
                command: sanitize_command(stat.command),
                cpu_cores,
                rss_bytes,
            });
        }
        for usage in sweep.by_uid.values_mut() {
            usage.top.sort_by(|a, b| {
                b.cpu_cores
                    .total_cmp(&a.cpu_cores)
                    .then(b.rss_bytes.cmp(&a.rss_bytes))
            });
            usage.top.truncate(TOP_PROCESSES);
        }
        self.previous = current;
        self.open_files
            .retain(|pid, _| sweep.owners.contains_key(pid));
        self.last_sweep = Some(now);
        sweep
    }

    /// Reads `/proc/PID/stat` into the buffer, through a kept file where possible.
    fn read_stat(&mut self, pid: u32, name: &std::ffi::OsStr, path: &mut PathBuf) -> bool {
        use std::os::unix::fs::FileExt;
        self.buffer.resize(STAT_BUFFER, 0);
        if let Some(file) = self.open_files.get(&pid) {
            match file.read_at(&mut self.buffer, 0) {
                Ok(n) if n > 0 && n < STAT_BUFFER => {
                    self.buffer.truncate(n);
                    return true;
                }
                // The process behind this file ended (its pid may be reused): reopen.
                _ => {
                    self.open_files.remove(&pid);
                }
            }
        }
        path.push(name);
        path.push("stat");
        let opened = File::open(&*path);
        path.pop();
        path.pop();
        let Ok(mut file) = opened else {
            return false;
        };
        self.buffer.clear();
        if file.read_to_end(&mut self.buffer).is_err() || self.buffer.is_empty() {
            return false;
        }
        if self.open_files.len() < self.max_open_files {
            self.open_files.insert(pid, file);
        }
        true
    }
}

/// Bytes read from a kept `stat` file at once (a stat line is a few hundred bytes).
const STAT_BUFFER: usize = 4096;

/// A command name safe to show on any screen: printable ASCII only.
fn sanitize_command(raw: &[u8]) -> String {
    raw.iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_sees_this_process_under_our_uid() {
        let mut sampler = ProcSampler::default();
        let sweep = sampler.sweep();
        let me = std::process::id();
        let uid = sweep.owners.get(&me).copied().expect("own pid seen");
        let usage = sweep.by_uid.get(&uid).expect("own uid");
        assert!(usage.rss_bytes > 0);
        assert!(usage.processes >= 1);
        // A second sweep measures CPU over the interval.
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let sweep = sampler.sweep();
        let cpu: f64 = sweep.by_uid.values().map(|u| u.cpu_cores).sum();
        assert!(cpu > 0.1, "busy loop not seen: {cpu}");
    }

    #[test]
    fn command_names_are_sanitised() {
        assert_eq!(sanitize_command(b"ok\x1b[2J"), "ok?[2J");
    }
}
