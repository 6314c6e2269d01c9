//! The Queue tab's log pane (`l`): an experiment's output followed live,
//! with scrollback and `/` search.
//!
//! The session keeps a [`LogFollower`] that reads only new bytes each frame
//! and keeps the last [`MAX_LINES`] cleaned lines; the view keeps where the
//! reader is ([`LogPaneState`]); drawing is a pure function of both.

use std::sync::Arc;

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::output::{LogReader, Stream};
use crate::tui::widgets::{ACCENT, Canvas};

/// Lines kept for scrollback; older ones are dropped (the file keeps them).
pub const MAX_LINES: usize = 20_000;
/// Bytes read per frame at most (a fast writer is caught up over frames).
const READ_PER_FRAME: usize = 1024 * 1024;
/// Where reading starts in a large log (its end; older output is on disk).
pub const INITIAL_TAIL: u64 = 4 * 1024 * 1024;

/// Cleaned lines of a log; `first` is the number of the first kept line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogLines {
    /// Number of the first line in `lines` (lines before it were dropped).
    pub first: usize,
    /// The kept lines.
    pub lines: Vec<String>,
}

impl LogLines {
    /// Number one past the last line.
    pub fn end(&self) -> usize {
        self.first + self.lines.len()
    }

    /// Line `number`, if kept.
    pub fn get(&self, number: usize) -> Option<&str> {
        number
            .checked_sub(self.first)
            .and_then(|i| self.lines.get(i))
            .map(String::as_str)
    }
}

/// Reads an experiment's log incrementally (session side).
#[derive(Debug)]
pub struct LogFollower {
    /// Which experiment and stream.
    pub key: (u64, Stream),
    reader: LogReader,
    lines: Arc<LogLines>,
}

impl LogFollower {
    /// Follows experiment `id`'s log with `reader`, opened at its last
    /// [`INITIAL_TAIL`] bytes.
    pub fn new(id: u64, reader: LogReader) -> LogFollower {
        let mut lines = LogLines::default();
        let earlier = reader.offset();
        if earlier > 0 {
            lines.lines.push(format!(
                "[labbench: {earlier} earlier bytes are in `logs {id}`]"
            ));
        }
        LogFollower {
            key: (id, reader.stream()),
            reader,
            lines: Arc::new(lines),
        }
    }

    /// Reads what was added since the last call; returns the lines so far.
    pub fn poll(&mut self) -> Arc<LogLines> {
        let lines = &mut self.lines;
        self.reader.read(READ_PER_FRAME, |line| {
            Arc::make_mut(lines).lines.push(line.text);
        });
        let lines = Arc::make_mut(&mut self.lines);
        if lines.lines.len() > MAX_LINES {
            let drop = lines.lines.len() - MAX_LINES;
            lines.lines.drain(..drop);
            lines.first += drop;
        }
        Arc::clone(&self.lines)
    }
}

/// Where the reader of the log pane is (view side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaneState {
    /// The experiment shown.
    pub id: u64,
    /// Standard output or standard error.
    pub stream: Stream,
    /// First line shown; `None` follows the end.
    pub top: Option<usize>,
    /// The search being typed after `/`.
    pub typing: Option<String>,
    /// The last search.
    pub search: Option<String>,
    /// The line of the current match.
    pub matched: Option<usize>,
    /// Lines per page (set by the session from the screen height).
    pub page: usize,
    /// First and one-past-last line number of the log (set by the session).
    pub bounds: (usize, usize),
}

impl LogPaneState {
    /// The pane for experiment `id`'s standard output, following its end.
    pub fn new(id: u64) -> LogPaneState {
        LogPaneState {
            id,
            stream: Stream::Stdout,
            top: None,
            typing: None,
            search: None,
            matched: None,
            page: 20,
            bounds: (0, 0),
        }
    }

    /// The first line shown for `lines` in a pane `height` lines high.
    pub fn first_shown(&self, lines: &LogLines, height: usize) -> usize {
        Self::top_within(self.top, (lines.first, lines.end()), height)
    }

    fn top_within(top: Option<usize>, (first, end): (usize, usize), height: usize) -> usize {
        let last_top = end.saturating_sub(height).max(first);
        match top {
            None => last_top,
            Some(top) => top.clamp(first, last_top),
        }
    }

    /// Scrolls by `delta` lines (negative: back); reaching the end follows again.
    pub fn scroll(&mut self, delta: isize) {
        let current = Self::top_within(self.top, self.bounds, self.page);
        let last_top = Self::top_within(None, self.bounds, self.page);
        let next = current.saturating_add_signed(delta).max(self.bounds.0);
        self.top = if next >= last_top { None } else { Some(next) };
    }

    /// Jumps to the first kept line.
    pub fn home(&mut self) {
        self.top = Some(self.bounds.0);
    }

    /// Finds the search text before (`older`) or after the current match or
    /// view; moves there. Returns false when there is no further match.
    pub fn find(&mut self, lines: &LogLines, older: bool) -> bool {
        let Some(query) = self.search.clone().filter(|q| !q.is_empty()) else {
            return false;
        };
        let from = self.matched.unwrap_or_else(|| {
            if older {
                lines.end()
            } else {
                self.first_shown(lines, self.page)
            }
        });
        let hit = if older {
            (lines.first..from)
                .rev()
                .find(|n| lines.get(*n).is_some_and(|l| matches(l, &query)))
        } else {
            (from + 1..lines.end()).find(|n| lines.get(*n).is_some_and(|l| matches(l, &query)))
        };
        match hit {
            Some(n) => {
                self.matched = Some(n);
                self.top = Some(n.saturating_sub(self.page / 2).max(lines.first));
                let last_top = lines.end().saturating_sub(self.page).max(lines.first);
                if self.top.is_some_and(|t| t >= last_top) {
                    self.top = Some(last_top);
                }
                true
            }
            None => false,
        }
    }
}

/// Smart case: a query with capitals matches exactly, else ignoring case.
pub fn matches(line: &str, query: &str) -> bool {
    if query.chars().any(char::is_uppercase) {
        line.contains(query)
    } else {
        line.to_lowercase().contains(&query.to_lowercase())
    }
}

/// Draws the pane over `area`.
pub(super) fn render_log_pane(
    frame: &mut Canvas,
    area: Rect,
    lines: &LogLines,
    state: &LogPaneState,
) {
    let rect = Rect::new(
        area.x + 2.min(area.width / 2),
        area.y + 1.min(area.height / 2),
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, rect);
    let height = usize::from(rect.height.saturating_sub(2));
    let first = state.first_shown(lines, height);
    let stream = match state.stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let position = match state.top {
        None => "following".to_string(),
        Some(_) => format!(
            "{}–{} of {}",
            first + 1,
            (first + height).min(lines.end()),
            lines.end()
        ),
    };
    let other = match state.stream {
        Stream::Stdout => "stderr",
        Stream::Stderr => "stdout",
    };
    let keys = if rect.width >= 110 {
        format!("↑↓ PgUp PgDn Home End · /: search, n N · e: {other} · Esc")
    } else {
        format!("/: search · e: {other} · Esc")
    };
    let title = format!(" Experiment {} {stream} ({position}) · {keys} ", state.id);
    let query = state.search.as_deref().filter(|q| !q.is_empty());
    let mut shown: Vec<Line> = (first..first + height)
        .filter_map(|n| lines.get(n).map(|l| (n, l)))
        .map(|(n, text)| highlight(text, query, state.matched == Some(n)))
        .collect();
    if lines.lines.is_empty() {
        shown.push(Line::from("(no output yet)"));
    }
    let bottom = match &state.typing {
        Some(typed) => Line::from(vec![
            Span::styled(
                " /",
                Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{}▏ ", crate::units::printable(typed))),
        ]),
        None => match query {
            Some(q) => Line::from(format!(" search: {} ", crate::units::printable(q))),
            None => Line::from(""),
        },
    };
    frame.render_widget(
        Paragraph::new(shown).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(ACCENT))
                .title(title)
                .title_bottom(bottom),
        ),
        rect,
    );
}

/// A log line with the search hits marked (the current match's line reversed).
fn highlight(text: &str, query: Option<&str>, current: bool) -> Line<'static> {
    let base = if current {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        Style::default()
    };
    let hit = base.fg(Color::Black).bg(Color::Yellow);
    let Some(query) = query else {
        return Line::from(Span::styled(text.to_string(), base));
    };
    let exact = query.chars().any(char::is_uppercase);
    let haystack = if exact {
        text.to_string()
    } else {
        text.to_lowercase()
    };
    let needle = if exact {
        query.to_string()
    } else {
        query.to_lowercase()
    };
    // Lower-casing can change byte lengths; mark hits only when it did not.
    if haystack.len() != text.len() || needle.is_empty() {
        return Line::from(Span::styled(text.to_string(), base));
    }
    let mut spans = Vec::new();
    let mut at = 0;
    for (start, _) in haystack.match_indices(&needle) {
        if start < at {
            continue;
        }
        spans.push(Span::styled(text[at..start].to_string(), base));
        spans.push(Span::styled(
            text[start..start + needle.len()].to_string(),
            hit,
        ));
        at = start + needle.len();
    }
    spans.push(Span::styled(text[at..].to_string(), base));
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> LogLines {
        LogLines {
            first: 0,
            lines: (0..n).map(|i| format!("step {i} loss")).collect(),
        }
    }

    #[test]
    fn scrolling_back_stops_following_and_the_end_follows_again() {
        let l = lines(100);
        let mut s = LogPaneState::new(1);
        s.bounds = (l.first, l.end());
        assert_eq!(s.first_shown(&l, 20), 80);
        s.scroll(-5);
        assert_eq!(s.top, Some(75));
        s.scroll(-1000);
        assert_eq!(s.first_shown(&l, 20), 0);
        s.scroll(1000);
        assert_eq!(s.top, None, "back at the end: following");
    }

    #[test]
    fn search_walks_matches_older_and_newer() {
        let l = lines(100);
        let mut s = LogPaneState::new(1);
        s.search = Some("STEP 5".into());
        assert!(!s.find(&l, true), "capitals match exactly");
        s.search = Some("step 5".into());
        assert!(s.find(&l, true));
        assert_eq!(s.matched, Some(59));
        assert!(s.find(&l, true));
        assert_eq!(s.matched, Some(58));
        assert!(s.find(&l, false));
        assert_eq!(s.matched, Some(59));
        s.matched = Some(5);
        assert!(!s.find(&l, true), "no older match");
        assert_eq!(s.matched, Some(5));
    }

    #[test]
    fn the_follower_reads_only_new_complete_lines_and_caps_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = crate::output::ExperimentFiles::new_in(dir.path());
        let path = files.log(Stream::Stdout);
        std::fs::write(&path, "a\nb\x1b[31mred\npartial").expect("write");
        let from = crate::output::ReadFrom::Tail(INITIAL_TAIL);
        let reader = LogReader::open(&files, Stream::Stdout, from, false);
        let mut f = LogFollower::new(1, reader);
        assert_eq!(f.poll().lines, ["a", "bred"]);
        let mut more = String::from(" line\n");
        for i in 0..MAX_LINES {
            more.push_str(&format!("{i}\n"));
        }
        std::fs::write(&path, format!("a\nb\x1b[31mred\npartial{more}")).expect("grow");
        let l = f.poll();
        assert_eq!(l.lines.len(), MAX_LINES);
        assert_eq!(l.first, 3);
        assert_eq!(l.get(l.end() - 1), Some(&*(MAX_LINES - 1).to_string()));
    }
}
