//! The announcement: one record in `meta` under `announcement`.

use super::codec::{decode, encode};
use super::{META_TREE, Store, StoreResult};
use crate::model::Announcement;

const ANNOUNCEMENT_KEY: &[u8] = b"announcement";

impl Store {
    /// The announcement, if one is set.
    pub fn announcement(&self) -> StoreResult<Option<Announcement>> {
        self.t()?
            .meta
            .get(ANNOUNCEMENT_KEY)?
            .map(|bytes| decode(META_TREE, &bytes))
            .transpose()
    }

    /// Sets the announcement (`None`: clears it); not flushed (the audit
    /// entry that follows flushes both).
    pub fn set_announcement(&self, announcement: Option<&Announcement>) -> StoreResult<()> {
        let meta = &self.t()?.meta;
        match announcement {
            Some(a) => {
                meta.insert(ANNOUNCEMENT_KEY, encode(META_TREE, a)?)?;
            }
            None => {
                meta.remove(ANNOUNCEMENT_KEY)?;
            }
        }
        Ok(())
    }
}
