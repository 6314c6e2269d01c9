//! The Dashboard tab as a component: its state and keys here, its drawing
//! in [`draw`] (a pure function of this state and the shared snapshot).

pub mod draw;

use terminput::{KeyCode, KeyEvent};

use super::component::Handled;
use crate::monitor::Window;

/// What a Dashboard key asks of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Open the drill-down of the selected row.
    OpenSelected,
}

/// Which pair of metrics the Dashboard's user table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricPair {
    /// CPU cores and memory.
    CpuMemory,
    /// GPUs and GPU memory.
    Gpu,
}

/// A column of the Dashboard's user table, for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// User name.
    User,
    /// Process count.
    Processes,
    /// First metric of the pair, now or peak over a window (`None`: now).
    First(Option<Window>),
    /// Second metric of the pair, now or peak over a window.
    Second(Option<Window>),
}

impl SortColumn {
    /// Every column in display order.
    pub const ALL: [SortColumn; 10] = [
        SortColumn::User,
        SortColumn::Processes,
        SortColumn::First(None),
        SortColumn::First(Some(Window::Hour)),
        SortColumn::First(Some(Window::Day)),
        SortColumn::First(Some(Window::Week)),
        SortColumn::Second(None),
        SortColumn::Second(Some(Window::Hour)),
        SortColumn::Second(Some(Window::Day)),
        SortColumn::Second(Some(Window::Week)),
    ];
}

/// A user's detail view on the Dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillDown {
    /// Unix uid of the user shown (their account may be renamed meanwhile).
    pub uid: u32,
    /// Their account's name when the drill-down opened.
    pub unix_user: String,
    /// Chart window (1h, 24h or 7d).
    pub window: Window,
}

/// View state of the Dashboard tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardState {
    /// Metrics shown in the table.
    pub metrics: MetricPair,
    /// Sort column.
    pub sort: SortColumn,
    /// Largest first (true) or smallest first.
    pub descending: bool,
    /// Selected row (index into the sorted rows).
    pub selected: usize,
    /// The open drill-down, if any.
    pub drill: Option<DrillDown>,
}

impl Default for DashboardState {
    fn default() -> Self {
        DashboardState {
            metrics: MetricPair::CpuMemory,
            sort: SortColumn::First(None),
            descending: true,
            selected: 0,
            drill: None,
        }
    }
}

impl DashboardState {
    /// Handles a key of the Dashboard.
    pub fn handle_key(&mut self, key: KeyEvent) -> Handled<Request> {
        let d = self;
        if let Some(drill) = d.drill.as_mut() {
            match key.code {
                KeyCode::Esc | KeyCode::Backspace => d.drill = None,
                KeyCode::Char('w') => {
                    drill.window = match drill.window {
                        Window::Hour => Window::Day,
                        Window::Day => Window::Week,
                        _ => Window::Hour,
                    }
                }
                _ => return Handled::No,
            }
            return Handled::Yes;
        }
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => d.selected = d.selected.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => d.selected = d.selected.saturating_sub(1),
            KeyCode::PageDown => d.selected = d.selected.saturating_add(10),
            KeyCode::PageUp => d.selected = d.selected.saturating_sub(10),
            KeyCode::Home => d.selected = 0,
            // Clamped to the last row when drawn.
            KeyCode::End => d.selected = usize::MAX,
            KeyCode::Enter => return Handled::Ask(Request::OpenSelected),
            KeyCode::Char('s') => d.sort = step_sort(d.sort, 1),
            KeyCode::Char('S') => d.sort = step_sort(d.sort, -1),
            KeyCode::Char('r') => d.descending = !d.descending,
            KeyCode::Char('g') => {
                d.metrics = match d.metrics {
                    MetricPair::CpuMemory => MetricPair::Gpu,
                    MetricPair::Gpu => MetricPair::CpuMemory,
                }
            }
            _ => return Handled::No,
        }
        Handled::Yes
    }
}

fn step_sort(current: SortColumn, step: isize) -> SortColumn {
    let all = SortColumn::ALL;
    let at = all.iter().position(|c| *c == current).unwrap_or(0) as isize;
    all[(at + step).rem_euclid(all.len() as isize) as usize]
}
