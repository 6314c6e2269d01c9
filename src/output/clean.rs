//! Experiment output made safe to show: terminal control sequences removed
//! (colours, cursor moves, title changes, OSC, bracketed paste), progress-bar
//! rewrites (`\r`) collapsed to their latest state, lines over
//! [`MAX_LINE_CHARS`] characters cut with a marker, so that experiment output
//! never drives anyone's terminal.

/// Longest line shown, in characters; the rest is replaced by a marker.
pub const MAX_LINE_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Plain text.
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [ …` until a final byte.
    Csi,
    /// Inside `ESC ] …` (or P, X, ^, _) until BEL or `ESC \`.
    String,
    /// Inside a string, after ESC (maybe the `\` that ends it).
    StringEnd,
}

/// Cleans a byte stream incrementally; keeps an unfinished line between calls.
#[derive(Debug)]
pub struct LogCleaner {
    escape: Escape,
    line: Vec<u8>,
    carriage_return: bool,
}

impl Default for LogCleaner {
    fn default() -> Self {
        LogCleaner {
            escape: Escape::None,
            line: Vec::new(),
            carriage_return: false,
        }
    }
}

impl LogCleaner {
    /// Feeds raw output; returns the complete lines it finished, cleaned.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        let mut out = String::new();
        self.feed_lines(bytes, |line, _| {
            out.push_str(&line);
            out.push('\n');
        });
        out
    }

    /// Feeds raw output; calls `each` with every line it finished (cleaned,
    /// without its newline) and the index in `bytes` just past that newline.
    pub fn feed_lines(&mut self, bytes: &[u8], mut each: impl FnMut(String, usize)) {
        for (i, &b) in bytes.iter().enumerate() {
            match self.escape {
                Escape::Start => {
                    self.escape = match b {
                        b'[' => Escape::Csi,
                        b']' | b'P' | b'X' | b'^' | b'_' => Escape::String,
                        _ => Escape::None,
                    };
                    continue;
                }
                Escape::Csi => {
                    if (0x40..=0x7e).contains(&b) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::String => {
                    match b {
                        0x07 => self.escape = Escape::None,
                        0x1b => self.escape = Escape::StringEnd,
                        _ => {}
                    }
                    continue;
                }
                Escape::StringEnd => {
                    self.escape = if b == b'\\' {
                        Escape::None
                    } else {
                        Escape::String
                    };
                    continue;
                }
                Escape::None => {}
            }
            match b {
                0x1b => self.escape = Escape::Start,
                b'\n' => {
                    self.carriage_return = false;
                    each(self.take_line(), i + 1);
                }
                b'\r' => self.carriage_return = true,
                _ => {
                    if self.carriage_return {
                        // Text after a bare \r rewrites the line (progress bars).
                        self.line.clear();
                        self.carriage_return = false;
                    }
                    // Bound memory on a line that never ends.
                    if self.line.len() < MAX_LINE_CHARS * 4 + 64 {
                        self.line.push(b);
                    } else if !self.line.ends_with(b"\xff") {
                        self.line.push(0xff);
                    }
                }
            }
        }
    }

    /// Returns the unfinished line (at the end of a stream).
    pub fn finish(&mut self) -> String {
        if self.line.is_empty() {
            String::new()
        } else {
            let mut line = self.take_line();
            line.push('\n');
            line
        }
    }

    fn take_line(&mut self) -> String {
        let raw = std::mem::take(&mut self.line);
        let truncated_raw = raw.ends_with(b"\xff");
        let text = String::from_utf8_lossy(&raw);
        let mut clean: String = text
            .chars()
            .filter(|c| *c == '\t' || !c.is_control())
            .filter(|c| *c != '\u{fffd}' || !truncated_raw)
            .collect();
        let count = clean.chars().count();
        if count > MAX_LINE_CHARS || truncated_raw {
            let kept: String = clean.chars().take(MAX_LINE_CHARS).collect();
            let cut = raw.len().saturating_sub(kept.len());
            clean = format!("{kept}…[line cut: {cut} more bytes]");
        }
        clean
    }
}

/// Cleans a whole text at once.
pub fn clean(bytes: &[u8]) -> String {
    let mut cleaner = LogCleaner::default();
    let mut out = cleaner.feed(bytes);
    out.push_str(&cleaner.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_are_removed() {
        let raw = b"\x1b[31mred\x1b[0m \x1b]0;title\x07ok \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b[?2004h\x1b[200~paste\x1b[201~\x1bc\n";
        assert_eq!(clean(raw), "red ok link paste\n");
    }

    #[test]
    fn progress_bars_collapse_to_the_latest_state() {
        let raw = b"epoch 1\n 10%|#     |\r 50%|###   |\r100%|######|\ndone\r\n";
        assert_eq!(clean(raw), "epoch 1\n100%|######|\ndone\n");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let raw = vec![b'x'; MAX_LINE_CHARS * 8];
        let out = clean(&raw);
        assert!(out.contains("…[line cut:"), "{}", &out[out.len() - 60..]);
        assert!(out.chars().count() < MAX_LINE_CHARS + 64);
    }

    #[test]
    fn sequences_split_across_chunks() {
        let mut c = LogCleaner::default();
        let mut out = c.feed(b"a\x1b[3");
        out.push_str(&c.feed(b"1mb\n"));
        assert_eq!(out, "ab\n");
    }

    #[test]
    fn c1_controls_and_bells_are_dropped() {
        assert_eq!(clean("a\u{9b}2Jb\u{7}c\n".as_bytes()), "a2Jbc\n");
    }

    proptest! {
        #[test]
        fn output_never_contains_control_characters(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let out = clean(&bytes);
            prop_assert!(out.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
        }
    }
}
