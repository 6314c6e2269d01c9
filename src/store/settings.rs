//! Settings an admin changes while labbench runs, kept in `meta`: the idle
//! rule (`idle set`), which wins over `[idle]` once set.

use super::codec::{decode, encode};
use super::{META_TREE, Store, StoreResult};
use crate::monitor::idle::IdleRule;

const IDLE_RULE_KEY: &[u8] = b"idle_rule";

impl Store {
    /// The idle rule an admin set: `Some(None)` turned off, `None` never set.
    pub fn idle_rule(&self) -> StoreResult<Option<Option<IdleRule>>> {
        self.t()?
            .meta
            .get(IDLE_RULE_KEY)?
            .map(|v| decode(META_TREE, &v))
            .transpose()
    }

    /// Keeps the idle rule an admin set (`None`: off), durably.
    pub fn set_idle_rule(&self, rule: Option<&IdleRule>) -> StoreResult<()> {
        self.t()?
            .meta
            .insert(IDLE_RULE_KEY, encode(META_TREE, &rule)?)?;
        self.flush()
    }
}
