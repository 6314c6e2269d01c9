//! A ratatui backend that renders into bytes for an SSH channel.
//!
//! crossterm's own size and cursor queries read the *server's* terminal, so
//! this backend takes its size from the client's pty (pty-req, window-change)
//! and never queries anything; drawing is delegated to crossterm's encoder.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};

/// Terminal size used when a client announces none (e.g. `ssh -tt` from a pipe: 0×0).
pub const FALLBACK_SIZE: Size = Size {
    width: 80,
    height: 24,
};

/// Bytes produced by drawing, shared between the backend and its owner.
#[derive(Debug, Clone, Default)]
struct FrameBytes(Arc<Mutex<Vec<u8>>>);

impl FrameBytes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for FrameBytes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders to an in-memory byte buffer with a size set by the caller.
pub struct PtyBackend {
    inner: CrosstermBackend<FrameBytes>,
    output: FrameBytes,
    size: Size,
    cursor: Position,
}

impl PtyBackend {
    /// A backend for a terminal of `size` (0 in either dimension means unknown).
    pub fn new(size: Size) -> PtyBackend {
        let output = FrameBytes::default();
        PtyBackend {
            inner: CrosstermBackend::new(output.clone()),
            output,
            size: sanitize(size),
            cursor: Position::ORIGIN,
        }
    }

    /// Records the client's new window size.
    pub fn set_size(&mut self, size: Size) {
        self.size = sanitize(size);
    }

    /// Takes the bytes drawn since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.output.lock())
    }
}

fn sanitize(size: Size) -> Size {
    if size.width == 0 || size.height == 0 {
        FALLBACK_SIZE
    } else {
        size
    }
}

impl Backend for PtyBackend {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        let position = position.into();
        self.cursor = position;
        self.inner.set_cursor_position(position)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.size)
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize {
            columns_rows: self.size,
            pixels: Size::default(),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::widgets::Paragraph;

    #[test]
    fn draws_to_bytes_at_the_pty_size() {
        let mut terminal = Terminal::new(PtyBackend::new(Size::new(30, 5))).expect("terminal");
        terminal
            .draw(|f| f.render_widget(Paragraph::new("hello"), f.area()))
            .expect("draw");
        assert_eq!(terminal.size().expect("size"), Size::new(30, 5));
        let bytes = terminal.backend_mut().take_output();
        assert!(String::from_utf8_lossy(&bytes).contains("hello"));
        assert!(terminal.backend_mut().take_output().is_empty());
    }

    #[test]
    fn zero_size_falls_back_to_80x24() {
        let backend = PtyBackend::new(Size::new(0, 0));
        assert_eq!(backend.size().expect("size"), FALLBACK_SIZE);
    }
}
