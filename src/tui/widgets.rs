//! What every screen draws with: the canvas, bordered panels, header style,
//! centred overlays and the two colours (only named ANSI colours, so the
//! screens read on 16-colour terminals).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, StatefulWidget, Widget};

/// Highlight colour (titles, keys).
pub(super) const ACCENT: Color = Color::Cyan;
/// Colour of labels and frames.
pub(super) const DIM: Color = Color::DarkGray;

/// A buffer being drawn on (the subset of ratatui's `Frame` the views use).
pub(super) struct Canvas<'a> {
    buffer: &'a mut Buffer,
}

impl<'a> Canvas<'a> {
    /// A canvas drawing into `buffer`.
    pub(super) fn new(buffer: &'a mut Buffer) -> Canvas<'a> {
        Canvas { buffer }
    }

    pub(super) fn render_widget<W: Widget>(&mut self, widget: W, area: Rect) {
        widget.render(area, self.buffer);
    }

    pub(super) fn render_stateful_widget<W: StatefulWidget>(
        &mut self,
        widget: W,
        area: Rect,
        state: &mut W::State,
    ) {
        widget.render(area, self.buffer, state);
    }
}

/// A bordered panel with a highlighted title, as every screen uses.
pub(super) fn panel(title: String) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(DIM))
        .title(Span::styled(
            title,
            Style::default().fg(ACCENT).add_modifier(Modifier::BOLD),
        ))
}

/// Style of table headers.
pub(super) fn header_style() -> Style {
    Style::default().fg(DIM).add_modifier(Modifier::BOLD)
}

/// Clears and returns a `width` × `height` rectangle centred in `area`
/// (for panes drawn over a screen).
pub(super) fn clear_centered(frame: &mut Canvas, area: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (width.min(area.width), height.min(area.height));
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, rect);
    rect
}

/// Draws a filter bar over `area` while one is open (`typed`: what is typed
/// so far, with a cursor; then `errors` in red); the rest of `area`.
pub fn with_filter_bar(
    frame: &mut Canvas,
    area: Rect,
    typed: Option<&str>,
    errors: &[&str],
    title: &str,
) -> Rect {
    let Some(typed) = typed else {
        return area;
    };
    let height = (3 + errors.len() as u16).min(area.height);
    let [bar, rest] = ratatui::layout::Layout::vertical([
        ratatui::layout::Constraint::Length(height),
        ratatui::layout::Constraint::Min(1),
    ])
    .areas(area);
    let mut text = vec![Line::from(vec![
        Span::raw(crate::units::printable(typed)),
        Span::styled("▏", Style::default().fg(ACCENT)),
    ])];
    text.extend(errors.iter().map(|l| {
        Line::from(Span::styled(
            crate::units::printable(l),
            Style::default().fg(Color::Red),
        ))
    }));
    frame.render_widget(
        Paragraph::new(text).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(ACCENT))
                .title(title.to_string()),
        ),
        bar,
    );
    rest
}
