//! The lab notebook end to end: provenance captured as the experiment's
//! owner from a real git repository, real data files and real dependency
//! files, read back over SSH.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::lab::{experiment_user, is_root, json, require, start, wait_state};
use common::{exec, session, submit_id};
use russh::client::Handle;

/// Runs `script` with `sh` as Unix user `user` in `dir`.
fn sh_as(user: &str, dir: &Path, script: &str) {
    let ok = Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", script])
        .current_dir(dir)
        .env("HOME", dir)
        .status()
        .expect("runuser")
        .success();
    assert!(ok, "{script}");
}

/// Experiment `id`'s provenance once its capture has finished (at the
/// end too when `outputs` are expected).
async fn provenance(handle: &Handle<common::Client>, id: u64, outputs: bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        let out = exec(handle, &format!("provenance {id} --json"), None).await;
        assert_eq!(out.status, Some(0), "{out:?}");
        last = json(&out.stdout)["provenance"].clone();
        let started = last["captured_at"].as_i64().unwrap_or(0) > 0
            && !last["inputs"].as_array().is_none_or(Vec::is_empty);
        let ended = !outputs || !last["outputs"].as_array().is_none_or(Vec::is_empty);
        if started && ended {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("experiment {id}: provenance never completed: {last}");
}

#[tokio::test]
#[ignore = "needs root (experiments run as another user): tools/test runs it as root with --include-ignored"]
async fn provenance_records_code_data_environment_and_sources_as_the_owner() {
    require(is_root(), "root");
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let (alice, unix) = experiment_user(&lab, &admin).await;
    let base = tempfile::tempdir().expect("tempdir");
    let status = Command::new("chmod")
        .arg("755")
        .arg(base.path())
        .status()
        .expect("chmod");
    assert!(status.success());
    let repo = base.path().join("churn-model");
    std::fs::create_dir(&repo).expect("mkdir");
    assert!(
        Command::new("chown")
            .args([&unix, &repo.display().to_string()])
            .status()
            .expect("chown")
            .success()
    );
    sh_as(
        &unix,
        &repo,
        "git init -q -b main && git config user.email a@lab && git config user.name ana \
         && git remote add origin https://ana:gh-t0ken@git.example/lab/churn.git \
         && echo 'print(1)' > train.py && mkdir data && echo 'a,b' > data/train.csv \
         && printf 'pandas==1.5.3\\nnumpy>=1.24\\n' > requirements.txt \
         && printf '{\"Packages\":{\"dplyr\":{\"Package\":\"dplyr\",\"Version\":\"1.1.4\"}}}' > renv.lock \
         && printf 'sources = [\"mysql://etl:pw@warehouse/sales\"]\\n' > .labbench.toml \
         && git add -A && git commit -qm first && echo 'print(2)' >> train.py",
    );
    // A file only root may read, declared as an input.
    let secret = base.path().join("root-only.csv");
    std::fs::write(&secret, "classified\n").expect("write");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");

    let args = format!(
        "--workdir {} --input data/train.csv --input {} --output out.csv \
         --env DATABASE_URL=postgres://ana:s3cret@db.lab/sales -- cp data/train.csv out.csv",
        repo.display(),
        secret.display()
    );
    let first = submit_id(&alice, &args).await;
    let e = wait_state(&alice, first).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let p = provenance(&alice, first, true).await;

    // No --project: the repository's name is its project.
    assert_eq!(e["spec"]["project"], "churn-model", "{e}");
    let git = &p["git"];
    assert_eq!(git["repository"], "churn-model", "{p}");
    assert_eq!(git["branch"], "main");
    assert_eq!(git["commit"].as_str().map(str::len), Some(40), "{git}");
    assert_eq!(git["remote"], "https://git.example/lab/churn.git");
    assert_eq!(git["dirty"], true);
    let diff = exec(&alice, &format!("provenance {first} --diff"), None).await;
    assert!(diff.stdout.contains("+print(2)"), "{diff:?}");

    let data = &p["inputs"][0];
    assert_eq!(
        data["blake3"].as_str(),
        Some(blake3::hash(b"a,b\n").to_hex().as_str()),
        "{p}"
    );
    // Not read as root: the owner may not read it, so it is not vouched for.
    let hidden = &p["inputs"][1];
    assert!(hidden["blake3"].is_null(), "{hidden}");
    assert!(
        hidden["error"]
            .as_str()
            .is_some_and(|e| e.contains("Permission denied")),
        "{hidden}"
    );
    assert_eq!(
        p["outputs"][0]["blake3"].as_str(),
        Some(blake3::hash(b"a,b\n").to_hex().as_str()),
        "{p}"
    );

    let packages: Vec<String> = p["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| format!("{} {} {}", p["ecosystem"], p["name"], p["version"]))
        .collect();
    assert!(
        packages.contains(&r#""python" "pandas" "1.5.3""#.to_string()),
        "{packages:?}"
    );
    assert!(
        packages.contains(&r#""r" "dplyr" "1.1.4""#.to_string()),
        "{packages:?}"
    );
    let sources = p["sources"].to_string();
    // From an environment value, the host only (a path can hold a token).
    assert!(sources.contains("\"postgres://db.lab\""), "{sources}");
    assert!(sources.contains("mysql://warehouse/sales"), "{sources}");
    let everything = exec(&alice, &format!("provenance {first} --json"), None).await;
    for secret in ["s3cret", "gh-t0ken", "etl:pw"] {
        assert!(
            !everything.stdout.contains(secret),
            "{secret} leaked: {everything:?}"
        );
    }
    let text = exec(&alice, &format!("provenance {first}"), None).await;
    assert!(text.stdout.contains("churn-model main @ "), "{text:?}");

    // Changed data, a new hash; unchanged data, read from the cache.
    sh_as(&unix, &repo, "echo 'c,d' >> data/train.csv");
    let second = submit_id(&alice, &args).await;
    wait_state(&alice, second).await;
    let changed = provenance(&alice, second, true).await;
    assert_ne!(changed["inputs"][0]["blake3"], data["blake3"], "{changed}");
    let third = submit_id(&alice, &args).await;
    wait_state(&alice, third).await;
    let unchanged = provenance(&alice, third, true).await;
    assert_eq!(
        unchanged["inputs"][0]["blake3"],
        changed["inputs"][0]["blake3"]
    );
    assert!(unchanged["cache_hits"].as_u64() >= Some(1), "{unchanged}");

    // Dependencies across experiments, from their provenance.
    let ids_of = |out: &common::ExecResult| -> Vec<u64> {
        json(&out.stdout)
            .as_array()
            .expect("list")
            .iter()
            .map(|u| u["id"].as_u64().expect("id"))
            .collect()
    };
    let old_pandas = exec(&alice, "deps --package 'pandas<2' --json", None).await;
    assert_eq!(
        ids_of(&old_pandas),
        [third, second, first],
        "{old_pandas:?}"
    );
    let new_pandas = exec(&alice, "deps --package 'pandas>=2' --json", None).await;
    assert!(ids_of(&new_pandas).is_empty(), "{new_pandas:?}");
    let readers = exec(&alice, "deps --source mysql://warehouse --json", None).await;
    assert_eq!(ids_of(&readers), [third, second, first], "{readers:?}");
    let summary = json(&exec(&alice, "deps --json", None).await.stdout);
    let pandas = summary
        .as_array()
        .expect("packages")
        .iter()
        .find(|s| s["package"] == "python:pandas")
        .unwrap_or_else(|| panic!("{summary}"))
        .clone();
    assert_eq!(pandas["experiments"], 3, "{pandas}");
    assert_eq!(pandas["versions"], serde_json::json!(["1.5.3"]));
    let unused = exec(&alice, "deps --unused-since 1d", None).await;
    assert_eq!(unused.stdout, "no package matches\n", "{unused:?}");
    let text = exec(&alice, "deps --package pandas", None).await;
    assert!(
        text.stdout
            .contains("python:pandas 1.5.3 (requirements.txt)"),
        "{text:?}"
    );
    let bad = exec(&alice, "deps --package '<2'", None).await;
    assert_eq!(bad.status, Some(2), "{bad:?}");

    // A repository its owner cannot read is said so, not read as root.
    let closed = base.path().join("closed");
    std::fs::create_dir(&closed).expect("mkdir");
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(&closed)
            .status()
            .expect("git")
            .success()
    );
    std::fs::set_permissions(
        closed.join(".git"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let unread = submit_id(
        &alice,
        &format!(
            "--workdir {} --input /etc/hostname -- true",
            closed.display()
        ),
    )
    .await;
    wait_state(&alice, unread).await;
    let p = provenance(&alice, unread, false).await;
    assert!(p["git"].is_null(), "{p}");
    let skipped = p["skipped"].to_string();
    assert!(
        skipped.contains("a repository its owner cannot read"),
        "{skipped}"
    );
}

/// The ids of a `history … --json` page, newest first.
async fn history_ids(handle: &Handle<common::Client>, args: &str) -> Vec<u64> {
    let out = exec(handle, &format!("history --json {args}"), None).await;
    assert_eq!(out.status, Some(0), "history --json {args}: {out:?}");
    json(&out.stdout)["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect()
}

#[tokio::test]
async fn history_selects_with_the_filter_language_and_hides_what_a_listing_hides() {
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let script = |auc: &str, code: u8| format!("--sh 'echo @metric auc={auc} step=1; exit {code}'");
    let a = submit_id(
        &admin,
        &format!(
            "--workdir /tmp --name a --project churn --tag baseline --param lr=0.001 {}",
            script("0.85", 0)
        ),
    )
    .await;
    let b = submit_id(
        &admin,
        &format!(
            "--workdir /tmp --name b --project churn --tag wip --param lr=0.1 {}",
            script("0.7", 0)
        ),
    )
    .await;
    let c = submit_id(
        &admin,
        &format!(
            "--workdir /tmp --name c --project fraud {}",
            script("0.9", 3)
        ),
    )
    .await;
    for id in [a, b, c] {
        wait_state(&admin, id).await;
    }
    let out = exec(
        &admin,
        &format!("outcome {b} negative --note 'no lift'"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");

    assert_eq!(history_ids(&admin, "project:churn").await, [b, a]);
    assert_eq!(history_ids(&admin, "'metric:auc>0.8'").await, [c, a]);
    assert_eq!(history_ids(&admin, "'param:lr<0.01'").await, [a]);
    assert_eq!(history_ids(&admin, "state:failed").await, [c]);
    assert_eq!(history_ids(&admin, "-- -tag:wip project:churn").await, [a]);
    assert_eq!(history_ids(&admin, "outcome:negative").await, [b]);
    assert_eq!(
        history_ids(&admin, "'state:succeeded since:1h' churn").await,
        [b, a]
    );

    let csv = exec(&admin, "history tag:baseline --csv --metric auc", None).await;
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert!(
        lines[0].starts_with("id,name,owner,project,state,outcome,"),
        "{csv:?}"
    );
    assert!(lines[0].ends_with(",auc"), "{csv:?}");
    assert!(lines[1].starts_with(&format!("{a},a,")), "{csv:?}");
    assert!(lines[1].ends_with(",0.85"), "{csv:?}");
    assert_eq!(lines.len(), 2, "{csv:?}");
    let text = exec(&admin, "history project:churn --metric auc", None).await;
    assert!(text.stdout.starts_with("ID  NAME"), "{text:?}");
    assert!(text.stdout.contains("negative"), "{text:?}");

    // Pages: the newest first, then from where the last one ended.
    let page = json(&exec(&admin, "history --json --limit 1", None).await.stdout);
    assert_eq!(page["rows"][0]["id"], c);
    assert_eq!(page["next"], c);
    assert_eq!(
        history_ids(&admin, &format!("--limit 1 --before {c}")).await,
        [b]
    );

    // A malformed filter says where, and nothing is listed.
    let bad = exec(&admin, "history 'metric:auc>>1'", None).await;
    assert_eq!(bad.status, Some(2), "{bad:?}");
    assert!(
        bad.stderr.contains("metric:auc>>1\n           ^"),
        "{bad:?}"
    );
    let unknown = exec(&admin, "history bogus:1", None).await;
    assert_eq!(unknown.status, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("bogus"), "{unknown:?}");

    // What a listing hides from a viewer, a search does not find: a
    // private experiment's command, and its results.
    let mike = common::lab::add_member(&lab.server, &admin, lab.dir.path(), "mike", "member").await;
    let vera = common::lab::add_member(&lab.server, &admin, lab.dir.path(), "vera", "viewer").await;
    let private = submit_id(
        &mike,
        "--workdir /tmp --private --sh 'echo supersecretcmd; echo @metric auc=0.99'",
    )
    .await;
    wait_state(&mike, private).await;
    assert_eq!(history_ids(&mike, "supersecretcmd").await, [private]);
    assert_eq!(history_ids(&admin, "supersecretcmd").await, [private]);
    assert!(history_ids(&vera, "supersecretcmd").await.is_empty());
    assert!(
        !history_ids(&vera, "'metric:auc>0.95'")
            .await
            .contains(&private)
    );
    assert_eq!(history_ids(&vera, "user:mike").await, [private]);

    // Sorted over all that matches, not one page: by a metric, largest
    // first, a page at a time; a private run's hidden metric ranks it
    // nowhere for a viewer (no value: last), first for its owner's admin.
    assert_eq!(
        history_ids(&admin, "--sort metric:auc --desc").await,
        [private, c, a, b]
    );
    assert_eq!(
        history_ids(&vera, "--sort metric:auc --desc").await,
        [c, a, b, private]
    );
    let first = json(
        &exec(&admin, "history --json --sort metric:auc --limit 2", None)
            .await
            .stdout,
    );
    assert_eq!(first["rows"][0]["id"], b, "{first}");
    assert_eq!(first["next_offset"], 2, "{first}");
    assert_eq!(
        history_ids(&admin, "--sort metric:auc --limit 2 --offset 2").await,
        [c, private]
    );
    assert_eq!(
        history_ids(&admin, "project:churn --sort name --desc").await,
        [b, a]
    );
    let wrong = exec(&admin, "history --sort colour", None).await;
    assert_eq!(wrong.status, Some(2), "{wrong:?}");
    assert!(wrong.stderr.contains("metric:NAME"), "{wrong:?}");
    let both = exec(&admin, "history --sort id --before 3", None).await;
    assert_eq!(both.status, Some(2), "{both:?}");

    // Compare: what differs is named and starred; curves on request.
    let c = json(
        &exec(
            &admin,
            &format!("compare {a} {b} --json --metric auc"),
            None,
        )
        .await
        .stdout,
    );
    let differs: Vec<&str> = c["differs"]
        .as_array()
        .expect("differs")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(differs.contains(&"param:lr"), "{c}");
    assert!(differs.contains(&"metric:auc"), "{c}");
    assert!(differs.contains(&"command"), "{c}");
    assert!(!differs.contains(&"resources"), "{c}");
    assert_eq!(c["runs"][0]["metrics"]["auc"]["last"], 0.85, "{c}");
    assert_eq!(c["runs"][1]["curve"][0]["value"], 0.7, "{c}");
    let text = exec(&admin, &format!("compare {a} {b}"), None).await;
    assert_eq!(text.status, Some(0), "{text:?}");
    assert!(text.stdout.contains("* param lr"), "{text:?}");
    assert!(text.stdout.contains("  owner"), "{text:?}");
    let one = exec(&admin, &format!("compare {a}"), None).await;
    assert_eq!(one.status, Some(2), "{one:?}");
    let hidden = exec(&vera, &format!("compare {a} {private}"), None).await;
    assert_eq!(hidden.status, Some(77), "{hidden:?}");
}

#[tokio::test]
#[ignore = "needs root and cgroups: tools/test runs it as root with --include-ignored"]
async fn a_runs_use_is_kept_each_second_with_its_peak_p95_and_mean() {
    require(labbench::exec::cgroup::available(), "writable cgroups");
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    // Two seconds at 300 MiB, then four at almost nothing: a burst.
    let burst =
        "python3 -c 'import time; x = bytearray(300 << 20); time.sleep(2); del x; time.sleep(4)'";
    let id = submit_id(&admin, &format!("--workdir /tmp --mem 1G --sh \"{burst}\"")).await;
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let profile = &e["usage"]["profile"];
    let memory = &profile["memory_bytes"];
    let (peak, p95, mean) = (
        memory["peak"].as_f64().expect("peak"),
        memory["p95"].as_f64().expect("p95"),
        memory["mean"].as_f64().expect("mean"),
    );
    assert!(peak >= 300.0 * 1024.0 * 1024.0, "{profile}");
    assert!(mean < peak / 2.0, "mostly idle: {profile}");
    assert!(p95 <= peak && mean <= p95, "{profile}");
    assert!(profile["seconds"].as_u64() >= Some(5), "{profile}");
    let series = json(
        &exec(&admin, &format!("resources {id} --json"), None)
            .await
            .stdout,
    );
    let samples = series["samples"].as_array().expect("samples");
    assert!(samples.len() >= 5, "{series}");
    assert!(
        samples.iter().all(|s| s["secs"] == 1),
        "a second each in the first hour"
    );
    assert_eq!(series["request"]["memory_bytes"], 1u64 << 30);
    let text = exec(&admin, &format!("resources {id}"), None).await;
    assert!(
        text.stdout.contains("profile   peak / p95 / mean"),
        "{text:?}"
    );
    let show = exec(&admin, &format!("show {id}"), None).await;
    assert!(
        show.stdout.contains("profile   peak / p95 / mean"),
        "{show:?}"
    );
    let csv = exec(&admin, &format!("resources {id} --csv"), None).await;
    assert_eq!(csv.stdout.lines().count(), samples.len() + 1, "{csv:?}");
}

/// The DOM headless Chromium renders from `html` (written to `dir`).
fn rendered_dom(dir: &Path, name: &str, html: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, html).expect("write report");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &format!("file://{}", file.display()),
        ])
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chromium_installed() -> bool {
    Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
#[ignore = "needs headless Chromium: tools/test installs it and runs this with --include-ignored"]
async fn reports_are_self_contained_html_that_a_browser_renders() {
    require(chromium_installed(), "chromium (apt install chromium)");
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let id = submit_id(
        &admin,
        "--workdir /tmp --name 'churn <v2>' --project churn --param lr=0.01 \
         --sh 'for i in 1 2 3 4; do echo @metric loss=0.$((9 - i)) auc=0.$((6 + i)) step=$i; done'",
    )
    .await;
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    for (line, status) in [
        (
            format!("comment {id} '<script>alert(1)</script> looks right'"),
            0,
        ),
        (
            format!("outcome {id} positive --note 'beats the baseline'"),
            0,
        ),
    ] {
        assert_eq!(
            exec(&admin, &line, None).await.status,
            Some(status),
            "{line}"
        );
    }
    let page = exec(&admin, &format!("report {id} --html"), None).await;
    assert_eq!(page.status, Some(0), "{page:?}");
    let html = page.stdout;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        !html.contains("<script"),
        "no script, and none from a comment"
    );
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "nothing fetched"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let dir = tempfile::tempdir().expect("tempdir");
    let dom = rendered_dom(dir.path(), "one.html", &html);
    for text in [
        "Experiment",
        "churn &lt;v2&gt;",
        "positive",
        "beats the baseline",
        "Metrics",
        "Resources",
        "Provenance",
        "&lt;script&gt;alert(1)&lt;/script&gt; looks right",
    ] {
        assert!(dom.contains(text), "{text} not in the rendered page: {dom}");
    }
    assert!(
        dom.matches("<svg").count() >= 2,
        "a chart per metric: {dom}"
    );
    assert!(dom.contains("<polyline"), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");

    let project = exec(&admin, "report --project churn --html", None).await;
    assert_eq!(project.status, Some(0), "{project:?}");
    let dom = rendered_dom(dir.path(), "project.html", &project.stdout);
    assert!(
        dom.contains("Project churn") && dom.contains("<svg"),
        "{dom}"
    );
    assert!(dom.contains(&format!("<td>{id}</td>")), "{dom}");
    let filtered = exec(
        &admin,
        "report state:succeeded 'metric:loss<0.9' --html",
        None,
    )
    .await;
    assert_eq!(filtered.status, Some(0), "{filtered:?}");
    assert!(filtered.stdout.contains(&format!("<td>{id}</td>")));

    let data = json(
        &exec(&admin, &format!("report {id} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(data["experiment"]["id"], id, "{data}");
    assert_eq!(
        data["discussion"]["outcome"]["verdict"], "positive",
        "{data}"
    );
    let no_format = exec(&admin, &format!("report {id}"), None).await;
    assert_eq!(no_format.status, Some(2), "{no_format:?}");
    let bad = exec(&admin, "report 'metric:auc>>1' --html", None).await;
    assert_eq!(bad.status, Some(2), "{bad:?}");
    // What a viewer may not read stays out of the report.
    let mike = common::lab::add_member(&lab.server, &admin, lab.dir.path(), "mike", "member").await;
    let vera = common::lab::add_member(&lab.server, &admin, lab.dir.path(), "vera", "viewer").await;
    let private = submit_id(
        &mike,
        "--workdir /tmp --private --sh 'echo @metric auc=0.99'",
    )
    .await;
    wait_state(&mike, private).await;
    let hidden = exec(&vera, &format!("report {private} --html"), None).await;
    assert_eq!(hidden.status, Some(0), "{hidden:?}");
    assert!(hidden.stdout.contains("is private"), "{}", hidden.stdout);
    assert!(!hidden.stdout.contains("0.99"), "{}", hidden.stdout);
}

#[tokio::test]
#[ignore = "needs root and cgroups: tools/test runs it as root with --include-ignored"]
async fn what_a_users_interpreter_starts_during_a_capture_does_not_outlive_it() {
    require(labbench::exec::cgroup::available(), "writable cgroups");
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let (alice, _) = experiment_user(&lab, &admin).await;
    let base = tempfile::tempdir().expect("tempdir");
    let bin = base.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    // A "python3" that leaves a process of its own session behind (out of
    // its process group by the time it answers).
    let marker = format!("sleep 7{}", std::process::id() % 1000 + 1000);
    std::fs::write(
        bin.join("python3"),
        format!(
            "#!/bin/sh\nsetsid {marker} >/dev/null 2>&1 < /dev/null &\nsleep 0.5\necho 'Python 3.0.0'\n"
        ),
    )
    .expect("write");
    for (path, mode) in [
        (base.path(), 0o755),
        (bin.as_path(), 0o755),
        (&bin.join("python3"), 0o755),
    ] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let id = submit_id(
        &alice,
        &format!(
            "--workdir /tmp --input /etc/hostname --env PATH={}:/usr/bin:/bin -- true",
            bin.display()
        ),
    )
    .await;
    wait_state(&alice, id).await;
    let p = provenance(&alice, id, false).await;
    assert!(
        p["interpreters"].to_string().contains("Python 3.0.0"),
        "the fake interpreter ran: {p}"
    );
    // Its leftover was killed with the helper's cgroup.
    let mut left = true;
    for _ in 0..50 {
        left = Command::new("pgrep")
            .args(["-f", &marker])
            .status()
            .is_ok_and(|s| s.success());
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if left {
        let _ = Command::new("pkill").args(["-f", &marker]).status();
    }
    assert!(!left, "{marker} outlived the capture");
}

#[tokio::test]
#[ignore = "needs root (two users' experiments): tools/test runs it as root with --include-ignored"]
async fn one_users_slow_capture_holds_up_nobody_elses() {
    require(is_root(), "root");
    let lab = start("");
    let admin = session(&lab.server, &lab.admin).await;
    let (alice, _) = experiment_user(&lab, &admin).await;
    let mike = common::lab::add_member(&lab.server, &admin, lab.dir.path(), "mike", "member").await;
    // Alice's "python3" takes 6 seconds to say its version.
    let base = tempfile::tempdir().expect("tempdir");
    let bin = base.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::fs::write(
        bin.join("python3"),
        "#!/bin/sh\nsleep 6\necho 'Python 3.0.1'\n",
    )
    .expect("write");
    for path in [base.path(), bin.as_path(), &bin.join("python3")] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let slow = submit_id(
        &alice,
        &format!(
            "--workdir /tmp --input /etc/hostname --env PATH={}:/usr/bin:/bin -- true",
            bin.display()
        ),
    )
    .await;
    let quick = submit_id(&mike, "--workdir /tmp --input /etc/hostname -- true").await;
    wait_state(&mike, quick).await;
    // Mike's is captured while Alice's still waits for her interpreter.
    let p = provenance(&mike, quick, false).await;
    assert!(p["captured_at"].as_i64() > Some(0), "{p}");
    let hers = exec(&alice, &format!("provenance {slow} --json"), None).await;
    assert_eq!(
        json(&hers.stdout)["provenance"]["captured_at"],
        0,
        "Alice's capture was not done yet: {hers:?}"
    );
    let hers = provenance(&alice, slow, false).await;
    assert!(hers.to_string().contains("Python 3.0.1"), "{hers}");
}
