//! Aligned text tables, for commands and panes alike.

/// Formats rows as left-aligned columns separated by two spaces, with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let (layout, mut out) = TableLayout::new(header, rows);
    out.push_str(&layout.rows(rows));
    out
}

/// Column widths of a table written in pieces (a long listing, page by
/// page): set by the header and the first rows; a later, longer cell
/// overflows its column rather than moving the others.
#[derive(Debug, Clone)]
pub struct TableLayout {
    widths: Vec<usize>,
}

impl TableLayout {
    /// The layout for `header` and `first` rows, and the header line.
    pub fn new(header: &[&str], first: &[Vec<String>]) -> (TableLayout, String) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in first {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let layout = TableLayout { widths };
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        let line = layout.rows(std::slice::from_ref(&header));
        (layout, line)
    }

    /// `rows` laid out, a line each.
    pub fn rows(&self, rows: &[Vec<String>]) -> String {
        let mut out = String::new();
        for row in rows {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&self.widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
