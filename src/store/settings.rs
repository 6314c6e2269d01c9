//! Settings an admin changes while labbench runs, kept in `meta`: the idle
//! rule (`idle set`), which wins over `[idle]` once set; and state that
//! must outlive a restart: who is in the login-node guard's penalty box.

use super::codec::{decode, encode};
use super::{META_TREE, Store, StoreResult};
use crate::monitor::idle::IdleRule;

const IDLE_RULE_KEY: &[u8] = b"idle_rule";
const PENALTIES_KEY: &[u8] = b"penalties";

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

    /// The uids in the guard's penalty box, and until when (seconds).
    pub fn penalties(&self) -> StoreResult<std::collections::BTreeMap<u32, i64>> {
        Ok(self
            .t()?
            .meta
            .get(PENALTIES_KEY)?
            .map(|v| decode(META_TREE, &v))
            .transpose()?
            .unwrap_or_default())
    }

    /// Keeps who is in the penalty box (not flushed: one lost to a crash
    /// ends a penalty early, as a restart did before).
    pub fn set_penalties(&self, boxed: &std::collections::BTreeMap<u32, i64>) -> StoreResult<()> {
        self.t()?
            .meta
            .insert(PENALTIES_KEY, encode(META_TREE, boxed)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_penalty_box_outlives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let boxed =
            std::collections::BTreeMap::from([(1001, 1_800_000_000), (1002, 1_800_000_060)]);
        {
            let store = Store::open(dir.path()).expect("open");
            assert!(store.penalties().expect("none yet").is_empty());
            store.set_penalties(&boxed).expect("keep");
            store.flush().expect("flush");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.penalties().expect("kept"), boxed);
    }
}
