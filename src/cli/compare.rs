//! `compare ID ID… [--metric NAME] [--json]`: experiments side by side, a
//! `*` before each row that differs.

use super::output::CommandOutput;
use crate::describe::comparison_lines;
use crate::lab::{Lab, Principal};

/// `compare`: the comparison as a table or JSON.
pub fn compare(
    lab: &Lab,
    p: &Principal,
    ids: &[u64],
    metric: Option<&str>,
    json: bool,
) -> CommandOutput {
    match lab.compare(p, ids, metric) {
        Ok(c) if json => CommandOutput::json(&c),
        Ok(c) => CommandOutput::ok(comparison_lines(&c)),
        Err(e) => e.into(),
    }
}
