//! Who may see and do what, end to end over SSH: secrets stay with their
//! owner, output is read by the service's one rule, and a removed user
//! loses their connections and queued experiments.

mod common;

use common::lab::{add_member, json, submit, wait_running, wait_state};
use common::{Client, TestKey, TestServer, exec, session};
use russh::client::Handle;

/// A server with admin, members mike and mary and viewer vera, each connected.
struct Cast {
    _dir: tempfile::TempDir,
    server: TestServer,
    admin: Handle<Client>,
    mike: Handle<Client>,
    mary: Handle<Client>,
    vera: Handle<Client>,
}

impl Cast {
    async fn new() -> Cast {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin_key = TestKey::generate(dir.path(), "admin_key");
        let server = TestServer::start(&dir.path().join("data"), Some(&admin_key));
        Cast::with(dir, server, &admin_key).await
    }

    async fn with(dir: tempfile::TempDir, server: TestServer, admin_key: &TestKey) -> Cast {
        let admin = session(&server, admin_key).await;
        let mike = add_member(&server, &admin, dir.path(), "mike", "member").await;
        let mary = add_member(&server, &admin, dir.path(), "mary", "member").await;
        let vera = add_member(&server, &admin, dir.path(), "vera", "viewer").await;
        Cast {
            _dir: dir,
            server,
            admin,
            mike,
            mary,
            vera,
        }
    }
}

#[tokio::test]
async fn secrets_in_the_environment_reach_only_their_owner_and_admins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let log = dir.path().join("daemon.log");
    let server = TestServer::start_logged(&dir.path().join("data"), Some(&admin_key), &[], &log);
    let cast = Cast::with(dir, server, &admin_key).await;
    let (admin, mike, mary, vera) = (&cast.admin, &cast.mike, &cast.mary, &cast.vera);
    const SECRET: &str = "tok-4f9a1c";
    let id = submit(
        mike,
        &format!("--env API_TOKEN={SECRET} --param lr=0.1 -- sh -c 'echo using $API_TOKEN'"),
    )
    .await;
    wait_state(mike, id).await;
    for (who, handle) in [("mary", mary), ("vera", vera)] {
        for command in [
            format!("show {id} --json"),
            format!("show {id}"),
            "ls --all --json".into(),
        ] {
            let out = exec(handle, &command, None).await;
            assert_eq!(out.status, Some(0), "{who} {command}: {out:?}");
            assert!(
                !out.stdout.contains(SECRET),
                "{who} {command}: {}",
                out.stdout
            );
            assert!(
                out.stdout.contains("API_TOKEN"),
                "names stay: {}",
                out.stdout
            );
        }
    }
    for handle in [mike, admin] {
        let e = json(
            &exec(handle, &format!("show {id} --json"), None)
                .await
                .stdout,
        );
        assert_eq!(e["spec"]["env"][0][1], SECRET, "{e}");
    }
    // Its output is the experiment's own business: readable by default.
    let out = exec(vera, &format!("logs {id}"), None).await;
    assert_eq!(out.stdout, format!("using {SECRET}\n"));
    cast.server.stop();
    let text = std::fs::read_to_string(&log).expect("daemon log");
    assert!(
        text.contains("exec submit"),
        "the log has the commands: {text}"
    );
    assert!(
        !text.contains(SECRET),
        "the daemon log holds the secret:\n{text}"
    );
}

#[tokio::test]
async fn the_read_rule_decides_who_reads_output_per_role() {
    let cast = Cast::new().await;
    let (admin, mike, mary, vera) = (&cast.admin, &cast.mike, &cast.mary, &cast.vera);
    let open = submit(mike, "-- echo open result").await;
    let private = submit(mike, "--private -- echo private result").await;
    let in_project = submit(mike, "--project merger -- echo merger result").await;
    for id in [open, private, in_project] {
        wait_state(mike, id).await;
    }
    let out = exec(mike, "project private merger", None).await;
    assert_eq!(out.status, Some(77), "members cannot: {out:?}");
    let out = exec(admin, "project private merger", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let readers = [
        ("mike", &mike, true),
        ("admin", &admin, true),
        ("mary", &mary, false),
        ("vera", &vera, false),
    ];
    for (who, handle, may) in readers {
        let out = exec(handle, &format!("logs {open}"), None).await;
        assert_eq!(out.stdout, "open result\n", "{who}: {out:?}");
        for id in [private, in_project] {
            for command in [format!("logs {id}"), format!("logs -f {id}")] {
                let out = exec(handle, &command, None).await;
                if may {
                    assert_eq!(out.status, Some(0), "{who} {command}: {out:?}");
                    assert!(out.stdout.ends_with("result\n"), "{out:?}");
                } else {
                    assert_eq!(out.status, Some(77), "{who} {command}: {out:?}");
                    assert!(out.stderr.contains("is private"), "{out:?}");
                    assert!(out.stdout.is_empty(), "{out:?}");
                }
            }
            // Metrics are output too.
            let out = exec(handle, &format!("metrics {id} --json"), None).await;
            let status = if may { 0 } else { 77 };
            assert_eq!(out.status, Some(status), "{who} metrics {id}: {out:?}");
            let e = json(
                &exec(handle, &format!("show {id} --json"), None)
                    .await
                    .stdout,
            );
            let command = e["spec"]["command"].to_string();
            assert_eq!(command.contains("echo"), may, "{who}: {e}");
        }
    }
}

#[tokio::test]
async fn rerun_is_for_the_owner_and_admins() {
    let cast = Cast::new().await;
    let (admin, mike, mary, vera) = (&cast.admin, &cast.mike, &cast.mary, &cast.vera);
    let id = submit(mike, "--env API_TOKEN=s3cret -- true").await;
    for handle in [mary, vera] {
        let out = exec(handle, &format!("rerun {id}"), None).await;
        assert_eq!(out.status, Some(77), "{out:?}");
    }
    for handle in [mike, admin] {
        let out = exec(handle, &format!("rerun {id} --json"), None).await;
        assert_eq!(out.status, Some(0), "{out:?}");
    }
    let all = json(&exec(admin, "ls --all --json", None).await.stdout);
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
}

#[tokio::test]
async fn a_removed_user_loses_connections_and_queued_experiments() {
    let cast = Cast::new().await;
    let (admin, mike) = (&cast.admin, &cast.mike);
    let running = submit(mike, "-- sleep 30").await;
    wait_running(mike, running).await;
    let queued = submit(mike, &format!("--after {running} -- true")).await;
    let out = exec(admin, "user rm mike", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("cancelled their queued experiments {queued}")),
        "{out:?}"
    );
    assert!(
        common::closed_soon(mike).await,
        "the removed user's connection stays open"
    );
    let e = json(
        &exec(admin, &format!("show {queued} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");
    assert!(
        e["transitions"][1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("its owner mike was removed")),
        "{e}"
    );
    exec(admin, &format!("cancel {running}"), None).await;
}

#[tokio::test]
async fn a_member_adds_a_key_only_with_proof_that_they_hold_it() {
    let cast = Cast::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Somebody else's public key: mary's, say, or any on the internet.
    let stolen = TestKey::generate(dir.path(), "someone_else");
    let out = exec(
        &cast.mike,
        "key add mike",
        Some(stolen.public_line.as_bytes()),
    )
    .await;
    assert_eq!(out.status, Some(77), "{out:?}");
    assert!(out.stderr.contains("key challenge"), "{out:?}");
    // His own new key, with a signature over a challenge, as ssh-keygen makes it.
    let fresh = dir.path().join("fresh");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&fresh)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let challenge = exec(&cast.mike, "key challenge", None).await;
    assert_eq!(challenge.status, Some(0), "{challenge:?}");
    let mut sign = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "labbench", "-f"])
        .arg(&fresh)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssh-keygen -Y sign");
    std::io::Write::write_all(
        &mut sign.stdin.take().expect("stdin"),
        challenge.stdout.trim_end_matches('\n').as_bytes(),
    )
    .expect("challenge to sign");
    let signed = sign.wait_with_output().expect("signature");
    assert!(signed.status.success());
    let public = std::fs::read_to_string(fresh.with_extension("pub")).expect("pub");
    let offer = format!("{public}{}", String::from_utf8_lossy(&signed.stdout));
    let out = exec(&cast.mike, "key add mike", Some(offer.as_bytes())).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    // The same proof twice: the challenge is spent.
    let again = exec(&cast.mike, "key add mike", Some(offer.as_bytes())).await;
    assert_ne!(again.status, Some(0), "{again:?}");
    let keys = json(&exec(&cast.mike, "keys --json", None).await.stdout);
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");
    // An admin adds any key to anyone, as before.
    let out = exec(
        &cast.admin,
        "key add mike",
        Some(stolen.public_line.as_bytes()),
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
}

/// Everyone who may read an experiment's output discusses it, viewers
/// included; a comment is changed only by its author or an admin; the
/// outcome is the owner's or an admin's, and only of a finished result.
#[tokio::test]
async fn comments_are_everyones_and_outcomes_the_owners() {
    let cast = Cast::new().await;
    let (admin, mike, mary, vera) = (&cast.admin, &cast.mike, &cast.mary, &cast.vera);
    let id = submit(mike, "-- echo result").await;
    wait_state(mike, id).await;
    let comment = |handle, line: String, stdin: Option<&'static [u8]>| async move {
        exec(handle, &line, stdin).await
    };
    // A viewer comments; the text may come on stdin, and is kept as sent.
    let out = comment(
        vera,
        format!("comment {id} --json -- -looks promising"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let veras = json(&out.stdout)["id"].as_u64().expect("comment id");
    let long: &'static [u8] = b"line one\nline two \x1b[31mred\x1b[0m\n";
    let out = comment(mary, format!("comment {id} --json"), Some(long)).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let marys = json(&out.stdout)["id"].as_u64().expect("comment id");
    // Others' comments are theirs.
    let out = comment(mike, format!("comment {id} --edit {veras} rewritten"), None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let out = comment(vera, format!("comment {id} --rm {marys}"), None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let out = comment(
        vera,
        format!("comment {id} --edit {veras} promising indeed"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = comment(admin, format!("comment {id} --rm {marys}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    // Bad input loses nothing.
    for bad in [
        format!("comment {id} '   '"),
        format!("comment {id} --edit 999 x"),
    ] {
        let out = exec(vera, &bad, None).await;
        assert_ne!(out.status, Some(0), "{bad}: {out:?}");
    }
    let big = vec![b'x'; 20 * 1024];
    let out = exec(mary, &format!("comment {id}"), Some(&big)).await;
    assert_ne!(out.status, Some(0), "{out:?}");
    // The outcome: the owner's or an admin's.
    for handle in [mary, vera] {
        let out = exec(handle, &format!("outcome {id} positive"), None).await;
        assert_eq!(out.status, Some(77), "{out:?}");
    }
    let out = exec(
        mike,
        &format!("outcome {id} negative --note 'no lift over baseline'"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let blocker = submit(mike, "-- sleep 30").await;
    let out = exec(mike, &format!("outcome {blocker} positive"), None).await;
    assert_ne!(out.status, Some(0), "not finished: {out:?}");
    let _ = exec(mike, &format!("cancel {blocker}"), None).await;
    // Everyone who may read it sees the discussion, in show too.
    let d = json(
        &exec(vera, &format!("comments {id} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(d["outcome"]["verdict"], "negative", "{d}");
    assert_eq!(d["outcome"]["by"], "mike");
    let comments = d["comments"].as_array().expect("comments");
    assert_eq!(comments.len(), 1, "{d}");
    assert_eq!(comments[0]["text"], "promising indeed");
    assert!(comments[0]["edited_at"].is_i64(), "{d}");
    // Shown to people, a comment's terminal sequences are made harmless.
    let out = exec(mary, &format!("comment {id}"), Some(long)).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let shown = exec(mary, &format!("show {id}"), None).await.stdout;
    assert!(shown.contains("outcome   negative (by mike"), "{shown}");
    assert!(shown.contains("promising indeed"), "{shown}");
    assert!(shown.contains("line two"), "{shown}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
}

/// The feed gives each reader what happened on the experiments whose output
/// they may read, newest first: results, comments, outcomes.
#[tokio::test]
async fn the_feed_shows_each_reader_what_they_may_read() {
    let cast = Cast::new().await;
    let (admin, mike, mary, vera) = (&cast.admin, &cast.mike, &cast.mary, &cast.vera);
    let open = submit(mike, "--name churn-a --project churn -- echo open").await;
    let private = submit(mike, "--private --name secret -- echo private").await;
    for id in [open, private] {
        wait_state(mike, id).await;
    }
    assert_eq!(
        exec(vera, &format!("comment {open} promising"), None)
            .await
            .status,
        Some(0)
    );
    assert_eq!(
        exec(mike, &format!("comment {private} hidden"), None)
            .await
            .status,
        Some(0)
    );
    let out = exec(mike, &format!("outcome {open} positive"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let feed = |handle, args: &'static str| async move {
        let out = exec(handle, &format!("feed --json {args}"), None).await;
        assert_eq!(out.status, Some(0), "{out:?}");
        json(&out.stdout)
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["experiment"].as_u64().unwrap_or(0),
                    i["kind"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let kinds = |items: &[(u64, String)], id: u64| {
        let mut kinds: Vec<String> = items
            .iter()
            .filter(|i| i.0 == id)
            .map(|i| i.1.clone())
            .collect();
        kinds.sort();
        kinds
    };
    for (who, handle, sees_private) in [
        ("mike", mike, true),
        ("admin", admin, true),
        ("mary", mary, false),
        ("vera", vera, false),
    ] {
        let items = feed(handle, "").await;
        assert_eq!(
            kinds(&items, open),
            ["comment", "outcome", "result"],
            "{who}: {items:?}"
        );
        let private_kinds = kinds(&items, private);
        assert_eq!(!private_kinds.is_empty(), sees_private, "{who}: {items:?}");
    }
    // By project, and newest first.
    let items = feed(vera, "--project churn").await;
    assert!(items.iter().all(|i| i.0 == open), "{items:?}");
    assert_eq!(items[0].1, "outcome", "newest first: {items:?}");
    let text = exec(vera, "feed", None).await.stdout;
    assert!(text.contains("vera commented: promising"), "{text}");
    assert!(text.contains("gave it the outcome positive"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let bad = exec(vera, "feed --since yesterdayish", None).await;
    assert_eq!(bad.status, Some(2), "{bad:?}");
    // Projects count what each reader may read.
    let counts = |handle| async move {
        let out = exec(handle, "projects --json", None).await;
        assert_eq!(out.status, Some(0), "{out:?}");
        json(&out.stdout)
            .as_array()
            .expect("projects")
            .iter()
            .map(|p| {
                let n = |k: &str| p[k].as_u64().unwrap_or(0);
                (
                    p["project"].as_str().unwrap_or("").to_string(),
                    [n("submitted"), n("finished"), n("succeeded"), n("positive")],
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(vera).await,
        [("churn".to_string(), [1, 1, 1, 1])],
        "the private one is not counted for vera"
    );
    assert_eq!(
        counts(mike).await,
        [
            ("-".to_string(), [1, 1, 1, 0]),
            ("churn".to_string(), [1, 1, 1, 1])
        ]
    );
}

/// A project's best run by a metric its runs reported, largest or smallest.
#[tokio::test]
async fn projects_name_their_best_run_by_a_metric() {
    let cast = Cast::new().await;
    let (mike, vera) = (&cast.mike, &cast.vera);
    let mut ids = Vec::new();
    for (auc, loss) in [("0.7", "0.2"), ("0.9", "0.4"), ("0.8", "0.1")] {
        let id = submit(
            mike,
            &format!("--project sweep -- echo @metric auc={auc} loss={loss}"),
        )
        .await;
        ids.push(id);
    }
    for id in &ids {
        wait_state(mike, *id).await;
    }
    let best = |args: &'static str| async move {
        let out = exec(vera, &format!("projects --json {args}"), None).await;
        assert_eq!(out.status, Some(0), "{out:?}");
        json(&out.stdout)[0]["best"].clone()
    };
    assert_eq!(best("--best auc").await, serde_json::json!([ids[1], 0.9]));
    assert_eq!(
        best("--best loss --lowest").await,
        serde_json::json!([ids[2], 0.1])
    );
    assert_eq!(best("--best nothing").await, serde_json::Value::Null);
    let text = exec(vera, "projects --best auc", None).await.stdout;
    assert!(
        text.contains(&format!("best of sweep: experiment {} (auc 0.9)", ids[1])),
        "{text}"
    );
}

#[tokio::test]
async fn the_audit_trail_says_who_changed_what_from_what_to_what_and_only_to_admins() {
    let cast = Cast::new().await;
    let admin = &cast.admin;
    let ok = |out: &common::ExecResult| assert_eq!(out.status, Some(0), "{out:?}");
    ok(&exec(admin, "user set-role mary viewer", None).await);
    ok(&exec(admin, "quota set mary --max-running 3", None).await);
    ok(&exec(admin, "quota set mary --max-running 5", None).await);
    let id = submit(&cast.mike, "-- true").await;
    wait_state(&cast.mike, id).await;
    ok(&exec(&cast.mike, &format!("comment {id} first look"), None).await);

    let roles = json(
        &exec(admin, "audit --action user.role --json", None)
            .await
            .stdout,
    );
    assert_eq!(roles.as_array().map(Vec::len), Some(1), "{roles}");
    assert_eq!(roles[0]["subject"], "user mary", "{roles}");
    assert_eq!(roles[0]["before"], "member", "{roles}");
    assert_eq!(roles[0]["after"], "viewer", "{roles}");
    // Newest first; from the earlier limit to the later one.
    let quotas = json(
        &exec(admin, "audit --action quota --json", None)
            .await
            .stdout,
    );
    assert!(
        quotas[0]["before"]
            .as_str()
            .is_some_and(|b| b.contains("max_running=3")),
        "{quotas}"
    );
    assert!(
        quotas[0]["after"]
            .as_str()
            .is_some_and(|a| a.contains("max_running=5")),
        "{quotas}"
    );
    // What mary had done to her, and what mike did.
    let mary: Vec<String> = json(&exec(admin, "audit --user mary --json", None).await.stdout)
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        mary.starts_with(&["quota.set".into(), "quota.set".into(), "user.role".into()]),
        "{mary:?}"
    );
    assert!(mary.contains(&"user.add".to_string()), "{mary:?}");
    let mike = json(
        &exec(admin, "audit --user mike --since 1h --json", None)
            .await
            .stdout,
    );
    let kinds: Vec<&str> = mike
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.starts_with(&["comment.add", "experiment.submit"]),
        "{kinds:?}"
    );
    let text = exec(admin, "audit --limit 3", None).await;
    ok(&text);
    assert!(text.stdout.starts_with("WHEN"), "{text:?}");
    assert!(text.stdout.contains("comment.add"), "{text:?}");
    assert_eq!(text.stdout.lines().count(), 4, "{text:?}");

    // Bad input: a clear error, exit 2.
    let bad = exec(admin, "audit --since yesterday-ish", None).await;
    assert_eq!(bad.status, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("--since"), "{bad:?}");
    // Members and viewers are refused, whatever they ask.
    for who in [&cast.mike, &cast.vera, &cast.mary] {
        let out = exec(who, "audit --user mike", None).await;
        assert_eq!(out.status, Some(77), "{out:?}");
        assert!(!out.stdout.contains("comment"), "{out:?}");
    }
}
