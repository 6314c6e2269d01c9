//! The monitor against real processes, and the usage commands over SSH.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::{TestKey, TestServer, exec, session};
use labbench::monitor::{GpuReading, HostSnapshot, MonitorState, ProcSampler, Window};

const MIB: f64 = 1024.0 * 1024.0;
const TEST_USER: &str = "lbmon";

/// A second user, for the test of restarts (tests run at once: the other
/// test's process must not count in its figures).
const SPIKE_USER: &str = "lbspike";

/// Creates (once) system user `name` for a test; its uid and gid, `None`
/// when not root.
fn test_user(name: &str) -> Option<(u32, u32)> {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    assert!(
        is_root,
        "this test needs root, to create a second Unix user"
    );
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(name).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd failed");
    }
    Some((id("-u")?, id("-g")?))
}

/// A process of `uid` holding `mib` MiB resident for `secs` seconds,
/// once it holds them.
fn hold_memory(uid: u32, gid: u32, mib: u32, secs: u32) -> std::process::Child {
    // perl is part of every Debian base system; the string is written, so it is resident.
    let mut child = Command::new("perl")
        .args([
            "-e",
            &format!("my $x = 'a' x ({mib}*1024*1024); $| = 1; print qq(ready\\n); sleep {secs};"),
        ])
        .uid(uid)
        .gid(gid)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn perl as the test user");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut ready).expect("child ready");
    child
}

#[test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
fn a_300_mib_process_is_attributed_to_its_uid_and_its_peak_outlives_it() {
    let Some((uid, gid)) = test_user(TEST_USER) else {
        panic!("cannot create {TEST_USER}");
    };
    let mut sampler = ProcSampler::default();
    let mut state = MonitorState::default();
    let t0 = 1_800_000_000;
    let mut t = t0;
    let ingest = |sampler: &mut ProcSampler, state: &mut MonitorState, t: i64| {
        let sweep = sampler.sweep();
        state
            .ingest(
                t,
                HostSnapshot::default(),
                &sweep,
                &GpuReading::Unavailable("test".into()),
            )
            .0
    };
    ingest(&mut sampler, &mut state, t);
    let mut child = hold_memory(uid, gid, 300, 4);
    let mut seen_mib: f64 = 0.0;
    for _ in 0..3 {
        t += 1;
        let snap = ingest(&mut sampler, &mut state, t);
        if let Some(u) = snap.users.iter().find(|u| u.unix_user == TEST_USER) {
            assert_eq!(u.uid, uid);
            seen_mib = seen_mib.max(u.now.memory_bytes / MIB);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen_mib >= 300.0,
        "saw only {seen_mib:.0} MiB for {TEST_USER}"
    );
    child.kill().ok();
    child.wait().expect("reap");
    t += 1;
    let snap = ingest(&mut sampler, &mut state, t);
    let after = snap
        .users
        .iter()
        .find(|u| u.unix_user == TEST_USER)
        .expect("the user stays listed with its peak");
    assert!(
        after.now.memory_bytes < 300.0 * MIB,
        "process should be gone"
    );
    assert!(
        after.window(Window::Minute).max.memory_bytes >= 300.0 * MIB,
        "1-minute peak lost: {:?}",
        after.window(Window::Minute)
    );
}

#[tokio::test]
async fn usage_commands_report_replayed_gpus_over_ssh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let replay = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/gpu-replay.jsonl");
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin),
        &["--gpu-source", &format!("replay:{replay}")],
    );
    let handle = session(&server, &admin).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let out = exec(&handle, "host --json", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let host: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert!(host["cores"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(host["gpus"].as_array().map(Vec::len), Some(2));
    assert!(host["gpus"][0]["owners"][0][0] == "root", "{host}");
    assert!(
        host["peaks"]["1h"]["max"]["memory_bytes"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );

    let out = exec(&handle, "usage --user root --window 1h --json", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let usage: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let me = labbench::server::invoking_user();
    assert_eq!(usage[0]["unix_user"], "root");
    assert_eq!(
        usage[0]["user"],
        me.as_str(),
        "root maps to the bootstrap admin"
    );
    assert!(usage[0]["now"]["gpu_memory_bytes"].as_f64().unwrap_or(0.0) >= 60.0 * 1024.0 * MIB);
    assert!(
        usage[0]["windows"]["1h"]["max"]["gpus"]
            .as_f64()
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(usage[0]["hint"].as_str().unwrap_or("").contains("--gpus"));

    let out = exec(&handle, "top", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("USER") && out.stdout.contains(&me),
        "{}",
        out.stdout
    );

    let out = exec(&handle, "usage --user nobody-here", None).await;
    assert_eq!(out.status, Some(1), "{out:?}");
    let out = exec(&handle, "usage --window 2w", None).await;
    assert_eq!(out.status, Some(2), "{out:?}");
}

#[test]
fn a_missing_replay_file_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(common::LABBENCH)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gpu-source",
            "replay:/nonexistent.jsonl",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.jsonl"));
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn a_spike_survives_a_restart_in_the_same_minute() {
    let Some((uid, gid)) = test_user(SPIKE_USER) else {
        panic!("cannot create {SPIKE_USER}");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let data = dir.path().join("data");
    let server = TestServer::start(&data, Some(&admin));
    let handle = session(&server, &admin).await;
    let mut child = hold_memory(uid, gid, 400, 6);
    let peak_24h = |out: &str| -> f64 {
        let v: serde_json::Value = serde_json::from_str(out).unwrap_or_default();
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|u| u["windows"]["24h"]["max"]["memory_bytes"].as_f64())
            .unwrap_or(0.0)
    };
    let query = format!("usage --user {SPIKE_USER} --window 24h --json");
    let mut seen = 0.0;
    for _ in 0..50 {
        seen = peak_24h(&exec(&handle, &query, None).await.stdout);
        if seen >= 400.0 * MIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen >= 400.0 * MIB, "the spike was never seen: {seen}");
    child.kill().ok();
    child.wait().expect("reap");
    drop(handle);
    server.stop();

    let server = TestServer::start(&data, None);
    let handle = session(&server, &admin).await;
    let out = exec(&handle, &query, None).await;
    let after = peak_24h(&out.stdout);
    assert!(
        after >= 400.0 * MIB,
        "the 24h peak was lost in the restart: {after} in {}",
        out.stdout
    );
}
