//! A test lab: a server started with a configuration, its admin, and
//! helpers to submit experiments and wait for their ends.

use std::process::Command;
use std::time::Duration;

use russh::client::Handle;

use super::{Client, TestKey, TestServer, exec, session};

pub const QUEUE_USER: &str = "lbqueue";

pub fn is_root() -> bool {
    labbench::sys::process::is_root()
}

/// Fails a test marked `#[ignore]` for what this host lacks (`need`) when
/// it was run anyway: it is run on purpose (tools/test as root), so a
/// missing part is an error there, not a silent pass.
pub fn require(have: bool, need: &str) {
    assert!(have, "this test needs {need}, which this host lacks");
}

/// A supplementary group of the experiments' Unix user (checked in their runs).
pub const QUEUE_GROUP: &str = "lbqueuedata";

/// A Unix user for experiments (a regular account, created when root, with
/// a supplementary group), else the current user.
pub fn experiment_unix_user() -> String {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        if !is_root() {
            eprintln!("not root: experiments run as the current user");
            return labbench::server::invoking_user();
        }
        let run = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        assert!(run("groupadd", &["-f", QUEUE_GROUP]), "groupadd failed");
        if !run("id", &[QUEUE_USER]) {
            let created = run(
                "useradd",
                &["--create-home", "--shell", "/bin/sh", QUEUE_USER],
            );
            assert!(created, "useradd {QUEUE_USER} failed");
        }
        assert!(
            run("usermod", &["-aG", QUEUE_GROUP, QUEUE_USER]),
            "usermod failed"
        );
        QUEUE_USER.to_string()
    })
    .clone()
}

/// A regular Unix account `name` (created when root, with a home), else
/// the current user: for lab users whose experiments run.
pub fn unix_account(name: &str) -> String {
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !is_root() {
        return labbench::server::invoking_user();
    }
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    let exists = || {
        Command::new("id")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for _ in 0..10 {
        if exists() {
            return name.to_string();
        }
        // Another test binary may hold the account files' lock a moment.
        let _ = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", name])
            .status();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("useradd {name} failed");
}

/// Adds lab user `name` with `role`, mapped to the Unix account
/// `lb<name>` ([`unix_account`]), with a new key; their session.
pub async fn add_member(
    server: &TestServer,
    admin: &Handle<Client>,
    dir: &std::path::Path,
    name: &str,
    role: &str,
) -> Handle<Client> {
    let unix = unix_account(&format!("lb{name}"));
    let key = super::add_user_as(admin, dir, name, role, Some(&unix)).await;
    session(server, &key).await
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub server: TestServer,
    pub admin: TestKey,
}

pub fn start(config: &str) -> Lab {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let path = dir.path().join("labbench.toml");
    std::fs::write(&path, config).expect("config");
    let path = path.to_string_lossy().into_owned();
    let server =
        TestServer::start_with(&dir.path().join("data"), Some(&admin), &["--config", &path]);
    Lab { dir, server, admin }
}

/// The pids cgroup directory (v1 or v2, as this host has) that running
/// experiment `id` was recorded in.
pub async fn cgroup_dir(handle: &Handle<Client>, id: u64) -> std::path::PathBuf {
    for _ in 0..100 {
        let e = json(
            &exec(handle, &format!("show {id} --json"), None)
                .await
                .stdout,
        );
        if let Some(name) = e["state"]["cgroup"].as_str() {
            return labbench::exec::cgroup::ExperimentCgroup::path_of(name, "pids")
                .expect("cgroups are available");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("experiment {id} never ran in a cgroup");
}

/// Touches 500 MiB while asking for 100M.
pub const MEMORY_HOG: &str = "--mem 100M -- perl -e '$x = \"a\" x (500*1024*1024); sleep 30'";

/// The reason of an experiment's last transition.
pub fn last_reason(e: &serde_json::Value) -> String {
    e["transitions"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|t| t["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Member alice, whose experiments run as [`experiment_unix_user`]: her
/// session and that Unix user.
pub async fn experiment_user(lab: &Lab, admin: &Handle<Client>) -> (Handle<Client>, String) {
    let unix = experiment_unix_user();
    let out = exec(
        admin,
        &format!("user add alice --role member --unix-user {unix}"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let key = TestKey::generate(lab.dir.path(), "alice_key");
    exec(admin, "key add alice", Some(key.public_line.as_bytes())).await;
    (session(&lab.server, &key).await, unix)
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub async fn submit(handle: &Handle<Client>, args: &str) -> u64 {
    super::submit_id(handle, &format!("--workdir /tmp {args}")).await
}

pub async fn wait_state(handle: &Handle<Client>, id: u64) -> serde_json::Value {
    let out = exec(handle, &format!("wait {id}"), None).await;
    assert!(out.status.is_some(), "{out:?}");
    json(
        &exec(handle, &format!("show {id} --json"), None)
            .await
            .stdout,
    )
}

/// Waits until experiment `id` runs; its record then.
pub async fn wait_running(handle: &Handle<Client>, id: u64) -> serde_json::Value {
    for _ in 0..200 {
        let e = json(
            &exec(handle, &format!("show {id} --json"), None)
                .await
                .stdout,
        );
        if e["state"]["state"] == "running" {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("experiment {id} never ran");
}
