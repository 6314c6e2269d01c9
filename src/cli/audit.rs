//! `audit [--since T] [--user U] [--action A] [--limit N] [--json]`: the
//! audit trail, newest first (admins).

use super::output::{CommandOutput, exit, table};
use crate::lab::{AuditQuery, Lab, Principal};
use crate::units::{minute_time, printable};

/// `audit`: the entries of the trail asked for.
pub(super) fn audit(
    lab: &Lab,
    p: &Principal,
    since: Option<&str>,
    user: Option<String>,
    action: Option<String>,
    limit: usize,
    json: bool,
) -> CommandOutput {
    use crate::output::journal::{now_ms, parse_since};
    let since = match since.map(|s| parse_since(s, now_ms())).transpose() {
        Ok(ms) => ms.map(|ms| ms.div_euclid(1000)),
        Err(e) => return CommandOutput::error(exit::USAGE, format!("error: --since: {e}\n")),
    };
    let query = AuditQuery {
        since,
        user,
        action,
        limit,
    };
    let events = match lab.audit_log(p, &query) {
        Ok(events) => events,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&events);
    }
    if events.is_empty() {
        return CommandOutput::ok("no entry matches\n".to_string());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let change = e.change().unwrap_or_default();
            vec![
                minute_time(e.at),
                printable(&e.actor),
                if e.kind.is_empty() {
                    "-".into()
                } else {
                    e.kind.clone()
                },
                printable(&e.action),
                shortened(&printable(&change), 80),
            ]
        })
        .collect();
    CommandOutput::ok(table(&["WHEN", "WHO", "KIND", "WHAT", "CHANGE"], &rows))
}

/// `text` cut to `most` characters, with `…` when cut.
fn shortened(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(most.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
