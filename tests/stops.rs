//! How experiments are stopped and how their ends are told: a command gets
//! SIGTERM (and the chance to save a checkpoint) before SIGKILL, starts
//! with no signal blocked or ignored, and `show`, `wait` and `logs -f` say
//! how it ended.

mod common;

use common::lab::{Lab, json, last_reason, start, submit, wait_state};
use common::{Client, exec};
use russh::client::Handle;

/// A Python program that saves a "checkpoint" to `$MARK` on SIGTERM and
/// exits 0, as training scripts do.
const CHECKPOINTER: &str = r#"import os, signal, sys, time
def save(signum, frame):
    with open(os.environ["MARK"], "w") as f:
        f.write("checkpoint at step 42\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
print("training", flush=True)
time.sleep(600)
"#;

/// Submits [`CHECKPOINTER`] with `flags`: its id and where its checkpoint goes.
async fn submit_checkpointer(
    lab: &Lab,
    handle: &Handle<Client>,
    flags: &str,
) -> (u64, std::path::PathBuf) {
    let script = lab.dir.path().join("train.py");
    std::fs::write(&script, CHECKPOINTER).expect("script");
    let marker = lab.dir.path().join("checkpoint");
    let id = submit(
        handle,
        &format!(
            "{flags} --env MARK={} -- python3 {}",
            marker.display(),
            script.display()
        ),
    )
    .await;
    (id, marker)
}

/// Waits until experiment `id` has printed `text`.
async fn wait_for_output(handle: &Handle<Client>, id: u64, text: &str) {
    for _ in 0..200 {
        let out = exec(handle, &format!("logs {id}"), None).await;
        if out.stdout.contains(text) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("experiment {id} never printed {text:?}");
}

#[tokio::test]
async fn a_command_starts_with_no_signal_blocked_or_ignored() {
    let lab = start("");
    let admin = common::session(&lab.server, &lab.admin).await;
    let id = submit(&admin, "-- grep -E '^Sig(Blk|Ign)' /proc/self/status").await;
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "succeeded", "{e}");
    let out = exec(&admin, &format!("logs {id}"), None).await;
    for line in out.stdout.lines() {
        let (name, mask) = line.split_once(':').expect("field");
        let mask = u64::from_str_radix(mask.trim(), 16).expect("hex mask");
        // Signals 1 to 31; the C library keeps two real-time ones for itself.
        assert_eq!(mask & 0x7fff_ffff, 0, "{name}: {mask:#x} in {out:?}");
    }
}

#[tokio::test]
async fn a_cancelled_command_saves_its_checkpoint_on_sigterm() {
    // A long grace: only SIGTERM can have ended it.
    let lab = start("[queue]\nkill_grace_secs = 120\n");
    let admin = common::session(&lab.server, &lab.admin).await;
    let (id, marker) = submit_checkpointer(&lab, &admin, "").await;
    wait_for_output(&admin, id, "training").await;
    let out = exec(&admin, &format!("cancel {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = exec(&admin, &format!("wait {id}"), None).await;
    assert_eq!(out.status, Some(130), "a cancelled run: {out:?}");
    let e = json(
        &exec(&admin, &format!("show {id} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");
    assert_eq!(e["state"]["exit_code"], 0, "it ended by itself: {e}");
    assert_eq!(e["state"]["stop"]["signal"], 15, "{e}");
    let by = e["state"]["stop"]["by"].as_str().unwrap_or("");
    assert!(by.starts_with("cancelled by "), "{e}");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("the checkpoint was written"),
        "checkpoint at step 42\n"
    );
    let text = exec(&admin, &format!("show {id}"), None).await.stdout;
    assert!(
        text.contains(&format!(
            "ended     exit code 0; labbench sent SIGTERM (15) ({by})"
        )),
        "{text}"
    );
    assert!(
        last_reason(&e).ends_with("exited with status 0 after SIGTERM"),
        "{e}"
    );
}

#[tokio::test]
async fn a_timed_out_command_saves_its_checkpoint_on_sigterm() {
    let lab = start("[queue]\nkill_grace_secs = 120\n");
    let admin = common::session(&lab.server, &lab.admin).await;
    let (id, marker) = submit_checkpointer(&lab, &admin, "--time 2s").await;
    let out = exec(&admin, &format!("wait {id}"), None).await;
    assert_eq!(out.status, Some(124), "as timeout(1) reports: {out:?}");
    let e = json(
        &exec(&admin, &format!("show {id} --json"), None)
            .await
            .stdout,
    );
    assert_eq!(e["state"]["outcome"], "timed_out", "{e}");
    assert_eq!(e["state"]["exit_code"], 0, "{e}");
    assert_eq!(e["state"]["stop"]["signal"], 15, "{e}");
    assert!(
        e["state"]["stop"]["by"]
            .as_str()
            .is_some_and(|by| by.starts_with("wall time limit")),
        "{e}"
    );
    assert!(marker.exists(), "the checkpoint was not written");
    let out = exec(&admin, &format!("logs -f {id}"), None).await;
    assert_eq!(out.status, Some(124), "logs -f ends as wait does: {out:?}");
}

#[tokio::test]
async fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let lab = start("[queue]\nkill_grace_secs = 1\n");
    let admin = common::session(&lab.server, &lab.admin).await;
    let id = submit(
        &admin,
        "-- sh -c 'trap \"\" TERM; echo stubborn; while :; do sleep 1; done'",
    )
    .await;
    wait_for_output(&admin, id, "stubborn").await;
    exec(&admin, &format!("cancel {id}"), None).await;
    let e = wait_state(&admin, id).await;
    assert_eq!(e["state"]["outcome"], "cancelled", "{e}");
    assert_eq!(
        e["state"]["signal"], 9,
        "killed, and that was recorded: {e}"
    );
    assert_eq!(e["state"]["stop"]["signal"], 9, "{e}");
    assert!(
        last_reason(&e).ends_with("killed with SIGKILL: still running 1 s after SIGTERM"),
        "{e}"
    );
    let text = exec(&admin, &format!("show {id}"), None).await.stdout;
    assert!(
        text.contains("ended     killed by SIGKILL (9); labbench sent SIGKILL (9)"),
        "{text}"
    );
}

#[tokio::test]
async fn wait_tells_each_end_by_its_status() {
    let lab = start("");
    let admin = common::session(&lab.server, &lab.admin).await;
    let cases = [
        ("-- sh -c 'exit 3'", 3),
        ("-- sh -c 'kill -SEGV $$'", 128 + 11),
        ("-- true", 0),
    ];
    for (args, status) in cases {
        let id = submit(&admin, args).await;
        let out = exec(&admin, &format!("wait {id}"), None).await;
        assert_eq!(out.status, Some(status), "{args}: {out:?}");
        let out = exec(&admin, &format!("logs -f {id}"), None).await;
        assert_eq!(out.status, Some(status), "logs -f, {args}: {out:?}");
    }
    let long = submit(&admin, "-- sleep 60").await;
    let queued = submit(&admin, &format!("--after {long} -- true")).await;
    exec(&admin, &format!("cancel {queued} {long}"), None).await;
    let out = exec(&admin, &format!("wait {queued}"), None).await;
    assert_eq!(out.status, Some(130), "{out:?}");
    let text = exec(&admin, &format!("show {queued}"), None).await.stdout;
    assert!(text.contains("ended     never ran"), "{text}");
}
