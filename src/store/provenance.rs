//! Provenance: `provenance` maps an experiment id to what was captured of
//! its origins (packed); `diffs` maps it to its git diff, apart so that
//! listing and comparing never load diffs; `hash_cache` maps a file's
//! absolute path to its last hash and what identified its content then.
//!
//! A diff is kept once per content: `diffs` holds [`DIFF_REF`] and the
//! diff's blake3 hash, `diff_blobs` maps the hash to the packed diff. The
//! runs of a sweep from one dirty working tree share one copy. Experiments
//! are never deleted, so neither are blobs. Diffs stored before this were
//! the text itself, which is still read.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::codec::{decode, encode, pack, unpack};
use super::{DIFFS_TREE, HASH_CACHE_TREE, PROVENANCE_TREE, Store, StoreError, StoreResult};
use crate::model::{CachedHash, Provenance};

/// First byte of a `diffs` value that names a shared blob (UTF-8 text, as
/// the diffs of earlier builds are, never starts with it).
const DIFF_REF: u8 = 0xFF;

impl Store {
    /// Writes the provenance of experiment `id` (and its diff, when given);
    /// not flushed (sled writes it out within half a second; one lost to a
    /// crash is only missing, as one never captured is).
    pub fn put_provenance(&self, id: u64, p: &Provenance, diff: Option<&str>) -> StoreResult<()> {
        let trees = self.t()?;
        trees.provenance.insert(
            id.to_be_bytes(),
            trees.dictionaries.encode_packed(PROVENANCE_TREE, p)?,
        )?;
        if let Some(diff) = diff {
            let hash = blake3::hash(diff.as_bytes());
            if !trees.diff_blobs.contains_key(hash.as_bytes())? {
                let blob = pack(DIFFS_TREE, diff.as_bytes())?;
                trees.diff_blobs.insert(hash.as_bytes(), blob)?;
            }
            let mut reference = vec![DIFF_REF];
            reference.extend_from_slice(hash.as_bytes());
            trees.diffs.insert(id.to_be_bytes(), reference)?;
        }
        Ok(())
    }

    /// The provenance of experiment `id`, if any was captured.
    pub fn provenance(&self, id: u64) -> StoreResult<Option<Provenance>> {
        let trees = self.t()?;
        trees
            .provenance
            .get(id.to_be_bytes())?
            .map(|bytes| trees.dictionaries.decode(PROVENANCE_TREE, &bytes))
            .transpose()
    }

    /// Every captured provenance, by experiment id.
    pub fn provenances(&self) -> impl Iterator<Item = StoreResult<(u64, Provenance)>> + use<> {
        // Nothing while the store is closed; each entry read with its
        // store's dictionaries.
        self.t().into_iter().flat_map(|trees| {
            trees.provenance.iter().map(move |entry| {
                let (key, value) = entry?;
                let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
                Ok((id, trees.dictionaries.decode(PROVENANCE_TREE, &value)?))
            })
        })
    }

    /// The git diff of experiment `id`, if one was kept.
    pub fn diff(&self, id: u64) -> StoreResult<Option<String>> {
        let trees = self.t()?;
        let Some(value) = trees.diffs.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        let text = match value.split_first() {
            Some((&DIFF_REF, hash)) => match trees.diff_blobs.get(hash)? {
                Some(blob) => unpack(DIFFS_TREE, &blob)?,
                None => {
                    return Err(StoreError::Corrupt {
                        tree: DIFFS_TREE,
                        reason: format!("the diff of experiment {id} is missing"),
                    });
                }
            },
            _ => value.to_vec(),
        };
        Ok(Some(String::from_utf8_lossy(&text).into_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_the_same_diff_share_one_copy_and_old_diffs_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let diff =
            "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 0.1\n+lr = 0.01\n".repeat(50);
        let p = Provenance::default();
        for id in 1..=3 {
            store.put_provenance(id, &p, Some(&diff)).expect("put");
        }
        store.put_provenance(4, &p, Some("other")).expect("put");
        let trees = store.t().expect("trees");
        assert_eq!(trees.diff_blobs.len(), 2);
        let blob = trees
            .diff_blobs
            .iter()
            .next()
            .expect("blob")
            .expect("read")
            .1;
        assert!(
            blob.len() < diff.len() / 4,
            "packed {} of {}",
            blob.len(),
            diff.len()
        );
        for id in 1..=3 {
            assert_eq!(
                store.diff(id).expect("diff").as_deref(),
                Some(diff.as_str())
            );
        }
        assert_eq!(store.diff(4).expect("diff").as_deref(), Some("other"));
        // The raw text an earlier build wrote.
        trees
            .diffs
            .insert(5u64.to_be_bytes(), "+old\n")
            .expect("raw");
        assert_eq!(store.diff(5).expect("diff").as_deref(), Some("+old\n"));
        assert_eq!(store.diff(6).expect("diff"), None);
        assert_eq!(store.provenance(2).expect("read"), Some(p));
    }
}
