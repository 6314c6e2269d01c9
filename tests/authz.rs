//! The authorization matrix, end to end over SSH: every command (from the
//! command tree, so a command added without a row here fails) run by an
//! admin, the owner of what it acts on, another member, a viewer and a
//! removed user, each with the outcome the README's Roles table promises;
//! a refused command changes nothing.

mod common;

use std::collections::BTreeSet;

use common::lab::{add_member, json, submit, unix_account, wait_running, wait_state};
use common::{Client, ExecResult, TestKey, TestServer, exec, login, session};
use russh::client::Handle;

/// Who runs a command. `Owner` owns what it acts on (an experiment, a key,
/// a quota): member mike; `Other` is member mary acting on mike's things.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Admin,
    Owner,
    Other,
    Viewer,
}

const EVERYONE: [Who; 4] = [Who::Admin, Who::Owner, Who::Other, Who::Viewer];

/// What must come of it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Exit status 0.
    Done,
    /// Exit status 77 (permission denied), and nothing changed.
    Denied,
}
use Want::{Denied, Done};

/// The rows: a command as typed, and what each of admin, owner, other
/// member and viewer gets.
const ROWS: &[(&str, [Want; 4])] = &[
    ("version", [Done, Done, Done, Done]),
    ("whoami", [Done, Done, Done, Done]),
    ("users", [Done, Done, Done, Done]),
    ("user add", [Done, Denied, Denied, Denied]),
    ("user set-unix", [Done, Denied, Denied, Denied]),
    ("user set-role", [Done, Denied, Denied, Denied]),
    ("user rm", [Done, Denied, Denied, Denied]),
    ("user disable", [Done, Denied, Denied, Denied]),
    ("user enable", [Done, Denied, Denied, Denied]),
    // Adding a key to oneself needs a signature by it (tests/access.rs):
    // without one even the owner is refused.
    ("key add", [Done, Denied, Denied, Denied]),
    ("key challenge", [Done, Done, Done, Done]),
    ("key rm", [Done, Done, Denied, Denied]),
    ("keys", [Done, Done, Denied, Denied]),
    ("submit", [Done, Done, Done, Denied]),
    ("ls", [Done, Done, Done, Done]),
    ("show", [Done, Done, Done, Done]),
    ("cancel", [Done, Done, Denied, Denied]),
    ("rerun", [Done, Done, Denied, Denied]),
    ("priority", [Done, Denied, Denied, Denied]),
    ("quota set", [Done, Denied, Denied, Denied]),
    ("quota show", [Done, Done, Denied, Denied]),
    ("quota rm", [Done, Denied, Denied, Denied]),
    ("hostlimit set", [Done, Denied, Denied, Denied]),
    ("hostlimit rm", [Done, Denied, Denied, Denied]),
    ("hostlimit show", [Done, Denied, Denied, Denied]),
    ("project private", [Done, Denied, Denied, Denied]),
    ("project public", [Done, Denied, Denied, Denied]),
    ("logs", [Done, Done, Done, Done]),
    ("metrics", [Done, Done, Done, Done]),
    // Stakeholders (viewers) discuss results too.
    ("comment", [Done, Done, Done, Done]),
    ("comments", [Done, Done, Done, Done]),
    // Provenance is read under the read rule of the output (its diff is code).
    ("provenance", [Done, Done, Done, Done]),
    // Everyone searches the history; what each sees is tests/notebook.rs'.
    ("history", [Done, Done, Done, Done]),
    ("compare", [Done, Done, Done, Done]),
    ("deps", [Done, Done, Done, Done]),
    ("resources", [Done, Done, Done, Done]),
    ("report", [Done, Done, Done, Done]),
    ("feed", [Done, Done, Done, Done]),
    ("projects", [Done, Done, Done, Done]),
    ("outcome", [Done, Done, Denied, Denied]),
    ("wait", [Done, Done, Done, Done]),
    ("top", [Done, Done, Done, Done]),
    ("usage", [Done, Done, Done, Done]),
    ("host", [Done, Done, Done, Done]),
    // Everyone sees everyone's use, idle or not.
    ("idle show", [Done, Done, Done, Done]),
    // The rule is the admins' (enforced in the service).
    ("idle set", [Done, Denied, Denied, Denied]),
    // Who did what to whom: for admins (enforced in the service).
    ("audit", [Done, Denied, Denied, Denied]),
    // Everyone's for admins, one's own for others (tests of lab::costs).
    ("costs", [Done, Done, Done, Done]),
    ("budget show", [Done, Done, Done, Done]),
    ("budget set", [Done, Denied, Denied, Denied]),
    ("budget rm", [Done, Denied, Denied, Denied]),
    // Everyone reads the announcement; admins set it and notify.
    ("motd show", [Done, Done, Done, Done]),
    ("motd set", [Done, Denied, Denied, Denied]),
    ("motd clear", [Done, Denied, Denied, Denied]),
    ("notify", [Done, Denied, Denied, Denied]),
];

/// The cast, connected, with experiments to act on.
struct Fixture {
    dir: tempfile::TempDir,
    server: TestServer,
    admin: Handle<Client>,
    mike: Handle<Client>,
    mary: Handle<Client>,
    vera: Handle<Client>,
    /// Rob's key; rob was removed.
    removed: TestKey,
    /// Mike's: running `sleep` that the queued ones wait for.
    blocker: u64,
    /// Mike's: finished.
    finished: u64,
    /// Mike's: queued.
    queued: u64,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin_key = TestKey::generate(dir.path(), "admin_key");
        let server = TestServer::start(&dir.path().join("data"), Some(&admin_key));
        let admin = session(&server, &admin_key).await;
        let mike = add_member(&server, &admin, dir.path(), "mike", "member").await;
        let mary = add_member(&server, &admin, dir.path(), "mary", "member").await;
        let vera = add_member(&server, &admin, dir.path(), "vera", "viewer").await;
        let removed = TestKey::generate(dir.path(), "rob_key");
        for (line, stdin) in [
            ("user add rob --role member --no-unix-user", None),
            ("key add rob", Some(removed.public_line.as_bytes())),
            ("user rm rob", None),
        ] {
            let out = exec(&admin, line, stdin).await;
            assert_eq!(out.status, Some(0), "{line}: {out:?}");
        }
        let blocker = submit(&mike, "--name blocker -- sleep 600").await;
        wait_running(&mike, blocker).await;
        let finished = submit(&mike, "-- echo hello").await;
        wait_state(&mike, finished).await;
        let queued = submit(&mike, &format!("--after {blocker} -- true")).await;
        Fixture {
            dir,
            server,
            admin,
            mike,
            mary,
            vera,
            removed,
            blocker,
            finished,
            queued,
        }
    }

    fn handle(&self, who: Who) -> &Handle<Client> {
        match who {
            Who::Admin => &self.admin,
            Who::Owner => &self.mike,
            Who::Other => &self.mary,
            Who::Viewer => &self.vera,
        }
    }

    /// Runs `line` as the admin, which must succeed; its output.
    async fn admin(&self, line: &str, stdin: Option<&[u8]>) -> String {
        let out = exec(&self.admin, line, stdin).await;
        assert_eq!(out.status, Some(0), "{line}: {out:?}");
        out.stdout
    }

    /// A fresh lab user without a Unix account, for commands that change
    /// or remove one.
    async fn scratch_user(&self, name: &str) -> String {
        self.admin(
            &format!("user add {name} --role member --no-unix-user"),
            None,
        )
        .await;
        name.to_string()
    }

    /// The command line (and its standard input) that `who` runs for the
    /// command `path`, acting on mike's things; fresh targets where the
    /// command changes them. A command without a line here fails the test.
    async fn line(&self, path: &str, who: Who, n: usize) -> (String, Option<Vec<u8>>) {
        let tag = format!("{who:?}{n}").to_lowercase();
        // A value no other caller of this row writes: a refused write that
        // went through would show.
        let value = 4 * n + EVERYONE.iter().position(|w| *w == who).unwrap_or(0) + 1;
        let line = match path {
            "version" | "whoami" | "users" | "ls" | "top" | "usage" | "host" => path.to_string(),
            "user add" => format!("user add new{tag} --role viewer --no-unix-user"),
            "user set-unix" => {
                let name = format!("unix{tag}");
                let account = unix_account("lbmike");
                self.admin(
                    &format!(
                        "user add {name} --role member --unix-user {account} \
                         --allow-shared-unix-user --allow-system-account"
                    ),
                    None,
                )
                .await;
                format!("user set-unix {name} --none")
            }
            "user set-role" => {
                let name = self.scratch_user(&format!("role{tag}")).await;
                format!("user set-role {name} viewer")
            }
            "user disable" => {
                let name = self.scratch_user(&format!("off{tag}")).await;
                format!("user disable {name}")
            }
            "user enable" => {
                let name = self.scratch_user(&format!("on{tag}")).await;
                self.admin(&format!("user disable {name}"), None).await;
                format!("user enable {name}")
            }
            "user rm" => {
                let name = self.scratch_user(&format!("rm{tag}")).await;
                format!("user rm {name}")
            }
            "key add" => {
                let key = TestKey::generate(self.dir.path(), &format!("add{tag}"));
                return ("key add mike".into(), Some(key.public_line.into_bytes()));
            }
            "key challenge" => "key challenge".into(),
            "key rm" => {
                let key = TestKey::generate(self.dir.path(), &format!("rm{tag}"));
                self.admin("key add mike", Some(key.public_line.as_bytes()))
                    .await;
                format!("key rm mike {}", key.fingerprint)
            }
            "keys" => "keys mike".into(),
            "submit" => "submit -- true".into(),
            "show" => format!("show {}", self.finished),
            "cancel" => {
                let id = submit(&self.mike, &format!("--after {} -- true", self.blocker)).await;
                format!("cancel {id}")
            }
            "rerun" => format!("rerun {}", self.finished),
            "priority" => format!("priority {} {value}", self.queued),
            "quota set" => format!("quota set mike --max-running {value}"),
            "quota show" => "quota show mike".into(),
            "hostlimit set" => format!("hostlimit set --default --cpus {value}"),
            "hostlimit rm" => {
                self.admin("hostlimit set --default --mem 1G", None).await;
                "hostlimit rm --default".into()
            }
            "hostlimit show" => "hostlimit show --json".into(),
            "quota rm" => {
                self.admin(&format!("quota set --project p{tag} --max-gpus 1"), None)
                    .await;
                format!("quota rm --project p{tag}")
            }
            "project private" => format!("project private p{tag}"),
            "project public" => format!("project public p{tag}"),
            "logs" => format!("logs {}", self.finished),
            "metrics" => format!("metrics {}", self.finished),
            "comment" => format!("comment {} looks right {tag}", self.finished),
            "comments" => format!("comments {}", self.finished),
            "provenance" => format!("provenance {}", self.finished),
            "history" => "history state:finished".into(),
            "compare" => format!("compare {} {}", self.finished, self.blocker),
            "deps" => "deps --package pandas".into(),
            "resources" => format!("resources {}", self.finished),
            "report" => format!("report {} --html", self.finished),
            "feed" => "feed --since 1h".into(),
            "projects" => "projects".into(),
            "outcome" => format!("outcome {} negative --note 'no lift {tag}'", self.finished),
            "wait" => format!("wait {}", self.finished),
            "audit" => "audit --user mike --json".into(),
            "idle show" => "idle show --json".into(),
            "idle set" => format!("idle set --after {value}m"),
            "costs" => "costs --by project --csv".into(),
            "budget show" => "budget show --json".into(),
            "budget set" => format!("budget set --project p{tag} {value}"),
            "budget rm" => format!("budget rm --project p{tag}"),
            "motd show" => "motd show --json".into(),
            "motd set" => format!("motd set maintenance {tag}"),
            "motd clear" => "motd clear".into(),
            "notify" => format!("notify mike build {tag} is done"),
            other => panic!("no line in the authorization matrix for the command {other:?}"),
        };
        (line, None)
    }

    /// Waits until no experiment but the blocker runs and none is queued but
    /// those waiting for it (ones that earlier rows submitted have ended),
    /// so that [`Fixture::state`] holds still.
    async fn settle(&self) {
        for _ in 0..300 {
            let listed = json(&self.admin("ls --json --limit 10000", None).await);
            // Only the blocker runs, and only what waits for it is queued.
            let blocked = |e: &serde_json::Value| {
                e["state"]["state"] == "queued"
                    && e["spec"]["after"]
                        .as_array()
                        .is_some_and(|after| after.contains(&self.blocker.into()))
            };
            let moving = listed
                .as_array()
                .expect("list")
                .iter()
                .any(|e| e["id"] != self.blocker && !blocked(e));
            if !moving {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("experiments still running after 30 s");
    }

    /// What a refused command must leave as it was: users, mike's keys and
    /// quota, every experiment's state and priority, project privacy.
    async fn state(&self) -> Vec<String> {
        let mut state = vec![
            self.admin("users --json", None).await,
            self.admin("keys mike --json", None).await,
            self.admin("quota show mike --json", None).await,
            self.admin("quota show --all --json", None).await,
            self.admin("hostlimit show --json", None).await,
        ];
        let listed = json(&self.admin("ls --all --json --limit 10000", None).await);
        for e in listed.as_array().expect("list") {
            state.push(format!(
                "{} {} {} {} {}",
                e["id"], e["owner"], e["state"], e["spec"]["priority"], e["spec"]["private"]
            ));
        }
        state
    }
}

#[tokio::test]
async fn every_command_is_decided_by_the_role_of_who_runs_it() {
    let fx = Fixture::new().await;
    let commands: BTreeSet<String> = labbench::cli::command_leaves()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let rows: BTreeSet<String> = ROWS.iter().map(|(path, _)| path.to_string()).collect();
    assert_eq!(
        commands.difference(&rows).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "commands without a row in the authorization matrix"
    );
    assert_eq!(
        rows.difference(&commands).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "rows for commands that do not exist"
    );
    let mut failures = Vec::new();
    for (n, (path, wants)) in ROWS.iter().enumerate() {
        for (who, want) in EVERYONE.into_iter().zip(wants) {
            let (line, stdin) = fx.line(path, who, n).await;
            let before = match want {
                Denied => {
                    fx.settle().await;
                    Some(fx.state().await)
                }
                Done => None,
            };
            let out: ExecResult = exec(fx.handle(who), &line, stdin.as_deref()).await;
            let status = match want {
                Done => 0,
                Denied => 77,
            };
            if out.status != Some(status) {
                failures.push(format!("{who:?} `{line}`: want {want:?}, got {out:?}"));
                continue;
            }
            if let Some(before) = before
                && fx.state().await != before
            {
                failures.push(format!(
                    "{who:?} `{line}` was refused but changed something"
                ));
            }
        }
        // A removed user runs nothing: their key no longer logs in.
        let (_, ok) = login(&fx.server, &fx.removed, "lab").await;
        if ok {
            failures.push(format!("removed user rob logged in to run {path}"));
        }
    }
    let out = exec(&fx.admin, &format!("cancel {}", fx.blocker), None).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
