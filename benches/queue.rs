//! Queue benchmark: `cargo bench --bench queue`.
//!
//! - (a) Submissions per second over one SSH connection and through the local
//!   CLI (`LABBENCH_BENCH_SUBMITS`, `LABBENCH_BENCH_LOCAL_SUBMITS`).
//! - (b) N experiments (`LABBENCH_BENCH_RUNS`, 1 000) running `true` with 2
//!   slots, end to end, against `seq N | xargs -P2 -I{} true` (the floor), in
//!   rounds (`LABBENCH_BENCH_ROUNDS`, 3) of floor, labbench and task-spooler
//!   one after the other, so the machine's drift touches all alike; it
//!   reports every round and the ratio of the medians (goal ≤ 3). With
//!   task-spooler installed (`tsp -S 2`) it prints each round's labbench /
//!   task-spooler ratio and their median; with `pueue` and `pueued` on PATH
//!   (`cargo install pueue`; `pueue parallel 2`) the figure per task over
//!   `LABBENCH_BENCH_PUEUE_RUNS` (40: pueue starts queued tasks on a timer).
//!   It also prints what creating the experiments' files costs on the disk at
//!   that moment (it varies tenfold on a busy ext4), how long the same N take
//!   when all are queued before any starts, and the CPU time the whole host
//!   spent per experiment in each phase, from `/proc/stat`, which is steadier
//!   than wall time on a noisy machine.
//! - (c) Log ingest of an experiment writing 200 MB of lines as fast as it
//!   can (`LABBENCH_BENCH_LOG_BYTES`), against the same pipeline writing to a
//!   file directly (goal ≤ 1.5×).
//! - (d) `ls --all --json` with 100 000 finished experiments in the store
//!   (`LABBENCH_BENCH_HISTORY`; goal < 100 ms), and the server's resident
//!   memory while 16 connections (`LABBENCH_BENCH_LISTINGS`) each list 10 000
//!   of them at once, against its figure after one such listing (goal < 1.2×:
//!   the database keeps at most 16 MiB of its pages in memory). The ratio to
//!   its figure before any listing is printed too: that first listing's
//!   growth (about 5 MB here) is the same with a 2 MiB page cache, and with
//!   `GLIBC_TUNABLES=glibc.malloc.arena_max=1` about half, so it is mostly
//!   memory the allocator keeps for the threads that served it.
//!
//! `LABBENCH_BENCH_ONLY=b` runs only part b; `LABBENCH_BENCH_CONFIG=FILE`
//! serves with that configuration (e.g. `queue.cgroups = false`, to see what
//! confinement costs); by default the bench raises
//! `queue.max_queued_per_user`, since (a) queues 10 000 from one user.
//! `LABBENCH_BENCH_DIR` moves the scratch directory.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{LABBENCH, TestKey, TestServer, env_count, exec, session, submit_id};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // LABBENCH_BENCH_ONLY=b (or "ab", …) runs only those parts.
    let only = std::env::var("LABBENCH_BENCH_ONLY").unwrap_or_else(|_| "abcd".into());
    runtime.block_on(async {
        if only.contains('a') {
            submissions().await;
        }
        if only.contains('b') {
            end_to_end().await;
        }
        if only.contains('c') {
            log_ingest().await;
        }
        if only.contains('d') {
            listing().await;
        }
    });
}

/// A server on a data directory in `dir`; `LABBENCH_BENCH_CONFIG` names a
/// configuration file to serve with (to compare settings, e.g. cgroups off).
fn start_server(dir: &tempfile::TempDir, admin: &TestKey) -> TestServer {
    let data = dir.path().join("data");
    let config = std::env::var("LABBENCH_BENCH_CONFIG").unwrap_or_else(|_| {
        // Part (a) queues 10 000 from one user.
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, "[queue]\nmax_queued_per_user = 1000000\n").expect("config");
        path.to_string_lossy().into_owned()
    });
    TestServer::start_with(&data, Some(admin), &["--config", &config])
}

async fn submissions() {
    let n = env_count("LABBENCH_BENCH_SUBMITS", 10_000);
    let dir = common::bench_dir("queue-bench");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = start_server(&dir, &admin);
    let handle = session(&server, &admin).await;
    // Long dependencies keep them all queued: this measures submission only.
    let first = exec(
        &handle,
        "submit --workdir /tmp --time 1m -- sleep 600",
        None,
    )
    .await;
    assert_eq!(first.status, Some(0), "{first:?}");
    let start = Instant::now();
    for _ in 0..n {
        let out = exec(&handle, "submit --workdir /tmp --after 1 -- true", None).await;
        assert_eq!(out.status, Some(0), "{out:?}");
    }
    let ssh_rate = n as f64 / start.elapsed().as_secs_f64();
    // Cancelling the dependency abandons them all: wait for that, so the
    // local CLI below always meets the same store (nothing queued).
    let _ = exec(&handle, "cancel 1", None).await;
    while exec(&handle, "ls --json", None).await.stdout.trim() != "[]" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(handle);
    server.stop();

    let local_n = env_count("LABBENCH_BENCH_LOCAL_SUBMITS", 500);
    let data = dir.path().join("data");
    let start = Instant::now();
    for _ in 0..local_n {
        let out = Command::new(LABBENCH)
            .args(["submit", "--workdir", "/tmp", "--after", "1", "--data-dir"])
            .arg(&data)
            .args(["--", "true"])
            .output()
            .expect("labbench submit");
        assert!(out.status.success(), "{out:?}");
    }
    let local_rate = local_n as f64 / start.elapsed().as_secs_f64();
    println!(
        "(a) submit: {ssh_rate:.0}/s over one SSH connection ({n} submissions), {local_rate:.0}/s through the local CLI ({local_n} processes)"
    );
}

/// CPU time the whole host has spent busy so far (all cores, from
/// `/proc/stat`): the difference over a phase is what it cost, whatever ran
/// it, and is steadier than wall time on a noisy host.
fn host_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal …: user, nice,
        // system, irq and softirq (steal is the hypervisor's, not ours).
        .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 5 | 6))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    #[allow(unsafe_code)]
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// Runs `f`, returning its result and the host CPU time spent meanwhile.
async fn with_host_cpu<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let before = host_busy();
    let result = f.await;
    (result, host_busy().saturating_sub(before))
}

/// The middle of `values` (sorted in place).
fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// `values` in seconds, as "1.23 / 1.31 / …".
fn seconds(values: &[Duration]) -> String {
    values
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The floor: `seq n | xargs -P2 -I{} true`.
fn xargs_floor(n: usize) -> Duration {
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("seq {n} | xargs -P2 -I{{}} true"))
        .status()
        .expect("xargs");
    assert!(status.success());
    start.elapsed()
}

/// Submits `n` × `true` over `handle` and waits until all have ended:
/// (time to the end, time the submissions took).
async fn submit_and_run(
    handle: &russh::client::Handle<common::Client>,
    n: usize,
    per_slot: f64,
) -> (Duration, Duration) {
    let start = Instant::now();
    let mut last = 0;
    for _ in 0..n {
        last = submit_id(
            handle,
            &format!("--workdir /tmp --cpus {per_slot} --mem 64M -- true"),
        )
        .await;
    }
    let submitted = start.elapsed();
    // Two slots: the last two are the last to end; then check that nothing is left.
    let out = exec(handle, &format!("wait {} {last}", last - 1), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    while exec(handle, "ls --json", None).await.stdout.trim() != "[]" {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (start.elapsed(), submitted)
}

/// (b): rounds of the floor, labbench and task-spooler one after another
/// (`LABBENCH_BENCH_ROUNDS`, 3 by default), so that a noisy moment of the
/// machine touches all three; the ratio is that of the medians.
async fn end_to_end() {
    let n = env_count("LABBENCH_BENCH_RUNS", 1000);
    let rounds = env_count("LABBENCH_BENCH_ROUNDS", 3).max(1);
    let dir = common::bench_dir("queue-bench");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = start_server(&dir, &admin);
    let handle = session(&server, &admin).await;
    let cores = exec(&handle, "host --json", None).await;
    let cores: f64 = serde_json::from_str::<serde_json::Value>(&cores.stdout)
        .ok()
        .and_then(|v| v["cores"].as_f64())
        .unwrap_or(2.0);
    let per_slot = cores / 2.0;
    let (mut floors, mut totals, mut submits, mut spooler) = (vec![], vec![], vec![], vec![]);
    // Host CPU time of each phase, summed over the rounds.
    let (mut floor_cpu, mut labbench_cpu, mut spooler_cpu) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let (floor, cpu) = with_host_cpu(async { xargs_floor(n) }).await;
        floors.push(floor);
        floor_cpu += cpu;
        let ((total, submitted), cpu) = with_host_cpu(submit_and_run(&handle, n, per_slot)).await;
        totals.push(total);
        submits.push(submitted);
        labbench_cpu += cpu;
        let (spooled, cpu) = with_host_cpu(async { task_spooler(dir.path(), n) }).await;
        if let Some(spooled) = spooled {
            spooler.push(spooled);
            spooler_cpu += cpu;
        }
    }
    let per_experiment =
        |cpu: Duration, runs: usize| cpu.as_secs_f64() * 1000.0 / (n * runs.max(1)) as f64;
    let spooler_line = if spooler.is_empty() {
        "task-spooler skipped".to_string()
    } else {
        format!(
            "task-spooler {:.2} ms",
            per_experiment(spooler_cpu, spooler.len())
        )
    };
    let cpu_line = format!(
        "host CPU per experiment: xargs {:.2} ms, labbench {:.2} ms (submission over SSH included), {spooler_line}",
        per_experiment(floor_cpu, rounds),
        per_experiment(labbench_cpu, rounds),
    );
    let (drain, drain_cpu) = drain_alone(&handle, dir.path(), n, per_slot).await;
    drop(handle);
    server.stop();
    let files = file_creation_cost(dir.path(), n);
    let floor = median(&mut floors.clone());
    let total = median(&mut totals.clone());
    let peer = if spooler.is_empty() {
        "task-spooler not installed (apt-get install task-spooler)".to_string()
    } else {
        let tsp = median(&mut spooler.clone());
        // Each round's labbench / task-spooler: the two ran back to back, so
        // a slower moment of the machine touches both alike.
        let per_round = if spooler.len() == totals.len() {
            let mut ratios: Vec<f64> = totals
                .iter()
                .zip(&spooler)
                .map(|(ours, theirs)| ours.as_secs_f64() / theirs.as_secs_f64())
                .collect();
            let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            ratios.sort_by(f64::total_cmp);
            format!(
                "; labbench / task-spooler per round {} (median {:.2}; below 1: ahead)",
                shown.join(" / "),
                ratios[ratios.len() / 2]
            )
        } else {
            String::new()
        };
        format!(
            "task-spooler (tsp -S 2) {} s, median {:.2} s ({:.1}× the floor){per_round}",
            seconds(&spooler),
            tsp.as_secs_f64(),
            tsp.as_secs_f64() / floor.as_secs_f64()
        )
    };
    let pueue_n = env_count("LABBENCH_BENCH_PUEUE_RUNS", 40);
    let pueue = (pueue_n > 0)
        .then(|| pueue(dir.path(), pueue_n))
        .map(|t| {
            let Some(t) = t else {
                return "pueue not installed (cargo install pueue)".to_string();
            };
            format!(
                "pueue (parallel 2) {:.2} s for {pueue_n} ({:.1} ms each; labbench {:.2} ms each)",
                t.as_secs_f64(),
                t.as_secs_f64() * 1000.0 / pueue_n as f64,
                total.as_secs_f64() * 1000.0 / n as f64,
            )
        })
        .unwrap_or_else(|| "pueue skipped".into());
    println!(
        "(b) {n} × true, 2 slots, {rounds} rounds: labbench {} s, median {:.2} s (submitting took {} s; \
         running them alone, all queued at once, {:.2} s, {:.2} ms host CPU each), xargs -P2 {} s, median {:.2} s: \
         ratio of medians {:.1} (goal ≤ 3); creating each experiment's directory and 4 files alone \
         takes {:.2} s on this disk now; {peer}; {pueue}; {cpu_line}",
        seconds(&totals),
        total.as_secs_f64(),
        seconds(&submits),
        drain.as_secs_f64(),
        per_experiment(drain_cpu, 1),
        seconds(&floors),
        floor.as_secs_f64(),
        total.as_secs_f64() / floor.as_secs_f64(),
        files.as_secs_f64(),
    );
}

/// How long `n` × `true` take to run once they are all queued, and the
/// host CPU time that took: they wait for a gate experiment that ends when
/// `scratch/open` appears, and both clocks start when the gate has ended.
async fn drain_alone(
    handle: &russh::client::Handle<common::Client>,
    scratch: &std::path::Path,
    n: usize,
    per_slot: f64,
) -> (Duration, Duration) {
    let signal = scratch.join("open");
    let gate = submit_id(
        handle,
        &format!(
            "--workdir /tmp --sh 'while [ ! -e {} ]; do sleep 0.01; done'",
            signal.display()
        ),
    )
    .await;
    for _ in 0..n {
        let out = exec(
            handle,
            &format!("submit --workdir /tmp --after {gate} --cpus {per_slot} --mem 64M -- true"),
            None,
        )
        .await;
        assert_eq!(out.status, Some(0), "{out:?}");
    }
    std::fs::write(&signal, b"").expect("open the gate");
    let out = exec(handle, &format!("wait {gate}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let (start, busy) = (Instant::now(), host_busy());
    while exec(handle, "ls --json", None).await.stdout.trim() != "[]" {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (start.elapsed(), host_busy().saturating_sub(busy))
}

/// `n` × `true` through pueue with 2 parallel tasks, submission included
/// (`None` when `pueue`/`pueued` are not on PATH). pueue starts queued tasks
/// on a timer, so `n` is kept small and the figure is per task.
fn pueue(scratch: &std::path::Path, n: usize) -> Option<Duration> {
    let dir = scratch.join("pueue");
    let config = dir.join("pueue.yml");
    std::fs::create_dir_all(dir.join("run")).ok()?;
    std::fs::write(
        &config,
        format!(
            "shared:\n  pueue_directory: {d}\n  runtime_directory: {d}/run\n  use_unix_socket: true\n\
             daemon:\n  default_parallel_tasks: 2\n",
            d = dir.display()
        ),
    )
    .ok()?;
    let sh = |script: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PUEUE_CONFIG_PATH", &config)
            .status()
            .is_ok_and(|s| s.success())
    };
    let started = sh(
        "command -v pueue >/dev/null && command -v pueued >/dev/null || exit 3
         pueued >/dev/null 2>&1 &
         for i in $(seq 100); do pueue status >/dev/null 2>&1 && exit 0; sleep 0.05; done; exit 1",
    );
    if !started {
        return None;
    }
    let start = Instant::now();
    let ran = sh(&format!(
        "for i in $(seq {n}); do pueue add -- true >/dev/null || exit 1; done
         pueue wait >/dev/null
         test \"$(pueue status --json | grep -o '\"Success\"' | wc -l)\" = {n}"
    ));
    let elapsed = start.elapsed();
    sh("pueue shutdown >/dev/null 2>&1");
    ran.then_some(elapsed)
}

/// `n` × `true` through task-spooler with 2 slots, submission included
/// (`None` when `tsp` is not installed).
fn task_spooler(scratch: &std::path::Path, n: usize) -> Option<Duration> {
    let script = format!(
        "command -v tsp >/dev/null || exit 3
         export TS_SOCKET={dir}/tsp.sock TMPDIR={dir}
         tsp -S 2
         for i in $(seq {n}); do tsp -n true >/dev/null; done
         while tsp | grep -q -E ' running | queued '; do sleep 0.01; done
         done=$(tsp | grep -c finished); tsp -K; test \"$done\" = {n}",
        dir = scratch.display()
    );
    let start = Instant::now();
    let status = Command::new("sh").arg("-c").arg(script).status().ok()?;
    status.success().then(|| start.elapsed())
}

/// How long creating `n` directories of 4 files takes next to the data dir
/// (experiments need them; on an ext4 disk with much recent deletion this
/// varies tenfold from minute to minute, so it is measured in the same run).
fn file_creation_cost(parent: &std::path::Path, n: usize) -> Duration {
    let base = parent.join("file-floor");
    std::fs::create_dir(&base).expect("file floor");
    let start = Instant::now();
    for i in 0..n {
        let dir = base.join(i.to_string());
        std::fs::create_dir(&dir).expect("dir");
        for name in ["stdout.log", "stderr.log", "journal", "metrics.jsonl"] {
            std::fs::File::create(dir.join(name)).expect("file");
        }
    }
    start.elapsed()
}

async fn log_ingest() {
    let bytes = env_count("LABBENCH_BENCH_LOG_BYTES", 200_000_000);
    let pipeline = format!("head -c {bytes} /dev/zero | tr '\\0' 'x' | fold -w 99");
    let dir = common::bench_dir("queue-bench");
    let file = dir.path().join("floor.log");
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{pipeline} > {}", file.display()))
        .status()
        .expect("floor");
    assert!(status.success());
    let floor = start.elapsed();

    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = start_server(&dir, &admin);
    let handle = session(&server, &admin).await;
    // The floor may use every core, so the experiment asks for all of them too.
    let cores = exec(&handle, "host --json", None).await;
    let cores = serde_json::from_str::<serde_json::Value>(&cores.stdout)
        .ok()
        .and_then(|v| v["cores"].as_u64())
        .unwrap_or(1);
    let start = Instant::now();
    let id = submit_id(
        &handle,
        &format!("--workdir /tmp --cpus {cores} --sh \"{pipeline}\""),
    )
    .await;
    let out = exec(&handle, &format!("wait {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let ours = start.elapsed();
    let mb = bytes as f64 / 1e6;
    println!(
        "(c) log ingest of {mb:.0} MB: labbench {:.0} MB/s, cat-to-file floor {:.0} MB/s: ratio {:.2} (goal ≤ 1.5)",
        mb / ours.as_secs_f64(),
        mb / floor.as_secs_f64(),
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    drop(handle);
    server.stop();
}

async fn listing() {
    use labbench::model::{
        CommandLine, Experiment, ExperimentSpec, Outcome, ResourceUse, Resources, State,
    };
    let n = env_count("LABBENCH_BENCH_HISTORY", 100_000) as u64;
    let dir = common::bench_dir("queue-bench");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let data = dir.path().join("data");
    {
        let server = TestServer::start(&data, Some(&admin));
        server.stop();
    }
    {
        let store = labbench::store::Store::open(&data).expect("store");
        let owner = labbench::server::invoking_user();
        let experiments: Vec<Experiment> = (1..=n)
            .map(|id| Experiment {
                id,
                owner: owner.clone(),
                unix_user: owner.clone(),
                spec: ExperimentSpec {
                    name: Some(format!("run-{id}")),
                    project: Some("bench".into()),
                    tags: vec!["history".into()],
                    params: vec![("lr".into(), "0.1".into())],
                    ..ExperimentSpec::new(
                        CommandLine::Argv(vec!["python".into(), "train.py".into()]),
                        "/tmp".into(),
                        Resources {
                            cpus: 1.0,
                            memory_bytes: 1 << 30,
                            gpus: 0,
                            time_limit_secs: 3600,
                        },
                    )
                },
                submitted_at: 1_700_000_000 + id as i64,
                state: State::Finished {
                    outcome: Outcome::Succeeded,
                    exit_code: Some(0),
                    signal: None,
                    stop: None,
                    started_at: Some(1_700_000_000 + id as i64),
                    ended_at: 1_700_000_010 + id as i64,
                },
                transitions: Vec::new(),
                host: "bench".into(),
                backend: "local".into(),
                usage: ResourceUse::default(),
            })
            .collect();
        for chunk in experiments.chunks(10_000) {
            store.import_experiments(chunk).expect("import");
        }
    }
    // Room for the 16 parallel listings below on one key.
    let config = dir.path().join("listing.toml");
    std::fs::write(&config, "[server]\nmax_connections_per_key = 64\n").expect("config");
    let server = TestServer::start_with(&data, None, &["--config", &config.to_string_lossy()]);
    let handle = session(&server, &admin).await;
    let mut times = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let out = exec(&handle, "ls --all --json", None).await;
        assert_eq!(out.status, Some(0));
        times.push(start.elapsed());
    }
    times.sort();
    let start = Instant::now();
    let floor = exec(&handle, "version", None).await;
    assert_eq!(floor.status, Some(0));
    let round_trip = start.elapsed();
    println!(
        "(d) ls --all --json, first page of 100, with {n} finished experiments: median {:.1} ms (goal < 100 ms); an exec round trip takes {:.1} ms",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        round_trip.as_secs_f64() * 1000.0
    );
    // 16 of the longest listings at once, each on a connection of its own:
    // the server's resident memory meanwhile, against its figure with the
    // same connections open and idle (what the listings themselves cost).
    let parallel = env_count("LABBENCH_BENCH_LISTINGS", 16);
    let mut clients = Vec::new();
    for _ in 0..parallel {
        let client = session(&server, &admin).await;
        assert_eq!(exec(&client, "ls --json", None).await.status, Some(0));
        clients.push(client);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let cold = rss_bytes(server.pid());
    // One listing first: the database's page cache then holds these
    // records, as it does on a daemon that has served its history before.
    let warm_up = exec(&clients[0], "ls --all --limit 10000 --json", None).await;
    assert_eq!(warm_up.status, Some(0));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let idle = rss_bytes(server.pid());
    println!(
        "(d) server RSS with {parallel} connections open: {:.1} MB; after one listing of 10000: {:.1} MB",
        cold as f64 / 1e6,
        idle as f64 / 1e6
    );
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (peak, watching, pid) = (peak.clone(), watching.clone(), server.pid());
        std::thread::spawn(move || {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                let out = exec(&client, "ls --all --limit 10000 --json", None).await;
                (client, out)
            })
        })
        .collect();
    let mut outs = Vec::new();
    let mut clients = Vec::new();
    for task in tasks {
        let (client, out) = task.await.expect("listing");
        clients.push(client);
        outs.push(out);
    }
    let took = start.elapsed();
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("watcher");
    for out in &outs {
        assert_eq!(out.status, Some(0), "{}", out.stderr);
    }
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = rss_bytes(server.pid());
    println!(
        "(d) server RSS once the listings ended: {:.1} MB",
        after as f64 / 1e6
    );
    println!(
        "(d) {parallel} parallel ls --all --limit 10000 --json ({} bytes each) in {:.2} s: server RSS idle {:.1} MB, peak {:.1} MB: {:.2}x idle after one listing, {:.2}x idle before any (goal < 1.2)",
        outs[0].stdout.len(),
        took.as_secs_f64(),
        idle as f64 / 1e6,
        peak as f64 / 1e6,
        peak as f64 / idle as f64,
        peak as f64 / cold as f64
    );
    drop(clients);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    println!(
        "(d) server RSS once their connections closed: {:.1} MB",
        rss_bytes(server.pid()) as f64 / 1e6
    );
    drop(handle);
    server.stop();
}

/// Resident memory of process `pid`, bytes (`VmRSS`).
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
