//! Server lifecycle: persistence across restarts, the data-directory lock,
//! configuration errors, and local (on-host) commands.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{LABBENCH, TestKey, TestServer, add_user, exec, session};

#[tokio::test]
async fn users_keys_and_host_key_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&data, Some(&admin));
    let first_host_key = server.host_key_line.clone();
    let handle = session(&server, &admin).await;
    let carol = add_user(&handle, dir.path(), "carol", "member").await;
    drop(handle);
    server.stop();

    let server = TestServer::start(&data, None);
    assert_eq!(server.host_key_line, first_host_key, "host key changed");
    assert!(
        server.banner.iter().all(|l| !l.starts_with("first start")),
        "bootstrap ran twice: {:?}",
        server.banner
    );
    let handle = session(&server, &carol).await;
    let out = exec(&handle, "whoami --json", None).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["user"], "carol");
    assert_eq!(v["role"], "member");
}

#[test]
fn second_server_on_the_same_data_directory_fails_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let _server = TestServer::start(&data, Some(&admin));
    let started = Instant::now();
    let out = Command::new(LABBENCH)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("HOME", dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the second server hung instead of failing"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another labbench process"), "{err}");
}

#[test]
fn local_commands_refuse_while_the_server_holds_the_lock_and_work_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&data, Some(&admin));
    let out = Command::new(LABBENCH)
        .arg("users")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ssh"), "{err}");
    server.stop();

    let out = Command::new(LABBENCH)
        .args(["user", "add", "dave", "--role", "viewer", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(LABBENCH)
        .args(["users", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    let users: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        users
            .iter()
            .any(|u| u["name"] == "dave" && u["role"] == "viewer")
    );
}

#[test]
fn invalid_config_exits_2_naming_key_and_line_before_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nssh_user = \"lab\"\nmax_sessions = -3\n").expect("write");
    let data = dir.path().join("data");
    let out = Command::new(LABBENCH)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("server.max_sessions"), "{err}");
    assert!(!data.exists(), "nothing may start on an invalid config");

    let out = Command::new(LABBENCH)
        .arg("serve")
        .env("LABBENCH_CONFIG", dir.path().join("missing.toml"))
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = Command::new(LABBENCH)
        .args(["serve", "--frobnicate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn first_start_without_any_key_generates_one_and_prints_how_to_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = TestServer::start(&data, None);
    let ssh_dir = data.with_extension("home").join(".ssh");
    let generated = ssh_dir.join(labbench::server::GENERATED_ADMIN_KEY);
    assert!(generated.exists());
    // Nothing of it in the data directory, where experiments could reach it.
    let mut stack = vec![data.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path != data.join("ssh_host_ed25519_key") {
                let text = std::fs::read(&path).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&text).contains("PRIVATE KEY"),
                    "a private key in the data directory: {path:?}"
                );
            }
        }
    }
    let connect = server.banner.last().expect("banner");
    assert!(
        connect.contains(&format!("-i {}", generated.display())),
        "{connect}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&generated)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&ssh_dir)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}
