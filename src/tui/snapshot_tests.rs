//! Screen snapshots of every screen at 80×24 and 120×40 (ratatui TestBackend + insta).

use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use terminput::{KeyCode, KeyEvent};

use super::{Snapshot, Tab, ViewState, render};
use std::collections::HashMap;

use super::dashboard::{DrillDown, MetricPair};
use crate::lab::ConnectedUser;
use crate::model::Role;
use crate::monitor::{
    GpuDevice, GpuProcess, GpuStatus, HostSnapshot, ProcessUse, Usage, UsageSnapshot, UserUsage,
    Window, WindowStats,
};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn usage(cpu: f64, mem_gib: f64, gpus: f64, gmem_gib: f64) -> Usage {
    Usage {
        cpu_cores: cpu,
        memory_bytes: mem_gib * GIB,
        gpus,
        gpu_memory_bytes: gmem_gib * GIB,
    }
}

/// A user whose peaks grow with the window: now ≤ 1h ≤ 24h ≤ 7d.
fn user(name: &str, uid: u32, now: Usage, peak: Usage) -> UserUsage {
    let scale = |f: f64| Usage::from_array(peak.to_array().map(|v| v * f));
    let stats = |u: Usage| WindowStats {
        max: u,
        mean: Usage::from_array(u.to_array().map(|v| v / 2.0)),
        p95: Usage::from_array(u.to_array().map(|v| v * 0.8)),
        samples: 100,
    };
    UserUsage {
        unix_user: name.into(),
        uid,
        now,
        processes: 3 + uid % 7,
        windows: [
            stats(now),
            stats(scale(0.5)),
            stats(scale(0.8)),
            stats(peak),
        ],
        cpu_history: (0..60).map(|i| f64::from((i * 7 + uid) % 10)).collect(),
        top: vec![
            ProcessUse {
                pid: 4242,
                command: "python".into(),
                cpu_cores: now.cpu_cores,
                rss_bytes: (now.memory_bytes * 0.9) as u64,
            },
            ProcessUse {
                pid: 4300,
                command: "jupyter-lab".into(),
                cpu_cores: 0.1,
                rss_bytes: 300 * 1024 * 1024,
            },
        ],
        gpu_processes: Vec::new(),
    }
}

fn host() -> HostSnapshot {
    HostSnapshot {
        hostname: "gpu-host-01".into(),
        cores: 64,
        cpu_percent: 42.5,
        memory_total: 512 * 1024 * 1024 * 1024,
        memory_used: 400 * 1024 * 1024 * 1024,
        swap_total: 16 * 1024 * 1024 * 1024,
        swap_used: 1024 * 1024 * 1024,
        load: [12.5, 10.25, 8.0],
        cpu_per_core: vec![42.5; 64],
        uptime_secs: 3 * 86_400 + 4 * 3600 + 5 * 60,
        disk_free: 700 * 1024 * 1024 * 1024,
        disk_total: 2048 * 1024 * 1024 * 1024,
        sampled_at: 1,
    }
}

fn usage_snapshot(gpus: bool) -> UsageSnapshot {
    let mut users = vec![
        user(
            "alice",
            1001,
            usage(12.0, 96.0, 2.0, 60.0),
            usage(30.0, 180.0, 4.0, 150.0),
        ),
        user(
            "bob",
            1002,
            usage(2.5, 8.0, 0.0, 0.0),
            usage(8.0, 41.0, 1.0, 20.0),
        ),
        user(
            "jupyter",
            1003,
            usage(0.2, 1.5, 0.0, 0.0),
            usage(1.0, 3.0, 0.0, 0.0),
        ),
    ];
    let mut snapshot = UsageSnapshot {
        at: 1_700_000_000,
        host: host(),
        users: Vec::new(),
        ..UsageSnapshot::default()
    };
    if gpus {
        users[0].gpu_processes = vec![
            GpuProcess {
                pid: 4242,
                gpu: 0,
                memory_bytes: (40.0 * GIB) as u64,
                utilization_percent: Some(90),
                uid: Some(1001),
            },
            GpuProcess {
                pid: 4242,
                gpu: 1,
                memory_bytes: (20.0 * GIB) as u64,
                utilization_percent: Some(60),
                uid: Some(1001),
            },
        ];
        let device = |index: u32, util: u32, used: f64| GpuDevice {
            utilization_unknown: false,
            index,
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization_percent: util,
            memory_used: (used * GIB) as u64,
            memory_total: (80.0 * GIB) as u64,
            temperature_c: Some(61),
            power_watts: Some(310.0),
            minor: None,
            uuid: None,
        };
        snapshot.gpus = vec![
            GpuStatus {
                device: device(0, 90, 40.5),
                owners: vec![("alice".into(), (40.0 * GIB) as u64)],
            },
            GpuStatus {
                device: device(1, 60, 20.5),
                owners: vec![("alice".into(), (20.0 * GIB) as u64)],
            },
            GpuStatus {
                device: device(2, 0, 0.0),
                owners: Vec::new(),
            },
        ];
    } else {
        snapshot.gpu_unavailable =
            Some("no NVIDIA driver (the NVML library could not be loaded)".into());
    }
    snapshot.users = users;
    snapshot
}

fn audit_entry(
    actor: &str,
    kind: &str,
    subject: &str,
    words: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> crate::model::AuditEvent {
    crate::model::AuditEvent {
        at: 1_796_500_000,
        actor: actor.into(),
        action: words.into(),
        kind: kind.into(),
        subject: subject.into(),
        before: before.map(str::to_string),
        after: after.map(str::to_string),
    }
}

fn snapshot(role: Role) -> Snapshot {
    let mut lab_names = HashMap::new();
    lab_names.insert("alice".to_string(), "alice".to_string());
    lab_names.insert("bob".to_string(), "bob".to_string());
    Snapshot {
        user: "alice".into(),
        role: Some(role),
        usage: Arc::new(usage_snapshot(false)),
        lab_names,
        running: HashMap::from([("alice".to_string(), 2)]),
        audit: vec![
            audit_entry(
                "root",
                "quota.set",
                "user ana",
                "set quota of ana",
                Some("max_running=2"),
                Some("max_running=4"),
            ),
            audit_entry(
                "root",
                "user.role",
                "user bob",
                "changed role of bob from member to viewer",
                Some("member"),
                Some("viewer"),
            ),
            audit_entry(
                "ana",
                "experiment.cancel",
                "experiment 41",
                "cancelled experiment 41",
                Some("running"),
                Some("cancelled"),
            ),
            audit_entry(
                "ana",
                "experiment.submit",
                "experiment 42",
                "submitted experiment 42",
                None,
                None,
            ),
        ],
        log: Arc::default(),
        connected: vec![
            ConnectedUser {
                user: "alice".into(),
                shells: 1,
                commands: 0,
            },
            ConnectedUser {
                user: "bob".into(),
                shells: 2,
                commands: 1,
            },
        ],
        sessions: 4,
        clock: "14:03:07".into(),
        ..Snapshot::default()
    }
}

fn draw(view: &ViewState, snap: &Snapshot, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|f| render(f.buffer_mut(), view, snap))
        .expect("draw");
    terminal.backend().clone()
}

fn view(role: Role, tab: Tab) -> ViewState {
    ViewState {
        tab,
        ..ViewState::new(role)
    }
}

macro_rules! screen_snapshots {
    ($($name:ident: $role:expr, $tab:expr, $help:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let mut v = view($role, $tab);
                v.help_open = $help;
                let snap = snapshot($role);
                insta::assert_snapshot!(concat!(stringify!($name), "_80x24"), draw(&v, &snap, 80, 24));
                insta::assert_snapshot!(concat!(stringify!($name), "_120x40"), draw(&v, &snap, 120, 40));
            }
        )*
    };
}

screen_snapshots! {
    dashboard_admin: Role::Admin, Tab::Dashboard, false;
    dashboard_member: Role::Member, Tab::Dashboard, false;
    queue: Role::Member, Tab::Queue, false;
    history: Role::Viewer, Tab::History, false;
    admin: Role::Admin, Tab::Admin, false;
    help_overlay: Role::Admin, Tab::Dashboard, true;
    queue_help: Role::Admin, Tab::Queue, true;
}

#[test]
fn too_small_terminal_says_so() {
    let v = view(Role::Member, Tab::Dashboard);
    insta::assert_snapshot!("too_small_60x20", draw(&v, &snapshot(Role::Member), 60, 20));
}

#[test]
fn unknown_key_notice_shows_in_status_line() {
    let mut v = view(Role::Member, Tab::Dashboard);
    v.handle_key(KeyEvent::new(KeyCode::Char('z')));
    insta::assert_snapshot!(
        "unknown_key_80x24",
        draw(&v, &snapshot(Role::Member), 80, 24)
    );
}

#[test]
fn no_swap_and_no_users_render() {
    let mut snap = snapshot(Role::Viewer);
    snap.connected.clear();
    Arc::make_mut(&mut snap.usage).host.swap_total = 0;
    let screen = draw(&view(Role::Viewer, Tab::Dashboard), &snap, 120, 40);
    let text = format!("{screen}");
    assert!(text.contains("none"), "{text}");
    assert!(text.contains("Connected (0)"), "{text}");
    assert!(text.contains("no GPUs detected"), "{text}");
}

#[test]
fn dashboard_with_gpus() {
    let mut snap = snapshot(Role::Member);
    snap.usage = Arc::new(usage_snapshot(true));
    let mut v = view(Role::Member, Tab::Dashboard);
    insta::assert_snapshot!("dashboard_gpus_120x40", draw(&v, &snap, 120, 40));
    v.dashboard.metrics = MetricPair::Gpu;
    insta::assert_snapshot!("dashboard_gpu_metrics_80x24", draw(&v, &snap, 80, 24));
}

#[test]
fn dashboard_many_users_scrolls_and_truncates_long_names() {
    let mut snap = snapshot(Role::Admin);
    let mut usage = usage_snapshot(false);
    for i in 0..40u32 {
        let name = if i % 5 == 0 {
            format!("a-remarkably-long-user-name-number-{i}")
        } else {
            format!("user{i:02}")
        };
        usage.users.push(user(
            &name,
            2000 + i,
            usage_of(f64::from(i) / 4.0, f64::from(i)),
            usage_of(f64::from(i) / 2.0, f64::from(i) * 2.0),
        ));
    }
    snap.usage = Arc::new(usage);
    let mut v = view(Role::Admin, Tab::Dashboard);
    v.dashboard.selected = 30;
    insta::assert_snapshot!("dashboard_many_users_80x24", draw(&v, &snap, 80, 24));
    insta::assert_snapshot!("dashboard_many_users_120x40", draw(&v, &snap, 120, 40));
}

fn usage_of(cpu: f64, mem_gib: f64) -> Usage {
    usage(cpu, mem_gib, 0.0, 0.0)
}

#[test]
fn drill_down_shows_charts_processes_and_hint() {
    let mut snap = snapshot(Role::Member);
    snap.drill_chart = (0..3600)
        .map(|t| {
            let spike = if (1800..1802).contains(&t) {
                150.0
            } else {
                90.0
            };
            (
                1_700_000_000 - 3600 + t,
                usage(f64::from((t % 60) as u32) / 5.0, spike, 2.0, 60.0),
            )
        })
        .collect();
    let mut v = view(Role::Member, Tab::Dashboard);
    v.dashboard.drill = Some(DrillDown {
        uid: 1001,
        unix_user: "alice".into(),
        window: Window::Hour,
    });
    insta::assert_snapshot!("drill_down_80x24", draw(&v, &snap, 80, 24));
    insta::assert_snapshot!("drill_down_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn sorting_by_memory_peak_orders_rows() {
    let snap = snapshot(Role::Member);
    let mut state = ViewState::new(Role::Member).dashboard;
    state.sort = super::dashboard::SortColumn::Second(Some(Window::Week));
    let rows = super::dashboard::draw::sorted_rows(&snap, &state);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["alice", "bob", "jupyter"]);
    state.descending = false;
    let rows = super::dashboard::draw::sorted_rows(&snap, &state);
    assert_eq!(rows[0].name, "jupyter");
    state.sort = super::dashboard::SortColumn::User;
    let rows = super::dashboard::draw::sorted_rows(&snap, &state);
    assert_eq!(rows[0].name, "alice");
}

#[test]
fn a_lab_user_on_another_account_is_shown_with_it() {
    let mut snap = snapshot(Role::Member);
    // Lab user "jupyter" runs as Unix "bob"; the Unix "jupyter" is nobody's.
    snap.lab_names.insert("bob".into(), "jupyter".into());
    let state = ViewState::new(Role::Member).dashboard;
    let rows = super::dashboard::draw::sorted_rows(&snap, &state);
    let mut names: Vec<(&str, bool)> = rows.iter().map(|r| (r.name.as_str(), r.lab_user)).collect();
    names.sort();
    assert_eq!(
        names,
        [("alice", true), ("jupyter", false), ("jupyter (bob)", true)]
    );
}

fn experiment(
    id: u64,
    owner: &str,
    state: crate::model::State,
    reason: Option<&str>,
) -> crate::lab::ExperimentView {
    use crate::model::{CommandLine, Experiment, ExperimentSpec, ResourceUse, Resources};
    crate::lab::ExperimentView {
        experiment: Experiment {
            id,
            owner: owner.into(),
            unix_user: owner.into(),
            spec: ExperimentSpec {
                name: Some(format!("train-{id}")),
                project: Some("vision".into()),
                ..ExperimentSpec::new(
                    CommandLine::Argv(vec!["python".into(), "train.py".into()]),
                    "/home/x".into(),
                    Resources {
                        cpus: 4.0,
                        memory_bytes: 16 << 30,
                        gpus: 1,
                        time_limit_secs: 7200,
                    },
                )
            },
            submitted_at: 1_700_000_000 - 600,
            state,
            transitions: Vec::new(),
            host: "gpu-host-01".into(),
            backend: "local".into(),
            usage: ResourceUse::default(),
        },
        wait_reason: reason.map(str::to_string),
        live: None,
        idle_secs: None,
    }
}

fn queue_snapshot() -> Snapshot {
    use crate::model::State;
    let mut snap = snapshot(Role::Member);
    let mut usage = usage_snapshot(true);
    usage.at = 1_700_000_000;
    snap.usage = Arc::new(usage);
    let mut running = experiment(
        12,
        "alice",
        State::Running {
            started_at: 1_700_000_000 - 300,
            pid: 4242,
            pid_start_time: 1,
            cgroup: None,
            gpus: vec![0],
        },
        None,
    );
    running.live = Some(crate::lab::LiveUse {
        cpu_cores: 3.5,
        memory_bytes: 12 << 30,
        peak_memory_bytes: 14 << 30,
        gpu_memory_bytes: 30 << 30,
        peak_gpu_memory_bytes: 31 << 30,
    });
    snap.queue = vec![
        experiment(
            14,
            "bob",
            State::Queued,
            Some("waiting for 2 GPU(s); 1 free"),
        ),
        experiment(
            13,
            "alice",
            State::Queued,
            Some("over quota: max 2 running"),
        ),
        running,
    ];
    snap
}

#[test]
fn queue_lists_experiments_with_wait_reasons() {
    let snap = queue_snapshot();
    let mut v = view(Role::Member, Tab::Queue);
    insta::assert_snapshot!("queue_experiments_120x40", draw(&v, &snap, 120, 40));
    insta::assert_snapshot!("queue_experiments_80x24", draw(&v, &snap, 80, 24));
    // Far down a long queue: the true count, the selection on its screen.
    let mut long = queue_snapshot();
    long.queue_offset = 4000;
    long.queue_total = 5150;
    v.queue.selected = 4001;
    let far = format!("{}", draw(&v, &long, 120, 40));
    assert!(far.contains("Queue: 5150 experiments"), "{far}");
}

#[test]
fn queue_shows_the_rows_its_filters_chose() {
    // The session reads only what the filters choose (see
    // `session::queue_filter`); the tab draws them and says which filters.
    let mut snap = queue_snapshot();
    snap.queue
        .retain(|v| v.experiment.state.name() == "running");
    let mut v = view(Role::Member, Tab::Queue);
    v.queue.states = super::queue::StateFilter::Running;
    v.queue.project = Some("vision".into());
    insta::assert_snapshot!("queue_running_vision_120x40", draw(&v, &snap, 120, 40));
    snap.queue.clear();
    v.queue.project = Some("nlp".into());
    let none = format!("{}", draw(&v, &snap, 120, 40));
    assert!(none.contains("Nothing queued or running"), "{none}");
}

fn log_lines(n: usize) -> Arc<super::queue::logpane::LogLines> {
    Arc::new(super::queue::logpane::LogLines {
        first: 0,
        lines: (1..=n).map(|i| format!("step {i} loss 0.{i}")).collect(),
    })
}

#[test]
fn queue_panes_show_log_and_confirmation() {
    let mut snap = queue_snapshot();
    snap.log = log_lines(60);
    let mut v = view(Role::Member, Tab::Queue);
    v.queue.pane = Some(super::queue::QueuePane::Log(
        super::queue::logpane::LogPaneState::new(12),
    ));
    let log = draw(&v, &snap, 80, 24);
    let text = format!("{log}");
    assert!(
        text.contains("step 60"),
        "the log pane shows the end: {text}"
    );
    insta::assert_snapshot!("queue_log_80x24", log);
    v.queue.pane = Some(super::queue::QueuePane::ConfirmCancel(12));
    insta::assert_snapshot!("queue_confirm_80x24", draw(&v, &snap, 80, 24));
}

#[test]
fn log_pane_scrolls_back_and_marks_search_hits() {
    let mut snap = queue_snapshot();
    snap.log = log_lines(60);
    let mut state = super::queue::logpane::LogPaneState::new(12);
    state.bounds = (0, 60);
    state.page = 18;
    state.search = Some("step 2".into());
    assert!(state.find(&snap.log, true));
    assert_eq!(
        state.matched,
        Some(28),
        "line 'step 29' is the last older match"
    );
    let mut v = view(Role::Member, Tab::Queue);
    v.queue.pane = Some(super::queue::QueuePane::Log(state.clone()));
    let screen = draw(&v, &snap, 80, 24);
    let text = format!("{screen}");
    assert!(
        text.contains("step 29") && !text.contains("step 60"),
        "{text}"
    );
    insta::assert_snapshot!("queue_log_search_80x24", screen);
    // Search hits are drawn black on yellow.
    let hits = screen
        .buffer()
        .content
        .iter()
        .filter(|c| c.bg == ratatui::style::Color::Yellow)
        .count();
    assert!(hits >= "step 2".len() * 2, "{hits} highlighted cells");
    state.typing = Some("loss 0.5".into());
    v.queue.pane = Some(super::queue::QueuePane::Log(state));
    let typing = format!("{}", draw(&v, &snap, 80, 24));
    assert!(typing.contains("/loss 0.5"), "{typing}");
}

#[test]
fn submit_form_and_priority_prompt() {
    let snap = queue_snapshot();
    let mut v = view(Role::Admin, Tab::Queue);
    let mut form = super::queue::form::SubmitForm::default();
    form.values[0] = "python train.py --lr 0.1".into();
    form.values[4] = "8Q".into();
    form.focus = 4;
    form.error = form.to_request().err();
    v.queue.pane = Some(super::queue::QueuePane::Submit(form));
    insta::assert_snapshot!("queue_submit_form_100x30", draw(&v, &snap, 100, 30));
    v.queue.pane = Some(super::queue::QueuePane::Priority(13, "-5".into()));
    let prompt = format!("{}", draw(&v, &snap, 100, 30));
    assert!(
        prompt.contains("Priority of experiment 13") && prompt.contains("New priority: -5"),
        "{prompt}"
    );
}

fn history_row(id: u64, name: &str, state: &str, auc: f64) -> crate::lab::HistoryRow {
    let mut metrics = std::collections::BTreeMap::new();
    metrics.insert(
        "auc".to_string(),
        crate::model::MetricSummary {
            count: 10,
            last: auc,
            last_at: 0,
            min: auc / 2.0,
            max: auc,
        },
    );
    crate::lab::HistoryRow {
        id,
        name: Some(name.into()),
        owner: if id % 2 == 0 { "ana" } else { "bob" }.into(),
        project: Some("churn".into()),
        tags: vec!["baseline".into()],
        state: state.into(),
        outcome: (id == 41).then_some(crate::model::Verdict::Negative),
        submitted_at: 1_796_000_000 + id as i64,
        duration_secs: Some(3600 + id * 60),
        peak_memory_bytes: Some(9 << 30),
        memory_request_bytes: 64 << 30,
        gpu_hours: 1.5,
        metrics,
        commit: Some(format!("{id:02}3f2a1b9c0d4e5f60718293a4b5c6d7e8f9a0b1c2")),
        dirty: id == 42,
    }
}

fn history_view() -> (ViewState, Snapshot) {
    let mut v = view(Role::Member, Tab::History);
    v.history.filter = "project:churn metric:auc>0.8".into();
    v.history.marked.insert(41);
    v.history.selected = 1;
    let mut snap = snapshot(Role::Member);
    snap.history = vec![
        history_row(42, "xgb-depth-8", "succeeded", 0.91),
        history_row(41, "xgb-depth-6", "succeeded", 0.87),
        history_row(40, "logreg", "failed", 0.81),
    ];
    snap.history_next = Some(40);
    (v, snap)
}

#[test]
fn history_lists_filtered_experiments_with_their_metrics() {
    let (v, snap) = history_view();
    insta::assert_snapshot!("history_rows_80x24", draw(&v, &snap, 80, 24));
    insta::assert_snapshot!("history_rows_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn history_filter_bar_points_at_a_mistake() {
    let (mut v, snap) = history_view();
    v.history.filter.clear();
    for c in "/project:churn metric:auc>>1".chars() {
        v.handle_key(KeyEvent::new(KeyCode::Char(c)));
    }
    v.handle_key(KeyEvent::new(KeyCode::Enter));
    insta::assert_snapshot!("history_filter_error_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn history_experiment_page_and_comparison() {
    let (mut v, mut snap) = history_view();
    v.history.pane = Some(super::history::HistoryPane::Page { id: 42, scroll: 0 });
    let provenance = crate::model::Provenance {
        captured_at: 1_796_000_100,
        git: Some(crate::model::GitState {
            repository: "churn-model".into(),
            root: "/home/ana/churn-model".into(),
            remote: Some("https://git.example/lab/churn.git".into()),
            branch: Some("main".into()),
            commit: Some("423f2a1b9c0d4e5f60718293a4b5c6d7e8f9a0b1".into()),
            dirty: true,
            diff_bytes: 1200,
            diff_truncated: false,
            untracked: vec!["notes.txt".into()],
            untracked_truncated: false,
        }),
        packages: vec![crate::model::Package {
            ecosystem: "python".into(),
            name: "pandas".into(),
            version: Some("1.5.3".into()),
            constraint: None,
            from: "requirements.txt".into(),
        }],
        dependency_files: vec!["requirements.txt".into()],
        sources: vec!["mysql://warehouse/sales".into()],
        ..crate::model::Provenance::default()
    };
    snap.history_pane_text = Some(format!(
        "Experiment 42 \"xgb-depth-8\" (ana), project churn\n\nPROVENANCE\n{}",
        crate::describe::provenance_lines(42, &provenance)
    ));
    snap.page_charts = Some(super::data::PageCharts {
        metric: Some(super::data::MetricChart {
            name: "auc".into(),
            at: 0,
            count: 2,
            lines: vec![(
                "auc".into(),
                (0..50)
                    .map(|i| (f64::from(i), 0.5 + f64::from(i) / 120.0))
                    .collect(),
            )],
        }),
        memory: (0..60)
            .map(|i| (f64::from(i), if i < 20 { 9.0e9 } else { 2.0e9 }))
            .collect(),
        memory_asked: 16.0e9,
        log: false,
        ..super::data::PageCharts::default()
    });
    insta::assert_snapshot!("history_page_120x40", draw(&v, &snap, 120, 40));
    // `u` twice: GPU memory over the run.
    let mut gpu = snap.clone();
    if let Some(charts) = gpu.page_charts.as_mut() {
        charts.gpu_memory = (0..60)
            .map(|i| (f64::from(i), if i % 20 < 5 { 7.0e10 } else { 1.0e10 }))
            .collect();
        charts.shown = super::data::UseChart::GpuMemory;
    }
    insta::assert_snapshot!("history_page_gpu_120x40", draw(&v, &gpu, 120, 40));

    let run = |id: u64, lr: &str, auc: f64| crate::lab::ComparedRun {
        id,
        name: Some(format!("run-{id}")),
        owner: "ana".into(),
        project: Some("churn".into()),
        state: "succeeded".into(),
        command: "python train.py".into(),
        params: [("lr".to_string(), lr.to_string())].into_iter().collect(),
        metrics: history_row(id, "x", "succeeded", auc).metrics,
        resources: crate::model::Resources {
            cpus: 4.0,
            memory_bytes: 16 << 30,
            gpus: 1,
            time_limit_secs: 7200,
        },
        usage: crate::model::ResourceUse::default(),
        commit: Some("423f2a1b9c".into()),
        dirty: false,
        packages: Default::default(),
        inputs: Default::default(),
        curve: None,
    };
    let runs = vec![run(41, "0.01", 0.87), run(42, "0.001", 0.91)];
    let differs = crate::lab::differences(&runs);
    v.history.pane = Some(super::history::HistoryPane::Compare {
        ids: vec![41, 42],
        scroll: 0,
    });
    snap.history_pane_text = Some(crate::describe::comparison_lines(&crate::lab::Comparison {
        runs,
        differs,
    }));
    let curve = |rate: f64| -> Vec<(f64, f64)> {
        (0..40)
            .map(|i| (f64::from(i), 1.0 - (-rate * f64::from(i)).exp()))
            .collect()
    };
    snap.page_charts = Some(super::data::PageCharts {
        metric: Some(super::data::MetricChart {
            name: "auc".into(),
            at: 0,
            count: 1,
            lines: vec![("41".into(), curve(0.05)), ("42".into(), curve(0.1))],
        }),
        ..super::data::PageCharts::default()
    });
    insta::assert_snapshot!("history_compare_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn history_comment_editor_and_outcome_prompt() {
    let (mut v, snap) = history_view();
    v.history.pane = Some(super::history::HistoryPane::Comment {
        id: 42,
        text: "Lift holds on the Q3 holdout.\nSee the auc curve".into(),
        editing: None,
    });
    insta::assert_snapshot!("history_comment_100x30", draw(&v, &snap, 100, 30));
    let mut listed = snap.clone();
    listed.history_comments = (1..=3)
        .map(|n| crate::model::Comment {
            id: 40 + n,
            experiment: 42,
            author: "ana".into(),
            author_since: 0,
            text: format!("note {n}\nsecond line"),
            at: 1_796_500_000,
            edited_at: None,
        })
        .collect();
    v.history.pane = Some(super::history::HistoryPane::PickComment {
        id: 42,
        selected: 1,
        remove: true,
    });
    insta::assert_snapshot!("history_comment_choice_100x30", draw(&v, &listed, 100, 30));
    v.history.pane = Some(super::history::HistoryPane::Outcome {
        id: 42,
        verdict: Some(Some(crate::model::Verdict::Positive)),
        note: "beats the baseline".into(),
    });
    insta::assert_snapshot!("history_outcome_100x30", draw(&v, &snap, 100, 30));
}

#[test]
fn a_viewer_starts_on_the_activity_feed() {
    let v = ViewState::new(Role::Viewer);
    assert_eq!(v.tab, Tab::History);
    let mut snap = snapshot(Role::Viewer);
    let item = |at: i64, experiment: u64, event: crate::lab::FeedEvent| crate::lab::FeedItem {
        at,
        experiment,
        name: Some("xgb-depth-8".into()),
        project: Some("churn".into()),
        event,
    };
    snap.feed = vec![
        item(
            1_796_003_600,
            42,
            crate::lab::FeedEvent::Outcome {
                verdict: crate::model::Verdict::Positive,
                by: "ana".into(),
                note: Some("beats the baseline".into()),
            },
        ),
        item(
            1_796_003_000,
            42,
            crate::lab::FeedEvent::Comment {
                author: "vera".into(),
                text: "Can we ship this in Q3?".into(),
            },
        ),
        item(
            1_796_000_000,
            42,
            crate::lab::FeedEvent::Result {
                state: "succeeded".into(),
            },
        ),
    ];
    insta::assert_snapshot!("history_feed_100x30", draw(&v, &snap, 100, 30));
}

#[test]
fn history_projects_and_dependencies_views() {
    let (mut v, mut snap) = history_view();
    v.history.shown = super::history::Shown::Projects;
    snap.projects = vec![crate::lab::ProjectSummary {
        project: "churn".into(),
        submitted: 40,
        finished: 38,
        succeeded: 30,
        positive: 4,
        negative: 6,
        last_activity: 1_796_003_600,
        cpu_hours: 120.5,
        gpu_hours: 33.25,
        best: None,
    }];
    insta::assert_snapshot!("history_projects_120x40", draw(&v, &snap, 120, 40));
    v.history.shown = super::history::Shown::Dependencies;
    snap.packages = vec![crate::lab::PackageSummary {
        package: "python:pandas".into(),
        versions: ["1.5.3".to_string(), "2.1.0".to_string()]
            .into_iter()
            .collect(),
        experiments: 38,
        projects: ["churn".to_string(), "fraud".to_string()]
            .into_iter()
            .collect(),
        last_used: 1_796_003_600,
    }];
    insta::assert_snapshot!("history_dependencies_120x40", draw(&v, &snap, 120, 40));
    v.history.deps_query = "package:pandas<2".into();
    snap.deps_uses = vec![crate::lab::DepsUse {
        id: 42,
        project: Some("churn".into()),
        owner: "ana".into(),
        submitted_at: 1_796_000_000,
        package: Some(crate::model::Package {
            ecosystem: "python".into(),
            name: "pandas".into(),
            version: Some("1.5.3".into()),
            constraint: None,
            from: "requirements.txt".into(),
        }),
        sources: Vec::new(),
    }];
    insta::assert_snapshot!("history_dependency_uses_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn history_diff_viewer() {
    let (mut v, mut snap) = history_view();
    v.history.pane = Some(super::history::HistoryPane::Diff { id: 42, scroll: 0 });
    snap.history_pane_text = Some(
        "diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-lr = 0.1\n+lr = 0.01\n epochs = 10\n"
            .into(),
    );
    insta::assert_snapshot!("history_diff_100x24", draw(&v, &snap, 100, 24));
}

#[test]
fn the_announcement_shows_over_the_screen_until_a_key() {
    let mut v = view(Role::Member, Tab::Dashboard);
    v.announcement = Some(
        "GPU 3 is down for repairs until Monday; use --gpus 0 meanwhile (root, 2026-12-06 09:00)"
            .into(),
    );
    insta::assert_snapshot!(
        "announcement_100x30",
        draw(&v, &snapshot(Role::Member), 100, 30)
    );
    v.handle_key(KeyEvent::new(KeyCode::Char('2')));
    assert_eq!(v.announcement, None);
    assert_eq!(v.tab, Tab::Dashboard, "the key only closed it");
}

#[test]
fn the_status_line_says_what_this_month_cost() {
    let v = view(Role::Member, Tab::Dashboard);
    let mut snap = snapshot(Role::Member);
    snap.month_cost = Some("12.34 EUR reserved".into());
    let screen = draw(&v, &snap, 120, 40).to_string();
    let status = screen.lines().last().unwrap_or_default().to_string();
    insta::assert_snapshot!("status_month_cost_120", status);
}

#[test]
fn admin_costs_view_draws_a_bar_per_row() {
    use crate::lab::{CostReport, CostRow};
    use crate::model::Hours;
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::Costs;
    let mut snap = snapshot(Role::Admin);
    let row = |key: &str, runs, cost: f64| CostRow {
        key: key.into(),
        experiments: runs,
        reserved: Hours {
            cpu_hours: cost * 10.0,
            gib_hours: cost * 40.0,
            gpu_hours: cost / 2.0,
            cost,
        },
        used: Hours {
            cpu_hours: cost * 4.0,
            gib_hours: cost * 9.0,
            gpu_hours: cost / 3.0,
            cost: cost / 2.0,
        },
    };
    snap.costs = Some(CostReport {
        currency: "EUR".into(),
        from: 1_795_996_800,
        to: 1_796_500_000,
        by: "user",
        rows: vec![
            row("alice", 12, 310.5),
            row("bob", 3, 42.0),
            row("carol", 1, 0.4),
        ],
        total: row("total", 16, 352.9),
    });
    insta::assert_snapshot!("admin_costs_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn admin_users_view_lists_roles_accounts_keys_and_sessions() {
    use crate::lab::UserSummary;
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::Users;
    let mut snap = snapshot(Role::Admin);
    let user = |name: &str, role, unix: Option<&str>, keys| UserSummary {
        name: name.into(),
        role,
        unix_user: unix.map(str::to_string),
        keys,
        created_at: 1_790_000_000,
        disabled: name == "vera",
    };
    snap.users = vec![
        user("alice", Role::Admin, Some("alice"), 2),
        user("bob", Role::Member, Some("bob"), 1),
        user("vera", Role::Viewer, None, 1),
    ];
    insta::assert_snapshot!("admin_users_120x40", draw(&v, &snap, 120, 40));
}

/// A store's quotas: the default, a user's and a project's.
fn quotas() -> Vec<(crate::model::QuotaScope, crate::model::Quota)> {
    use crate::model::{Quota, QuotaScope};
    vec![
        (
            QuotaScope::Default,
            Quota {
                max_running: Some(4),
                max_gpus: Some(2),
                max_time_secs: Some(48 * 3600),
                ..Quota::default()
            },
        ),
        (
            QuotaScope::User("alice".into()),
            Quota {
                max_gpus: Some(4),
                max_memory_bytes: Some(256 << 30),
                max_gpu_hours_month: Some(500.0),
                ..Quota::default()
            },
        ),
        (
            QuotaScope::Project("churn".into()),
            Quota {
                max_cpus: Some(32.0),
                max_cost_month: Some(1200.0),
                ..Quota::default()
            },
        ),
    ]
}

#[test]
fn admin_quotas_view_lists_the_default_users_and_projects() {
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::Quotas;
    v.admin.selected = 1;
    let mut snap = snapshot(Role::Admin);
    snap.quotas = quotas();
    insta::assert_snapshot!("admin_quotas_120x40", draw(&v, &snap, 120, 40));
    v.admin.confirm_remove = Some(crate::model::QuotaScope::User("alice".into()));
    insta::assert_snapshot!("admin_quotas_confirm_80x24", draw(&v, &snap, 80, 24));
}

#[test]
fn the_quota_editor_shows_its_live_preview_beside_the_limits() {
    use crate::lab::{QuotaChangePreview, UserFigures};
    use crate::model::Usage;
    use crate::sched::QuotaExceeded;
    use crate::sched::preview::{OverLimit, QuotaPreview};
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::Quotas;
    let (scope, set) = quotas().remove(0);
    let mut editor = super::admin::quota_editor::QuotaEditor::new(scope, &set);
    editor.focus = 3;
    editor.values[3] = "1".into();
    let typed = editor.quota().expect("typed");
    v.admin.editor = Some(editor);
    let mut snap = snapshot(Role::Admin);
    let figures = |user: &str, running, cpus, gpus, peak: f64, p95: f64| UserFigures {
        user: user.into(),
        running,
        cpus,
        memory_bytes: 24 << 30,
        gpus,
        peak_7d: Usage {
            cpu_cores: peak,
            memory_bytes: 61.0 * (1u64 << 30) as f64,
            gpus: 2.0,
            gpu_memory_bytes: 0.0,
        },
        p95_7d: Usage {
            cpu_cores: p95,
            memory_bytes: 30.0 * (1u64 << 30) as f64,
            gpus: 1.0,
            gpu_memory_bytes: 0.0,
        },
        limit: typed,
    };
    snap.quota_preview = Some(Ok(QuotaChangePreview {
        scope: "default".into(),
        quota: typed,
        effect: QuotaPreview {
            over_now: vec![OverLimit {
                who: "bob".into(),
                exceeded: QuotaExceeded::Gpus { max: 1, held: 2 },
            }],
            would_start: vec![],
            would_hold: vec![1042, 1043, 1051],
        },
        users: vec![
            figures("alice", 1, 8.0, 1, 14.2, 7.9),
            figures("bob", 2, 16.0, 2, 31.5, 12.0),
        ],
    }));
    insta::assert_snapshot!("admin_quota_editor_120x40", draw(&v, &snap, 120, 40));
    insta::assert_snapshot!("admin_quota_editor_80x24", draw(&v, &snap, 80, 24));
    snap.quota_preview = Some(Err("GPUs in use: \"x\" is not a whole number".into()));
    insta::assert_snapshot!("admin_quota_editor_error_80x24", draw(&v, &snap, 80, 24));
}

#[test]
fn idle_experiments_are_marked_on_the_dashboard_and_listed_in_the_idle_view() {
    use crate::lab::{IdleRuleShown, IdleStatus};
    let mut snap = snapshot(Role::Admin);
    snap.idle = HashMap::from([("alice".to_string(), 1)]);
    let v = view(Role::Admin, Tab::Dashboard);
    insta::assert_snapshot!("dashboard_idle_120x40", draw(&v, &snap, 120, 40));
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::Idle;
    let status = |id, owner: &str, gpus, idle_secs, flagged_at: Option<i64>| IdleStatus {
        id,
        owner: owner.into(),
        gpus,
        idle_secs,
        flagged_at,
        cancel_at: flagged_at.map(|t| t + 1800),
    };
    snap.idle_report = (
        Some(IdleRuleShown {
            gpu_percent: 5,
            cpu_percent: 5.0,
            after_secs: 3600,
            cancel_after_secs: Some(1800),
        }),
        vec![
            status(12, "alice", 2, 4_500, Some(1_790_000_000)),
            status(15, "bob", 0, 40, None),
        ],
    );
    insta::assert_snapshot!("admin_idle_120x40", draw(&v, &snap, 120, 40));
    // `e`: the rule as one line, and why a line was not taken.
    v.admin.idle_typing = Some("5 5 1h cancel 30m".into());
    insta::assert_snapshot!("admin_idle_rule_prompt_120x40", draw(&v, &snap, 120, 40));
    v.admin.idle_typing = Some("5 5 soon cancel".into());
    v.admin.error = Some("AFTER: \"soon\": expected a duration like 90s, 30m, 2h or 1h30m".into());
    insta::assert_snapshot!("admin_idle_rule_error_120x40", draw(&v, &snap, 120, 40));
    v.admin.idle_typing = None;
    v.admin.error = None;
    snap.idle_report.0 = None;
    insta::assert_snapshot!("admin_idle_off_80x24", draw(&v, &snap, 80, 24));
}

#[test]
fn the_users_view_asks_before_it_changes_and_lists_a_users_keys() {
    use super::admin::users::UserPrompt;
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::Users;
    let mut snap = snapshot(Role::Admin);
    snap.users = vec![crate::lab::UserSummary {
        name: "bob".into(),
        role: Role::Member,
        unix_user: Some("bob".into()),
        keys: 1,
        created_at: 1_790_000_000,
        disabled: true,
    }];
    v.admin.users.prompt = Some(UserPrompt::Toggle {
        name: "bob".into(),
        disable: false,
    });
    insta::assert_snapshot!("admin_users_enable_80x24", draw(&v, &snap, 80, 24));
    v.admin.users.prompt = Some(UserPrompt::Add("ana boss".into()));
    v.admin.users.error = Some("\"boss\": admin, member or viewer".into());
    insta::assert_snapshot!("admin_users_add_error_80x24", draw(&v, &snap, 80, 24));
    v.admin.users.prompt = Some(UserPrompt::ConfirmKey {
        name: "bob".into(),
        line: "ssh-ed25519 AAAA".into(),
        fingerprint: "SHA256:Qv3bY0u5R1mLxYpEj8r8nT8kq3oJ1tR0YbN3s5hZp2c".into(),
    });
    v.admin.users.error = None;
    v.admin.users.keys_of = Some(("bob".into(), 0));
    let key = crate::model::PublicKeyInfo::parse(crate::lab::testing::KEY_A).expect("key");
    snap.user_keys = vec![crate::model::KeyRecord {
        user: "bob".into(),
        key,
        added_at: 1_790_000_000,
        added_by: "alice".into(),
    }];
    insta::assert_snapshot!("admin_user_keys_120x40", draw(&v, &snap, 120, 40));
}

#[test]
fn admin_host_limits_view_lists_each_cap() {
    let mut v = view(Role::Admin, Tab::Admin);
    v.admin.view = super::admin::AdminView::HostLimits;
    let mut snap = snapshot(Role::Admin);
    snap.host_limits = vec![
        crate::lab::HostLimitShown {
            scope: "default".into(),
            cpus: Some(4.0),
            memory_bytes: Some(16 << 30),
        },
        crate::lab::HostLimitShown {
            scope: "bob".into(),
            cpus: None,
            memory_bytes: Some(64 << 30),
        },
    ];
    insta::assert_snapshot!("admin_host_limits_120x40", draw(&v, &snap, 120, 40));
}
