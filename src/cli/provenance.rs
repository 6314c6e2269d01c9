//! `provenance ID [--json|--diff]`: where an experiment came from.

use super::output::CommandOutput;
use crate::describe::provenance_lines;
use crate::lab::{Lab, Principal};
use crate::units::printable;

/// `provenance ID`: the captured provenance, as text or JSON, or the diff.
pub fn provenance(lab: &Lab, p: &Principal, id: u64, json: bool, diff: bool) -> CommandOutput {
    if diff {
        return match lab.diff(p, id) {
            Ok(Some(text)) => CommandOutput::ok(
                text.lines()
                    .map(|line| printable(line) + "\n")
                    .collect::<String>(),
            ),
            Ok(None) => CommandOutput::ok(format!("experiment {id} has no git diff recorded\n")),
            Err(e) => e.into(),
        };
    }
    match lab.provenance(p, id) {
        Ok(prov) if json => CommandOutput::json(&serde_json::json!({"id": id, "provenance": prov})),
        Ok(prov) => CommandOutput::ok(provenance_lines(id, &prov)),
        Err(e) => e.into(),
    }
}
