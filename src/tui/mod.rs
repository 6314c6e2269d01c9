//! The full-screen interface served over SSH (`ssh -t lab@host`).
//!
//! Owns view state, key handling, drawing and the per-session loop. Reads
//! shared state only through the service's snapshots; never touches the store
//! or the operating system directly.

mod app;
mod backend;
mod dashboard;
mod form;
mod input;
mod logpane;
mod queue;
mod requests;
mod session;
mod view;

#[cfg(test)]
mod snapshot_tests;

pub use app::{Flow, Tab, ViewState};
pub use backend::{FALLBACK_SIZE, ScreenWriter};
pub use input::{InputParser, key_name, key_press};
pub use session::{FrameSink, TuiInput, TuiSettings, run_tui_session};
pub use view::{MIN_HEIGHT, MIN_WIDTH, Snapshot, help_lines, render};
