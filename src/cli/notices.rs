//! `motd show|set TEXT…|clear` and `notify USER|--all TEXT…`: what admins
//! tell everyone.

use clap::Subcommand;

use super::output::{CommandOutput, exit};
use crate::lab::{Lab, Principal};
use crate::units::{minute_time, printable};

/// `motd …` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum MotdAction {
    /// Show the announcement.
    Show,
    /// Set it (admin): the words are joined into one line.
    Set {
        /// What it says (after `--` when a word starts with `-`).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Clear it (admin).
    Clear,
}

/// `motd …`.
pub(super) fn motd(lab: &Lab, p: &Principal, action: MotdAction, json: bool) -> CommandOutput {
    let result = match action {
        MotdAction::Show => lab.announcement(p),
        MotdAction::Set { text } => lab.set_announcement(p, Some(&text.join(" "))),
        MotdAction::Clear => lab.set_announcement(p, None),
    };
    match result {
        Err(e) => e.into(),
        Ok(a) if json => CommandOutput::json(&a),
        Ok(None) => CommandOutput::ok("no announcement\n".to_string()),
        Ok(Some(a)) => CommandOutput::ok(format!(
            "{}\n  ({}, {})\n",
            printable(&a.text),
            printable(&a.by),
            minute_time(a.at)
        )),
    }
}

/// `notify [--all] WORDS…`: the first word is the user unless `--all`.
pub(super) fn notify(
    lab: &Lab,
    p: &Principal,
    all: bool,
    words: &[String],
    json: bool,
) -> CommandOutput {
    let (to, text) = match (all, words.split_first()) {
        (true, _) => (None, words),
        (false, Some((user, rest))) if !rest.is_empty() => (Some(user.as_str()), rest),
        _ => {
            return CommandOutput::error(
                exit::USAGE,
                "error: notify USER TEXT… or notify --all TEXT…\n",
            );
        }
    };
    match lab.notify(p, to, &text.join(" ")) {
        Err(e) => e.into(),
        Ok(sessions) if json => CommandOutput::json(&serde_json::json!({
            "to": to,
            "sessions": sessions,
        })),
        Ok(sessions) => CommandOutput::ok(format!(
            "sent to {}: {sessions} open session(s)\n",
            to.unwrap_or("everyone")
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::commands::LabCommand;
    use crate::cli::parse_exec_line;

    #[test]
    fn flags_after_the_text_are_flags_and_hyphens_in_it_are_text() {
        let Ok(LabCommand::Notify { words, json, all }) =
            parse_exec_line("notify mike disk full --json")
        else {
            panic!("not notify");
        };
        assert!(!all);
        assert!(json, "{words:?}");
        assert_eq!(words, ["mike", "disk", "full"]);
        let Ok(LabCommand::Notify { words, .. }) =
            parse_exec_line("notify --all -- -5 degrees in the room")
        else {
            panic!("not notify");
        };
        assert_eq!(words, ["-5", "degrees", "in", "the", "room"]);
    }
}
