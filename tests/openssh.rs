//! End to end with the stock OpenSSH client, and the TUI driven under tmux.
//!
//! Needs `ssh` and `tmux` on PATH (`.ci/run` installs openssh-client and tmux).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{TestKey, TestServer};

fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required for this test: apt-get install openssh-client tmux (see .ci/run)"
    );
}

/// The `ssh` arguments for this server, trusting only its printed host key.
fn ssh_args(server: &TestServer, key: &TestKey, known_hosts: &Path) -> Vec<String> {
    vec![
        "-F".into(),
        "/dev/null".into(),
        "-i".into(),
        key.private_path.display().to_string(),
        "-p".into(),
        server.addr.port().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]
}

fn ssh(server: &TestServer, key: &TestKey, known_hosts: &Path, command: &[&str]) -> Output {
    Command::new("ssh")
        .args(ssh_args(server, key, known_hosts))
        .arg("lab@127.0.0.1")
        .args(command)
        .output()
        .expect("run ssh")
}

struct Setup {
    dir: tempfile::TempDir,
    admin: TestKey,
    server: TestServer,
    known_hosts: PathBuf,
}

impl Setup {
    /// Runs `ssh lab@host ARGS…` as the admin.
    fn as_admin(&self, args: &[&str]) -> Output {
        ssh(&self.server, &self.admin, &self.known_hosts, args)
    }
}

fn setup() -> Setup {
    require("ssh");
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = TestKey::generate(dir.path(), "admin_key");
    let server = TestServer::start(&dir.path().join("data"), Some(&admin));
    let known_hosts = server.known_hosts(dir.path());
    Setup {
        dir,
        admin,
        server,
        known_hosts,
    }
}

#[test]
fn openssh_exec_whoami_works_and_returns_status() {
    let s = setup();
    let out = ssh(&s.server, &s.admin, &s.known_hosts, &["whoami", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["role"], "admin");
    assert_eq!(v["key_fingerprint"], s.admin.fingerprint.as_str());

    let out = ssh(&s.server, &s.admin, &s.known_hosts, &["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

#[test]
fn openssh_refuses_a_host_key_that_does_not_match() {
    let s = setup();
    let other = TestKey::generate(s.dir.path(), "not_the_host");
    let wrong = s.dir.path().join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!(
            "[127.0.0.1]:{} {}\n",
            s.server.addr.port(),
            other.public_line
        ),
    )
    .expect("write");
    let out = ssh(&s.server, &s.admin, &wrong, &["whoami"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
}

#[test]
fn openssh_key_add_from_stdin_then_new_user_logs_in() {
    let s = setup();
    let out = ssh(
        &s.server,
        &s.admin,
        &s.known_hosts,
        &[
            "user",
            "add",
            "bob",
            "--role",
            "member",
            "--unix-user",
            "bob",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let bob = TestKey::generate(s.dir.path(), "bob_key");
    let status = Command::new("ssh")
        .args(ssh_args(&s.server, &s.admin, &s.known_hosts))
        .arg("lab@127.0.0.1")
        .args(["key", "add", "bob"])
        .stdin(std::fs::File::open(&bob.public_path).expect("open pub"))
        .output()
        .expect("ssh");
    assert!(status.status.success(), "{status:?}");
    let out = ssh(&s.server, &bob, &s.known_hosts, &["whoami"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bob (member)"));
}

/// A tmux server of its own, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        require("tmux");
        Tmux {
            socket: format!("labbench-test-{}-{}", std::process::id(), rand_suffix()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux `send-keys` arguments) into the pane.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "lab"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn capture(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "lab"])
    }

    /// Waits until the pane shows `needle`; returns the screen.
    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {needle:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The admin's `ssh -t` in a 120×40 tmux session `lab`; the shell prints
/// `EXIT=status` when ssh ends and stays a while for the screen to be read.
fn open_tui(s: &Setup) -> Tmux {
    open_tui_as(s, &s.admin)
}

/// [`open_tui`] for the user of `key`.
fn open_tui_as(s: &Setup, key: &TestKey) -> Tmux {
    let tmux = Tmux::new();
    let mut ssh_line = String::from("ssh -t");
    for arg in ssh_args(&s.server, key, &s.known_hosts) {
        ssh_line.push(' ');
        ssh_line.push_str(&arg);
    }
    ssh_line.push_str(" lab@127.0.0.1; echo EXIT=$?; sleep 30");
    tmux.run(&["new", "-d", "-s", "lab", "-x", "120", "-y", "40", &ssh_line]);
    tmux
}

#[test]
fn tui_under_tmux_shows_tabs_resizes_and_quits_cleanly() {
    let s = setup();
    let tmux = open_tui(&s);

    let wide = tmux.wait_for("Connected (");
    let me = labbench::server::invoking_user();
    assert!(wide.contains("1 Dashboard"), "{wide}");
    assert!(
        wide.contains("4 Admin"),
        "admins see the Admin tab:\n{wide}"
    );
    assert!(wide.contains(&format!("{me} (admin)")), "{wide}");
    assert!(wide.contains("CPU last 30 s"), "wide layout:\n{wide}");

    tmux.run(&["resize-window", "-t", "lab", "-x", "80", "-y", "24"]);
    let start = Instant::now();
    let narrow = loop {
        let screen = tmux.capture();
        if !screen.contains("Connected (") && screen.contains("Users (") {
            break screen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "layout did not change:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");

    tmux.run(&["send-keys", "-t", "lab", "?"]);
    tmux.wait_for("Keys: Dashboard");
    tmux.run(&["send-keys", "-t", "lab", "Escape"]);
    tmux.run(&["send-keys", "-t", "lab", "2"]);
    tmux.wait_for("Nothing queued or running");

    tmux.run(&["send-keys", "-t", "lab", "q"]);
    let after = tmux.wait_for("EXIT=");
    assert!(after.contains("EXIT=0"), "{after}");
    assert!(!after.contains("Dashboard"), "TUI left on screen:\n{after}");
    let flags = tmux.run(&[
        "display",
        "-p",
        "-t",
        "lab",
        "#{alternate_on} #{cursor_flag}",
    ]);
    assert_eq!(
        flags.trim(),
        "0 1",
        "alternate screen must be left and the cursor shown"
    );
}

#[test]
fn tui_form_submits_like_the_command_and_the_log_pane_searches() {
    let s = setup();
    let tmux = open_tui(&s);
    tmux.wait_for("1 Dashboard");
    let keys = |keys: &[&str]| tmux.keys(keys);
    keys(&["2"]);
    tmux.wait_for("Nothing queued or running");
    keys(&["n"]);
    tmux.wait_for("New experiment");
    // `q` and digits are text here, not quit or tab keys.
    keys(&[
        "-l",
        "for i in 1 2 3; do echo step $i; done; echo quiet; sleep 60",
    ]);
    keys(&["Tab"]);
    keys(&["-l", "--", "-from-form"]);
    keys(&["Tab", "Tab", "Tab"]);
    keys(&["-l", "8Q"]);
    keys(&["Enter"]);
    let refused = tmux.wait_for("Memory: \"8Q\": expected a size");
    assert!(
        refused.contains("New experiment"),
        "form stays open:\n{refused}"
    );
    let listed = ssh(
        &s.server,
        &s.admin,
        &s.known_hosts,
        &["ls", "--all", "--json"],
    );
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "[]",
        "nothing queued"
    );
    keys(&["BSpace", "BSpace"]);
    keys(&["-l", "64M"]);
    keys(&["Enter"]);
    tmux.wait_for("submitted experiment 1");
    tmux.wait_for("-from-form");
    let shown = ssh(
        &s.server,
        &s.admin,
        &s.known_hosts,
        &["show", "1", "--json"],
    );
    let e: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("show --json");
    assert_eq!(
        e["spec"]["name"], "-from-form",
        "a leading '-' is a value: {e}"
    );
    assert_eq!(e["spec"]["resources"]["memory_bytes"], 64 << 20, "{e}");

    // The live log: search finds an older line and marks it.
    tmux.wait_for("running");
    keys(&["l"]);
    tmux.wait_for("quiet");
    keys(&["/"]);
    keys(&["-l", "step 2"]);
    keys(&["Enter"]);
    let found = tmux.wait_for("search: step 2");
    assert!(found.contains("step 2"), "{found}");
    keys(&["Escape"]);
    // Admins set priorities (only queued experiments have one to change).
    keys(&["p"]);
    tmux.wait_for("Priority of experiment 1");
    keys(&["-l", "5"]);
    keys(&["Enter"]);
    tmux.wait_for("only queued experiments");
    keys(&["Escape"]);
    keys(&["c"]);
    keys(&["y"]);
    tmux.wait_for("Nothing queued or running");
}

/// Adds user `name` with `role` and a new key, through the admin's ssh.
fn add_user(s: &Setup, name: &str, role: &str) -> TestKey {
    let out = s.as_admin(&["user", "add", name, "--role", role]);
    assert!(out.status.success(), "{out:?}");
    let key = TestKey::generate(s.dir.path(), &format!("{name}_key"));
    let out = s.as_admin(&["key", "add", name, &key.public_line]);
    assert!(out.status.success(), "{out:?}");
    key
}

#[test]
fn tui_actions_are_decided_with_the_role_the_user_has_now() {
    let s = setup();
    let out = s.as_admin(&[
        "submit",
        "--name",
        "longjob",
        "--workdir",
        "/tmp",
        "--",
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{out:?}");
    let ada = add_user(&s, "ada", "admin");
    let tmux = open_tui_as(&s, &ada);
    tmux.wait_for("4 Admin");
    let keys = |keys: &[&str]| tmux.keys(keys);
    keys(&["2"]);
    tmux.wait_for("longjob");
    // Ada asks to cancel while an admin, and confirms once demoted.
    keys(&["c"]);
    tmux.wait_for("Cancel experiment 1?");
    let out = s.as_admin(&["user", "set-role", "ada", "viewer"]);
    assert!(out.status.success(), "{out:?}");
    let demoted = tmux.wait_for("your role is now viewer");
    assert!(!demoted.contains("4 Admin"), "{demoted}");
    keys(&["y"]);
    let refused = tmux.wait_for("permission denied");
    assert!(refused.contains("only"), "{refused}");
    let shown = s.as_admin(&["show", "1", "--json"]);
    let e: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("show --json");
    assert!(
        ["queued", "starting", "running"].contains(&e["state"]["state"].as_str().unwrap_or("")),
        "nothing changed: {e}"
    );
    // Reruns are refused the same way (admins and owners only).
    keys(&["r"]);
    tmux.wait_for("or an admin can rerun experiment 1");
    let listed = s.as_admin(&["ls", "--all", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("ls --json");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let _ = s.as_admin(&["cancel", "1"]);
}

#[test]
fn the_queue_tab_counts_and_pages_through_a_long_queue() {
    let s = setup();
    let gate = s.as_admin(&[
        "submit",
        "--json",
        "--name",
        "gate",
        "--workdir",
        "/tmp",
        "sleep",
        "300",
    ]);
    let gate: serde_json::Value = serde_json::from_slice(&gate.stdout).expect("id");
    let gate = gate["id"].as_u64().expect("id");
    // 60 queued behind it, the last submitted with the highest priority.
    for i in 0..60 {
        let name = format!("waiting-{i:02}");
        let priority = if i == 59 { "0" } else { "-1" };
        let out = s.as_admin(&[
            "submit",
            "--name",
            &name,
            "--priority",
            priority,
            "--after",
            &gate.to_string(),
            "--workdir",
            "/tmp",
            "true",
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    let tmux = open_tui(&s);
    tmux.wait_for("1 Dashboard");
    tmux.keys(&["2"]);
    let first = tmux.wait_for("Queue: 61 experiments");
    // Next to start first: the running gate, then the one with priority 0.
    let rows: Vec<&str> = first
        .lines()
        .filter(|l| l.contains("waiting-") || l.contains("gate"))
        .collect();
    assert!(
        rows[0].contains("gate") && rows[1].contains("waiting-59"),
        "{first}"
    );
    tmux.keys(&["End"]);
    let last = tmux.wait_for("waiting-58");
    assert!(!last.contains("gate"), "the last screen: {last}");
    tmux.keys(&["Home"]);
    tmux.wait_for("gate");
    tmux.keys(&["s"]);
    let newest = tmux.wait_for("newest first");
    let rows: Vec<&str> = newest.lines().filter(|l| l.contains("waiting-")).collect();
    assert!(rows[0].contains("waiting-59"), "{newest}");
    let _ = s.as_admin(&["cancel", &gate.to_string()]);
}

#[test]
fn the_announcement_greets_sessions_and_notifications_reach_the_open_ones() {
    let s = setup();
    let ada = add_user(&s, "ada", "member");
    let set = s.as_admin(&["motd", "set", "GPU", "3", "is", "down", "until", "Monday"]);
    assert!(set.status.success(), "{set:?}");
    // A script (no terminal) never sees it; `ssh -t` shows it above the
    // output, on standard error.
    let plain = ssh(&s.server, &ada, &s.known_hosts, &["whoami"]);
    assert!(plain.status.success(), "{plain:?}");
    assert!(
        !String::from_utf8_lossy(&plain.stderr).contains("GPU 3"),
        "{plain:?}"
    );
    let in_terminal = || {
        Command::new("ssh")
            .arg("-tt")
            .args(ssh_args(&s.server, &ada, &s.known_hosts))
            .args(["lab@127.0.0.1", "whoami"])
            .output()
            .expect("ssh -tt")
    };
    let tty = in_terminal();
    assert!(tty.status.success(), "{tty:?}");
    assert!(
        String::from_utf8_lossy(&tty.stderr).contains("announcement: GPU 3 is down until Monday"),
        "{tty:?}"
    );
    assert!(
        String::from_utf8_lossy(&tty.stdout).contains("ada (member)"),
        "{tty:?}"
    );

    // The interface opens with it; any key closes it.
    let tmux = open_tui_as(&s, &ada);
    tmux.wait_for("GPU 3 is down until Monday");
    tmux.keys(&["x"]);
    let start = Instant::now();
    while tmux.capture().contains("Announcement") {
        assert!(start.elapsed() < Duration::from_secs(20), "still open");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A notification reaches the open session.
    let sent = s.as_admin(&["notify", "ada", "your", "run", "42", "is", "idle"]);
    assert!(sent.status.success(), "{sent:?}");
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("1 open session"),
        "{sent:?}"
    );
    tmux.wait_for("your run 42 is idle");
    // Several in a row are each shown, in turn.
    for text in ["first", "second"] {
        let sent = s.as_admin(&["notify", "ada", "note", text]);
        assert!(sent.status.success(), "{sent:?}");
    }
    tmux.wait_for("note first");
    tmux.wait_for("note second");

    // Members neither announce nor notify; nobody notifies a user who is not.
    for args in [
        &["notify", "--all", "hi"][..],
        &["motd", "set", "hi"],
        &["motd", "clear"],
    ] {
        let out = ssh(&s.server, &ada, &s.known_hosts, args);
        assert_eq!(out.status.code(), Some(77), "{args:?}: {out:?}");
    }
    let nobody = s.as_admin(&["notify", "nobody", "hi"]);
    assert_eq!(nobody.status.code(), Some(1), "{nobody:?}");
    let empty = s.as_admin(&["notify", "ada"]);
    assert_eq!(empty.status.code(), Some(2), "{empty:?}");
    // Cleared, it greets nobody.
    assert!(s.as_admin(&["motd", "clear"]).status.success());
    let tty = in_terminal();
    assert!(
        !String::from_utf8_lossy(&tty.stderr).contains("announcement"),
        "{tty:?}"
    );
}
