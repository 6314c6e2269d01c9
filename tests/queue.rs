//! The experiment queue end to end: real daemon, real processes, real cgroups
//! where the host has them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::lab::{
    Lab, MEMORY_HOG, QUEUE_GROUP, add_member, cgroup_dir, experiment_user, is_root, json,
    last_reason, require, start, submit, wait_running, wait_state,
};
use common::{TestKey, TestServer, exec, session};

#[tokio::test]
async fn an_experiment_runs_as_its_owner_and_its_logs_are_kept() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let (alice, unix) = experiment_user(&lab, &admin).await;

    let id = submit(
        &alice,
        "--name whoami -- sh -c 'id -un; id -Gn; pwd; echo to-stderr >&2; ls /proc/self/fd | tr \"\\n\" \" \"'",
    )
    .await;
    let e = wait_state(&alice, id).await;
    assert_eq!(e["state"]["state"], "finished", "{e}");
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    assert_eq!(e["state"]["exit_code"], 0);
    let out = exec(&alice, &format!("logs {id}"), None).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], unix, "{out:?}");
    if is_root() {
        // Supplementary groups come along (shared data is often group-owned).
        assert!(lines[1].split(' ').any(|g| g == QUEUE_GROUP), "{out:?}");
    }
    assert_eq!(lines[2], "/tmp", "runs in its working directory");
    // Only stdin, stdout, stderr (and `ls`'s own listing): nothing of the
    // supervisor's (journal, pipes) leaks into the command.
    assert_eq!(lines[3].trim(), "0 1 2 3", "{out:?}");
    let out = exec(&alice, &format!("logs {id} --stderr"), None).await;
    assert_eq!(out.stdout.trim(), "to-stderr");
    let names: Vec<String> = e["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| t["to"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, vec!["queued", "starting", "running", "succeeded"]);
    if is_root() {
        // Its metrics file was its user's while it ran; now it is the
        // daemon's: the user cannot grow it past the run.
        use std::os::unix::fs::MetadataExt;
        let metrics = lab
            .dir
            .path()
            .join("data/experiments")
            .join(id.to_string())
            .join("metrics.jsonl");
        let owner = std::fs::metadata(&metrics).expect("metrics file").uid();
        assert_eq!(owner, 0, "{}", metrics.display());
    }
}

#[tokio::test]
async fn failures_timeouts_and_wait_statuses() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let failing = submit(&admin, "-- sh -c 'exit 3'").await;
    let out = exec(&admin, &format!("wait {failing}"), None).await;
    assert_eq!(
        out.status,
        Some(3),
        "wait returns the experiment's status: {out:?}"
    );
    let e = json(
        &exec(&admin, &format!("show {failing} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(e["state"]["outcome"], "failed");
    assert_eq!(e["state"]["exit_code"], 3);

    let slow = submit(&admin, "--time 2s -- sleep 60").await;
    let e = wait_state(&admin, slow).await;
    assert_eq!(e["state"]["outcome"], "timed_out", "{e}");
    assert!(last_reason(&e).contains("wall time limit"), "{e}");
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn memory_limit_kills_with_a_reason_and_pids_limit_stops_a_fork_bomb() {
    require(labbench::exec::cgroup::available(), "writable cgroups");
    let lab = start("[queue]\nmax_processes = 40\nkill_grace_secs = 1\n");
    let admin = session(&lab.server, &lab.admin).await;
    let hog = submit(&admin, MEMORY_HOG).await;
    let e = wait_state(&admin, hog).await;
    assert_eq!(e["state"]["outcome"], "killed_by_limit", "{e}");
    assert_eq!(last_reason(&e), "memory limit 100M exceeded", "{e}");

    // Forks until fork fails, reports it, and holds on for a while.
    let bomb = submit(
        &admin,
        "--time 20s -- perl -e 'for (1..200) { my $p = fork(); if (!defined $p) { print STDERR qq(fork failed: $!\\n); sleep 3; exit 1 } if ($p == 0) { sleep 30; exit 0 } } sleep 30'",
    )
    .await;
    // While it runs, its cgroup never holds more than the limit.
    let bomb_cgroup = cgroup_dir(&admin, bomb).await;
    let mut peak = 0u64;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let current = std::fs::read_to_string(bomb_cgroup.join("pids.current"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        peak = peak.max(current);
    }
    assert!(
        peak > 0 && peak <= 40,
        "pids in the experiment's cgroup: {peak}"
    );
    // The shell may give up by itself once fork fails; either way it ends.
    let _ = exec(&admin, &format!("cancel {bomb}"), None).await;
    let e = wait_state(&admin, bomb).await;
    let outcome = e["state"]["outcome"].as_str().unwrap_or("");
    assert!(["cancelled", "failed"].contains(&outcome), "{e}");
    let out = exec(&admin, &format!("logs {bomb} --stderr"), None).await;
    assert!(out.stdout.to_lowercase().contains("fork"), "{out:?}");
    // Its cgroup empties of its processes: it is removed, or kept for the
    // next experiment, with at most its supervisor (a fork of the launcher,
    // kept in its slot on cgroup v1). Up to 10 s: forty processes die and
    // are reaped slower on a busy host.
    let not_supervisor = |pid: &str| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        !String::from_utf8_lossy(&cmdline).contains("__launcher")
    };
    let mut left = Vec::new();
    for _ in 0..100 {
        left = match std::fs::read_to_string(bomb_cgroup.join("cgroup.procs")) {
            Ok(procs) => procs
                .split_whitespace()
                .filter(|pid| not_supervisor(pid))
                .map(str::to_string)
                .collect(),
            Err(_) if !bomb_cgroup.exists() => Vec::new(),
            Err(e) => vec![format!("unreadable: {e}")],
        };
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "processes of experiment {bomb} left behind: {left:?}"
    );
}

#[tokio::test]
async fn cancel_leaves_nothing_behind_even_after_setsid() {
    let lab = start("[queue]\nkill_grace_secs = 1\n");
    let admin = session(&lab.server, &lab.admin).await;
    // Unusual sleep lengths mark this test's processes.
    let seconds = 7000 + std::process::id() % 1000;
    let marker = format!("sleep {seconds}");
    let id = submit(&admin, &format!("-- sh -c 'setsid {marker} & {marker}'")).await;
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let out = Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .expect("pgrep");
        if String::from_utf8_lossy(&out.stdout).lines().count() >= 2 {
            seen = true;
            break;
        }
    }
    assert!(seen, "the experiment's processes never appeared");
    if labbench::exec::cgroup::available() {
        // The runner publishes what a running experiment uses now.
        let mut live = serde_json::Value::Null;
        for _ in 0..20 {
            let ls = json(&exec(&admin, "ls --json", None).await.stdout);
            live = ls[0]["live"].clone();
            if live["memory_bytes"].as_u64().unwrap_or(0) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(live["memory_bytes"].as_u64().unwrap_or(0) > 0, "{live}");
    }
    let out = exec(&admin, &format!("cancel {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");
    if labbench::exec::cgroup::available() {
        let left = Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .expect("pgrep");
        assert!(
            left.stdout.is_empty(),
            "left behind: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    } else {
        eprintln!("no cgroups: a process that called setsid may escape (documented)");
    }
}

#[tokio::test]
async fn roles_decide_who_submits_and_cancels() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    // The members' Unix users must exist to run anything.
    let mike = add_member(&lab.server, &admin, lab.dir.path(), "mike", "member").await;
    let mary = add_member(&lab.server, &admin, lab.dir.path(), "mary", "member").await;
    let vera = add_member(&lab.server, &admin, lab.dir.path(), "vera", "viewer").await;

    let out = exec(&vera, "submit --workdir /tmp -- true", None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let id = submit(&mike, "-- sleep 30").await;
    let out = exec(&mary, &format!("cancel {id}"), None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let out = exec(&vera, &format!("cancel {id}"), None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let out = exec(&admin, &format!("cancel {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = exec(&mike, &format!("priority {id} 5"), None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    // Ended before the daemon stops (a running one keeps its cgroup for a
    // next daemon that a test never starts).
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");

    // The daemon's runner stops before the daemon cleans up: a start it was
    // making when the experiment was cancelled leaves no cgroup behind.
    drop((admin, mike, mary, vera));
    let Lab { dir, server, .. } = lab;
    server.stop();
    let instance = labbench::exec::cgroup::instance_name(&dir.path().join("data"));
    let left = match labbench::exec::cgroup::hierarchy() {
        Some(labbench::exec::cgroup::Hierarchy::V2(mount)) => vec![mount.join("labbench")],
        Some(labbench::exec::cgroup::Hierarchy::V1) => ["memory", "pids", "freezer"]
            .iter()
            .map(|c| {
                std::path::Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join("labbench")
            })
            .collect(),
        None => Vec::new(),
    }
    .into_iter()
    .map(|parent| parent.join(&instance))
    .filter(|dir| dir.exists())
    .collect::<Vec<_>>();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn bad_submissions_are_refused_clearly() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let cases = [
        (
            "submit --mem 8Q -- true",
            2,
            "expected a size like 512M or 8G",
        ),
        (
            "submit --gpus 1 --workdir /tmp -- true",
            1,
            "more than this host has",
        ),
        ("submit --workdir /nonexistent -- true", 1, "/nonexistent"),
        ("submit --bogus -- true", 2, "--bogus"),
        ("submit --workdir /tmp", 1, "no command given"),
        (
            "submit --time 18446744073709551615 --workdir /tmp -- true",
            2,
            "longer than the longest allowed duration, 365d",
        ),
        ("submit --time 366d --workdir /tmp -- true", 2, "365d"),
        (
            "submit --env CUDA_VISIBLE_DEVICES=0,1 --workdir /tmp -- true",
            2,
            "cannot be overridden",
        ),
        (
            "submit --env NVIDIA_VISIBLE_DEVICES=all --workdir /tmp -- true",
            2,
            "cannot be overridden",
        ),
        (
            "submit --env LABBENCH_METRICS=/etc/shadow --workdir /tmp -- true",
            2,
            "cannot be overridden",
        ),
        ("quota set root --max-time 400d", 2, "365d"),
    ];
    for (line, status, needle) in cases {
        let out = exec(&admin, line, None).await;
        assert_eq!(out.status, Some(status), "{line}: {out:?}");
        assert!(out.stderr.contains(needle), "{line}: {out:?}");
    }
    let out = exec(&admin, "ls --all --json", None).await;
    assert_eq!(
        json(&out.stdout).as_array().map(Vec::len),
        Some(0),
        "nothing queued"
    );
}

#[tokio::test]
async fn terminal_escapes_in_output_never_reach_a_screen() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let corpus = r"printf '\033[2J\033[H\033]0;owned\007\033[31mred\033[0m \033P+q\033\\ok\r\n\033[?1049h\233 2J\n'";
    let id = submit(&admin, &format!("--sh \"{corpus}\"")).await;
    wait_state(&admin, id).await;
    for command in [format!("logs {id}"), format!("logs {id} -f")] {
        let out = exec(&admin, &command, None).await;
        assert!(
            !out.stdout.contains('\u{1b}'),
            "{command}: {:?}",
            out.stdout
        );
        assert!(
            !out.stdout.contains('\u{9b}'),
            "{command}: {:?}",
            out.stdout
        );
        assert!(!out.stdout.contains('\u{7}'), "{command}: {:?}", out.stdout);
        assert!(out.stdout.contains("red ok"), "{command}: {:?}", out.stdout);
    }
}

#[tokio::test]
async fn logs_follow_streams_until_the_end_and_returns_the_status() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let id = submit(
        &admin,
        "-- sh -c 'for i in 1 2 3; do echo line $i; sleep 0.3; done; exit 4'",
    )
    .await;
    let out = exec(&admin, &format!("logs -f {id}"), None).await;
    assert_eq!(out.stdout, "line 1\nline 2\nline 3\n");
    assert_eq!(out.status, Some(4));
}

#[tokio::test]
async fn logs_carry_write_times_and_since_filters_by_them() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let id = submit(
        &admin,
        "-- sh -c 'echo early; sleep 1.5; echo late; exit 0'",
    )
    .await;
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&admin, &format!("logs -t {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let stamped: Vec<(i64, &str)> = out
        .stdout
        .lines()
        .map(|line| {
            let (stamp, text) = line.split_once(' ').expect("stamp and text");
            let at = chrono::DateTime::parse_from_rfc3339(stamp)
                .unwrap_or_else(|err| panic!("{stamp:?}: {err}"))
                .timestamp_millis();
            (at, text)
        })
        .collect();
    assert_eq!(
        stamped.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        ["early", "late"]
    );
    let started = e["state"]["started_at"].as_i64().expect("started_at") * 1000;
    let ended = e["state"]["ended_at"].as_i64().expect("ended_at") * 1000;
    for (at, text) in &stamped {
        assert!(
            (started - 1000..=ended + 1000).contains(at),
            "{text} stamped {at}, run {started}..{ended}"
        );
    }
    // The sleep separates them by 1.5 s; stamps are at most 0.1 s late.
    assert!(stamped[1].0 - stamped[0].0 >= 1300, "{stamped:?}");

    let since = chrono::DateTime::from_timestamp_millis(stamped[1].0 - 500)
        .expect("time")
        .to_rfc3339();
    let out = exec(&admin, &format!("logs {id} --since {since}"), None).await;
    assert_eq!(out.stdout, "late\n", "{out:?}");
    let out = exec(&admin, &format!("logs {id} --since 1h"), None).await;
    assert_eq!(out.stdout, "early\nlate\n", "{out:?}");
    let out = exec(&admin, &format!("logs {id} --since yesterday"), None).await;
    assert_eq!(out.status, Some(2), "{out:?}");
    assert!(out.stderr.contains("invalid time \"yesterday\""), "{out:?}");

    // --json: one object a line, with the same times.
    let out = exec(&admin, &format!("logs {id} --json"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let objects: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(objects.len(), 2, "{out:?}");
    for (object, (at, text)) in objects.iter().zip(&stamped) {
        assert_eq!(object["stream"], "stdout");
        assert_eq!(object["line"], *text);
        let time = object["time"].as_f64().expect("time");
        assert!(((time * 1000.0) as i64 - at).abs() <= 1, "{object} vs {at}");
    }
}

#[tokio::test]
async fn a_run_survives_kill_9_of_the_daemon_and_a_vanished_one_is_lost() {
    let lab = start("");
    let data = lab.server.data_dir.clone();
    let admin = session(&lab.server, &lab.admin).await;
    // Where supervisors are kept (v1 slots), the survivor runs under the
    // one kept from this first experiment.
    let first = submit(&admin, "-- true").await;
    let kept = supervisor_pid(&wait_state(&admin, first).await);
    let survivor = submit(&admin, "-- sh -c 'sleep 3; echo survived'").await;
    let victim = submit(&admin, "-- sleep 300").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The supervisor's pid, as the record has it (forked by the launcher).
    let shown = exec(&admin, &format!("show {victim} --json"), None).await;
    let victim_shim = json(&shown.stdout)["state"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("victim's supervisor runs: {}", shown.stdout));
    let shown = exec(&admin, &format!("show {survivor} --json"), None).await;
    let survivor_shim = json(&shown.stdout)["state"]["pid"].as_u64();
    assert_eq!(
        survivor_shim == Some(kept),
        v1_cgroups(),
        "{}",
        shown.stdout
    );
    drop(admin);
    Command::new("kill")
        .args(["-9", &lab.server.pid().to_string()])
        .status()
        .expect("kill");
    // While the daemon is down, the victim vanishes entirely (supervisor and command).
    Command::new("kill")
        .args(["-9", &victim_shim.to_string()])
        .status()
        .expect("kill shim");
    Command::new("pkill")
        .args(["-9", "-f", "^sleep 300$"])
        .status()
        .ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = TestServer::start(&data, None);
    let admin = session(&restarted, &lab.admin).await;
    let e = wait_state(&admin, survivor).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&admin, &format!("logs {survivor}"), None).await;
    assert_eq!(out.stdout.trim(), "survived");
    let e = wait_state(&admin, victim).await;
    assert_eq!(e["state"]["outcome"], "lost", "{e}");
}

/// A start the daemon recorded but did not let go before it died (its
/// journal has no `run` line: the command never started) is queued again
/// at the next start, and runs; one whose command started is lost.
#[tokio::test]
async fn a_start_cut_short_by_the_daemons_death_is_queued_again() {
    let lab = start("");
    let data = lab.server.data_dir.clone();
    let admin = session(&lab.server, &lab.admin).await;
    let flag = lab.dir.path().join("second-life");
    std::fs::set_permissions(
        lab.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let cut = submit(
        &admin,
        &format!("-- sh -c 'test -e {} && exit 0; sleep 300'", flag.display()),
    )
    .await;
    let lost = submit(&admin, "-- sleep 301").await;
    let mut shims = Vec::new();
    for id in [cut, lost] {
        let e = wait_running(&admin, id).await;
        shims.push(e["state"]["pid"].as_u64().expect("pid"));
    }
    drop(admin);
    Command::new("kill")
        .args(["-9", &lab.server.pid().to_string()])
        .status()
        .expect("kill");
    for shim in shims {
        Command::new("kill")
            .args(["-9", &shim.to_string()])
            .status()
            .expect("kill shim");
    }
    Command::new("pkill")
        .args(["-9", "-f", "^(sh -c test|sleep 301)"])
        .status()
        .ok();
    // What a journal holds when the daemon died before letting it go.
    let journal = labbench::output::ExperimentFiles::new(&data, cut).journal();
    std::fs::write(&journal, labbench::output::journal::journal_header()).expect("journal");
    std::fs::write(&flag, "").expect("flag");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = TestServer::start(&data, None);
    let admin = session(&restarted, &lab.admin).await;
    let e = wait_state(&admin, cut).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let reasons: Vec<&str> = e["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter_map(|t| t["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"queued again: the daemon stopped before its command started"),
        "{e}"
    );
    let e = wait_state(&admin, lost).await;
    assert_eq!(
        e["state"]["outcome"], "lost",
        "its command had started: {e}"
    );
}

/// Whether this host confines experiments in v1 cgroups (where supervisors
/// are kept from one experiment to the next).
fn v1_cgroups() -> bool {
    labbench::exec::cgroup::available()
        && labbench::exec::cgroup::hierarchy() == Some(labbench::exec::cgroup::Hierarchy::V1)
}

fn process_exists(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid of an experiment's supervisor, as its start's transition tells it.
fn supervisor_pid(e: &serde_json::Value) -> u64 {
    let started = e["transitions"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["to"] == "running"))
        .and_then(|t| t["reason"].as_str())
        .unwrap_or_default();
    let pid = started.strip_prefix("started as pid ").unwrap_or_default();
    let pid = pid.split(' ').next().unwrap_or_default();
    pid.parse()
        .unwrap_or_else(|_| panic!("no supervisor pid in {e}"))
}

/// The v1 memory cgroup directory process `pid` is in.
fn memory_cgroup_of(pid: u64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, path)| path.to_string()))
        .map(|path| std::path::Path::new("/sys/fs/cgroup/memory").join(&path[1..]))
        .unwrap_or_else(|| panic!("process {pid} is in no memory cgroup: {text}"))
}

/// A kept supervisor's slot is charged for nothing its experiments' run
/// journals hold: the supervisor writes their lines, but the launcher wrote
/// the page they go to. Charged to the slot, a page an experiment would
/// push the slot over what it may hold and still be kept after some dozens
/// of experiments, and each replacement costs a new supervisor and cgroup.
#[tokio::test]
#[ignore = "needs root and cgroup v1: tools/test runs it as root with --include-ignored"]
async fn a_kept_supervisors_slot_is_charged_nothing_for_run_journals() {
    require(
        v1_cgroups(),
        "cgroup v1 (supervisors are kept only in its slots)",
    );
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let mut supervisors = Vec::new();
    for _ in 0..20 {
        let id = submit(&admin, "-- true").await;
        let e = wait_state(&admin, id).await;
        assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
        let pid = supervisor_pid(&e);
        if supervisors.last() != Some(&pid) {
            supervisors.push(pid);
        }
    }
    // (A slot is let go, rarely, when the kernel has not yet uncharged
    // all of an ended command's memory.)
    assert!(supervisors.len() <= 2, "supervisors kept: {supervisors:?}");
    let supervisor = *supervisors.last().expect("a supervisor");
    let slot = memory_cgroup_of(supervisor);
    let stat = std::fs::read_to_string(slot.join("memory.stat")).expect("memory.stat");
    let cache = stat
        .lines()
        .find_map(|l| l.strip_prefix("cache "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no cache line in {stat}"));
    // A page per journal would be 20; pages of something else the commands
    // read (a library evicted meanwhile, say) may be charged here.
    let page = 4096;
    assert!(
        cache < 10 * page,
        "page cache charged to {}:\n{stat}",
        slot.display()
    );
    let journal = lab.dir.path().join("data/experiments/1/journal");
    let journal = std::fs::read_to_string(&journal).expect("journal");
    assert!(journal.starts_with("# labbench run journal"), "{journal}");
    assert!(journal.ends_with("exit 0\n"), "{journal}");
}

#[tokio::test]
#[ignore = "needs root and cgroup v1: tools/test runs it as root with --include-ignored"]
async fn a_kept_supervisor_runs_the_next_experiment_afresh_and_alone() {
    require(
        v1_cgroups(),
        "cgroup v1 (supervisors are kept only in its slots)",
    );
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    // The first uses 60 MiB and some CPU, and fails.
    let first = submit(
        &admin,
        "--mem 300M -- perl -e '$x = \"a\" x (60*1024*1024); $i = 0; $i++ while $i < 3e6; print \"one\\n\"; exit 3'",
    )
    .await;
    let first = wait_state(&admin, first).await;
    assert_eq!(first["state"]["exit_code"], 3, "{first}");
    assert!(
        first["usage"]["peak_memory_bytes"].as_u64() > Some(60 << 20),
        "{first}"
    );
    let supervisor = supervisor_pid(&first);
    let slot = memory_cgroup_of(supervisor);
    let name = slot
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        name.starts_with("slot-"),
        "kept in a slot: {}",
        slot.display()
    );

    // The next of the same user runs under that supervisor, in that slot,
    // with its own status, logs and accounts.
    let second = submit(&admin, "-- sh -c 'echo two; exit 0'").await;
    let second = wait_state(&admin, second).await;
    assert_eq!(second["state"]["outcome"], "succeeded", "{second}");
    assert_eq!(supervisor_pid(&second), supervisor, "{second}");
    assert_eq!(memory_cgroup_of(supervisor), slot, "it stays in its slot");
    let id = second["id"].as_u64().expect("id");
    assert_eq!(
        exec(&admin, &format!("logs {id}"), None).await.stdout,
        "two\n"
    );
    let peak = second["usage"]["peak_memory_bytes"].as_u64().expect("peak");
    assert!(
        peak < 30 << 20,
        "the first's peak is not the second's: {second}"
    );
    assert!(
        second["usage"]["cpu_seconds"].as_f64() < first["usage"]["cpu_seconds"].as_f64(),
        "the first's CPU time is not the second's: {first} {second}"
    );

    // A kept supervisor that died is not used again.
    Command::new("kill")
        .args(["-9", &supervisor.to_string()])
        .status()
        .expect("kill");
    // Dead, not dying: on a busy host the signal may take a while to end it.
    for _ in 0..200 {
        if !process_exists(supervisor) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // What an experiment leaves running (here in a session of its own)
    // ends with it, whether or not its supervisor stays.
    let seconds = 8000 + std::process::id() % 1000;
    let third = submit(
        &admin,
        &format!("-- sh -c 'setsid sleep {seconds} & echo three'"),
    )
    .await;
    let third = wait_state(&admin, third).await;
    assert_eq!(third["state"]["outcome"], "succeeded", "{third}");
    assert_ne!(supervisor_pid(&third), supervisor);
    let left = Command::new("pgrep")
        .args(["-f", &format!("^sleep {seconds}$")])
        .output()
        .expect("pgrep");
    assert!(left.stdout.is_empty(), "the third left a process behind");

    // Another Unix user gets a supervisor of its own.
    let fourth = submit(&admin, "-- echo four").await;
    let kept = supervisor_pid(&wait_state(&admin, fourth).await);
    let mut last = fourth;
    if is_root() {
        let (alice, unix) = experiment_user(&lab, &admin).await;
        let hers = submit(&alice, "-- id -un").await;
        last = hers;
        let hers = wait_state(&alice, hers).await;
        assert_ne!(supervisor_pid(&hers), kept, "{hers}");
        let out = exec(&alice, &format!("logs {last}"), None).await;
        assert_eq!(out.stdout.trim(), unix);
    }

    // The launcher hands a kept supervisor its next experiment while the
    // start is being recorded; one that cannot take it (here since the
    // experiment's directory cannot be made) is let go, the experiment
    // fails with the reason, and the next one runs.
    let in_the_way = lab
        .dir
        .path()
        .join("data/experiments")
        .join((last + 1).to_string());
    std::fs::write(&in_the_way, "not a directory").expect("block the directory");
    let fifth = submit(&admin, "-- echo five").await;
    assert_eq!(fifth, last + 1);
    let fifth = wait_state(&admin, fifth).await;
    assert_eq!(fifth["state"]["outcome"], "failed", "{fifth}");
    let handed = format!("started as pid {kept} ");
    assert!(
        fifth["transitions"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["reason"].as_str().is_some_and(|r| r.starts_with(&handed)))),
        "recorded under the kept supervisor first: {fifth}"
    );
    let reason = last_reason(&fifth);
    assert!(
        reason.starts_with("could not start: cannot create")
            && reason.contains(&in_the_way.display().to_string()),
        "{reason}"
    );
    for _ in 0..100 {
        if !process_exists(kept) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !process_exists(kept),
        "the supervisor that could not take it is gone"
    );
    std::fs::remove_file(&in_the_way).expect("unblock");
    let sixth = submit(&admin, "-- echo six").await;
    let sixth = wait_state(&admin, sixth).await;
    assert_eq!(sixth["state"]["outcome"], "succeeded", "{sixth}");
    let kept = supervisor_pid(&sixth);
    let slot = memory_cgroup_of(kept);

    // A daemon that stops ends its idle supervisors and removes their slots.
    drop(admin);
    lab.server.stop();
    assert!(
        !process_exists(kept),
        "idle supervisor {kept} outlived the daemon"
    );
    assert!(!slot.exists(), "{} is left", slot.display());
}

#[tokio::test]
async fn a_launcher_that_died_is_replaced_and_running_experiments_are_kept() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let long = submit(&admin, "-- sh -c 'sleep 2; echo kept'").await;
    let first = submit(&admin, "-- true").await;
    assert_eq!(
        wait_state(&admin, first).await["state"]["outcome"],
        "succeeded"
    );
    // The daemon's launcher (its child) forks supervisors; kill it.
    let out = Command::new("pgrep")
        .args(["-P", &lab.server.pid().to_string(), "-f", "__launcher"])
        .output()
        .expect("pgrep");
    let launcher = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!launcher.is_empty(), "no launcher under the daemon");
    let killed = Command::new("kill")
        .args(["-9", &launcher])
        .status()
        .expect("kill");
    assert!(killed.success());
    // The next start replaces it; the experiment that was running finishes.
    let after = submit(&admin, "-- echo again").await;
    let e = wait_state(&admin, after).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    assert_eq!(
        exec(&admin, &format!("logs {after}"), None).await.stdout,
        "again\n"
    );
    let e = wait_state(&admin, long).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    assert_eq!(
        exec(&admin, &format!("logs {long}"), None).await.stdout,
        "kept\n"
    );
}

#[tokio::test]
async fn gpu_memory_of_an_experiments_processes_is_live_and_its_peak_recorded() {
    // No GPU here: a recorded-style GPU source names the experiment's real
    // process; the daemon is restarted (kill -9) to read it.
    let lab = start("");
    let data = lab.server.data_dir.clone();
    let admin = session(&lab.server, &lab.admin).await;
    let id = submit(&admin, "-- sh -c 'sleep 317; true'").await;
    let start = std::time::Instant::now();
    let pid = loop {
        let out = Command::new("pgrep")
            .args(["-f", "^sleep 317$"])
            .output()
            .expect("pgrep");
        if let Some(pid) = String::from_utf8_lossy(&out.stdout).lines().next() {
            break pid.trim().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gib = 1u64 << 30;
    let replay = lab.dir.path().join("gpu.jsonl");
    std::fs::write(
        &replay,
        format!(
            r#"{{"gpus":[{{"index":0,"name":"Replayed GPU","utilization_percent":90,"memory_used":{used},"memory_total":{total}}}],"processes":[{{"pid":{pid},"gpu":0,"memory_bytes":{used},"utilization_percent":90}}]}}
"#,
            used = 3 * gib,
            total = 80 * gib
        ),
    )
    .expect("replay");
    drop(admin);
    Command::new("kill")
        .args(["-9", &lab.server.pid().to_string()])
        .status()
        .expect("kill");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let source = format!("replay:{}", replay.display());
    let restarted = TestServer::start_with(&data, None, &["--gpu-source", &source]);
    let admin = session(&restarted, &lab.admin).await;
    let start = std::time::Instant::now();
    loop {
        let ls = json(&exec(&admin, "ls --json", None).await.stdout);
        let live = &ls[0]["live"];
        if live["gpu_memory_bytes"].as_u64() == Some(3 * gib) {
            assert_eq!(
                live["peak_gpu_memory_bytes"].as_u64(),
                Some(3 * gib),
                "{ls}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no GPU use seen: {ls}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = exec(&admin, &format!("cancel {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");
    assert_eq!(
        e["usage"]["peak_gpu_memory_bytes"].as_u64(),
        Some(3 * gib),
        "{e}"
    );
    let shown = exec(&admin, &format!("show {id}"), None).await;
    assert!(shown.stdout.contains("peak GPU memory 3.0G"), "{shown:?}");
}

#[tokio::test]
async fn without_cgroups_a_watchdog_enforces_memory() {
    let lab = start("[queue]\ncgroups = false\nkill_grace_secs = 1\n");
    let admin = session(&lab.server, &lab.admin).await;
    let hog = submit(&admin, MEMORY_HOG).await;
    let e = wait_state(&admin, hog).await;
    assert_eq!(e["state"]["outcome"], "killed_by_limit", "{e}");
    assert_eq!(
        last_reason(&e),
        "memory limit 100M exceeded (watchdog)",
        "{e}"
    );
    let running = e["transitions"]
        .as_array()
        .and_then(|t| t.get(2))
        .cloned()
        .unwrap_or_default();
    assert!(
        running["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no cgroup"),
        "{e}"
    );
}

/// Unmounts a test's filesystem when the test ends (even by a panic).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A 64 MiB tmpfs mounted as the data directory in `dir`; `None` (and why,
/// printed) where this cannot be done.
fn small_data_disk(dir: &std::path::Path) -> (std::path::PathBuf, Unmount) {
    require(
        is_root(),
        "root, to mount a small filesystem for the data disk",
    );
    let data = dir.join("data");
    std::fs::create_dir(&data).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    require(mounted, "a tmpfs it may mount");
    (data.clone(), Unmount(data))
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn a_run_that_writes_without_end_is_stopped_and_others_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _unmount) = small_data_disk(dir.path());
    let admin = TestKey::generate(dir.path(), "admin_key");
    let config = dir.path().join("labbench.toml");
    std::fs::write(
        &config,
        "[queue]\ndisk_reserve = \"16M\"\nmax_output = \"8M\"\n",
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let server = TestServer::start_with(&data, Some(&admin), &["--config", &config]);
    let handle = session(&server, &admin).await;
    let mike = add_member(&server, &handle, dir.path(), "mike", "member").await;
    let mary = add_member(&server, &handle, dir.path(), "mary", "member").await;
    // Mary's run writes its output only at its end, after the flood.
    let steady = submit(&mary, "-- sh -c 'sleep 3; echo steady result'").await;
    common::lab::wait_running(&mary, steady).await;
    // Mike's writes far more than the disk holds.
    let hog = submit(&mike, "-- head -c 100M /dev/zero").await;
    let e = wait_state(&mike, hog).await;
    assert_eq!(e["state"]["outcome"], "killed_by_limit", "{e}");
    assert_eq!(last_reason(&e), "output limit 8.0M exceeded", "{e}");
    let out = exec(&mike, &format!("logs {hog}"), None).await;
    assert!(
        out.stdout.ends_with(
            "[labbench: output limit 8.0M exceeded; the output after this point was dropped]\n"
        ),
        "{:?}",
        &out.stdout[out.stdout.len().saturating_sub(200)..]
    );
    // Its output gave the space back; Mary's run and later submissions are unaffected.
    let e = wait_state(&mary, steady).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&mary, &format!("logs {steady}"), None).await;
    assert_eq!(out.stdout, "steady result\n");
    let later = submit(&mary, "-- echo later").await;
    let e = wait_state(&mary, later).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    drop((handle, mike, mary));
    server.stop();
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn a_full_data_disk_refuses_submissions_holds_starts_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _unmount) = small_data_disk(dir.path());
    let admin = TestKey::generate(dir.path(), "admin_key");
    let config = dir.path().join("labbench.toml");
    std::fs::write(&config, "[queue]\ndisk_reserve = \"24M\"\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let server = TestServer::start_with(&data, Some(&admin), &["--config", &config]);
    let handle = session(&server, &admin).await;

    // A running experiment (it ends when `open` appears) and one queued after it.
    let open = dir.path().join("open");
    let gate = submit(
        &handle,
        &format!(
            "--sh 'while [ ! -e {} ]; do sleep 0.05; done'",
            open.display()
        ),
    )
    .await;
    let after = submit(&handle, &format!("--after {gate} -- echo after-the-gate")).await;

    // Fill the data disk to 8 MiB free, below the 24 MiB reserve.
    let free = labbench::sys::fs::free_bytes(&data).expect("statvfs");
    let filler = data.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..(free.saturating_sub(8 << 20) >> 20) {
        std::io::Write::write_all(&mut file, &chunk).expect("fill");
    }
    drop(file);
    assert!(labbench::sys::fs::free_bytes(&data).expect("statvfs") < 24 << 20);

    // A submission is refused clearly, with the retry status, and nothing is queued.
    let out = exec(&handle, "submit --workdir /tmp -- echo refused", None).await;
    assert_eq!(out.status, Some(75), "{out:?}");
    assert!(
        out.stderr.contains("data disk is full") && out.stderr.contains("nothing was queued"),
        "{out:?}"
    );
    let all = json(&exec(&handle, "ls --all --json", None).await.stdout);
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    // So is a comment: the records of running experiments come first.
    let out = exec(&handle, &format!("comment {gate} still waiting"), None).await;
    assert_eq!(out.status, Some(75), "{out:?}");
    assert!(out.stderr.contains("data disk is full"), "{out:?}");

    // The running experiment's end is still recorded; the next one is held.
    std::fs::write(&open, b"").expect("open the gate");
    let e = wait_state(&handle, gate).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let mut held = String::new();
    for _ in 0..50 {
        let queue = json(&exec(&handle, "ls --json", None).await.stdout);
        held = queue
            .as_array()
            .and_then(|q| q.iter().find(|e| e["id"] == after))
            .and_then(|e| e["wait_reason"].as_str())
            .unwrap_or("")
            .to_string();
        if held.contains("waiting for disk space") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(held.contains("waiting for disk space"), "{held:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let e = json(
        &exec(&handle, &format!("show {after} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(
        e["state"]["state"], "queued",
        "held while the disk is full: {e}"
    );

    // Space freed: it runs, and every record is there.
    std::fs::remove_file(&filler).expect("free the disk");
    let e = wait_state(&handle, after).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&handle, &format!("logs {after}"), None).await;
    assert_eq!(out.stdout, "after-the-gate\n");
    // Accepted again; ended before the daemon stops (a running one keeps
    // its cgroup for the next daemon of this data directory, which a test
    // never starts).
    let last = submit(&handle, "-- true").await;
    let last = wait_state(&handle, last).await;
    assert_eq!(last["state"]["outcome"], "succeeded", "{last}");

    // The disk filled to the last byte: a write fails, and sled writes no
    // more; once space is back, the database works again without a restart.
    let mut file = std::fs::File::create(&filler).expect("filler");
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    let small = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &small).is_ok() {}
    drop(file);
    // sled writes into space its files already hold, until that runs out.
    let mut failed = None;
    for i in 0..500 {
        let out = exec(
            &handle,
            &format!("user add z{i} --role viewer --no-unix-user"),
            None,
        )
        .await;
        if out.status != Some(0) {
            failed = Some(out);
            break;
        }
    }
    let failed = failed.expect("a write on a full disk fails");
    assert_eq!(failed.status, Some(1), "{failed:?}");
    assert!(
        failed.stderr.contains("No space left") || failed.stderr.contains("database"),
        "{failed:?}"
    );
    std::fs::remove_file(&filler).expect("free the disk");
    let mut added = None;
    for _ in 0..50 {
        let out = exec(&handle, "user add zed --role viewer --no-unix-user", None).await;
        if out.status == Some(0) {
            added = Some(out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(added.is_some(), "the database never wrote again");
    let again = submit(&handle, "-- echo again").await;
    let again = wait_state(&handle, again).await;
    assert_eq!(again["state"]["outcome"], "succeeded", "{again}");
    drop(handle);
    server.stop();
}

#[tokio::test]
async fn ls_says_when_it_shows_fewer_than_match_and_submit_needs_no_double_dash() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    // Without `--`: the command starts where submit's own flags end.
    let gate = submit(&admin, "--name gate sleep 60").await;
    for _ in 0..5 {
        submit(
            &admin,
            &format!("--after {gate} sh -c 'exit 0' --not-a-submit-flag"),
        )
        .await;
    }
    let shown = json(
        &exec(&admin, &format!("show {} --json", gate + 1), None)
            .await
            .stdout,
    );
    assert_eq!(
        shown["spec"]["command"]["argv"],
        serde_json::json!(["sh", "-c", "exit 0", "--not-a-submit-flag"]),
        "{shown}"
    );
    let out = exec(&admin, "ls --limit 3", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        4,
        "a header and 3 rows: {out:?}"
    );
    assert_eq!(out.stderr, "3 of 6 shown (--limit N shows up to 10000)\n");
    let out = exec(&admin, "ls --limit 3 --json", None).await;
    assert_eq!(
        json(&out.stdout).as_array().map(Vec::len),
        Some(3),
        "{out:?}"
    );
    assert!(out.stderr.is_empty(), "JSON says nothing more: {out:?}");
    let out = exec(&admin, "ls --next-first --json", None).await;
    assert_eq!(
        json(&out.stdout)[0]["id"],
        gate,
        "the running one first: {out:?}"
    );
    let out = exec(&admin, "ls --limit 10001", None).await;
    assert_eq!(out.status, Some(2), "{out:?}");
    exec(&admin, &format!("cancel {gate}"), None).await;
}

/// Opens `/dev/nvidiaN`-like files given as arguments and prints, for each,
/// "N opened" or "N ERRNO" (ENXIO: allowed, but no driver behind it; EPERM:
/// the devices cgroup denied it).
const OPEN_GPU_FILES: &str = r#"python3 -c '
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDWR))
        print(path[-1], "opened")
    except OSError as e:
        print(path[-1], errno.errorcode[e.errno])
'"#;

/// On cgroup v1 with the devices controller, an experiment can open only
/// the device files of the GPUs it was given. Device nodes made with mknod
/// (major 195, minors 0 and 1) stand in for two GPUs that a replayed GPU
/// source reports.
#[tokio::test]
#[ignore = "needs root and cgroup v1: tools/test runs it as root with --include-ignored"]
async fn an_experiment_opens_only_its_own_gpus_device_files() {
    require(
        is_root() && labbench::exec::cgroup::gpu_devices_enforced(),
        "root and cgroup v1's devices controller",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut nodes = Vec::new();
    for minor in 0..2 {
        let node = dir.path().join(format!("nvidia{minor}"));
        let made = Command::new("mknod")
            .arg(&node)
            .args(["c", "195", &minor.to_string()])
            .status()
            .expect("mknod");
        assert!(made.success());
        std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .expect("chmod");
        nodes.push(node.display().to_string());
    }
    let replay = dir.path().join("gpus.jsonl");
    // GPU 0 has a UUID, GPU 1 (as in a recording without one) does not.
    let gpu = |index: u32, uuid: &str| {
        format!(
            r#"{{"index":{index},"name":"Replayed GPU","utilization_percent":0,"memory_used":0,"memory_total":85899345920{uuid}}}"#
        )
    };
    std::fs::write(
        &replay,
        format!(
            r#"{{"gpus":[{},{}],"processes":[]}}"#,
            gpu(0, r#","uuid":"GPU-00000000-aaaa""#),
            gpu(1, "")
        ) + "\n",
    )
    .expect("replay");
    let lab = start("");
    let source = format!("replay:{}", replay.display());
    let server = TestServer::start_with(
        &lab.dir.path().join("data2"),
        Some(&lab.admin),
        &["--gpu-source", &source],
    );
    let admin = session(&server, &lab.admin).await;
    let start = std::time::Instant::now();
    while json(&exec(&admin, "host --json", None).await.stdout)["gpus"]
        .as_array()
        .is_none_or(|g| g.len() < 2)
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no GPUs seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let command = format!("{OPEN_GPU_FILES} {}", nodes.join(" "));
    // Two at once get one GPU each; then one without a GPU reuses a slot
    // that had one.
    let sleeping = format!(
        "--gpus 1 -- sh -c \"sleep 1; echo $CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES; {}\"",
        command.replace('"', "\\\"")
    );
    let mut both = Vec::new();
    for _ in 0..2 {
        both.push(submit(&admin, &sleeping).await);
    }
    let mut seen = Vec::new();
    for id in &both {
        let e = wait_state(&admin, *id).await;
        assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
        let out = exec(&admin, &format!("logs {id}"), None).await.stdout;
        let opened: Vec<&str> = out.lines().filter(|l| l.ends_with("ENXIO")).collect();
        assert_eq!(opened.len(), 1, "one GPU file opens: {out}");
        assert_eq!(
            out.lines().filter(|l| l.ends_with("EPERM")).count(),
            1,
            "the other is denied: {out}"
        );
        // Named by UUID, else counted among the files it may open (from 0).
        let named = out.lines().next().unwrap_or_default();
        seen.push(format!("{}: {named}", opened[0]));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "0 ENXIO: GPU-00000000-aaaa GPU-00000000-aaaa",
            "1 ENXIO: 0 1"
        ],
        "each had its own GPU, named so that its program finds it"
    );
    let none = submit(&admin, &format!("-- {command}")).await;
    let e = wait_state(&admin, none).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&admin, &format!("logs {none}"), None).await.stdout;
    assert_eq!(out, "0 EPERM\n1 EPERM\n", "no GPU, no GPU file");
    server.stop();
}

/// Metrics come from `@metric` lines among the rest of the output and from
/// JSON lines in `$LABBENCH_METRICS`, in either form; a malformed line is
/// counted and the run goes on.
#[tokio::test]
async fn metrics_are_read_from_output_lines_and_the_metrics_file() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let script = r#"
for step in 1 2 3; do
  printf 'epoch %s \033[32mdone\033[0m\n' $step
  printf '@metric loss=0.%s acc=0.%s step=%s\n' $((9 - step)) $((5 + step)) $step
done
echo '@metric loss=oops'
printf '{"name":"val/auc","value":0.75,"step":3}\n' >> "$LABBENCH_METRICS"
printf '{"lr":0.001,"step":3}\n' >> "$LABBENCH_METRICS"
printf 'not json\n' >> "$LABBENCH_METRICS"
echo finished
"#;
    let id = submit(&admin, &format!("--sh '{}'", script.replace('\'', "'\\''"))).await;
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&admin, &format!("metrics {id} --json"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let metric = |name: &str| {
        report["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
            .clone()
    };
    let loss = metric("loss");
    assert_eq!(loss["count"], 3, "{loss}");
    assert_eq!(loss["last"], 0.6);
    assert_eq!(loss["min"], 0.6);
    assert_eq!(loss["max"], 0.8);
    let steps: Vec<u64> = loss["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["step"].as_u64().expect("step"))
        .collect();
    assert_eq!(steps, [1, 2, 3]);
    assert_eq!(metric("acc")["max"], 0.8);
    assert_eq!(metric("val/auc")["last"], 0.75);
    assert_eq!(metric("lr")["points"][0]["step"], 3);
    assert_eq!(report["malformed"], 2, "{report}");
    // The output itself is untouched.
    let logs = exec(&admin, &format!("logs {id}"), None).await;
    assert!(
        logs.stdout.contains("@metric loss=0.8 acc=0.6 step=1\n"),
        "{logs:?}"
    );
    assert!(logs.stdout.ends_with("finished\n"), "{logs:?}");
    // CSV, one metric, text.
    let csv = exec(&admin, &format!("metrics {id} --name loss --csv"), None).await;
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(rows[0], "name,step,value,time", "{csv:?}");
    assert!(rows[1].starts_with("loss,1,0.8,"), "{csv:?}");
    assert_eq!(rows.len(), 4, "{csv:?}");
    let text = exec(&admin, &format!("metrics {id}"), None).await;
    assert!(text.stdout.contains("val/auc"), "{text:?}");
    assert!(
        text.stdout.contains("2 line(s) could not be read"),
        "{text:?}"
    );
    let missing = exec(&admin, &format!("metrics {id} --name nope"), None).await;
    assert_eq!(missing.status, Some(1), "{missing:?}");
    assert!(missing.stderr.contains("no metric nope"), "{missing:?}");
    let unknown = exec(&admin, "metrics 999999", None).await;
    assert_ne!(unknown.status, Some(0), "{unknown:?}");
}
