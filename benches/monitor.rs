//! Monitor benchmark: `cargo bench --bench monitor`.
//!
//! With 100, 1 000 and 5 000 extra idle processes on the host
//! (`LABBENCH_BENCH_PROCESSES=1000` picks other counts), prints the time of
//! one full per-process sample with labbench's `/proc` sampler, with sysinfo,
//! and with a floor measured in the same run (read `/proc/PID/stat` into a
//! reused buffer and the uid from the directory's metadata, for every pid,
//! nothing else), as ratios to the floor; the CPU a 1 Hz sampling daemon
//! spends (sweep plus series update); and the store growth per day for 50
//! users. Goals: at most 1.5× the floor and under 0.75 % of a core at 1 Hz
//! with ~1 000 processes, under 20 MiB of store a day.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use labbench::monitor::{
    Bucket, ClosedBucket, GpuReading, HostSnapshot, MonitorState, ProcSampler, Usage,
};
use labbench::store::Store;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

const GOAL_RATIO_TO_FLOOR: f64 = 1.5;
const GOAL_CPU_PERCENT_AT_1000: f64 = 0.75;
const GOAL_STORE_MIB_PER_DAY: f64 = 20.0;

fn main() {
    let counts: Vec<usize> = std::env::var("LABBENCH_BENCH_PROCESSES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1000, 5000]);
    println!("labbench monitor bench: one full sample of every process (median of repeated runs)");
    println!(
        "{:>7} {:>8} {:>10} {:>10} {:>10} {:>9} {:>9} {:>12}",
        "extra", "procs", "floor", "labbench", "sysinfo", "lb/floor", "si/floor", "daemon CPU"
    );
    for n in counts {
        let children = spawn_idle(n);
        measure(n);
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    store_growth();
}

fn spawn_idle(n: usize) -> Vec<Child> {
    (0..n)
        .filter_map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
        .collect()
}

/// The floor: stat + metadata for every pid, nothing else.
fn floor_sweep(buffer: &mut Vec<u8>) -> usize {
    let mut seen = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().and_then(|n| n.parse::<u32>().ok()).is_none() {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        buffer.clear();
        if File::open(path.join("stat"))
            .and_then(|mut f| f.read_to_end(buffer))
            .is_ok()
        {
            seen += usize::from(meta.uid() < u32::MAX);
        }
    }
    seen
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    f(); // warm the page cache and allocations
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / labbench::sys::procfs::clock_ticks_per_second()
}

fn measure(extra: usize) {
    let mut buffer = Vec::with_capacity(1024);
    let processes = floor_sweep(&mut buffer);
    let floor = time(30, || {
        std::hint::black_box(floor_sweep(&mut buffer));
    });
    let mut sampler = ProcSampler::default();
    let ours = time(30, || {
        std::hint::black_box(sampler.sweep());
    });
    let mut system = System::new().expect("sysinfo");
    let kind = ProcessRefreshKind::nothing()
        .with_cpu()
        .with_memory()
        .with_user(UpdateKind::OnlyIfNotSet);
    let sysinfo = time(10, || {
        system.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    });

    // Daemon cost: the work of one tick (sweep + series update), CPU time per tick.
    let mut state = MonitorState::default();
    let ticks = 60;
    let cpu_before = own_cpu_seconds();
    for t in 0..ticks {
        let sweep = sampler.sweep();
        let _ = state.ingest(
            1_900_000_000 + t,
            HostSnapshot::default(),
            &sweep,
            &GpuReading::Unavailable("bench".into()),
        );
    }
    let cpu_per_tick = (own_cpu_seconds() - cpu_before) / ticks as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:>7} {:>8} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}x {:>8.2}x {:>10.3}%",
        extra,
        processes,
        ms(floor),
        ms(ours),
        ms(sysinfo),
        ms(ours) / ms(floor),
        ms(sysinfo) / ms(floor),
        cpu_per_tick * 100.0
    );
    if (900..=1500).contains(&processes) || extra == 1000 {
        println!(
            "        at ~1000 processes: labbench/floor {:.2} (goal ≤ {GOAL_RATIO_TO_FLOOR}), daemon {:.3}% of a core at 1 Hz (goal < {GOAL_CPU_PERCENT_AT_1000}%)",
            ms(ours) / ms(floor),
            cpu_per_tick * 100.0
        );
    }
}

fn store_growth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store.flush().expect("flush");
    let before = dir_size(dir.path());
    let mut bucket = Bucket::default();
    for i in 0..60 {
        bucket.add(Usage {
            cpu_cores: f64::from(i) / 7.0,
            memory_bytes: 3.0e9 + f64::from(i) * 1.0e6,
            gpus: 1.0,
            gpu_memory_bytes: 2.0e10,
        });
    }
    let day_start = 1_900_000_000 / 86_400 * 86_400;
    let subjects: Vec<String> = (0..50)
        .map(|i| format!("u/user{i:02}"))
        .chain(["host".to_string()])
        .collect();
    for minute in 0..1440 {
        for subject in &subjects {
            store
                .put_usage_bucket(
                    subject,
                    &ClosedBucket {
                        resolution: 60,
                        start: day_start + minute * 60,
                        bucket,
                    },
                )
                .expect("put");
        }
        if minute % 60 == 59 {
            for subject in &subjects {
                store
                    .put_usage_bucket(
                        subject,
                        &ClosedBucket {
                            resolution: 3600,
                            start: day_start + (minute / 60) * 3600,
                            bucket,
                        },
                    )
                    .expect("put");
            }
        }
    }
    store.flush().expect("flush");
    let after = dir_size(dir.path());
    let mib = (after.saturating_sub(before)) as f64 / 1048576.0;
    println!(
        "store growth for one day of 50 users + host (1-minute and 1-hour buckets): {mib:.1} MiB on disk (goal < {GOAL_STORE_MIB_PER_DAY} MiB/day, ratio {:.2})",
        mib / GOAL_STORE_MIB_PER_DAY
    );
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}
