//! SSH front-end benchmark: `cargo bench --bench ssh`.
//!
//! Starts the release `labbench serve` as its own process, connects N = 1, 50
//! and 200 interactive sessions over loopback with the russh client
//! (`LABBENCH_BENCH_SESSIONS=1,50` picks other counts), and prints time to
//! first frame (p50/p95), server RSS per session, and server CPU per second
//! with every session idle on the Dashboard. Each figure is printed with its
//! ratio to the goal (p95 first frame 50 ms, 0.5 MiB per session, 5 % CPU
//! idle; below 1 meets it), and first-frame latency also with its ratio to a
//! floor measured in the same run: one `version` exec round trip on an
//! already authenticated connection.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestKey, TestServer, exec, session};
use russh::ChannelMsg;
use tokio::sync::watch;

const GOAL_P95_FIRST_FRAME_MS: f64 = 50.0;
const GOAL_RSS_PER_SESSION_MIB: f64 = 0.5;
const GOAL_IDLE_CPU_PERCENT: f64 = 5.0;
const IDLE_WINDOW: Duration = Duration::from_secs(10);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let counts: Vec<usize> = std::env::var("LABBENCH_BENCH_SESSIONS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 50, 200]);
    println!("labbench ssh bench: sessions idle on the Dashboard, server is a separate process");
    println!(
        "{:>8} {:>12} {:>12} {:>10} {:>14} {:>14} {:>12}",
        "sessions", "first p50", "first p95", "p95/floor", "RSS/session", "idle CPU", "vs goals"
    );
    for n in counts {
        runtime.block_on(run(n));
    }
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        "[server]\nmax_connections_per_key = 1024\nmax_connections_per_user = 1024\nmax_sessions = 2048\nmax_sessions_per_user = 2048\nmax_startups = 1024\nmax_startups_per_source = 1024\n",
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin),
        &["--config", &config],
    );
    let pid = server.pid();

    // Floor: an exec round trip on a warm connection.
    let warm = session(&server, &admin).await;
    let mut floor = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let out = exec(&warm, "version", None).await;
        assert_eq!(out.status, Some(0));
        floor.push(start.elapsed());
    }
    let floor_p50 = percentile(&mut floor, 0.5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_bytes(pid);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let handle = Arc::new(session(&server, &admin).await);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut channel = handle.channel_open_session().await.expect("open");
            channel
                .request_pty(false, "xterm", 120, 40, 0, 0, &[])
                .await
                .expect("pty");
            let start = Instant::now();
            channel.request_shell(false).await.expect("shell");
            let mut first = None;
            loop {
                tokio::select! {
                    msg = channel.wait() => match msg {
                        Some(ChannelMsg::Data { data }) => {
                            if first.is_none() && String::from_utf8_lossy(&data).contains("Dashboard") {
                                first = Some(start.elapsed());
                            }
                        }
                        Some(_) => {}
                        None => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            drop(handle);
            first
        }));
    }
    // Let every session draw, then measure an idle window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_bytes(pid);
    let cpu_start = cpu_ticks(pid);
    let wall = Instant::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let cpu_ticks_used = cpu_ticks(pid) - cpu_start;
    let cpu_percent = cpu_ticks_used as f64 / clock_ticks() / wall.elapsed().as_secs_f64() * 100.0;
    stop_tx.send_replace(true);

    let mut firsts = Vec::new();
    for task in tasks {
        if let Some(d) = task.await.expect("task") {
            firsts.push(d);
        }
    }
    assert_eq!(firsts.len(), n, "some sessions never received a frame");
    let p50 = percentile(&mut firsts, 0.5);
    let p95 = percentile(&mut firsts, 0.95);
    let rss_per_session = (rss_after.saturating_sub(rss_before)) as f64 / n as f64 / 1048576.0;
    println!(
        "{:>8} {:>10.1}ms {:>10.1}ms {:>9.1}x {:>10.3} MiB {:>12.2}% {:>12}",
        n,
        ms(p50),
        ms(p95),
        ms(p95) / ms(floor_p50).max(0.001),
        rss_per_session,
        cpu_percent,
        format!(
            "{:.2}/{:.2}/{:.2}",
            ms(p95) / GOAL_P95_FIRST_FRAME_MS,
            rss_per_session / GOAL_RSS_PER_SESSION_MIB,
            cpu_percent / GOAL_IDLE_CPU_PERCENT
        )
    );
    println!(
        "         floor (exec round trip) p50 {:.1} ms; server RSS {:.1} MiB before, {:.1} MiB with sessions; \
goal ratios are p95/50ms, RSS/0.5MiB, CPU/5% (below 1 meets the goal)",
        ms(floor_p50),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    drop(warm);
    server.stop();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(values: &mut [Duration], q: f64) -> Duration {
    values.sort();
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index.min(values.len() - 1)]
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
