//! What admins see of the host's money: costs over SSH, with months in the
//! server's configured zone.

mod common;

use common::lab::json;
use common::{Options, TestKey, TestServer, exec, session};
use labbench::model::{
    CommandLine, Experiment, ExperimentSpec, Outcome, ResourceUse, Resources, State,
};
use labbench::store::Store;

/// A finished run of `owner`: `cpus` cores for the hour from `start`.
fn hour_run(id: u64, owner: &str, cpus: f64, start: &str) -> Experiment {
    let at = chrono::DateTime::parse_from_rfc3339(start)
        .expect("time")
        .timestamp();
    run_for(id, owner, cpus, at, 3600)
}

/// A finished run of `owner`: `cpus` cores for `secs` from `at`.
fn run_for(id: u64, owner: &str, cpus: f64, at: i64, secs: i64) -> Experiment {
    let mut spec = ExperimentSpec::new(
        CommandLine::Argv(vec!["train".into()]),
        "/tmp".into(),
        Resources {
            cpus,
            memory_bytes: 1 << 30,
            gpus: 0,
            time_limit_secs: 7200,
        },
    );
    spec.project = Some("churn".into());
    Experiment {
        id,
        owner: owner.into(),
        unix_user: owner.into(),
        spec,
        submitted_at: at - 10,
        state: State::Finished {
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            signal: None,
            stop: None,
            started_at: Some(at),
            ended_at: at + secs,
        },
        transitions: Vec::new(),
        host: "box".into(),
        backend: "local".into(),
        usage: ResourceUse {
            cpu_seconds: cpus * secs as f64 / 2.0,
            peak_memory_bytes: 1 << 29,
            gpu_seconds: 0.0,
            peak_gpu_memory_bytes: 0,
            profile: None,
            gpu_model: None,
        },
    }
}

#[tokio::test]
async fn costs_count_months_in_the_servers_zone_and_members_see_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let data = dir.path().join("data");
    TestServer::start(&data, Some(&admin_key)).stop();
    {
        let store = Store::open(&data).expect("store");
        store
            .import_experiments(&[
                // 01:00 on 1 December in Tokyo, 16:00 on 30 November in UTC.
                hour_run(1, "root", 2.0, "2026-11-30T16:00:00Z"),
                hour_run(2, "mike", 1.0, "2026-12-10T08:00:00Z"),
            ])
            .expect("import");
    }
    let config = |zone: &str| {
        let path = dir.path().join(format!("costs-{zone}.toml"));
        std::fs::write(
            &path,
            format!(
                "[costs]\ncurrency = \"EUR\"\ncpu_hour = 0.5\ngib_hour = 0.25\ntime_zone = \"{zone}\"\n"
            ),
        )
        .expect("config");
        path
    };
    let months = |csv: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
            .collect()
    };
    let options = Options {
        tz: Some("Asia/Tokyo".into()),
        ..Options::default()
    };
    for (zone, want) in [
        ("local", vec!["2026-12,2", "total,2"]),
        ("UTC", vec!["2026-11,1", "2026-12,1", "total,2"]),
    ] {
        let path = config(zone);
        let path = path.to_str().expect("path");
        let server = TestServer::spawn(&data, None, &["--config", path], &options);
        let admin = session(&server, &admin_key).await;
        let out = exec(
            &admin,
            "costs --by month --from 2026-11 --to 2026-12 --csv",
            None,
        )
        .await;
        assert_eq!(out.status, Some(0), "{out:?}");
        assert_eq!(months(&out.stdout), want, "{zone}: {}", out.stdout);
        // Rates × hours: root's run reserved 2 core-hours and 1 GiB-hour.
        let by_user = json(
            &exec(&admin, "costs --from 2026-11 --to 2026-12 --json", None)
                .await
                .stdout,
        );
        assert_eq!(by_user["currency"], "EUR");
        assert_eq!(by_user["rows"][0]["key"], "mike", "{by_user}");
        assert_eq!(
            by_user["rows"][1]["reserved"]["cost"],
            2.0 * 0.5 + 0.25,
            "{by_user}"
        );
        // A member sees their own only.
        let mike = common::add_user(&admin, dir.path(), &format!("mike{zone}"), "member").await;
        let mike = session(&server, &mike).await;
        let theirs = json(
            &exec(&mike, "costs --from 2026-11 --to 2026-12 --json", None)
                .await
                .stdout,
        );
        assert_eq!(theirs["total"]["experiments"], 0, "{theirs}");
        // A window that ends before it starts is a clear error.
        let bad = exec(&admin, "costs --from 2026-12 --to 2026-11", None).await;
        assert_eq!(bad.status, Some(2), "{bad:?}");
        server.stop();
    }
}

#[tokio::test]
async fn a_spent_budget_holds_new_submissions_and_says_why() {
    use chrono::Datelike;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let data = dir.path().join("data");
    TestServer::start(&data, Some(&admin_key)).stop();
    // A run of root's inside this month (UTC), ended before now.
    let month_start = || {
        let first = chrono::Utc::now()
            .date_naive()
            .with_day(1)
            .expect("first day");
        first
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp()
    };
    let since = chrono::Utc::now().timestamp() - month_start();
    if since < 30 {
        std::thread::sleep(std::time::Duration::from_secs(31 - since as u64));
    }
    let start = month_start();
    let secs = (chrono::Utc::now().timestamp() - start - 5).min(3600);
    // One core at 10 EUR an hour.
    let cost = secs as f64 / 360.0;
    {
        let store = Store::open(&data).expect("store");
        store
            .import_experiments(&[run_for(1, "root", 1.0, start, secs)])
            .expect("import");
    }
    let path = dir.path().join("costs.toml");
    std::fs::write(
        &path,
        "[costs]\ncurrency = \"EUR\"\ncpu_hour = 10.0\ntime_zone = \"UTC\"\n",
    )
    .expect("config");
    let server = TestServer::start_with(&data, None, &["--config", path.to_str().expect("path")]);
    let admin = session(&server, &admin_key).await;
    let set = exec(
        &admin,
        &format!("budget set --user root {}", cost * 1.2),
        None,
    )
    .await;
    assert_eq!(set.status, Some(0), "{set:?}");
    let shown = json(&exec(&admin, "budget show --json", None).await.stdout);
    assert_eq!(shown[0]["scope"], "user:root", "{shown}");
    let spent = shown[0]["spent"].as_f64().expect("spent");
    assert!((spent - cost).abs() < 1e-9, "{shown}");
    // 83 % reserved: taken, with a warning for whoever runs commands only.
    let taken = exec(&admin, "submit --workdir /tmp -- true", None).await;
    assert_eq!(taken.status, Some(0), "{taken:?}");
    assert!(
        taken.stderr.contains("warning: budget of user:root"),
        "{taken:?}"
    );
    let lowered = exec(
        &admin,
        &format!("budget set --user root {}", cost * 0.9),
        None,
    )
    .await;
    assert_eq!(lowered.status, Some(0), "{lowered:?}");
    let held = exec(&admin, "submit --workdir /tmp -- true", None).await;
    assert_eq!(held.status, Some(75), "{held:?}");
    assert!(held.stderr.contains("budget of user:root"), "{held:?}");
    assert!(held.stderr.contains("nothing was queued"), "{held:?}");
    let bad = exec(&admin, "budget set --user root -- -5", None).await;
    assert_eq!(bad.status, Some(2), "{bad:?}");
    let trail = json(
        &exec(&admin, "audit --action budget --json", None)
            .await
            .stdout,
    );
    assert_eq!(trail[0]["before"], format!("{} EUR", cost * 1.2), "{trail}");
    assert_eq!(trail[0]["after"], format!("{} EUR", cost * 0.9), "{trail}");
}

/// The wait reason `ls` gives experiment `id` (empty once it runs).
async fn wait_reason(handle: &russh::client::Handle<common::Client>, id: u64) -> String {
    let queue = json(&exec(handle, "ls --all --json", None).await.stdout);
    queue
        .as_array()
        .and_then(|q| q.iter().find(|e| e["id"] == id))
        .and_then(|e| e["wait_reason"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn quota_changes_reach_the_running_scheduler_at_once() {
    use common::lab::{add_member, start, submit, wait_running};
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let mike = add_member(&lab.server, &admin, lab.dir.path(), "mike", "member").await;
    let mary = add_member(&lab.server, &admin, lab.dir.path(), "mary", "member").await;
    let ok = |out: &common::ExecResult| assert_eq!(out.status, Some(0), "{out:?}");
    const SLEEP: &str = "--cpus 0.1 --mem 50M -- sleep 60";

    // One at a time for mike: his second waits, and says why.
    ok(&exec(&admin, "quota set mike --max-running 1", None).await);
    let first = submit(&mike, SLEEP).await;
    let second = submit(&mike, SLEEP).await;
    wait_running(&mike, first).await;
    assert_eq!(
        wait_reason(&mike, second).await,
        "over quota: max 1 running"
    );
    // The preview says what raising it does, and saves nothing.
    let preview = exec(&admin, "quota set mike --max-running 2 --preview", None).await;
    ok(&preview);
    assert!(
        preview
            .stdout
            .contains(&format!("would start now: {second}\n")),
        "{preview:?}"
    );
    let preview = json(
        &exec(
            &admin,
            "quota set mike --max-running 2 --preview --json",
            None,
        )
        .await
        .stdout,
    );
    assert_eq!(preview["would_start"][0], second, "{preview}");
    assert_eq!(preview["users"][0]["user"], "mike", "{preview}");
    assert_eq!(
        wait_reason(&mike, second).await,
        "over quota: max 1 running"
    );
    // Raised: the queued run starts at once.
    ok(&exec(&admin, "quota set mike --max-running 2", None).await);
    wait_running(&mike, second).await;

    // Lowered: a new submission larger than the limit is refused.
    ok(&exec(
        &admin,
        "quota set mike --max-running 2 --max-cpus 0.5",
        None,
    )
    .await);
    let refused = exec(&mike, "submit --workdir /tmp --cpus 1 -- true", None).await;
    assert_eq!(refused.status, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("larger than your quota"),
        "{refused:?}"
    );
    // The default fills in what mike's own quota leaves unset.
    ok(&exec(&admin, "quota set --default --max-queued 0", None).await);
    let full = exec(&mike, "submit --workdir /tmp --cpus 0.1 -- true", None).await;
    assert_eq!(full.status, Some(75), "{full:?}");
    ok(&exec(&admin, "quota rm --default", None).await);

    // A project quota holds back that project's experiments only.
    ok(&exec(&admin, "quota set --project churn --max-running 1", None).await);
    let churn = submit(&mary, &format!("--project churn {SLEEP}")).await;
    wait_running(&mary, churn).await;
    let churn_too = submit(&mary, &format!("--project churn {SLEEP}")).await;
    let vision = submit(&mary, &format!("--project vision {SLEEP}")).await;
    wait_running(&mary, vision).await;
    assert_eq!(
        wait_reason(&mary, churn_too).await,
        "over project quota: max 1 running"
    );
    let shown = json(
        &exec(&mary, "quota show --project churn --json", None)
            .await
            .stdout,
    );
    assert_eq!(shown["set"]["max_running"], 1, "{shown}");
    // Members may not see another's quota nor change any.
    for line in [
        "quota show mike",
        "quota set --project churn --max-running 9",
        "quota rm --project churn",
        "quota set mary --max-running 9 --preview",
        "quota show --all",
    ] {
        let denied = exec(&mary, line, None).await;
        assert_eq!(denied.status, Some(77), "{line}: {denied:?}");
    }
    ok(&exec(&admin, "quota rm --project churn", None).await);
    wait_running(&mary, churn_too).await;
    let all = exec(&admin, "quota show --all", None).await;
    ok(&all);
    assert!(
        all.stdout.starts_with("default: running unlimited"),
        "{all:?}"
    );
    assert!(all.stdout.contains("user mike: running 2"), "{all:?}");
    let ids = [first, second, churn, churn_too, vision].map(|id| id.to_string());
    ok(&exec(&admin, &format!("cancel {}", ids.join(" ")), None).await);
}

#[tokio::test]
async fn an_experiment_whose_gpu_stays_idle_is_flagged_then_cancelled_and_a_busy_one_runs_on() {
    use common::lab::{submit, wait_running, wait_state};
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    // GPU 0 idle, GPU 1 busy, every second.
    let replay = dir.path().join("gpus.jsonl");
    let gpu = |index: u32, percent: u32| {
        format!(
            r#"{{"index":{index},"name":"Replayed GPU","utilization_percent":{percent},"memory_used":0,"memory_total":85899345920}}"#
        )
    };
    std::fs::write(
        &replay,
        format!(
            r#"{{"gpus":[{},{}],"processes":[]}}"#,
            gpu(0, 0),
            gpu(1, 90)
        ) + "\n",
    )
    .expect("replay");
    let config = dir.path().join("idle.toml");
    std::fs::write(
        &config,
        "[idle]\nafter = \"3s\"\naction = \"cancel\"\ncancel_after = \"2s\"\ngpu_percent = 10\n",
    )
    .expect("config");
    let source = format!("replay:{}", replay.display());
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin_key),
        &[
            "--config",
            config.to_str().expect("path"),
            "--gpu-source",
            &source,
        ],
    );
    let admin = session(&server, &admin_key).await;
    let mike = common::lab::add_member(&server, &admin, dir.path(), "mike", "member").await;
    let start = std::time::Instant::now();
    while json(&exec(&admin, "host --json", None).await.stdout)["gpus"]
        .as_array()
        .is_none_or(|g| g.len() < 2)
    {
        assert!(start.elapsed().as_secs() < 20, "no GPUs seen");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let idle = submit(&mike, "--gpus 1 --cpus 0.1 --mem 50M -- sleep 120").await;
    let e = wait_running(&mike, idle).await;
    assert_eq!(e["state"]["gpus"][0], 0, "{e}");
    let busy = submit(&mike, "--gpus 1 --cpus 0.1 --mem 50M -- sleep 120").await;
    wait_running(&mike, busy).await;
    // Flagged first: `idle` and `ls` say so, and mike's sessions are told.
    let mut flagged = serde_json::Value::Null;
    for _ in 0..100 {
        let report = json(&exec(&mike, "idle --json", None).await.stdout);
        if let Some(e) = report["experiments"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["id"] == idle))
            && !e["flagged_at"].is_null()
        {
            flagged = report;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(flagged["rule"]["after_secs"], 3, "{flagged}");
    assert!(
        !flagged["experiments"][0]["cancel_at"].is_null(),
        "{flagged}"
    );
    let e = wait_state(&mike, idle).await;
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");
    assert_eq!(e["usage"]["gpu_model"], "Replayed GPU", "{e}");
    let reason = common::lab::last_reason(&e);
    assert!(
        reason.starts_with("idle: its 1 GPU(s) under 10 % utilisation"),
        "{e}"
    );
    // The busy one was never flagged and runs on.
    let listed = json(&exec(&mike, "ls --json", None).await.stdout);
    let running = listed
        .as_array()
        .and_then(|all| all.iter().find(|e| e["id"] == busy))
        .cloned()
        .unwrap_or_default();
    assert_eq!(running["state"]["state"], "running", "{listed}");
    assert!(running.get("idle_secs").is_none(), "{running}");
    let trail = json(
        &exec(&admin, "audit --action experiment.cancel --json", None)
            .await
            .stdout,
    );
    assert_eq!(trail[0]["actor"], "labbench", "{trail}");
    // The rule is changed at once, and kept; members may not change it.
    let refused = exec(&mike, "idle set --off", None).await;
    assert_eq!(refused.status, Some(77), "{refused:?}");
    let set = json(
        &exec(&admin, "idle set --action notify --after 2h --json", None)
            .await
            .stdout,
    );
    assert_eq!(set["after_secs"], 7200, "{set}");
    assert!(set["cancel_after_secs"].is_null(), "{set}");
    let trail = json(
        &exec(&admin, "audit --action idle --json", None)
            .await
            .stdout,
    );
    assert_eq!(trail[0]["kind"], "idle.set", "{trail}");
    let out = exec(&admin, &format!("cancel {busy}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    server.stop();
}

#[tokio::test]
async fn a_disabled_user_is_logged_out_their_queue_held_and_enabling_restores_both() {
    use common::lab::{start, submit, unix_account, wait_running};
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let unix = unix_account("lbmike");
    let key = common::add_user_as(&admin, lab.dir.path(), "mike", "member", Some(&unix)).await;
    let mike = session(&lab.server, &key).await;
    let running = submit(&mike, "--cpus 0.1 --mem 50M -- sleep 60").await;
    wait_running(&mike, running).await;
    let out = exec(&admin, "quota set mike --max-running 1", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let queued = submit(&mike, "--cpus 0.1 --mem 50M -- true").await;
    let out = exec(&admin, "user disable mike", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        common::closed_soon(&mike).await,
        "mike's session stays open"
    );
    let (_, logged_in) = common::login(&lab.server, &key, "lab").await;
    assert!(!logged_in, "a disabled user logged in");
    // The running one ends; what was queued is held, not started.
    let out = exec(&admin, &format!("cancel {running}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let mut reason = String::new();
    for _ in 0..100 {
        let queue = json(&exec(&admin, "ls --all --json", None).await.stdout);
        let e = queue
            .as_array()
            .and_then(|q| q.iter().find(|e| e["id"] == queued))
            .cloned()
            .unwrap_or_default();
        reason = e["wait_reason"].as_str().unwrap_or("").to_string();
        if e["state"]["state"] == "queued" && reason.starts_with("held") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(reason, "held: its owner's account is disabled");
    let users = json(&exec(&admin, "users --json", None).await.stdout);
    assert!(
        users.as_array().is_some_and(|u| u
            .iter()
            .any(|u| u["name"] == "mike" && u["disabled"] == true)),
        "{users}"
    );
    // Enabled: mike logs in again and the held experiment runs.
    let out = exec(&admin, "user enable mike", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let mike = session(&lab.server, &key).await;
    let e = common::lab::wait_state(&mike, queued).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let refused = exec(&admin, "user disable root", None).await;
    assert_eq!(refused.status, Some(1), "{refused:?}");
}

#[tokio::test]
#[ignore = "needs root and cgroups: tools/test runs it as root with --include-ignored"]
async fn a_capped_users_process_outside_the_queue_is_moved_into_their_cgroup_and_held_to_its_memory()
 {
    use common::lab::{is_root, require, start, unix_account};
    use std::os::unix::process::ExitStatusExt;
    require(
        is_root() && labbench::exec::cgroup::available(),
        "root and cgroups",
    );
    let lab = start("[host_limits]\nenabled = true\n");
    let admin = session(&lab.server, &lab.admin).await;
    let unix = unix_account("lbhog");
    let out = exec(
        &admin,
        &format!("hostlimit set {unix} --mem 64M --cpus 0.5"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let shown = json(&exec(&admin, "hostlimit show --json", None).await.stdout);
    assert_eq!(shown[0]["memory_bytes"], 64 << 20, "{shown}");
    // Started outside labbench, as lbhog: it waits, then takes 300 MiB.
    let mut hog = outside_labbench(
        &unix,
        "sleep 3; exec perl -e '$x = q(a) x (300*1024*1024); sleep 30'",
    );
    let pid = hog.id();
    let start_wait = std::time::Instant::now();
    let mut membership = String::new();
    while start_wait.elapsed().as_secs() < 10 {
        membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if membership.contains("/labbench-users/uid-") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        membership.contains("/labbench-users/uid-"),
        "not moved: {membership}"
    );
    // Held to its cap: the kernel kills it when it passes 64 MiB.
    let status = tokio::task::spawn_blocking(move || hog.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let out = exec(&admin, &format!("hostlimit rm {unix}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
}

/// `script` run by `sh` as Unix account `unix`, started outside labbench
/// (as a user logged in on the host would).
fn outside_labbench(unix: &str, script: &str) -> std::process::Child {
    std::process::Command::new("setpriv")
        .args([
            "--reuid",
            unix,
            "--regid",
            unix,
            "--init-groups",
            "sh",
            "-c",
            script,
        ])
        .spawn()
        .expect("setpriv")
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs root and cgroups: tools/test runs it as root with --include-ignored"]
async fn sustained_use_of_the_cpu_cap_outside_the_queue_halves_it_for_a_while() {
    use common::lab::{is_root, require, start, unix_account};
    require(
        is_root() && labbench::exec::cgroup::available(),
        "root and cgroups",
    );
    let lab =
        start("[host_limits]\nenabled = true\npenalty_after = \"3s\"\npenalty_for = \"12s\"\n");
    let admin = session(&lab.server, &lab.admin).await;
    let unix = unix_account("lbspin");
    let out = exec(&admin, &format!("hostlimit set {unix} --cpus 0.5"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let spin = outside_labbench(&unix, "while :; do :; done");
    // Stopped however the test ends.
    let _spin = KillOnDrop(spin);
    // The CPU quota of its cgroup, as the kernel has it (v1 or v2).
    let id = std::process::Command::new("id")
        .args(["-u", &unix])
        .output()
        .expect("id");
    let uid = String::from_utf8_lossy(&id.stdout).trim().to_string();
    let quota = || {
        let v1 = format!("/sys/fs/cgroup/cpu/labbench-users/uid-{uid}/cpu.cfs_quota_us");
        let v2 = format!("/sys/fs/cgroup/labbench-users/uid-{uid}/cpu.max");
        std::fs::read_to_string(v1)
            .or_else(|_| std::fs::read_to_string(v2))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let wait_for = |want: &'static str| async move {
        for _ in 0..200 {
            if quota() == want {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        wait_for("50000").await,
        "capped at half a core: {}",
        quota()
    );
    assert!(wait_for("25000").await, "boxed at a quarter: {}", quota());
    // A restart lets nobody out of the box early.
    drop(admin);
    let common::lab::Lab { dir, server, admin } = lab;
    server.stop();
    let config = dir.path().join("labbench.toml");
    let server = common::TestServer::start_with(
        &dir.path().join("data"),
        None,
        &["--config", &config.to_string_lossy()],
    );
    // Its guard writes the caps again each second: they stay boxed.
    for _ in 0..30 {
        assert_eq!(quota(), "25000", "still boxed after a restart");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(wait_for("50000").await, "released: {}", quota());
    let admin = session(&server, &admin).await;
    let out = exec(&admin, &format!("hostlimit rm {unix}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
}
