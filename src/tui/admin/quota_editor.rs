//! The Quotas view's editor: one text per limit, as `quota set` takes
//! them (`4`, `64G`, `48h`; empty: not limited here). While it is open the
//! session asks the service what the typed limits would do (the preview);
//! Enter asks it to save them.

use terminput::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::{Quota, QuotaScope, parse_duration, parse_size};
use crate::tui::input::type_into;

/// Most characters of one value.
const MAX_VALUE_CHARS: usize = 24;

/// The limits, in the order the editor lists them: label and an example.
pub const FIELDS: [(&str, &str); 8] = [
    ("running at once", "4"),
    ("CPUs in use", "32"),
    ("memory in use", "256G"),
    ("GPUs in use", "2"),
    ("wall time per run", "48h"),
    ("queued at once", "200"),
    ("GPU-hours a month", "500"),
    ("cost a month", "1000"),
];

/// The editor of one scope's quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaEditor {
    /// Whose quota.
    pub scope: QuotaScope,
    /// One text per limit, in [`FIELDS`] order.
    pub values: Vec<String>,
    /// The limit being typed.
    pub focus: usize,
    /// Why the last save was refused.
    pub error: Option<String>,
}

/// What a key did in the editor.
#[derive(Debug, Clone, PartialEq)]
pub enum EditorAction {
    /// Nothing for the session.
    Stay,
    /// Close it, saving nothing.
    Close,
    /// Save these limits.
    Save(Quota),
}

impl QuotaEditor {
    /// An editor for `scope`, filled with what is set now.
    pub fn new(scope: QuotaScope, set: &Quota) -> QuotaEditor {
        let text = |v: Option<String>| v.unwrap_or_default();
        QuotaEditor {
            scope,
            values: vec![
                text(set.max_running.map(|v| v.to_string())),
                text(set.max_cpus.map(|v| v.to_string())),
                text(set.max_memory_bytes.map(size_text)),
                text(set.max_gpus.map(|v| v.to_string())),
                text(set.max_time_secs.map(duration_text)),
                text(set.max_queued.map(|v| v.to_string())),
                text(set.max_gpu_hours_month.map(|v| v.to_string())),
                text(set.max_cost_month.map(|v| v.to_string())),
            ],
            focus: 0,
            error: None,
        }
    }

    /// The limits as typed, or what is wrong with one.
    pub fn quota(&self) -> Result<Quota, String> {
        let value = |i: usize| {
            let v = self.values[i].trim();
            (!v.is_empty()).then_some(v)
        };
        let named = |i: usize, e: String| format!("{}: {e}", FIELDS[i].0);
        let whole = |i: usize| -> Result<Option<u32>, String> {
            value(i)
                .map(|v| {
                    v.parse::<u32>()
                        .map_err(|_| named(i, format!("{v:?} is not a whole number")))
                })
                .transpose()
        };
        let number = |i: usize| -> Result<Option<f64>, String> {
            value(i)
                .map(|v| match v.parse::<f64>() {
                    Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
                    _ => Err(named(i, format!("{v:?} is not a number of 0 or more"))),
                })
                .transpose()
        };
        Ok(Quota {
            max_running: whole(0)?,
            max_cpus: number(1)?,
            max_memory_bytes: value(2)
                .map(|v| parse_size(v).map_err(|e| named(2, e)))
                .transpose()?,
            max_gpus: whole(3)?,
            max_time_secs: value(4)
                .map(|v| parse_duration(v).map_err(|e| named(4, e)))
                .transpose()?,
            max_queued: whole(5)?,
            max_gpu_hours_month: number(6)?,
            max_cost_month: number(7)?,
        })
    }

    /// Applies one key.
    pub fn handle_key(&mut self, key: KeyEvent) -> EditorAction {
        let count = FIELDS.len();
        match key.code {
            KeyCode::Esc => return EditorAction::Close,
            KeyCode::Enter => match self.quota() {
                Ok(quota) => return EditorAction::Save(quota),
                Err(why) => self.error = Some(why),
            },
            KeyCode::Tab if key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.focus = (self.focus + count - 1) % count
            }
            KeyCode::Up => self.focus = (self.focus + count - 1) % count,
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % count,
            code => {
                if type_into(&mut self.values[self.focus], code, MAX_VALUE_CHARS) {
                    self.error = None;
                }
            }
        }
        EditorAction::Stay
    }

    /// Pasted text goes into the limit being typed.
    pub fn paste(&mut self, text: &str) {
        for c in text.chars().filter(|c| !c.is_control()) {
            type_into(
                &mut self.values[self.focus],
                KeyCode::Char(c),
                MAX_VALUE_CHARS,
            );
        }
    }
}

/// A size as `--mem` takes it back exactly: `64G`, `1500M`, or bytes (a
/// rounded `1.2G` would save another limit than the one set).
pub fn size_text(bytes: u64) -> String {
    for (unit, size) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A duration as `--time` takes it back: `2d`, `1h30m`, `90s`.
pub fn duration_text(secs: u64) -> String {
    let mut text = String::new();
    let mut left = secs;
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if left >= size {
            text.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    if text.is_empty() { "0s".into() } else { text }
}

/// The scope typed after `n` (`user ana`, `project churn`, `default`).
pub fn parse_scope(text: &str) -> Result<QuotaScope, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["default"] => Ok(QuotaScope::Default),
        ["user", name] => Ok(QuotaScope::User((*name).to_string())),
        ["project", name] => Ok(QuotaScope::Project((*name).to_string())),
        _ => Err("type `user NAME`, `project NAME` or `default`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code).modifiers(KeyModifiers::empty())
    }

    #[test]
    fn what_is_typed_becomes_the_quota_and_empty_is_not_limited() {
        let set = Quota {
            max_running: Some(4),
            max_memory_bytes: Some(64 << 30),
            max_time_secs: Some(48 * 3600),
            ..Quota::default()
        };
        let mut e = QuotaEditor::new(QuotaScope::User("ana".into()), &set);
        assert_eq!(e.values[2], "64G");
        assert_eq!(e.quota(), Ok(set), "what is set reads back as it was");
        // Down to the GPUs, type 2; clear the running limit.
        e.handle_key(key(KeyCode::Backspace));
        for code in [KeyCode::Down, KeyCode::Down, KeyCode::Down] {
            e.handle_key(key(code));
        }
        e.handle_key(key(KeyCode::Char('2')));
        let quota = e.quota().expect("valid");
        assert_eq!((quota.max_running, quota.max_gpus), (None, Some(2)));
        assert_eq!(e.handle_key(key(KeyCode::Enter)), EditorAction::Save(quota));
        assert_eq!(e.handle_key(key(KeyCode::Esc)), EditorAction::Close);
    }

    #[test]
    fn a_mistake_names_the_limit_and_saves_nothing() {
        let mut e = QuotaEditor::new(QuotaScope::Default, &Quota::default());
        e.focus = 2;
        e.paste("lots");
        assert_eq!(e.handle_key(key(KeyCode::Enter)), EditorAction::Stay);
        assert!(
            e.error
                .as_deref()
                .is_some_and(|m| m.starts_with("memory in use:")),
            "{:?}",
            e.error
        );
        e.focus = 7;
        e.paste("-3");
        assert!(e.quota().is_err());
    }

    #[test]
    fn sizes_read_back_exactly() {
        for bytes in [64 << 30, 1_250 << 20, (1 << 30) + 1, 1000 << 30, 1 << 40] {
            assert_eq!(
                parse_size(&size_text(bytes)),
                Ok(bytes),
                "{}",
                size_text(bytes)
            );
        }
    }

    #[test]
    fn durations_read_back_as_typed() {
        for secs in [90, 172_800, 5_400, 93_784] {
            assert_eq!(parse_duration(&duration_text(secs)), Ok(secs));
        }
    }

    #[test]
    fn scopes_are_typed_as_the_commands_name_them() {
        assert_eq!(parse_scope("default"), Ok(QuotaScope::Default));
        assert_eq!(
            parse_scope(" project  churn "),
            Ok(QuotaScope::Project("churn".into()))
        );
        assert!(parse_scope("team x").is_err());
    }
}
