//! The Queue tab's submit form (`n`): the `submit` command's fields, turned
//! into the same arguments and checked by the same parser and service, so
//! the form and `ssh lab@host submit …` accept and refuse exactly the same.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use terminput::{KeyCode, KeyEvent, KeyModifiers};

use super::view::{ACCENT, Canvas, DIM};
use crate::units::printable;

/// Longest value of one field, in characters (longer input is refused, not cut).
pub const MAX_FIELD_CHARS: usize = 4096;

/// One field of the form: label, the `submit` flag it becomes, a hint.
struct FieldSpec {
    label: &'static str,
    hint: &'static str,
}

const FIELDS: [FieldSpec; 12] = [
    FieldSpec {
        label: "Command",
        hint: "shell command line, e.g. python train.py --lr 0.1",
    },
    FieldSpec {
        label: "Name",
        hint: "short name",
    },
    FieldSpec {
        label: "Project",
        hint: "project",
    },
    FieldSpec {
        label: "CPUs",
        hint: "cores, e.g. 4 (empty: default)",
    },
    FieldSpec {
        label: "Memory",
        hint: "e.g. 8G (empty: default)",
    },
    FieldSpec {
        label: "GPUs",
        hint: "count (empty: 0)",
    },
    FieldSpec {
        label: "Time",
        hint: "wall-time limit, e.g. 2h (empty: default)",
    },
    FieldSpec {
        label: "Priority",
        hint: "0 or less; above 0 for admins",
    },
    FieldSpec {
        label: "Workdir",
        hint: "working directory (empty: your home)",
    },
    FieldSpec {
        label: "Env",
        hint: "K=V K2=V2 (space separated)",
    },
    FieldSpec {
        label: "Tags",
        hint: "comma separated",
    },
    FieldSpec {
        label: "After",
        hint: "ids that must succeed first, comma separated",
    },
];

/// What a key did to the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormAction {
    /// Keep editing.
    Edit,
    /// Submit what is filled in.
    Submit,
    /// Close without submitting.
    Close,
}

/// State of an open submit form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitForm {
    /// One value per field, in [`FIELDS`] order.
    pub values: Vec<String>,
    /// The field being edited.
    pub focus: usize,
    /// Why the last submission was refused (the form keeps every value).
    pub error: Option<String>,
}

impl Default for SubmitForm {
    fn default() -> Self {
        SubmitForm {
            values: vec![String::new(); FIELDS.len()],
            focus: 0,
            error: None,
        }
    }
}

impl SubmitForm {
    /// Applies one key.
    pub fn handle_key(&mut self, key: KeyEvent) -> FormAction {
        let ctrl = key.modifiers.contains(KeyModifiers::CTRL);
        match key.code {
            KeyCode::Esc => return FormAction::Close,
            KeyCode::Enter => return FormAction::Submit,
            KeyCode::Tab if key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len()
            }
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % FIELDS.len(),
            KeyCode::Up => self.focus = (self.focus + FIELDS.len() - 1) % FIELDS.len(),
            KeyCode::Backspace => {
                self.values[self.focus].pop();
            }
            KeyCode::Char('u') if ctrl => self.values[self.focus].clear(),
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                let value = &mut self.values[self.focus];
                if value.chars().count() < MAX_FIELD_CHARS {
                    value.push(c);
                } else {
                    self.error = Some(format!(
                        "{} is limited to {MAX_FIELD_CHARS} characters",
                        FIELDS[self.focus].label
                    ));
                }
            }
            _ => {}
        }
        FormAction::Edit
    }

    /// Pasted text goes into the focused field (a paste never submits). In
    /// the command, lines become commands separated by `;` (a backslash at
    /// a line's end joins it to the next, as in a shell); elsewhere, and for
    /// other control characters, a space.
    pub fn paste(&mut self, text: &str) {
        let text = if self.focus == 0 {
            // Terminals send a pasted line break as CR, files may hold CRLF.
            text.replace("\r\n", "\n")
                .replace('\r', "\n")
                .replace("\\\n", " ")
                .trim_end_matches('\n')
                .replace('\n', "; ")
        } else {
            text.to_string()
        };
        let value = &mut self.values[self.focus];
        let room = MAX_FIELD_CHARS.saturating_sub(value.chars().count());
        let cleaned = text.chars().map(|c| if c.is_control() { ' ' } else { c });
        value.extend(cleaned.clone().take(room));
        if cleaned.count() > room {
            self.error = Some(format!(
                "{} is limited to {MAX_FIELD_CHARS} characters",
                FIELDS[self.focus].label
            ));
        }
    }

    /// The `submit` arguments the form stands for (after the word `submit`).
    pub fn to_args(&self) -> Vec<String> {
        let v = |i: usize| self.values[i].trim();
        let mut args = Vec::new();
        let mut flag = |name: &str, value: &str| {
            // `--flag=value`, so a value starting with '-' stays a value.
            if !value.is_empty() {
                args.push(format!("--{name}={value}"));
            }
        };
        flag("name", v(1));
        flag("project", v(2));
        flag("cpus", v(3));
        flag("mem", v(4));
        flag("gpus", v(5));
        flag("time", v(6));
        flag("priority", v(7));
        flag("workdir", v(8));
        for pair in v(9).split_whitespace() {
            flag("env", pair);
        }
        for tag in v(10).split(',').map(str::trim) {
            flag("tag", tag);
        }
        for id in v(11).split([',', ' ']).map(str::trim) {
            flag("after", id);
        }
        // Always given, so an empty command is refused as on the command line.
        args.push(format!("--sh={}", v(0)));
        args
    }
}

/// Draws the form over `area`.
pub(super) fn render_form(frame: &mut Canvas, area: Rect, form: &SubmitForm) {
    let width = area.width.saturating_sub(4).min(100);
    let height = (FIELDS.len() as u16 + 7).min(area.height);
    let rect = super::view::clear_centered(frame, area, width, height);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(ACCENT))
        .title(" New experiment — Enter: submit  Tab/↑↓: field  Ctrl-U: clear  Esc: close ");
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [fields_area, message_area] =
        Layout::vertical([Constraint::Length(FIELDS.len() as u16), Constraint::Min(1)])
            .areas(inner);
    let value_width = usize::from(fields_area.width.saturating_sub(12));
    let lines: Vec<Line> = FIELDS
        .iter()
        .zip(&form.values)
        .enumerate()
        .map(|(i, (spec, value))| {
            let focused = i == form.focus;
            let label = Span::styled(
                format!("{:>9}  ", spec.label),
                if focused {
                    Style::default().fg(ACCENT).add_modifier(Modifier::BOLD)
                } else {
                    Style::default().fg(DIM)
                },
            );
            let shown = printable(value);
            let value_span = if shown.is_empty() && !focused {
                Span::styled(spec.hint, Style::default().fg(DIM))
            } else {
                // Show the end of a long value, where the typing happens.
                let count = shown.chars().count();
                let tail: String = shown
                    .chars()
                    .skip(count.saturating_sub(value_width.saturating_sub(1)))
                    .collect();
                Span::raw(if focused { format!("{tail}▏") } else { tail })
            };
            Line::from(vec![label, value_span])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), fields_area);
    let message = match &form.error {
        Some(error) => Line::from(Span::styled(
            format!(" {}", printable(error)),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        None => Line::from(Span::styled(
            " Checked exactly like `ssh lab@host submit …`; nothing is queued until it is valid.",
            Style::default().fg(DIM),
        )),
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(""), message]).wrap(Wrap { trim: false }),
        message_area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_text(form: &mut SubmitForm, text: &str) {
        for c in text.chars() {
            form.handle_key(KeyEvent::new(KeyCode::Char(c)));
        }
    }

    #[test]
    fn fields_become_submit_arguments() {
        let mut form = SubmitForm::default();
        type_text(&mut form, "python train.py --lr 0.1");
        form.handle_key(KeyEvent::new(KeyCode::Tab));
        type_text(&mut form, "-sweep");
        for _ in 0..3 {
            form.handle_key(KeyEvent::new(KeyCode::Tab));
        }
        type_text(&mut form, "8Q");
        form.focus = 9;
        type_text(&mut form, "A=1 B=2");
        form.focus = 10;
        type_text(&mut form, "x, y");
        form.focus = 11;
        type_text(&mut form, "3,4");
        assert_eq!(
            form.to_args(),
            [
                "--name=-sweep",
                "--mem=8Q",
                "--env=A=1",
                "--env=B=2",
                "--tag=x",
                "--tag=y",
                "--after=3",
                "--after=4",
                "--sh=python train.py --lr 0.1",
            ]
        );
    }

    #[test]
    fn editing_keys_move_delete_and_close() {
        let mut form = SubmitForm::default();
        type_text(&mut form, "abc");
        form.handle_key(KeyEvent::new(KeyCode::Backspace));
        assert_eq!(form.values[0], "ab");
        form.handle_key(KeyEvent::new(KeyCode::Up));
        assert_eq!(form.focus, FIELDS.len() - 1, "wraps around");
        form.handle_key(KeyEvent::new(KeyCode::Down));
        let ctrl_u = KeyEvent::new(KeyCode::Char('u')).modifiers(KeyModifiers::CTRL);
        form.handle_key(ctrl_u);
        assert_eq!(form.values[0], "");
        assert_eq!(
            form.handle_key(KeyEvent::new(KeyCode::Enter)),
            FormAction::Submit
        );
        assert_eq!(
            form.handle_key(KeyEvent::new(KeyCode::Esc)),
            FormAction::Close
        );
    }

    #[test]
    fn oversized_values_are_refused_not_cut() {
        let mut form = SubmitForm::default();
        type_text(&mut form, &"x".repeat(MAX_FIELD_CHARS + 5));
        assert_eq!(form.values[0].len(), MAX_FIELD_CHARS);
        assert!(form.error.as_deref().unwrap_or("").contains("limited to"));
    }
}
