//! Unix accounts: which one a lab user's experiments run as, guarded
//! against system and shared accounts; what a daemon that is not root
//! runs; accounts that only the name service (NSS) knows.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::lab::{add_member, is_root, json, require, unix_account};
use common::{Options, TestKey, TestServer, exec, session};

#[tokio::test]
async fn a_root_daemon_maps_its_first_admin_to_no_account_unless_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin_key),
        &["--admin-unix-user", ""],
    );
    let admin = session(&server, &admin_key).await;
    let me = json(&exec(&admin, "whoami --json", None).await.stdout);
    if !is_root() {
        assert_eq!(me["unix_user"], labbench::server::invoking_user(), "{me}");
        return;
    }
    assert!(me["unix_user"].is_null(), "never root by default: {me}");
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("has no unix user yet")),
        "{:?}",
        server.banner
    );
    let out = exec(&admin, "submit --workdir /tmp -- true", None).await;
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("no Unix account is set"), "{out:?}");
    // Root only on purpose.
    let name = me["user"].as_str().expect("name").to_string();
    let out = exec(&admin, &format!("user set-unix {name} root"), None).await;
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("--allow-system-account"), "{out:?}");
    let out = exec(
        &admin,
        &format!("user set-unix {name} root --allow-system-account"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = exec(&admin, "submit --workdir /tmp -- true", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
}

#[tokio::test]
async fn system_and_shared_unix_accounts_need_an_explicit_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin_key));
    let admin = session(&server, &admin_key).await;
    let cases = [
        (
            "user add ops --role member --unix-user root",
            "system account",
        ),
        ("user add daemon --role member", "system account"),
    ];
    for (line, needle) in cases {
        let out = exec(&admin, line, None).await;
        assert_eq!(out.status, Some(1), "{line}: {out:?}");
        assert!(out.stderr.contains(needle), "{line}: {out:?}");
    }
    let users = json(&exec(&admin, "users --json", None).await.stdout);
    assert_eq!(
        users.as_array().map(Vec::len),
        Some(1),
        "nothing added: {users}"
    );
    if !is_root() {
        return;
    }
    let shared = unix_account("lbshared");
    let out = exec(
        &admin,
        &format!("user add mike --role member --unix-user {shared}"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = exec(
        &admin,
        &format!("user add mary --role member --unix-user {shared}"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("--allow-shared-unix-user"), "{out:?}");
    let out = exec(
        &admin,
        &format!("user add mary --role member --unix-user {shared} --allow-shared-unix-user"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn a_workdir_is_checked_as_the_owner_and_refused_alike_whatever_the_reason() {
    require(is_root(), "root, to make the owner's account");
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin_key));
    let admin = session(&server, &admin_key).await;
    let mike = add_member(&server, &admin, dir.path(), "mike", "member").await;
    let closed = tempfile::tempdir_in("/tmp").expect("closed dir");
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let secret = closed.path().join("secret-project");
    std::fs::create_dir(&secret).expect("mkdir");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let missing = closed.path().join("no-such-dir");
    let mut messages = Vec::new();
    for dir in [&secret, &missing] {
        let out = exec(
            &mike,
            &format!("submit --workdir {} -- true", dir.display()),
            None,
        )
        .await;
        assert_eq!(out.status, Some(1), "{out:?}");
        messages.push(out.stderr.replace(&dir.display().to_string(), "DIR"));
    }
    // Root could enter it; the owner's account cannot, and is told no more
    // than for a directory that does not exist.
    assert_eq!(messages[0], messages[1]);
    assert!(
        messages[0].contains("cannot enter and list it"),
        "{messages:?}"
    );
    let out = exec(&mike, "submit --workdir /tmp -- true", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
}

/// A regular account, its own temporary directory, and a key it can read.
fn daemon_user_setup() -> (String, tempfile::TempDir, TestKey) {
    require(is_root(), "root, to start a daemon as another user");
    let user = unix_account("lbdaemon");
    let dir = tempfile::tempdir().expect("tempdir");
    let chown = Command::new("chown")
        .args([&format!("{user}:"), &dir.path().display().to_string()])
        .status()
        .expect("chown");
    assert!(chown.success());
    let key = TestKey::generate(dir.path(), "admin_key");
    std::fs::set_permissions(&key.public_path, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    (user, dir, key)
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn a_daemon_not_running_as_root_runs_nothing_as_itself_unless_told() {
    let (user, dir, admin_key) = daemon_user_setup();
    let options = Options {
        run_as: Some(user.clone()),
        ..Options::default()
    };
    let data = dir.path().join("data");
    let server = TestServer::spawn(&data, Some(&admin_key), &[], &options);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("no experiment will run:")),
        "{:?}",
        server.banner
    );
    let admin = session(&server, &admin_key).await;
    let out = exec(&admin, "submit --workdir /tmp -- cat db/conf", None).await;
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains("run_as_daemon_user"), "{out:?}");
    // Its database is its own, whatever the umask.
    for entry in std::fs::read_dir(data.join("db")).expect("db") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            let mode = entry.metadata().expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{:?}", entry.path());
        }
    }
    drop(admin);
    server.stop();

    // Single-user mode, asked for.
    let config = dir.path().join("single.toml");
    std::fs::write(&config, "[queue]\nrun_as_daemon_user = true\n").expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let server = TestServer::spawn(
        &data,
        None,
        &["--config", &config.display().to_string()],
        &options,
    );
    let admin = session(&server, &admin_key).await;
    let id = common::submit_id(&admin, "--workdir /tmp -- id -un").await;
    exec(&admin, &format!("wait {id}"), None).await;
    let out = exec(&admin, &format!("logs {id}"), None).await;
    assert_eq!(out.stdout.trim(), user, "{out:?}");
}

/// Whether accounts can be added to the name service alone here
/// (libnss-extrausers, which `tools/test` sets up as root).
fn extrausers_ready() -> bool {
    let nss = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    is_root()
        && nss
            .lines()
            .any(|l| l.starts_with("passwd:") && l.contains("extrausers"))
        && std::path::Path::new("/var/lib/extrausers/passwd").exists()
}

/// A uid no account has, at or above 40000.
fn free_uid() -> u32 {
    (40_000 + std::process::id() % 10_000..)
        .find(|uid| {
            !Command::new("getent")
                .args(["passwd", &uid.to_string()])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a free uid")
}

/// Adds (or, with `None`, removes) the line of `name` in an extrausers file.
fn extrausers_line(file: &str, name: &str, line: Option<String>) {
    let path = format!("/var/lib/extrausers/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{name}:")))
        .map(str::to_string)
        .collect();
    lines.extend(line);
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write extrausers file");
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn an_account_only_the_name_service_knows_is_named_at_once_and_runs_experiments() {
    require(
        extrausers_ready(),
        "root and libnss-extrausers (tools/test sets both up)",
    );
    let uid = free_uid();
    let name = format!("lbnss{uid}");
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin_key));
    let admin = session(&server, &admin_key).await;
    // A process of an account that does not exist yet.
    let mut process = Command::new("sleep")
        .arg("60")
        .uid(uid)
        .gid(uid)
        .spawn()
        .expect("sleep as the new uid");
    let row_of = |usage: &serde_json::Value| {
        usage
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["uid"] == uid).cloned())
    };
    let mut unnamed = None;
    for _ in 0..100 {
        unnamed = row_of(&json(&exec(&admin, "usage --json", None).await.stdout));
        if unnamed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let unnamed = unnamed.expect("the process is seen");
    assert_eq!(unnamed["unix_user"], format!("uid {uid}"), "{unnamed}");
    // The account is made while the daemon runs, in the name service only.
    extrausers_line(
        "passwd",
        &name,
        Some(format!(
            "{name}:x:{uid}:{uid}:labbench NSS test:/tmp:/bin/sh"
        )),
    );
    extrausers_line("group", &name, Some(format!("{name}:x:{uid}:")));
    let mut named = None;
    for _ in 0..100 {
        named = row_of(&json(&exec(&admin, "usage --json", None).await.stdout))
            .filter(|row| row["unix_user"] == name.as_str());
        if named.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let named = named.expect("named soon after the account exists");
    assert!(named["processes"].as_u64() >= Some(1), "{named}");
    process.kill().ok();
    process.wait().ok();
    // Its experiments run as it.
    let out = exec(
        &admin,
        &format!("user add nss --role member --unix-user {name}"),
        None,
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let key = TestKey::generate(dir.path(), "nss_key");
    exec(&admin, "key add nss", Some(key.public_line.as_bytes())).await;
    let nss = session(&server, &key).await;
    let id = common::submit_id(&nss, "--workdir /tmp -- id -un").await;
    let out = exec(&nss, &format!("wait {id}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let out = exec(&nss, &format!("logs {id}"), None).await;
    assert_eq!(out.stdout.trim(), name, "{out:?}");
    extrausers_line("passwd", &name, None);
    extrausers_line("group", &name, None);
}
