//! Budgets: the most a user's or a project's experiments may reserve in a
//! month, priced at the `[costs]` rates. At 80 % the sessions of the
//! owner and of the admins are told (once a month per budget). A spent
//! user budget holds that user's new submissions (refused until the next
//! month or a larger budget), or only tells, as `costs.budget_action` says.
//! A project budget only tells: anyone may name a project, so holding it
//! would let one member stop a whole team (and be escaped by naming
//! another). What was reserved is read at most once a minute per user or
//! project. Admins set budgets (audited); each user sees their own and the
//! projects'.

use std::collections::HashSet;

use serde::Serialize;

use super::{Change, Lab, LabError, LabResult, Principal, require_admin};
use crate::model::Role;
use crate::store::IndexedBy;

/// Share of a budget at which its owner and the admins are told.
pub const WARN_AT: f64 = 0.8;

/// What a spent budget does to new submissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BudgetAction {
    /// Refuse them until the next month or a larger budget.
    #[default]
    Hold,
    /// Take them, and tell the owner and the admins.
    Notify,
}

/// Whose budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetScope {
    /// A lab user's experiments.
    User(String),
    /// A project's experiments, whoever runs them.
    Project(String),
}

impl BudgetScope {
    /// Its key in the store: `user:NAME` or `project:NAME`.
    fn key(&self) -> String {
        match self {
            BudgetScope::User(u) => format!("user:{u}"),
            BudgetScope::Project(p) => format!("project:{p}"),
        }
    }

    /// The index its experiments are found by.
    fn index(&self) -> (IndexedBy, &str) {
        match self {
            BudgetScope::User(u) => (IndexedBy::Owner, u),
            BudgetScope::Project(p) => (IndexedBy::Project, p),
        }
    }

    fn from_key(key: &str) -> Option<BudgetScope> {
        match key.split_once(':')? {
            ("user", u) => Some(BudgetScope::User(u.to_string())),
            ("project", p) => Some(BudgetScope::Project(p.to_string())),
            _ => None,
        }
    }
}

/// A budget and what was reserved against it this month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// `user:NAME` or `project:NAME`.
    pub scope: String,
    /// The most for a month.
    pub amount: f64,
    /// Reserved this month so far.
    pub spent: f64,
    /// The currency of both.
    pub currency: String,
    /// The month (`YYYY-MM`, in the zone of costs).
    pub month: String,
}

/// Budgets warned of this month (`scope@month`).
#[derive(Debug, Default)]
pub(super) struct BudgetWarnings {
    sent: std::sync::Mutex<HashSet<String>>,
}

impl Lab {
    /// Sets the budget of `scope` for each month (`None`: removes it);
    /// admins only.
    pub fn set_budget(
        &self,
        p: &Principal,
        scope: &BudgetScope,
        amount: Option<f64>,
    ) -> LabResult<()> {
        let p = self.current(p)?;
        require_admin(&p, "set budgets")?;
        if amount.is_some_and(|a| !a.is_finite() || a <= 0.0) {
            return Err(LabError::Invalid("a budget is an amount above 0".into()));
        }
        match scope {
            BudgetScope::User(user) => {
                self.existing_user_record(user)?;
            }
            BudgetScope::Project(project) => {
                if project.is_empty()
                    || project.chars().count() > super::submit::MAX_LABEL
                    || project.chars().any(char::is_control)
                {
                    return Err(LabError::Invalid(format!(
                        "invalid project {project:?}: 1–{} printable characters",
                        super::submit::MAX_LABEL
                    )));
                }
            }
        }
        let key = scope.key();
        let before = self.store.budget(&key)?;
        self.store.set_budget(&key, amount)?;
        // What was reserved is read again at the next check.
        self.spend.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let shown = |a: Option<f64>| a.map(|a| format!("{a} {}", self.currency()));
        self.audit(
            &p,
            Change::new(
                "budget.set",
                key.clone(),
                format!("set the budget of {key}"),
            )
            .changing(shown(before), shown(amount)),
        )
    }

    /// Every budget with what was reserved against it this month: all of
    /// them for admins; one's own and the projects' for others.
    pub fn budgets(&self, p: &Principal) -> LabResult<Vec<BudgetStatus>> {
        let p = self.current(p)?;
        let mut found = Vec::new();
        for (key, amount) in self.store.budgets()? {
            let Some(scope) = BudgetScope::from_key(&key) else {
                continue;
            };
            if let BudgetScope::User(u) = &scope
                && *u != p.user
                && p.role != Role::Admin
            {
                continue;
            }
            let (by, name) = scope.index();
            let (spent, month) = self.reserved_this_month(by, name)?;
            found.push(BudgetStatus {
                scope: key,
                amount,
                spent,
                currency: self.currency().to_string(),
                month,
            });
        }
        Ok(found)
    }

    /// At a submission of `owner`'s in `project`: tells at 80 % of either
    /// budget, and refuses once one is spent (unless budgets only notify).
    pub(super) fn check_budgets(&self, owner: &str, project: Option<&str>) -> LabResult<()> {
        let mut scopes = vec![BudgetScope::User(owner.to_string())];
        scopes.extend(project.map(|p| BudgetScope::Project(p.to_string())));
        for scope in scopes {
            let key = scope.key();
            let Some(amount) = self.store.budget(&key)? else {
                continue;
            };
            let (by, name) = scope.index();
            let (spent, month) = self.reserved_this_month(by, name)?;
            let currency = self.currency().to_string();
            if spent >= amount * WARN_AT {
                self.warn_of_budget(owner, &key, &month, spent, amount);
            }
            let holds = matches!(scope, BudgetScope::User(_));
            if spent >= amount && holds && self.budget_action() == BudgetAction::Hold {
                return Err(LabError::Unavailable(format!(
                    "the budget of {key} for {month} is spent ({spent:.2} of {amount:.2} {currency} \
                     reserved): new submissions are held until next month or a larger budget \
                     (ask an admin); nothing was queued"
                )));
            }
        }
        Ok(())
    }

    /// Tells `owner` and the admins, once a month per budget.
    fn warn_of_budget(&self, owner: &str, key: &str, month: &str, spent: f64, amount: f64) {
        let first = self
            .budget_warnings
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{key}@{month}"));
        if !first {
            return;
        }
        let text = format!(
            "budget of {key}: {spent:.2} of {amount:.2} {} reserved in {month} ({:.0} %)",
            self.currency(),
            spent / amount * 100.0
        );
        self.tell_owner_and_admins(owner, text);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;
    use crate::lab::testing::{finished_run, lab_with_admin, principal};
    use crate::lab::{CostSettings, CostZone, SubmitRequest};
    use crate::model::{CommandLine, CostRates};

    fn echo() -> SubmitRequest {
        SubmitRequest {
            command: Some(CommandLine::Argv(vec!["true".into()])),
            workdir: Some("/tmp".into()),
            ..SubmitRequest::default()
        }
    }

    #[test]
    fn a_budget_warns_at_80_percent_and_holds_new_submissions_once_spent() {
        let (_d, lab) = lab_with_admin();
        let settings = |budget_action| CostSettings {
            // One core for a second costs 1 EUR.
            rates: CostRates {
                currency: "EUR".into(),
                cpu_hour: 3600.0,
                ..CostRates::default()
            },
            zone: CostZone::Utc,
            budget_action,
        };
        let lab = lab.with_cost_settings(settings(BudgetAction::Hold));
        let admin = lab.local_operator().expect("admin");
        let mike = principal(&lab, "mike", Role::Member);
        let vera = principal(&lab, "vera", Role::Viewer);
        // Runs inside this month (UTC), whatever the day.
        let month_start = || {
            let today = chrono::Utc::now().date_naive();
            today
                .with_day(1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp())
                .expect("month start")
        };
        if crate::lab::now() - month_start() < 20 {
            std::thread::sleep(std::time::Duration::from_secs(21));
        }
        let start = month_start();
        let secs = (crate::lab::now() - start).min(100);
        lab.store()
            .import_experiments(&[finished_run(1001, "mike", start, secs)])
            .expect("import");
        // Spent: secs of secs / 0.9, 90 %.
        let amount = secs as f64 / 0.9;
        assert!(matches!(
            lab.set_budget(&mike, &BudgetScope::User("mike".into()), Some(amount)),
            Err(LabError::PermissionDenied(_))
        ));
        lab.set_budget(&admin, &BudgetScope::User("mike".into()), Some(amount))
            .expect("set");
        let seq = lab.notification_seq();
        lab.submit(&mike, echo()).expect("under the budget");
        let told = |p: &Principal| lab.notifications_after(p, seq).len();
        assert_eq!((told(&mike), told(&admin), told(&vera)), (1, 1, 0));
        assert!(
            lab.notifications_after(&mike, seq)[0].text.contains("90 %"),
            "{:?}",
            lab.notifications_after(&mike, seq)
        );
        lab.submit(&mike, echo()).expect("still under");
        assert_eq!(told(&mike), 1, "told once a month");
        // Spent: 180 %.
        lab.store()
            .import_experiments(&[finished_run(1002, "mike", start, secs)])
            .expect("import");
        // What was reserved is kept a minute; setting a budget reads it again.
        lab.set_budget(&admin, &BudgetScope::User("mike".into()), Some(amount))
            .expect("set again");
        match lab.submit(&mike, echo()) {
            Err(LabError::Unavailable(why)) => assert!(why.contains("user:mike"), "{why}"),
            other => panic!("not held: {other:?}"),
        }
        // Budgets that only notify take it.
        let notifying = lab
            .clone()
            .with_cost_settings(settings(BudgetAction::Notify));
        notifying.submit(&mike, echo()).expect("notify only");
        // Who sees which budget.
        let shown = lab.budgets(&mike).expect("budgets");
        assert_eq!(shown.len(), 1);
        assert!(
            (shown[0].spent - 2.0 * secs as f64).abs() < 1e-6,
            "{shown:?}"
        );
        assert!(lab.budgets(&vera).expect("budgets").is_empty());
        assert!(matches!(
            lab.set_budget(&admin, &BudgetScope::User("mike".into()), Some(-1.0)),
            Err(LabError::Invalid(_))
        ));
        lab.set_budget(&admin, &BudgetScope::User("mike".into()), None)
            .expect("removed");
        lab.submit(&mike, echo()).expect("no budget, no hold");
        // A spent project budget tells, and holds nobody.
        lab.set_budget(&admin, &BudgetScope::Project("churn".into()), Some(1.0))
            .expect("project");
        let before = lab.notification_seq();
        let in_churn = SubmitRequest {
            project: Some("churn".into()),
            ..echo()
        };
        lab.submit(&mike, in_churn)
            .expect("a project budget only tells");
        assert!(
            lab.notifications_after(&mike, before)
                .iter()
                .any(|n| n.text.contains("project:churn")),
            "told"
        );
        assert!(matches!(
            lab.set_budget(
                &admin,
                &BudgetScope::Project("bad\u{1b}[2J".into()),
                Some(1.0)
            ),
            Err(LabError::Invalid(_))
        ));
    }
}
