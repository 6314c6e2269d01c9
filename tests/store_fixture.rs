//! A data directory written by an earlier labbench opens unchanged: the
//! store in `tests/fixtures/store-2026-12-06` was made by the daemon of
//! 2026-12-06 (users, a key, a quota, a private project, a finished, a
//! running and a queued experiment, usage buckets, audit) and is read back
//! here whole; `store-2026-12-06-schema3` by the daemon of b5b37ac (schema
//! 3, the last before compact metric summaries and the store's own packing
//! dictionaries) from one experiment run in a dirty git repository with
//! `@metric` lines, `$LABBENCH_METRICS`, an input and `requirements.txt`. A later change of the on-disk format needs a migration that
//! passes this test (a new fixture is added beside this one, not in its place).

use std::path::Path;

use labbench::model::{CommandLine, Outcome, Role, State};
use labbench::store::{IndexedBy, Store};

/// A copy of a fixture's data directory (sled writes to what it opens).
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("db");
    let to = dir.path().join("db");
    std::fs::create_dir_all(&to).expect("mkdir");
    for entry in std::fs::read_dir(&from).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
    dir
}

#[test]
fn a_store_written_on_2026_12_06_reads_back_whole() {
    let dir = fixture_copy("store-2026-12-06");
    let store = Store::open(dir.path()).expect("opens");

    let users = store.users().expect("users");
    let names: Vec<(&str, Role, Option<&str>)> = users
        .iter()
        .map(|u| (u.name.as_str(), u.role, u.unix_user.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("mike", Role::Member, Some("lbmike")),
            ("root", Role::Admin, Some("lbqueue"))
        ]
    );
    let keys = store.keys_of("mike").expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].key.fingerprint,
        "SHA256:QKe4KIuQEKHjI2jdr0/0f9iLBkD43fpN8a07HA1EJqg"
    );
    assert_eq!(
        (keys[0].key.comment.as_str(), keys[0].added_by.as_str()),
        ("mike@fixture", "root")
    );
    assert_eq!(store.keys_of("root").expect("keys").len(), 1);

    let quota = store
        .quota(&labbench::model::QuotaScope::User("mike".into()))
        .expect("quota");
    assert_eq!(quota.max_running, Some(3));
    assert_eq!(quota.max_memory_bytes, Some(64 << 30));
    assert!(store.project_is_private("secret").expect("project"));
    assert!(!store.project_is_private("vision").expect("project"));

    // The runs' costs, which came later, are built from the records.
    let mut costs = Vec::new();
    store
        .walk_run_costs_from(i64::MIN, |run| {
            costs.push((run.id, run.owner, run.project));
            true
        })
        .expect("run costs");
    assert!(
        costs.contains(&(1, "root".to_string(), Some("vision".to_string()))),
        "{costs:?}"
    );

    let first = store.experiment(1).expect("read").expect("experiment 1");
    assert_eq!(first.spec.name.as_deref(), Some("first"));
    assert_eq!(first.spec.project.as_deref(), Some("vision"));
    assert_eq!(first.spec.tags, ["baseline"]);
    assert_eq!(first.spec.params, [("lr".to_string(), "0.1".to_string())]);
    assert_eq!(
        first.spec.env,
        [("API_TOKEN".to_string(), "fixture-secret".to_string())]
    );
    assert!(matches!(first.spec.command, CommandLine::Argv(ref argv) if argv[0] == "sh"));
    assert!(
        matches!(
            first.state,
            State::Finished {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                ..
            }
        ),
        "{:?}",
        first.state
    );
    let sleeper = store.experiment(2).expect("read").expect("experiment 2");
    assert!(sleeper.spec.private);
    assert!(
        matches!(sleeper.state, State::Running { .. }),
        "{:?}",
        sleeper.state
    );
    let waiting = store.experiment(3).expect("read").expect("experiment 3");
    assert_eq!(
        (waiting.state.clone(), waiting.spec.after.clone()),
        (State::Queued, vec![2])
    );
    let active: Vec<u64> = store
        .active_experiments()
        .expect("active")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(active, [2, 3]);
    assert_eq!(store.next_experiment_id().expect("next id"), 4);

    let subjects = store.usage_subjects(60).expect("subjects");
    assert!(!subjects.is_empty(), "usage buckets were saved at stop");
    let buckets = store.usage_buckets(60, &subjects[0], 0).expect("buckets");
    assert!(!buckets.is_empty(), "{subjects:?}");

    // History's index is built on opening; provenance is empty, not an error.
    let mut by_owner = Vec::new();
    store
        .walk_indexed_newest(IndexedBy::Owner, "root", None, |e| {
            by_owner.push(e.id);
            true
        })
        .expect("index");
    assert_eq!(by_owner, [3, 2, 1]);
    let mut in_vision = Vec::new();
    store
        .walk_indexed_newest(IndexedBy::Project, "vision", None, |e| {
            in_vision.push(e.id);
            true
        })
        .expect("index");
    assert_eq!(in_vision, [1]);
    assert_eq!(store.provenance(1).expect("provenance"), None);
    assert_eq!(store.diff(1).expect("diff"), None);

    let audit = store.recent_audit(100).expect("audit");
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for done in ["submitted experiment 3", "made project secret private"] {
        assert!(
            actions.iter().any(|a| a.contains(done)),
            "{done:?} not in {actions:?}"
        );
    }
}

#[test]
fn metric_summaries_and_provenance_of_schema_3_read_back() {
    use labbench::model::MetricSource;
    let dir = fixture_copy("store-2026-12-06-schema3");
    let store = Store::open(dir.path()).expect("opens");

    let run = store.experiment(1).expect("read").expect("experiment 1");
    assert_eq!(run.spec.name.as_deref(), Some("metrics-run"));
    assert_eq!(run.spec.project.as_deref(), Some("fx"));
    assert!(matches!(
        run.state,
        State::Finished {
            outcome: Outcome::Succeeded,
            ..
        }
    ));

    let stdout = store
        .metrics_read(1, MetricSource::Stdout)
        .expect("summaries from stdout");
    let loss = stdout.summary.get("loss").expect("loss");
    assert_eq!(
        (loss.count, loss.last, loss.min, loss.max),
        (2, 0.1234567890123, 0.1234567890123, 0.25)
    );
    assert_eq!(stdout.summary.get("acc").map(|s| s.last), Some(0.875));
    let file = store
        .metrics_read(1, MetricSource::File)
        .expect("summaries from the metrics file");
    assert_eq!(
        file.summary.get("auc").map(|s| (s.count, s.last)),
        Some((1, 0.9))
    );
    let values = store.metrics(1).expect("values");
    assert_eq!(values.len(), 4, "{values:?}");

    let provenance = store.provenance(1).expect("read").expect("captured");
    let git = provenance.git.as_ref().expect("git");
    let commit = git.commit.as_deref().unwrap_or_default();
    assert!(commit.starts_with("b62a195fc78f"), "{commit}");
    assert!(git.dirty);
    assert_eq!(
        git.remote.as_deref(),
        Some("https://git.example/lab/models.git"),
        "credentials were stripped"
    );
    let packages: Vec<(&str, Option<&str>)> = provenance
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_deref()))
        .collect();
    assert_eq!(
        packages,
        [("numpy", Some("1.26.4")), ("pandas", Some("2.2.2"))]
    );
    assert_eq!(provenance.inputs.len(), 1);
    assert!(
        store
            .diff(1)
            .expect("read")
            .expect("kept")
            .contains("+# changed")
    );

    // What this build writes beside them reads back too.
    let mut later = stdout.clone();
    later.offset += 1;
    store
        .put_metrics(1, MetricSource::Stdout, &[], &later)
        .expect("write");
    assert_eq!(
        store.metrics_read(1, MetricSource::Stdout).expect("read"),
        later
    );
}
