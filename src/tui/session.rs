//! One interactive session: a task that turns input and shared snapshots into frames.
//!
//! Back-pressure: a frame is rendered only after the previous one was handed
//! to the client (the sink waits for the SSH window), so a stalled client
//! costs at most one frame of memory; ticks missed meanwhile are skipped and
//! the next frame shows the latest state.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::app::{DashboardRequest, DrillDown, Flow, QueuePane, Tab, ViewState};
use super::backend::ScreenWriter;
use super::dashboard::sorted_rows;
use super::input::{InputParser, key_press};
use super::queue::visible_rows;
use super::view::{Snapshot, render};
use crate::lab::{Lab, ListFilter, Principal};
use crate::monitor::Window;

/// Enter the alternate screen, hide the cursor, clear.
const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[2J\x1b[H";
/// Reset attributes, show the cursor, leave the alternate screen.
const LEAVE: &[u8] = b"\x1b[0m\x1b[?25h\x1b[?1049l";

/// What a session receives from its channel.
#[derive(Debug)]
pub struct TuiInput {
    /// Bytes typed by the user; `None` when the channel closes.
    pub keys: mpsc::Receiver<bytes::Bytes>,
    /// The client's window size, updated on window-change.
    pub size: watch::Receiver<ratatui::layout::Size>,
}

/// Settings of one session.
#[derive(Debug, Clone, Copy)]
pub struct TuiSettings {
    /// Redraw period when nothing else happens.
    pub refresh: Duration,
    /// Leave after this long without a key press (`None`: never).
    pub idle_timeout: Option<Duration>,
}

/// Where frames go; `write` waits until the client can take more.
pub trait FrameSink: Send {
    /// Sends bytes; an error means the client is gone.
    fn write(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), ()>> + Send;
}

/// Runs the interface until the user quits or the channel closes; returns the exit status.
pub async fn run_tui_session<S: FrameSink>(
    lab: Lab,
    principal: Principal,
    mut input: TuiInput,
    mut sink: S,
    settings: TuiSettings,
) -> u32 {
    let mut view = ViewState::new(principal.role);
    let mut parser = InputParser::default();
    let initial_size = *input.size.borrow_and_update();
    let mut screen = ScreenWriter::new(initial_size);
    let idle_limit = settings.idle_timeout.unwrap_or(Duration::MAX);
    let mut last_key = tokio::time::Instant::now();
    let usage = lab.usage_updates();
    let mut lab_names = lab.lab_names().unwrap_or_default();
    let mut frames: u64 = 0;
    let mut tick = tokio::time::interval(settings.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    if sink.write(ENTER.to_vec()).await.is_err() {
        return 0;
    }
    loop {
        frames += 1;
        if frames % 10 == 0 {
            lab_names = lab.lab_names().unwrap_or(lab_names);
            // A removed key or account ends the session, even one opened before.
            if let Err(e) = lab.whoami(&principal) {
                let mut farewell = LEAVE.to_vec();
                farewell.extend_from_slice(format!("labbench: {e}\r\n").as_bytes());
                let _ = sink.write(farewell).await;
                return crate::cli::exit::PERMISSION_DENIED;
            }
        }
        let mut snapshot = Snapshot {
            user: principal.user.clone(),
            role: Some(view.role),
            usage: usage.borrow().clone(),
            lab_names: lab_names.clone(),
            drill_chart: Vec::new(),
            running: lab.running_by_unix_user(),
            queue: Vec::new(),
            queue_pane_text: None,
            connected: lab.sessions().users(),
            sessions: lab.sessions().count(),
            clock: chrono::Local::now().format("%H:%M:%S").to_string(),
        };
        if view.tab == Tab::Queue {
            snapshot.queue = lab
                .list_experiments(&principal, &ListFilter::default())
                .unwrap_or_default();
        }
        match view.request.take() {
            Some(DashboardRequest::OpenSelected) => {
                let rows = sorted_rows(&snapshot, &view.dashboard);
                let index = view.dashboard.selected.min(rows.len().saturating_sub(1));
                if let Some(row) = rows.get(index) {
                    view.dashboard.drill = Some(DrillDown {
                        unix_user: row.usage.unix_user.clone(),
                        window: Window::Hour,
                    });
                }
            }
            Some(request) => {
                let rows = visible_rows(&snapshot, &view.queue);
                let selected = rows
                    .get(view.queue.selected.min(rows.len().saturating_sub(1)))
                    .map(|v| v.experiment.id);
                match (request, selected) {
                    (DashboardRequest::ShowSelectedExperiment, Some(id)) => {
                        view.queue.pane = Some(QueuePane::Details(id));
                    }
                    (DashboardRequest::LogSelectedExperiment, Some(id)) => {
                        view.queue.pane = Some(QueuePane::Log(id));
                    }
                    (DashboardRequest::CancelSelectedExperiment, Some(id)) => {
                        view.queue.pane = Some(QueuePane::ConfirmCancel(id));
                    }
                    (DashboardRequest::RerunSelectedExperiment, Some(id)) => {
                        view.notice = Some(
                            match lab.rerun(&principal, id, crate::lab::SubmitRequest::default()) {
                                Ok(new) => format!("submitted experiment {new} (rerun of {id})"),
                                Err(e) => e.to_string(),
                            },
                        );
                    }
                    (DashboardRequest::ConfirmCancel(id), _) => {
                        view.notice = Some(match lab.cancel(&principal, id) {
                            Ok(state) if state.is_finished() => {
                                format!("cancelled experiment {id}")
                            }
                            Ok(_) => format!("stopping experiment {id}"),
                            Err(e) => e.to_string(),
                        });
                    }
                    _ => view.notice = Some("no experiment selected".into()),
                }
            }
            None => {}
        }
        snapshot.queue_pane_text = match view.queue.pane {
            Some(QueuePane::Details(id)) => Some(
                String::from_utf8_lossy(
                    &crate::cli::queue::show(&lab, &principal, id, false).stdout,
                )
                .into_owned(),
            ),
            Some(QueuePane::Log(id)) => Some(log_tail(&lab, id)),
            _ => None,
        };
        let rows = snapshot.usage.users.len();
        view.dashboard.selected = view.dashboard.selected.min(rows.saturating_sub(1));
        if let Some(drill) = &view.dashboard.drill {
            snapshot.drill_chart = lab.usage_chart(&principal, &drill.unix_user, drill.window);
        }
        let Ok(frame) = screen.frame(|buffer| render(buffer, &view, &snapshot)) else {
            tracing::warn!(user = %principal.user, "drawing failed; ending session");
            return 1;
        };
        if !frame.is_empty() && sink.write(frame).await.is_err() {
            return 0;
        }
        // Shared data (host figures, sessions) is picked up on the next tick:
        // one frame per second per idle session, whatever changes upstream.
        tokio::select! {
            _ = tick.tick() => {}
            changed = input.size.changed() => {
                if changed.is_ok() {
                    let size = *input.size.borrow_and_update();
                    screen.set_size(size);
                }
            }
            event = input.keys.recv() => match event {
                None => return 0,
                Some(bytes) => {
                    last_key = tokio::time::Instant::now();
                    for key in parser.feed(&bytes).iter().filter_map(key_press) {
                        if view.handle_key(key) == Flow::Quit {
                            let _ = sink.write(LEAVE.to_vec()).await;
                            return 0;
                        }
                    }
                }
            },
        }
        if last_key.elapsed() >= idle_limit {
            let mut farewell = LEAVE.to_vec();
            farewell.extend_from_slice(
                format!(
                    "labbench: disconnected after {} s without input\r\n",
                    idle_limit.as_secs()
                )
                .as_bytes(),
            );
            let _ = sink.write(farewell).await;
            return 0;
        }
    }
}

impl<T: FrameSink> FrameSink for &mut T {
    fn write(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), ()>> + Send {
        (**self).write(bytes)
    }
}

/// Bytes of an experiment's output shown in the live log pane (its end).
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// The cleaned end of an experiment's standard output.
fn log_tail(lab: &Lab, id: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let path = crate::exec::ExperimentFiles::new(lab.data_dir(), id).stdout();
    let Ok(mut file) = std::fs::File::open(&path) else {
        return "(no output yet)".into();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return "(output unreadable)".into();
    }
    let text = crate::exec::logs::clean(&bytes);
    if start > 0 {
        // The first line may be cut in the middle.
        text.split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or(text)
    } else {
        text
    }
}
