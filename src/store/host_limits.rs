//! Host limits (`host_limits` tree): by Unix user name, and `default:`
//! for every Unix user of a lab user (Unix names have no `:`).

use super::codec::{decode, encode};
use super::{HOST_LIMITS_TREE, Store, StoreResult};
use crate::model::HostLimit;

/// The key of the default.
pub const DEFAULT_KEY: &str = "default:";

impl Store {
    /// Every host limit set: (Unix user or [`DEFAULT_KEY`], caps).
    pub fn host_limits(&self) -> StoreResult<Vec<(String, HostLimit)>> {
        self.t()?
            .host_limits
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    decode(HOST_LIMITS_TREE, &v)?,
                ))
            })
            .collect()
    }

    /// Sets (or, with `None`, removes) the host limit of `key`, durably.
    pub fn set_host_limit(&self, key: &str, limit: Option<&HostLimit>) -> StoreResult<()> {
        let tree = &self.t()?.host_limits;
        match limit {
            Some(limit) => {
                tree.insert(key.as_bytes(), encode(HOST_LIMITS_TREE, limit)?)?;
            }
            None => {
                tree.remove(key.as_bytes())?;
            }
        }
        self.flush()
    }
}
