//! Input bytes from an SSH channel to terminal events.
//!
//! Bytes arrive in arbitrary chunks: an escape sequence may be split across
//! two reads, and a client may send garbage. The parser keeps a small buffer
//! for incomplete sequences, drops what cannot be parsed or never completes,
//! and never panics.

use std::time::Duration;

use terminput::{Event, KeyCode, KeyEvent};

/// Longest incomplete sequence kept between chunks; longer input is dropped.
const MAX_PENDING: usize = 64;

/// What a terminal in bracketed-paste mode sends before and after a paste.
const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

/// Longest paste kept; the whole of a longer one is dropped (its text is
/// never read as keys).
pub const MAX_PASTE: usize = 16 * 1024;

/// How long a lone ESC waits for the rest of a possible escape sequence
/// before it is the Escape key.
const ESCAPE_WAIT: Duration = Duration::from_millis(40);

/// How long any other incomplete sequence (a paste or a title cut short)
/// waits for its rest before it is dropped: else it would swallow every key
/// typed after it, up to [`MAX_PENDING`] bytes.
const INCOMPLETE_WAIT: Duration = Duration::from_millis(300);

/// How long a paste whose end has not come waits for more before it is
/// dropped (longer: a paste crossing a slow link may pause).
const PASTE_WAIT: Duration = Duration::from_secs(1);

/// Incremental parser of terminal input.
#[derive(Debug, Default)]
pub struct InputParser {
    pending: Vec<u8>,
    /// Inside a paste too long to keep: bytes are dropped up to its end.
    dropping_paste: bool,
}

impl InputParser {
    /// Feeds a chunk of bytes and returns the complete events it finishes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &byte in chunk {
            if self.in_paste() {
                events.extend(self.paste_byte(byte));
                continue;
            }
            // The interface has no Alt-key bindings: an ESC not followed by
            // the start of a sequence (`[` or `O`) is the Escape key.
            if self.escape_pending() && byte != b'[' && byte != b'O' {
                events.extend(self.flush());
            }
            self.pending.push(byte);
            // A lone ESC may start a sequence whose rest is in the next chunk
            // (an arrow key split by the network): it waits, and becomes the
            // Escape key only if nothing follows soon (see `flush`).
            if self.pending == [0x1b] {
                continue;
            }
            if self.pending == PASTE_START {
                // Its text is gathered apart (see `paste_byte`).
                continue;
            }
            match Event::parse_from(&self.pending) {
                Ok(Some(event)) => {
                    events.push(event);
                    self.pending.clear();
                }
                Ok(None) => {
                    if self.pending.len() > MAX_PENDING {
                        self.pending.clear();
                    }
                }
                Err(_) => self.pending.clear(),
            }
        }
        events
    }

    /// Whether a paste has begun and not ended.
    fn in_paste(&self) -> bool {
        self.dropping_paste || self.pending.starts_with(PASTE_START)
    }

    /// Takes one byte of a paste: the paste's text once its end came.
    fn paste_byte(&mut self, byte: u8) -> Option<Event> {
        self.pending.push(byte);
        if self.pending.ends_with(PASTE_END) {
            let text = if self.dropping_paste {
                None
            } else {
                let body = &self.pending[PASTE_START.len()..self.pending.len() - PASTE_END.len()];
                Some(Event::Paste(String::from_utf8_lossy(body).into_owned()))
            };
            self.pending.clear();
            self.dropping_paste = false;
            return text;
        }
        if self.dropping_paste {
            // Only what could begin the end marker is kept.
            let keep = self.pending.len().min(PASTE_END.len() - 1);
            self.pending.drain(..self.pending.len() - keep);
        } else if self.pending.len() > PASTE_START.len() + MAX_PASTE + PASTE_END.len() {
            self.pending.clear();
            self.dropping_paste = true;
        }
        None
    }

    /// Whether a lone ESC waits for what may follow it.
    pub fn escape_pending(&self) -> bool {
        self.pending == [0x1b]
    }

    /// How long to wait for more input before [`flush`](Self::flush), if
    /// an incomplete sequence is pending.
    pub fn patience(&self) -> Option<Duration> {
        if self.in_paste() {
            return Some(PASTE_WAIT);
        }
        match self.pending.as_slice() {
            [] => None,
            [0x1b] => Some(ESCAPE_WAIT),
            _ => Some(INCOMPLETE_WAIT),
        }
    }

    /// Called when no more input came for [`patience`](Self::patience): a
    /// lone ESC was the Escape key; a longer incomplete sequence is dropped.
    pub fn flush(&mut self) -> Vec<Event> {
        let escape = self.escape_pending();
        self.pending.clear();
        self.dropping_paste = false;
        if escape {
            vec![Event::Key(KeyEvent::new(KeyCode::Esc))]
        } else {
            Vec::new()
        }
    }
}

/// A key press, or `None` for events the interface ignores (mouse, focus, release).
pub fn key_press(event: &Event) -> Option<KeyEvent> {
    match event {
        Event::Key(key) if key.kind != terminput::KeyEventKind::Release => Some(*key),
        _ => None,
    }
}

/// A short human name for a key, for "unknown key" messages.
pub fn key_name(key: &KeyEvent) -> String {
    let base = match key.code {
        KeyCode::Char(c) if c.is_control() => format!("0x{:02x}", c as u32),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    };
    if key.modifiers.contains(terminput::KeyModifiers::CTRL) {
        format!("Ctrl-{base}")
    } else if key.modifiers.contains(terminput::KeyModifiers::ALT) {
        format!("Alt-{base}")
    } else {
        base
    }
}

/// Applies a typing key to `text` (Backspace, or a printable character while
/// it is under `most` characters); whether the key was one of those.
pub fn type_into(text: &mut String, key: KeyCode, most: usize) -> bool {
    match key {
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) if !c.is_control() => {
            if text.chars().count() < most {
                text.push(c);
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use terminput::KeyModifiers;

    fn keys(events: &[Event]) -> Vec<KeyCode> {
        events
            .iter()
            .filter_map(key_press)
            .map(|k| k.code)
            .collect()
    }

    #[test]
    fn plain_keys_and_arrows() {
        let mut p = InputParser::default();
        assert_eq!(
            keys(&p.feed(b"q?\x1b[A\x1b[D")),
            vec![
                KeyCode::Char('q'),
                KeyCode::Char('?'),
                KeyCode::Up,
                KeyCode::Left
            ]
        );
    }

    #[test]
    fn escape_sequence_split_across_chunks() {
        let mut p = InputParser::default();
        assert!(p.feed(b"\x1b[").is_empty());
        assert_eq!(keys(&p.feed(b"C")), vec![KeyCode::Right]);
    }

    #[test]
    fn lone_escape_waits_then_is_the_escape_key() {
        let mut p = InputParser::default();
        assert!(p.feed(b"\x1b").is_empty());
        assert!(p.escape_pending());
        assert_eq!(keys(&p.flush()), vec![KeyCode::Esc]);
        assert!(!p.escape_pending());
        assert!(p.flush().is_empty());
    }

    #[test]
    fn a_sequence_cut_short_is_dropped_and_swallows_no_later_key() {
        let mut p = InputParser::default();
        // A paste whose end never comes: escapes are paste content.
        for cut in [&b"\x1b[200~"[..], b"\x1b[200~pasted"] {
            assert!(p.feed(cut).is_empty());
            // What follows would only lengthen it...
            assert!(p.feed(b"\x1b\x1b\x1bq").is_empty());
            assert_eq!(p.patience(), Some(PASTE_WAIT));
            // ...until nothing more came for a while: then it is dropped.
            assert!(p.flush().is_empty());
            assert_eq!(p.patience(), None);
            assert_eq!(keys(&p.feed(b"q")), vec![KeyCode::Char('q')]);
        }
        // Any other sequence cut short waits less.
        assert!(p.feed(b"\x1b[1;").is_empty());
        assert_eq!(p.patience(), Some(INCOMPLETE_WAIT));
        assert!(p.flush().is_empty());
        assert_eq!(keys(&p.feed(b"q")), vec![KeyCode::Char('q')]);
    }

    #[test]
    fn a_paste_is_one_event_even_split_and_full_of_escapes() {
        let mut p = InputParser::default();
        let text = "make \\\n  train\n\x1b[31mred\x1b[0m ~";
        let sent = format!("\x1b[200~{text}\x1b[201~q");
        let (first, rest) = sent.as_bytes().split_at(9);
        assert!(p.feed(first).is_empty());
        let events = p.feed(rest);
        assert_eq!(events[0], Event::Paste(text.to_string()));
        assert_eq!(keys(&events[1..]), vec![KeyCode::Char('q')]);
        assert_eq!(p.patience(), None);
    }

    #[test]
    fn a_paste_too_long_is_dropped_whole() {
        let mut p = InputParser::default();
        let mut sent = b"\x1b[200~".to_vec();
        sent.extend(std::iter::repeat_n(b'c', MAX_PASTE + 100));
        sent.extend_from_slice(b"\x1b[201~q");
        let events: Vec<Event> = sent.chunks(1000).flat_map(|c| p.feed(c)).collect();
        assert_eq!(keys(&events), vec![KeyCode::Char('q')]);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn escape_then_a_key_at_once_is_two_keys() {
        let mut p = InputParser::default();
        assert!(p.feed(b"\x1b").is_empty());
        assert_eq!(keys(&p.feed(b"2")), vec![KeyCode::Esc, KeyCode::Char('2')]);
        assert_eq!(
            keys(&p.feed(b"\x1bq")),
            vec![KeyCode::Esc, KeyCode::Char('q')]
        );
    }

    #[test]
    fn an_arrow_split_right_after_its_escape_stays_an_arrow() {
        let mut p = InputParser::default();
        assert!(p.feed(b"j\x1b").iter().all(|e| key_press(e).is_some()));
        assert_eq!(keys(&p.feed(b"[B")), vec![KeyCode::Down]);
        assert!(!p.escape_pending());
    }

    #[test]
    fn ctrl_c_is_recognised() {
        let mut p = InputParser::default();
        let events = p.feed(&[3]);
        let key = key_press(&events[0]).expect("key");
        assert_eq!(key.code, KeyCode::Char('c'));
        assert!(key.modifiers.contains(KeyModifiers::CTRL));
    }

    #[test]
    fn garbage_is_dropped_and_parsing_recovers() {
        let mut p = InputParser::default();
        p.feed(b"\x1b[999;999;999;999;999;999;999;999;999;999;999;999;999;999;999;999;999;999");
        p.feed(&[0xff, 0xfe, 0x80]);
        assert_eq!(
            keys(&p.feed(b"\x1b\x1bq")).last(),
            Some(&KeyCode::Char('q'))
        );
        assert_eq!(keys(&p.feed(b"x")), vec![KeyCode::Char('x')]);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_buffer_stays_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)
        ) {
            let mut p = InputParser::default();
            for chunk in &chunks {
                p.feed(chunk);
                prop_assert!(p.pending.len() <= MAX_PENDING + 1);
            }
        }

        #[test]
        fn broken_escape_sequences_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(b"\x1b".to_vec()), Just(b"\x1b[".to_vec()), Just(b"\x1bO".to_vec()),
                    Just(b"\x1b[<".to_vec()), Just(b"\x1b[M".to_vec()), Just(b"\x1b[200~".to_vec()),
                    Just(b";".to_vec()), Just(b"9".to_vec()), Just(b"~".to_vec()), Just(b"u".to_vec()),
                    Just(vec![0xc3]), Just(vec![0xe2, 0x82]), any::<u8>().prop_map(|b| vec![b]),
                ],
                0..60,
            )
        ) {
            let mut p = InputParser::default();
            let bytes: Vec<u8> = parts.concat();
            for chunk in bytes.chunks(7) {
                p.feed(chunk);
            }
            p.feed(b"q");
        }
    }
}
