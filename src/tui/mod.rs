//! The full-screen interface served over SSH (`ssh -t lab@host`).
//!
//! Owns view state, key handling, drawing and the per-session loop. Reads
//! shared state only through the service's snapshots; never touches the store
//! or the operating system directly.
//!
//! Each tab is a component (`dashboard`, `queue`): its state and keys in its
//! `mod.rs`, its drawing in its `draw.rs`, a pure function of that state and
//! the shared [`Snapshot`]. A key gives a `component::Handled`: nothing, a
//! change of the component's own state, a notice, or a request that the
//! session carries out with the service (`requests.rs`). `app.rs` holds
//! what is not a tab's (the tab, help, notice, role) and hands keys on;
//! `widgets.rs` has what every screen draws with.
//!
//! For the people who use it: tabs Dashboard, Queue, History and Admin
//! (admins only: audit trail, costs, users, quotas with a live preview) and a
//! status line (user, role, host, clock, sessions). `?`
//! shows the keys of the current screen. Pasted text (bracketed paste) goes
//! into the open form field, prompt or search and never acts as keys or
//! submits; elsewhere it is ignored. In the form's command its lines become
//! `;`-separated commands (a backslash at a line's end joins it to the next,
//! as in a shell); in other fields a line break is a space; a paste over
//! 16 KiB is dropped whole. Terminals smaller than 80×24 get a "terminal too
//! small" notice; only the 16 basic colours are used.

mod admin;
mod app;
mod backend;
mod component;
mod dashboard;
mod data;
mod fetch;
mod history;
mod input;
mod queue;
mod requests;
mod session;
mod view;
mod widgets;

#[cfg(test)]
mod snapshot_tests;

pub use app::{Flow, Tab, ViewState};
pub use backend::{FALLBACK_SIZE, ScreenWriter};
pub use data::Snapshot;
pub use input::{InputParser, key_name, key_press};
pub use session::{FrameSink, TuiInput, TuiSettings, run_tui_session};
pub use view::{MIN_HEIGHT, MIN_WIDTH, help_lines, render};
