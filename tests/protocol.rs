//! The SSH edge under attack: what ssh-audit finds, and that neither a
//! member holding sessions nor a flood of connections that never log in
//! locks anyone out (an admin always gets in).

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::lab::{add_member, json};
use common::{TestKey, TestServer, exec, session};

#[test]
fn ssh_audit_finds_nothing_but_the_documented_notice() {
    let audit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/ssh-audit-venv/bin/ssh-audit");
    assert!(
        audit.exists(),
        "ssh-audit is required for this test: run tools/test, which installs it into target/ssh-audit-venv"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin));
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ssh-audit.py"))
        .arg(&audit)
        .arg("127.0.0.1")
        .arg(server.addr.port().to_string())
        .output()
        .expect("run tests/ssh-audit.py");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh-audit found:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("mlkem768x25519-sha256"), "{report}");
}

/// A TCP connection to `server` from loopback address `source`.
async fn connect_from(
    source: [u8; 4],
    server: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(server).await
}

/// An address of this host other than loopback (every loopback address
/// counts as one source), added to `lo` for the test and removed after.
struct ExtraAddress([u8; 4]);

impl ExtraAddress {
    fn add() -> ExtraAddress {
        common::lab::require(
            common::lab::is_root(),
            "root, to add an address for a second source",
        );
        let address = [198, 18, 0, 1];
        let _ = Command::new("ip")
            .args(["addr", "add", "198.18.0.1/32", "dev", "lo"])
            .status();
        let listed = Command::new("ip")
            .args(["-4", "addr", "show", "dev", "lo"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("198.18.0.1"));
        assert!(listed, "cannot add 198.18.0.1 to lo (ip addr add)");
        ExtraAddress(address)
    }
}

impl Drop for ExtraAddress {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", "198.18.0.1/32", "dev", "lo"])
            .status();
    }
}

#[tokio::test]
#[ignore = "needs root: tools/test runs it as root with --include-ignored"]
async fn a_flood_of_connections_that_never_log_in_locks_nobody_out() {
    let attacker = ExtraAddress::add();
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin_key));
    // 1 030 idle connections from one address, held open.
    let mut held = Vec::new();
    for _ in 0..1030 {
        if let Ok(stream) = connect_from(attacker.0, server.addr).await {
            held.push(stream);
        }
    }
    // The server keeps at most max_startups_per_source (8) of them; the
    // rest were told so and closed (and the address is penalised for it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut open = 0;
    let mut refused = 0;
    for stream in &held {
        let mut buf = [0u8; 64];
        match stream.try_read(&mut buf) {
            // Admitted: the server's banner. Refused: "Exceeded MaxStartups"
            // or "Not allowed at this time", then the end.
            Ok(n) if buf[..n].starts_with(b"SSH-") => open += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            _ => refused += 1,
        }
    }
    assert!(
        open <= 8,
        "{open} connections kept from one address ({refused} refused)"
    );
    // The admin, and a member, log in from another address meanwhile.
    let admin = session(&server, &admin_key).await;
    let out = exec(&admin, "whoami", None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    let mike = add_member(&server, &admin, dir.path(), "mike", "member").await;
    assert_eq!(exec(&mike, "whoami", None).await.status, Some(0));
    // Once they end, the flooding address is refused for a while.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stream = connect_from(attacker.0, server.addr)
        .await
        .expect("connect");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "Not allowed at this time\r\n",
        "the flooding address is penalised"
    );
    let again = session(&server, &admin_key).await;
    assert_eq!(exec(&again, "whoami", None).await.status, Some(0));
}

#[tokio::test]
async fn a_member_with_several_keys_cannot_hold_everyones_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = TestKey::generate(dir.path(), "admin_key");
    let config = dir.path().join("limits.toml");
    // Small limits, so the test reaches them quickly.
    std::fs::write(
        &config,
        "[server]\nmax_sessions = 20\nmax_sessions_per_user = 6\nmax_connections = 12\n\
         max_connections_per_user = 3\nadmin_reserve = 2\n",
    )
    .expect("config");
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin_key),
        &["--config", &config.display().to_string()],
    );
    let admin = session(&server, &admin_key).await;
    let _mike = add_member(&server, &admin, dir.path(), "mike", "member").await;
    // Mike's second and third keys.
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = TestKey::generate(dir.path(), &format!("mike_extra_{i}"));
        let out = exec(&admin, "key add mike", Some(key.public_line.as_bytes())).await;
        assert_eq!(out.status, Some(0), "{out:?}");
        keys.push(key);
    }
    // He connects with every key as often as he can and opens every session he can.
    let mut connections = Vec::new();
    for key in &keys {
        for _ in 0..4 {
            let (handle, ok) = common::login(&server, key, "lab").await;
            if ok {
                connections.push(handle);
            }
        }
    }
    let mut channels = Vec::new();
    for handle in &connections {
        for _ in 0..16 {
            match handle.channel_open_session().await {
                Ok(channel) => channels.push(channel),
                Err(_) => break,
            }
        }
    }
    assert!(connections.len() <= 3, "{} connections", connections.len());
    assert!(channels.len() <= 6, "{} sessions", channels.len());
    // Others still get in and work.
    let out = exec(&admin, "whoami --json", None).await;
    assert_eq!(json(&out.stdout)["role"], "admin", "{out:?}");
    let mary = add_member(&server, &admin, dir.path(), "mary", "member").await;
    assert_eq!(exec(&mary, "whoami", None).await.status, Some(0));
}

#[test]
fn putty_and_dropbear_clients_log_in_with_the_algorithms_offered() {
    for tool in ["plink", "puttygen", "dbclient", "dropbearconvert"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is required for this test: tools/test installs putty-tools and dropbear-bin"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin));
    let port = server.addr.port().to_string();
    let ppk = dir.path().join("admin.ppk");
    let converted = Command::new("puttygen")
        .arg(&admin.private_path)
        .args(["-O", "private", "-o"])
        .arg(&ppk)
        .status()
        .expect("puttygen");
    assert!(converted.success());
    let plink = Command::new("plink")
        .args([
            "-batch",
            "-hostkey",
            &server.host_fingerprint,
            "-P",
            &port,
            "-i",
        ])
        .arg(&ppk)
        .args(["lab@127.0.0.1", "whoami"])
        .output()
        .expect("plink");
    assert!(plink.status.success(), "plink: {plink:?}");
    assert!(
        String::from_utf8_lossy(&plink.stdout).contains("(admin)"),
        "{plink:?}"
    );

    let dropbear_key = dir.path().join("admin.dropbear");
    let converted = Command::new("dropbearconvert")
        .args(["openssh", "dropbear"])
        .arg(&admin.private_path)
        .arg(&dropbear_key)
        .output()
        .expect("dropbearconvert");
    assert!(converted.status.success(), "{converted:?}");
    // dbclient reads known hosts from the account's real home: it accepts
    // the unknown key (-y) and prints its fingerprint, checked below.
    let dbclient = Command::new("dbclient")
        .args(["-y", "-p", &port, "-i"])
        .arg(&dropbear_key)
        .args(["lab@127.0.0.1", "whoami"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("dbclient");
    assert!(dbclient.status.success(), "dbclient: {dbclient:?}");
    assert!(
        String::from_utf8_lossy(&dbclient.stdout).contains("(admin)"),
        "{dbclient:?}"
    );
}

#[tokio::test]
async fn a_connection_that_never_says_a_word_is_dropped_after_the_login_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let config = dir.path().join("grace.toml");
    std::fs::write(&config, "[server]\nlogin_grace_secs = 1\n").expect("config");
    let server = TestServer::start_with(
        &dir.path().join("data"),
        Some(&admin),
        &["--config", &config.display().to_string()],
    );
    // Not even a version line is sent.
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut heard = Vec::new();
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut heard),
    )
    .await;
    assert!(
        ended.is_ok(),
        "still open after 10 s: {:?}",
        String::from_utf8_lossy(&heard)
    );
}
