//! Shared fixtures for end-to-end tests: a real `labbench serve` process,
//! generated client keys, and an in-process russh client.
#![allow(dead_code)]

pub mod lab;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, client::Handle};

/// Path of the binary under test.
pub const LABBENCH: &str = env!("CARGO_BIN_EXE_labbench");

/// A client key pair written to disk (for OpenSSH) and kept in memory (for russh).
pub struct TestKey {
    pub private: Arc<PrivateKey>,
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub public_line: String,
    pub fingerprint: String,
}

impl TestKey {
    pub fn generate(dir: &Path, name: &str) -> TestKey {
        let key = labbench::ssh::generate_ed25519(name).expect("generate key");
        let private_path = dir.join(name);
        labbench::ssh::write_private_key(&private_path, &key).expect("write key");
        let public_line = key.public_key().to_openssh().expect("public");
        let public_path = dir.join(format!("{name}.pub"));
        std::fs::write(&public_path, format!("{public_line}\n")).expect("write pub");
        let fingerprint = labbench::model::PublicKeyInfo::from_key(key.public_key())
            .expect("info")
            .fingerprint;
        TestKey {
            private: Arc::new(key),
            private_path,
            public_path,
            public_line,
            fingerprint,
        }
    }
}

/// How [`TestServer::spawn`] starts a server.
#[derive(Debug, Default)]
pub struct Options {
    /// Log from INFO up to this file (else warnings to the test's stderr).
    pub log: Option<PathBuf>,
    /// Run as this Unix user (with `runuser`; the tests run as root).
    pub run_as: Option<String>,
    /// The server's time zone (`TZ`).
    pub tz: Option<String>,
}

/// A running `labbench serve` child process on a random loopback port.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub host_key_line: String,
    pub host_fingerprint: String,
    pub data_dir: PathBuf,
    pub banner: Vec<String>,
}

impl TestServer {
    /// Starts a server on `data_dir`; `admin` is used on first start.
    pub fn start(data_dir: &Path, admin: Option<&TestKey>) -> TestServer {
        Self::start_with(data_dir, admin, &[])
    }

    /// Starts a server with extra `serve` arguments (e.g. `--config FILE`).
    pub fn start_with(data_dir: &Path, admin: Option<&TestKey>, extra: &[&str]) -> TestServer {
        Self::spawn(data_dir, admin, extra, &Options::default())
    }

    /// [`TestServer::start_with`], logging everything from INFO up to `log`.
    pub fn start_logged(
        data_dir: &Path,
        admin: Option<&TestKey>,
        extra: &[&str],
        log: &Path,
    ) -> TestServer {
        let options = Options {
            log: Some(log.to_path_buf()),
            ..Options::default()
        };
        Self::spawn(data_dir, admin, extra, &options)
    }

    /// Starts a server with extra `serve` arguments and `options`.
    pub fn spawn(
        data_dir: &Path,
        admin: Option<&TestKey>,
        extra: &[&str],
        options: &Options,
    ) -> TestServer {
        // A home of its own: no keys of the tester's are found there, and
        // a generated admin key goes there (never into the data directory).
        let home = data_dir.with_extension("home");
        std::fs::create_dir_all(&home).expect("home");
        let mut command = match &options.run_as {
            Some(user) => {
                let mut runuser = Command::new("runuser");
                runuser.args(["-u", user, "--", LABBENCH]);
                runuser
            }
            None => Command::new(LABBENCH),
        };
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("HOME", &home)
            .env_remove("LABBENCH_CONFIG")
            .env("LABBENCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !extra.contains(&"--admin-unix-user") {
            // The tests' admin runs experiments as the tester (root in CI),
            // or as the daemon's own user when it runs as another.
            let unix_user = options
                .run_as
                .clone()
                .unwrap_or_else(labbench::server::invoking_user);
            command.arg("--admin-unix-user").arg(unix_user);
        }
        if let Some(tz) = &options.tz {
            command.env("TZ", tz);
        }
        if let Some(log) = &options.log {
            command
                .env("LABBENCH_LOG", "info")
                .stderr(std::fs::File::create(log).expect("log file"));
        }
        if let Some(key) = admin {
            command.arg("--admin-key").arg(&key.public_path);
        }
        let mut child = command.spawn().expect("spawn labbench serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("server did not print its banner; got {banner:?}"));
            let done = line.starts_with("connect with:");
            banner.push(line);
            if done {
                break;
            }
        }
        let find = |prefix: &str| {
            banner
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in {banner:?}"))
                .to_string()
        };
        let addr: SocketAddr = find("listening on ").parse().expect("address");
        let known = find("known_hosts line: ");
        let host_key_line = known
            .split_once(' ')
            .expect("known_hosts line")
            .1
            .to_string();
        let host_fingerprint = find("host key ")
            .split_whitespace()
            .next()
            .expect("fingerprint")
            .to_string();
        TestServer {
            child,
            addr,
            host_key_line,
            host_fingerprint,
            data_dir: data_dir.to_path_buf(),
            banner,
        }
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(mut self) {
        terminate(&mut self.child);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A known_hosts file trusting exactly this server's printed host key.
    pub fn known_hosts(&self, dir: &Path) -> PathBuf {
        let path = dir.join("known_hosts");
        std::fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.addr.port(), self.host_key_line),
        )
        .expect("write known_hosts");
        path
    }
}

impl Drop for TestServer {
    /// Stops the server as `stop` does, so that it removes what it keeps
    /// in the host's cgroup hierarchies.
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Ends a server with SIGTERM (it then removes its cgroups); SIGKILL if it
/// is still there after 5 s.
fn terminate(child: &mut std::process::Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// russh client handler that accepts only the expected host key.
pub struct Client {
    expected_fingerprint: Option<String>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let fingerprint = labbench::model::PublicKeyInfo::from_key(key)
            .map(|k| k.fingerprint)
            .unwrap_or_default();
        Ok(self
            .expected_fingerprint
            .as_ref()
            .is_none_or(|expected| *expected == fingerprint))
    }
}

impl Client {
    /// A handler that accepts only the host key with this fingerprint.
    pub fn pinned(fingerprint: String) -> Client {
        Client {
            expected_fingerprint: Some(fingerprint),
        }
    }
}

/// A size from the environment variable `name` (benches), else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Opens an SSH connection (no authentication yet), checking the host key.
pub async fn connect(server: &TestServer) -> Handle<Client> {
    connect_with(server, client::Config::default()).await
}

/// [`connect`] with this client configuration (e.g. a small channel window).
pub async fn connect_with(server: &TestServer, config: client::Config) -> Handle<Client> {
    let config = Arc::new(client::Config {
        nodelay: true,
        ..config
    });
    client::connect(
        config,
        server.addr,
        Client {
            expected_fingerprint: Some(server.host_fingerprint.clone()),
        },
    )
    .await
    .expect("connect")
}

/// Connects and authenticates as `user` with `key`; returns the auth outcome too.
pub async fn login(server: &TestServer, key: &TestKey, user: &str) -> (Handle<Client>, bool) {
    login_with(server, key, user, client::Config::default()).await
}

/// [`login`] with this client configuration.
pub async fn login_with(
    server: &TestServer,
    key: &TestKey,
    user: &str,
    config: client::Config,
) -> (Handle<Client>, bool) {
    let mut handle = connect_with(server, config).await;
    let ok = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.private.clone(), None))
        .await
        .expect("auth exchange")
        .success();
    (handle, ok)
}

/// Connects as `lab` with `key`, panicking if refused.
pub async fn session(server: &TestServer, key: &TestKey) -> Handle<Client> {
    let (handle, ok) = login(server, key, "lab").await;
    assert!(ok, "key {} was refused", key.fingerprint);
    handle
}

/// Whether the server closes `handle`'s connection within 10 s.
pub async fn closed_soon(handle: &Handle<Client>) -> bool {
    for _ in 0..200 {
        if handle.is_closed() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The result of an exec.
#[derive(Debug, Default)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<u32>,
}

/// Runs `submit --json ARGS`, which must succeed; the new experiment's id.
pub async fn submit_id(handle: &Handle<Client>, args: &str) -> u64 {
    let out = exec(handle, &format!("submit --json {args}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["id"].as_u64())
        .unwrap_or_else(|| panic!("no id in {out:?}"))
}

/// Runs `command` over exec with optional stdin, collecting output and status.
pub async fn exec(handle: &Handle<Client>, command: &str, stdin: Option<&[u8]>) -> ExecResult {
    let mut channel = handle.channel_open_session().await.expect("open session");
    channel.exec(true, command).await.expect("exec");
    if let Some(input) = stdin {
        channel.data_bytes(input.to_vec()).await.expect("stdin");
    }
    channel.eof().await.expect("eof");
    let mut result = ExecResult::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, channel.wait())
            .await
            .expect("exec timed out");
        match msg {
            Some(ChannelMsg::Data { data }) => {
                result.stdout.push_str(&String::from_utf8_lossy(&data))
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                result.stderr.push_str(&String::from_utf8_lossy(&data))
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => result.status = Some(exit_status),
            Some(_) => {}
            None => break,
        }
    }
    result
}

/// Registers a user with a fresh key through the admin's session.
pub async fn add_user(admin: &Handle<Client>, dir: &Path, name: &str, role: &str) -> TestKey {
    add_user_as(admin, dir, name, role, None).await
}

/// [`add_user`] mapped to Unix account `unix` (default: the name).
pub async fn add_user_as(
    admin: &Handle<Client>,
    dir: &Path,
    name: &str,
    role: &str,
    unix: Option<&str>,
) -> TestKey {
    let unix = unix
        .map(|u| format!(" --unix-user {u}"))
        .unwrap_or_default();
    let out = exec(admin, &format!("user add {name} --role {role}{unix}"), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let key = TestKey::generate(dir, &format!("{name}_key"));
    let out = exec(
        admin,
        &format!("key add {name}"),
        Some(key.public_line.as_bytes()),
    )
    .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    key
}

/// A scratch directory for a benchmark's data dir (its name starts with
/// `prefix`), outside `/tmp` by default: after a test run has created and
/// deleted thousands of temporary directories there, ext4 spends ~0.8 ms
/// per new inode in /tmp's block group (checking recently deleted inodes)
/// against ~0.01 ms elsewhere on the same disk, which measured the test
/// suite's churn rather than labbench. `LABBENCH_BENCH_DIR` overrides.
pub fn bench_dir(prefix: &str) -> tempfile::TempDir {
    let parent = std::env::var_os("LABBENCH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let _ = std::fs::create_dir_all(&parent);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .expect("bench directory")
}
