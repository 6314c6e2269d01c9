//! The Queue tab's submit form (`n`): the `submit` command's fields, read
//! with the parsers of its flags into the same request for the service, so
//! the form and `ssh lab@host submit …` accept and refuse the same values.

use std::path::PathBuf;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use terminput::{KeyCode, KeyEvent, KeyModifiers};

use crate::lab::{SubmitRequest, parse_env_pair};
use crate::model::{CommandLine, parse_duration, parse_size};
use crate::tui::widgets::{ACCENT, Canvas, DIM, clear_centered};
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

    /// The submission the form stands for, its values read as `submit`
    /// reads its flags' (the same parsers); the first value it cannot read,
    /// named by its field. What is left empty takes the queue's default.
    pub fn to_request(&self) -> Result<SubmitRequest, String> {
        let v = |i: usize| self.values[i].trim();
        let optional = |i: usize| Some(v(i)).filter(|value| !value.is_empty());
        let field = |i: usize, why: String| format!("{}: {why}", FIELDS[i].label);
        let number = |i: usize, value: &str| field(i, format!("{value:?} is not a number"));
        let mut request = SubmitRequest {
            // Always given, so an empty command is refused as on the command line.
            command: Some(CommandLine::Shell(v(0).to_string())),
            name: optional(1).map(str::to_string),
            project: optional(2).map(str::to_string),
            workdir: optional(8).map(PathBuf::from),
            ..SubmitRequest::default()
        };
        if let Some(cpus) = optional(3) {
            request.cpus = Some(cpus.parse().map_err(|_| number(3, cpus))?);
        }
        if let Some(memory) = optional(4) {
            request.memory_bytes = Some(parse_size(memory).map_err(|why| field(4, why))?);
        }
        if let Some(gpus) = optional(5) {
            request.gpus = Some(gpus.parse().map_err(|_| number(5, gpus))?);
        }
        if let Some(time) = optional(6) {
            request.time_limit_secs = Some(parse_duration(time).map_err(|why| field(6, why))?);
        }
        if let Some(priority) = optional(7) {
            request.priority = priority.parse().map_err(|_| number(7, priority))?;
        }
        for pair in v(9).split_whitespace() {
            request
                .env
                .push(parse_env_pair(pair).map_err(|why| field(9, why))?);
        }
        request.tags = v(10)
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(str::to_string)
            .collect();
        for id in v(11)
            .split([',', ' '])
            .map(str::trim)
            .filter(|id| !id.is_empty())
        {
            request.after.push(id.parse().map_err(|_| number(11, id))?);
        }
        Ok(request)
    }
}

/// Draws the form over `area`.
pub(super) fn render_form(frame: &mut Canvas, area: Rect, form: &SubmitForm) {
    let width = area.width.saturating_sub(4).min(100);
    let height = (FIELDS.len() as u16 + 7).min(area.height);
    let rect = clear_centered(frame, area, width, height);
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
        form.values[3] = "2.5".into();
        form.values[6] = "1h30m".into();
        form.values[7] = "-3".into();
        let expected = SubmitRequest {
            command: Some(CommandLine::Shell("python train.py --lr 0.1".into())),
            name: Some("-sweep".into()),
            cpus: Some(2.5),
            time_limit_secs: Some(5400),
            priority: -3,
            env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            tags: vec!["x".into(), "y".into()],
            after: vec![3, 4],
            ..SubmitRequest::default()
        };
        // The memory field reads "8Q": refused, named by its field.
        let why = form.to_request().err();
        assert_eq!(
            why.as_deref(),
            Some("Memory: \"8Q\": expected a size like 512M or 8G")
        );
        form.values[4] = "8G".into();
        let request = form.to_request().expect("a request");
        assert_eq!(
            request,
            SubmitRequest {
                memory_bytes: Some(8 << 30),
                ..expected
            }
        );
        form.values[5] = "two".into();
        assert_eq!(
            form.to_request().err().as_deref(),
            Some("GPUs: \"two\" is not a number")
        );
        form.values[5] = String::new();
        form.values[9] = "LABBENCH_EXPERIMENT_ID=1".into();
        let reserved = form.to_request().err().unwrap_or_default();
        assert!(
            reserved.starts_with("Env: --env LABBENCH_EXPERIMENT_ID"),
            "{reserved}"
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
