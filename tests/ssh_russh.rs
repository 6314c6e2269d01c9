//! End to end through a real `labbench serve` and the in-process russh client.

mod common;

use std::time::Duration;

use common::{TestKey, TestServer, add_user, connect, exec, login, login_with, session, submit_id};
use russh::ChannelMsg;

fn setup() -> (tempfile::TempDir, TestKey, TestServer) {
    setup_with_config("")
}

/// A server whose config file holds `toml` (other keys default).
fn setup_with_config(toml: &str) -> (tempfile::TempDir, TestKey, TestServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let config = dir.path().join("labbench.toml");
    std::fs::write(&config, toml).expect("write config");
    let config = config.to_string_lossy().into_owned();
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin),
        &["--config", &config],
    );
    (dir, admin, server)
}

#[tokio::test]
async fn registered_key_whoami_json_is_right() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let out = exec(&handle, "whoami --json", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let me = labbench::server::invoking_user();
    assert_eq!(v["user"], me.as_str());
    assert_eq!(v["role"], "admin");
    assert_eq!(v["unix_user"], me.as_str());
    assert_eq!(v["key_fingerprint"], admin.fingerprint.as_str());
}

#[tokio::test]
async fn unknown_key_is_refused_at_authentication() {
    let (dir, _admin, server) = setup();
    let stranger = TestKey::generate(dir.path(), "stranger");
    let (_handle, ok) = login(&server, &stranger, "lab").await;
    assert!(!ok, "an unregistered key must be refused");
}

#[tokio::test]
async fn password_authentication_is_refused() {
    let (_dir, _admin, server) = setup();
    let mut handle = connect(&server).await;
    let result = handle
        .authenticate_password("lab", "hunter2")
        .await
        .expect("exchange");
    assert!(!result.success());
    if let russh::client::AuthResult::Failure {
        remaining_methods, ..
    } = result
    {
        let offered: Vec<russh::MethodKind> = remaining_methods.iter().copied().collect();
        assert_eq!(offered, vec![russh::MethodKind::PublicKey]);
    }
}

#[tokio::test]
async fn wrong_ssh_user_name_is_refused() {
    let (_dir, admin, server) = setup();
    let (_handle, ok) = login(&server, &admin, "root").await;
    assert!(!ok, "only the configured SSH user name (lab) is accepted");
}

#[tokio::test]
async fn unknown_command_exits_2_with_a_hint() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let out = exec(&handle, "launch-rockets --now", None).await;
    assert_eq!(out.status, Some(2), "{out:?}");
    assert!(out.stderr.contains("launch-rockets"), "{out:?}");
    assert!(out.stderr.contains("hint:"), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn viewer_user_add_exits_77_and_changes_nothing() {
    let (dir, admin, server) = setup();
    let admin_handle = session(&server, &admin).await;
    let viewer = add_user(&admin_handle, dir.path(), "vera", "viewer").await;
    let before = exec(&admin_handle, "users --json", None).await.stdout;

    let viewer_handle = session(&server, &viewer).await;
    let out = exec(&viewer_handle, "user add mallory --role admin", None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    let out = exec(&viewer_handle, "user set-role vera admin", None).await;
    assert_eq!(out.status, Some(77), "{out:?}");

    let after = exec(&admin_handle, "users --json", None).await.stdout;
    assert_eq!(before, after);
}

#[tokio::test]
async fn member_cannot_touch_other_users_keys() {
    let (dir, admin, server) = setup();
    let admin_handle = session(&server, &admin).await;
    let member = add_user(&admin_handle, dir.path(), "mike", "member").await;
    let member_handle = session(&server, &member).await;
    let me = labbench::server::invoking_user();
    let out = exec(&member_handle, &format!("keys {me}"), None).await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let out = exec(
        &member_handle,
        &format!("key rm {me} {}", admin.fingerprint),
        None,
    )
    .await;
    assert_eq!(out.status, Some(77), "{out:?}");
    let out = exec(&member_handle, "keys --json", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out.stdout.contains(&member.fingerprint));
}

#[tokio::test]
async fn removing_own_last_key_is_refused_clearly() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let me = labbench::server::invoking_user();
    let out = exec(&handle, &format!("key rm {me} {}", admin.fingerprint), None).await;
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("locked out"), "{out:?}");
    // Still able to log in with it.
    let again = session(&server, &admin).await;
    assert_eq!(exec(&again, "whoami", None).await.status, Some(0));
}

#[tokio::test]
async fn exec_command_over_the_limit_gets_a_clear_error() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let long = format!("users {}", "x".repeat(10_000));
    let out = exec(&handle, &long, None).await;
    assert_eq!(out.status, Some(2), "{out:?}");
    assert!(out.stderr.contains("limit is 8192 bytes"), "{out:?}");
}

#[tokio::test]
async fn oversized_stdin_is_refused_and_nothing_added() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let me = labbench::server::invoking_user();
    let huge = vec![b'k'; 200_000];
    let out = exec(&handle, &format!("key add {me}"), Some(&huge)).await;
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("larger than the limit"), "{out:?}");
    let keys = exec(&handle, "keys --json", None).await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&keys.stdout).expect("json");
    assert_eq!(list.len(), 1);
}

/// Opens a pty + shell and returns the channel.
async fn open_tui(
    handle: &russh::client::Handle<common::Client>,
    cols: u32,
    rows: u32,
) -> russh::Channel<russh::client::Msg> {
    let channel = handle.channel_open_session().await.expect("open");
    channel
        .request_pty(true, "xterm-256color", cols, rows, 0, 0, &[])
        .await
        .expect("pty");
    channel.request_shell(true).await.expect("shell");
    channel
}

/// Reads channel data until `needle` appears (as text) or the timeout passes.
async fn read_until(
    channel: &mut russh::Channel<russh::client::Msg>,
    needle: &str,
    timeout: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = String::new();
    loop {
        match tokio::time::timeout_at(deadline, channel.wait()).await {
            Ok(Some(ChannelMsg::Data { data })) => {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains(needle) {
                    return Some(seen);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn tui_survives_random_bytes_and_broken_escape_sequences() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let tui = open_tui(&handle, 100, 30).await;
    // Read frames concurrently: a client that stops reading stalls its own connection.
    let (mut reader, writer) = tui.split();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen_by_reader = seen.clone();
    let mut reading = tokio::spawn(async move {
        let mut status = None;
        while let Some(msg) = reader.wait().await {
            match msg {
                ChannelMsg::Data { data } => seen_by_reader
                    .lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&data)),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        status
    });
    let wait_for = |needle: &'static str| {
        let seen = seen.clone();
        async move {
            for _ in 0..200 {
                {
                    let mut text = seen.lock().expect("lock");
                    if text.contains(needle) {
                        text.clear();
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(wait_for("Dashboard").await, "no first frame");

    // A deterministic xorshift stream of bytes, with escape fragments mixed in,
    // but never a bare 'q' or Ctrl-C (which would legitimately quit).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let fragments: [&[u8]; 8] = [
        b"\x1b",
        b"\x1b[",
        b"\x1b[1;",
        b"\x1b[<0;",
        b"\x1bO",
        b"\x1b]0;title",
        b"\x1b[200~",
        b"\xe2\x82",
    ];
    for round in 0..200 {
        let mut chunk = Vec::new();
        for _ in 0..64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let byte = (state & 0xff) as u8;
            if byte == b'q' || byte == 3 {
                continue;
            }
            chunk.push(byte);
        }
        chunk.extend_from_slice(fragments[round % fragments.len()]);
        writer.data_bytes(chunk).await.expect("send garbage");
    }
    // The server still answers on a fresh channel and the TUI still draws.
    let out = exec(&handle, "whoami", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    writer.window_change(120, 40, 0, 0).await.expect("resize");
    assert!(
        wait_for("Users (").await,
        "the session stopped drawing after garbage input"
    );
    // Finish any half-typed sequence, close whatever the garbage opened (a
    // form or prompt takes `q` as text), then quit.
    // On a loaded machine an ESC and the `q` after it can arrive in one read
    // and form Alt-q, which does not quit: then, like a person, press again.
    writer.data_bytes(&b"~~~~~~~~"[..]).await.expect("flush");
    let mut ended = None;
    for _ in 0..5 {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer.data_bytes(&b"\x1b"[..]).await.expect("escape");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.data_bytes(&b"q"[..]).await.expect("quit");
        if let Ok(result) = tokio::time::timeout(Duration::from_secs(2), &mut reading).await {
            ended = Some(result.expect("reader"));
            break;
        }
    }
    let status = ended.unwrap_or_else(|| {
        let text = seen.lock().expect("lock").clone();
        let tail: String = text
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("session did not end after q; last output: {tail:?}")
    });
    assert_eq!(status, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_all_receive_frames() {
    let (_dir, admin, server) = setup_with_config(
        "[server]\nmax_connections_per_key = 64\nmax_connections_per_user = 64\n",
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let handle = session(&server, &admin).await;
        tasks.push(tokio::spawn(async move {
            let mut tui = open_tui(&handle, 80 + (i % 3), 24).await;
            let frame = read_until(&mut tui, "Dashboard", Duration::from_secs(60)).await;
            (handle, tui, frame.is_some())
        }));
    }
    let mut received = 0;
    let mut keep = Vec::new();
    for task in tasks {
        let (handle, tui, ok) = task.await.expect("task");
        received += usize::from(ok);
        keep.push((handle, tui));
    }
    assert_eq!(received, 50, "every session must get a first frame");
}

#[tokio::test]
async fn shell_without_pty_gets_a_clear_message() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let mut channel = handle.channel_open_session().await.expect("open");
    channel.request_shell(true).await.expect("shell");
    let mut stderr = String::new();
    let mut status = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), channel.wait()).await {
        match msg {
            ChannelMsg::ExtendedData { data, .. } => {
                stderr.push_str(&String::from_utf8_lossy(&data))
            }
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    assert_eq!(status, Some(2));
    assert!(stderr.contains("ssh -t"), "{stderr}");
}

#[tokio::test]
async fn connections_per_key_are_limited() {
    let (_dir, admin, server) = setup_with_config("[server]\nmax_connections_per_key = 2\n");
    let first = session(&server, &admin).await;
    let _second = session(&server, &admin).await;
    let (_third, ok) = login(&server, &admin, "lab").await;
    assert!(!ok, "a third connection with the same key must be refused");
    drop(first);
    // The slot is released once the first connection is gone.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if login(&server, &admin, "lab").await.1 {
            ok = true;
            break;
        }
    }
    assert!(ok, "slot not released after disconnect");
}

#[tokio::test]
async fn a_removed_key_loses_its_open_connection() {
    let (dir, admin, server) = setup();
    let admin_handle = session(&server, &admin).await;
    let mike = add_user(&admin_handle, dir.path(), "mike", "member").await;
    let mike_handle = session(&server, &mike).await;
    assert_eq!(exec(&mike_handle, "whoami", None).await.status, Some(0));
    let out = exec(
        &admin_handle,
        &format!("key rm mike {}", mike.fingerprint),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        common::closed_soon(&mike_handle).await,
        "the connection of a removed key stays open"
    );
    assert!(mike_handle.channel_open_session().await.is_err());
}

#[tokio::test]
async fn channels_per_connection_are_limited() {
    let (_dir, admin, server) = setup_with_config("[server]\nmax_channels_per_connection = 2\n");
    let handle = session(&server, &admin).await;
    let _a = handle.channel_open_session().await.expect("first");
    let _b = handle.channel_open_session().await.expect("second");
    assert!(
        handle.channel_open_session().await.is_err(),
        "a third channel on one connection must be refused"
    );
}

#[tokio::test]
async fn key_comments_with_escape_sequences_are_neutralised() {
    let (dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let out = exec(&handle, "user add eve --role member", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let eve = TestKey::generate(dir.path(), "eve_key");
    let hostile = format!("{} eve\u{1b}]0;pwned\u{7}\u{1b}[2J", eve.public_line.trim());
    let out = exec(&handle, "key add eve", Some(hostile.as_bytes())).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = exec(&handle, "keys eve", None).await;
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    assert!(out.stdout.contains("eve]0;pwned"), "{:?}", out.stdout);
}

/// What a client saw on one exec channel, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Out(usize),
    Status(u32),
    Eof,
}

/// Runs `command` and notes what arrived, in order, until the channel closed.
async fn exec_seen(
    handle: &russh::client::Handle<common::Client>,
    command: &str,
) -> (String, Vec<Seen>) {
    let mut channel = handle.channel_open_session().await.expect("open");
    channel.exec(true, command).await.expect("exec");
    let (mut text, mut seen) = (String::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(msg) = tokio::time::timeout_at(deadline, channel.wait())
        .await
        .expect("reply in time")
    {
        match msg {
            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                text.push_str(&String::from_utf8_lossy(&data));
                seen.push(Seen::Out(data.len()));
            }
            ChannelMsg::ExitStatus { exit_status } => seen.push(Seen::Status(exit_status)),
            ChannelMsg::Eof => seen.push(Seen::Eof),
            _ => {}
        }
    }
    (text, seen)
}

/// A quick command's reply leaves in one write with the request's answer;
/// one over 32 KiB, or more than the client's window takes, goes out with
/// back-pressure instead. Either way the client gets all the output, then
/// the exit status, then EOF.
#[tokio::test]
async fn replies_arrive_whole_and_in_order_however_they_are_written() {
    let (_dir, admin, server) = setup_with_config("[server]\nmax_exec_command_bytes = 100000\n");
    let handle = session(&server, &admin).await;
    let small = submit_id(&handle, "--workdir /tmp -- true").await;
    let word = |n| "x".repeat(n);
    let middle = submit_id(&handle, &format!("--workdir /tmp -- echo {}", word(20_000))).await;
    let large = submit_id(&handle, &format!("--workdir /tmp -- echo {}", word(40_000))).await;
    // A client whose window takes 4 KiB at a time.
    let narrow_window = russh::client::Config {
        window_size: 4096,
        ..Default::default()
    };
    let (narrow, ok) = login_with(&server, &admin, "lab", narrow_window).await;
    assert!(ok);
    for (client, id, length) in [
        (&handle, small, 0),
        (&handle, middle, 20_000),
        (&handle, large, 40_000),
        (&narrow, middle, 20_000),
    ] {
        let (text, seen) = exec_seen(client, &format!("show {id} --json")).await;
        let shown: serde_json::Value = serde_json::from_str(&text).expect("whole JSON");
        assert_eq!(shown["id"].as_u64(), Some(id));
        assert!(length == 0 || text.contains(&word(length)), "{id}");
        let output: usize = seen
            .iter()
            .map(|s| if let Seen::Out(n) = s { *n } else { 0 })
            .sum();
        assert_eq!(output, text.len());
        let tail: Vec<&Seen> = seen.iter().filter(|s| !matches!(s, Seen::Out(_))).collect();
        assert_eq!(tail, [&Seen::Status(0), &Seen::Eof], "{id}: {seen:?}");
        assert!(
            matches!(seen[seen.len() - 2..], [Seen::Status(0), Seen::Eof]),
            "output after the status: {seen:?}"
        );
    }
    let (text, seen) = exec_seen(&handle, "show 999999").await;
    assert!(text.contains("999999"), "{text}");
    assert!(
        matches!(seen[..], [Seen::Out(_), Seen::Status(s), Seen::Eof] if s != 0),
        "{seen:?}"
    );
}

/// With a pty, a command's lines end in CRLF (the client does not translate)
/// and the exit status and the channel's end still follow.
#[tokio::test]
async fn a_command_with_a_pty_gets_crlf_lines_and_its_status() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    let id = submit_id(&handle, "--workdir /tmp -- true").await;
    let mut channel = handle.channel_open_session().await.expect("open");
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .expect("pty");
    channel
        .exec(true, format!("show {id}"))
        .await
        .expect("exec");
    let (mut text, mut status) = (String::new(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(msg) = tokio::time::timeout_at(deadline, channel.wait())
        .await
        .expect("reply in time")
    {
        match msg {
            ChannelMsg::Data { data } => text.push_str(&String::from_utf8_lossy(&data)),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    assert_eq!(status, Some(0), "{text}");
    assert!(text.lines().count() > 3, "{text}");
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "{text:?}"
    );
}

#[tokio::test]
async fn many_commands_in_sequence_on_one_connection() {
    let (_dir, admin, server) = setup();
    let handle = session(&server, &admin).await;
    for i in 0..40 {
        let out = exec(&handle, "version", None).await;
        assert_eq!(out.status, Some(0), "command {i}: {out:?}");
    }
}
