//! `budget show|set|rm`: monthly budgets per user or project (see
//! `lab::budgets`).

use super::output::{CommandOutput, exit, table};
use crate::lab::{BudgetScope, Lab, LabError, Principal};
use crate::units::printable;

/// Whose budget a `budget` command names.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[group(required = true, multiple = false)]
pub struct BudgetOf {
    /// A lab user's experiments.
    #[arg(long)]
    user: Option<String>,
    /// A project's experiments, whoever runs them.
    #[arg(long)]
    project: Option<String>,
}

impl BudgetOf {
    fn scope(&self) -> BudgetScope {
        match (&self.user, &self.project) {
            (Some(user), _) => BudgetScope::User(user.clone()),
            (None, project) => BudgetScope::Project(project.clone().unwrap_or_default()),
        }
    }
}

/// `budget …` subcommands.
#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum BudgetCommand {
    /// Every budget with what was reserved against it this month (yours and
    /// the projects'; all for admins).
    Show,
    /// Set a monthly budget (admin), in the currency of `[costs]`.
    Set {
        #[command(flatten)]
        of: BudgetOf,
        /// The most its experiments may reserve in a month.
        amount: f64,
    },
    /// Remove a budget (admin).
    Rm {
        #[command(flatten)]
        of: BudgetOf,
    },
}

/// `budget …`.
pub(super) fn budget(
    lab: &Lab,
    p: &Principal,
    command: BudgetCommand,
    json: bool,
) -> CommandOutput {
    let done = match &command {
        BudgetCommand::Show => None,
        BudgetCommand::Set { of, amount } => Some(lab.set_budget(p, &of.scope(), Some(*amount))),
        BudgetCommand::Rm { of } => Some(lab.set_budget(p, &of.scope(), None)),
    };
    match done {
        Some(Err(LabError::Invalid(why))) => {
            return CommandOutput::error(exit::USAGE, format!("error: {why}\n"));
        }
        Some(Err(e)) => return e.into(),
        Some(Ok(())) if !json => return CommandOutput::ok("done\n".to_string()),
        _ => {}
    }
    let budgets = match lab.budgets(p) {
        Ok(budgets) => budgets,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&budgets);
    }
    if budgets.is_empty() {
        return CommandOutput::ok("no budget is set\n".to_string());
    }
    let rows: Vec<Vec<String>> = budgets
        .iter()
        .map(|b| {
            vec![
                printable(&b.scope),
                b.month.clone(),
                format!("{:.2} {}", b.spent, b.currency),
                format!("{:.2} {}", b.amount, b.currency),
                format!("{:.0} %", b.spent / b.amount * 100.0),
            ]
        })
        .collect();
    CommandOutput::ok(table(
        &["BUDGET", "MONTH", "RESERVED", "OF", "SHARE"],
        &rows,
    ))
}
