//! Turning rendered buffers into terminal bytes for an SSH channel.
//!
//! crossterm's own size and cursor queries read the *server's* terminal, so
//! the size here comes from the client's pty (pty-req, window-change) and
//! nothing is ever queried. Between frames only one 64-bit hash per screen
//! row is kept (not a copy of the screen), so an idle session costs a few
//! hundred bytes; a row whose hash changed is redrawn whole.

use std::hash::BuildHasher;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::buffer::{Buffer, Cell, CellDiffOption};
use ratatui::layout::{Rect, Size};
use unicode_width::UnicodeWidthStr;

/// Terminal size used when a client announces none (e.g. `ssh -tt` from a pipe: 0×0).
pub const FALLBACK_SIZE: Size = Size {
    width: 80,
    height: 24,
};

/// Clear the whole screen and home the cursor.
const CLEAR: &[u8] = b"\x1b[2J\x1b[H";

/// Bytes produced by the crossterm encoder, shared with the writer that takes them.
#[derive(Debug, Clone, Default)]
struct FrameBytes(Arc<Mutex<Vec<u8>>>);

impl FrameBytes {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Write for FrameBytes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders frames for one client terminal, redrawing only rows that changed.
pub struct ScreenWriter {
    size: Size,
    row_hashes: Vec<u64>,
    encoder: CrosstermBackend<FrameBytes>,
    output: FrameBytes,
    hasher: foldhash::fast::FixedState,
}

impl ScreenWriter {
    /// A writer for a terminal of `size` (0 in either dimension means unknown).
    pub fn new(size: Size) -> ScreenWriter {
        let output = FrameBytes::default();
        ScreenWriter {
            size: sanitize(size),
            row_hashes: Vec::new(),
            encoder: CrosstermBackend::new(output.clone()),
            output,
            hasher: foldhash::fast::FixedState::with_seed(0x6c61_6262_656e_6368),
        }
    }

    /// The terminal size frames are drawn at.
    pub fn size(&self) -> Size {
        self.size
    }

    /// Records the client's new window size; the next frame is drawn in full.
    pub fn set_size(&mut self, size: Size) {
        let size = sanitize(size);
        if size != self.size {
            self.size = size;
            self.row_hashes.clear();
        }
    }

    /// Draws a frame with `draw` and returns the bytes that bring the client's
    /// screen up to date (empty when nothing changed).
    pub fn frame(&mut self, draw: impl FnOnce(&mut Buffer)) -> io::Result<Vec<u8>> {
        let area = Rect::new(0, 0, self.size.width, self.size.height);
        let mut buffer = Buffer::empty(area);
        draw(&mut buffer);
        let full = self.row_hashes.len() != usize::from(area.height);
        if full {
            self.row_hashes = vec![0; usize::from(area.height)];
        }
        let width = usize::from(area.width);
        let mut changed: Vec<(u16, u16, &Cell)> = Vec::new();
        for (y, row) in buffer.content.chunks(width.max(1)).enumerate() {
            let hash = self.row_hash(row);
            if full || self.row_hashes[y] != hash {
                self.row_hashes[y] = hash;
                push_row(&mut changed, y as u16, row);
            }
        }
        let mut bytes = if full { CLEAR.to_vec() } else { Vec::new() };
        if !changed.is_empty() {
            self.encoder.draw(changed.into_iter())?;
            self.encoder.hide_cursor()?;
            bytes.extend(self.output.take());
        }
        Ok(bytes)
    }

    fn row_hash(&self, row: &[Cell]) -> u64 {
        self.hasher.hash_one(row)
    }
}

/// Adds every visible cell of a row; cells covered by a wide character are skipped.
fn push_row<'a>(out: &mut Vec<(u16, u16, &'a Cell)>, y: u16, row: &'a [Cell]) {
    let mut covered = 0usize;
    for (x, cell) in row.iter().enumerate() {
        if covered > 0 {
            covered -= 1;
            continue;
        }
        let width = match cell.diff_option {
            CellDiffOption::Skip => continue,
            CellDiffOption::ForcedWidth(w) => usize::from(w.get()),
            _ => cell.symbol().width(),
        };
        covered = width.saturating_sub(1);
        out.push((x as u16, y, cell));
    }
}

fn sanitize(size: Size) -> Size {
    if size.width == 0 || size.height == 0 {
        FALLBACK_SIZE
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::widgets::{Paragraph, Widget};

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn first_frame_is_full_then_only_changed_rows() {
        let mut screen = ScreenWriter::new(Size::new(20, 3));
        let first = screen
            .frame(|b| Paragraph::new("hello\nworld").render(b.area, b))
            .expect("frame");
        assert!(text(&first).starts_with("\x1b[2J"));
        assert!(text(&first).contains("hello") && text(&first).contains("world"));
        let same = screen
            .frame(|b| Paragraph::new("hello\nworld").render(b.area, b))
            .expect("frame");
        assert!(same.is_empty(), "{:?}", text(&same));
        let next = screen
            .frame(|b| Paragraph::new("hello\nthere").render(b.area, b))
            .expect("frame");
        assert!(text(&next).contains("there"));
        assert!(!text(&next).contains("hello"));
    }

    #[test]
    fn resize_redraws_everything() {
        let mut screen = ScreenWriter::new(Size::new(20, 3));
        screen
            .frame(|b| Paragraph::new("x").render(b.area, b))
            .expect("frame");
        screen.set_size(Size::new(30, 4));
        let bytes = screen
            .frame(|b| Paragraph::new("x").render(b.area, b))
            .expect("frame");
        assert!(text(&bytes).starts_with("\x1b[2J"));
    }

    #[test]
    fn wide_characters_are_not_followed_by_their_covered_cell() {
        let mut screen = ScreenWriter::new(Size::new(6, 1));
        let bytes = screen
            .frame(|b| Paragraph::new("コa").render(b.area, b))
            .expect("frame");
        let t = text(&bytes);
        assert!(t.contains("コ\x1b[1;3Ha"), "{t:?}");
    }

    #[test]
    fn zero_size_falls_back_to_80x24() {
        assert_eq!(ScreenWriter::new(Size::new(0, 0)).size(), FALLBACK_SIZE);
    }
}
