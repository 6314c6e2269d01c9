//! Screen snapshots of every screen at 80×24 and 120×40 (ratatui TestBackend + insta).

use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use terminput::{KeyCode, KeyEvent};

use super::{Snapshot, Tab, ViewState, render};
use crate::lab::ConnectedUser;
use crate::model::Role;
use crate::monitor::HostSnapshot;

const GIB: u64 = 1024 * 1024 * 1024;

fn snapshot(role: Role) -> Snapshot {
    Snapshot {
        user: "alice".into(),
        role: Some(role),
        host: Arc::new(HostSnapshot {
            hostname: "gpu-host-01".into(),
            cores: 64,
            cpu_percent: 42.5,
            memory_total: 512 * GIB,
            memory_used: 400 * GIB,
            swap_total: 16 * GIB,
            swap_used: GIB,
            load: [12.5, 10.25, 8.0],
            uptime_secs: 3 * 86_400 + 4 * 3600 + 5 * 60,
            sampled_at: 1,
        }),
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
    Arc::make_mut(&mut snap.host).swap_total = 0;
    let screen = draw(&view(Role::Viewer, Tab::Dashboard), &snap, 80, 24);
    let text = format!("{screen}");
    assert!(text.contains("none"), "{text}");
    assert!(text.contains("Connected users (0)"), "{text}");
}
