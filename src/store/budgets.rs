//! Budgets: `budgets` maps `user:NAME` or `project:NAME` to the most that
//! its experiments may reserve in a month.

use super::codec::{decode, encode};
use super::{BUDGETS_TREE, Store, StoreResult};

impl Store {
    /// The budget of `scope` (`user:NAME`, `project:NAME`), if one is set.
    pub fn budget(&self, scope: &str) -> StoreResult<Option<f64>> {
        self.t()?
            .budgets
            .get(scope.as_bytes())?
            .map(|v| decode(BUDGETS_TREE, &v))
            .transpose()
    }

    /// Every budget set, by scope.
    pub fn budgets(&self) -> StoreResult<Vec<(String, f64)>> {
        self.t()?
            .budgets
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(BUDGETS_TREE, &v)?,
                ))
            })
            .collect()
    }

    /// Sets (or, with `None`, removes) the budget of `scope`; not flushed
    /// (the audit entry that follows flushes both).
    pub fn set_budget(&self, scope: &str, amount: Option<f64>) -> StoreResult<()> {
        let tree = &self.t()?.budgets;
        match amount {
            Some(amount) => {
                tree.insert(scope.as_bytes(), encode(BUDGETS_TREE, &amount)?)?;
            }
            None => {
                tree.remove(scope.as_bytes())?;
            }
        }
        Ok(())
    }
}
