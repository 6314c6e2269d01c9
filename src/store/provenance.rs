//! Provenance: `provenance` maps an experiment id to what was captured of
//! its origins; `diffs` maps it to its git diff (apart, so listing and
//! comparing never load diffs); `hash_cache` maps a file's absolute path
//! to its last hash and what identified its content then.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::codec::{decode, encode};
use super::{HASH_CACHE_TREE, PROVENANCE_TREE, Store, StoreResult};
use crate::model::{CachedHash, Provenance};

impl Store {
    /// Writes the provenance of experiment `id` (and its diff, when given);
    /// not flushed (sled writes it out within half a second; one lost to a
    /// crash is only missing, as one never captured is).
    pub fn put_provenance(&self, id: u64, p: &Provenance, diff: Option<&str>) -> StoreResult<()> {
        let trees = self.t()?;
        trees
            .provenance
            .insert(id.to_be_bytes(), encode(PROVENANCE_TREE, p)?)?;
        if let Some(diff) = diff {
            trees.diffs.insert(id.to_be_bytes(), diff.as_bytes())?;
        }
        Ok(())
    }

    /// The provenance of experiment `id`, if any was captured.
    pub fn provenance(&self, id: u64) -> StoreResult<Option<Provenance>> {
        self.t()?
            .provenance
            .get(id.to_be_bytes())?
            .map(|bytes| decode(PROVENANCE_TREE, &bytes))
            .transpose()
    }

    /// Every captured provenance, by experiment id.
    pub fn provenances(&self) -> impl Iterator<Item = StoreResult<(u64, Provenance)>> + use<> {
        let tree = self.t().map(|t| t.provenance.clone());
        let iter = tree.into_iter().flat_map(|t| t.iter());
        iter.map(|entry| {
            let (key, value) = entry?;
            let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            Ok((id, decode(PROVENANCE_TREE, &value)?))
        })
    }

    /// The git diff of experiment `id`, if one was kept.
    pub fn diff(&self, id: u64) -> StoreResult<Option<String>> {
        Ok(self
            .t()?
            .diffs
            .get(id.to_be_bytes())?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The cached hashes of `path` and of the files under it, at most
    /// `most`.
    pub fn cached_hashes(&self, path: &Path, most: usize) -> StoreResult<Vec<CachedHash>> {
        let trees = self.t()?;
        let key = path.as_os_str().as_bytes();
        let mut found = Vec::new();
        if let Some(value) = trees.hash_cache.get(key)? {
            found.push(decode(HASH_CACHE_TREE, &value)?);
        }
        let mut under = key.to_vec();
        under.push(b'/');
        for entry in trees.hash_cache.scan_prefix(&under) {
            if found.len() >= most {
                break;
            }
            found.push(decode(HASH_CACHE_TREE, &entry?.1)?);
        }
        Ok(found)
    }

    /// Remembers `hashes` (not flushed: a lost entry is only read again).
    /// One entry per path: hashing the same files again does not grow it.
    pub fn cache_hashes(&self, hashes: &[CachedHash]) -> StoreResult<()> {
        let trees = self.t()?;
        let mut batch = sled::Batch::default();
        for h in hashes {
            batch.insert(h.path.as_os_str().as_bytes(), encode(HASH_CACHE_TREE, h)?);
        }
        trees.hash_cache.apply_batch(batch)?;
        Ok(())
    }
}
