//! The store's own packing dictionaries, sampled from the records it packs.
//!
//! The released dictionary (`records-v1.dict`) knows the field names and
//! typical values of any lab's records. One lab's records share far more
//! with each other: its projects, commands, working directories, hosts,
//! environment, packages and inputs. As RocksDB samples a file's records into
//! its compression dictionary, the store keeps the newest
//! [`SAMPLES_PER_KIND`] records of each kind it packs and, after
//! [`FIRST_AFTER`] packs (then twice as many each time, up to
//! [`MOST_AFTER`]), keeps them as a new dictionary in the `dictionaries` tree
//! and packs with it from then on. What changes in a lab (a new project, a
//! new package set) is in the next dictionary.
//!
//! A record packed so starts with [`PACKED_STORED`] and the dictionary's
//! number (u16 BE). Dictionaries are never removed, and each is flushed
//! before the first record packed with it is written, so no record names a
//! dictionary a crash lost. In `cargo bench --bench history` (c) this took a
//! finished experiment's three packed records from 1 150 to about 900 bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{self, PACKED_STORED};
use super::{StoreError, StoreResult};

/// Newest records of each kind a dictionary is made of.
const SAMPLES_PER_KIND: usize = 2;
/// Largest record sampled (a larger one is mostly its own content).
const SAMPLE_MOST: usize = 8 << 10;
/// Largest dictionary (deflate looks back 32 KiB).
const DICTIONARY_MOST: usize = 30 << 10;
/// Packs before the first dictionary is kept.
const FIRST_AFTER: u64 = 1 << 10;
/// Most packs between two dictionaries.
const MOST_AFTER: u64 = 1 << 16;

/// A dictionary's bytes.
type Dictionary = Arc<[u8]>;

/// The dictionaries of one store (see the module doc).
pub(super) struct Dictionaries {
    tree: sled::Tree,
    loaded: RwLock<HashMap<u16, Dictionary>>,
    current: RwLock<Option<(u16, Dictionary)>>,
    sampler: Mutex<Sampler>,
}

#[derive(Default)]
struct Sampler {
    recent: BTreeMap<&'static str, VecDeque<Vec<u8>>>,
    /// Records packed since the current dictionary was kept.
    packed: u64,
    /// Packs after which the next dictionary is kept.
    next_after: u64,
}

impl Dictionaries {
    /// The dictionaries kept in `tree`; packing goes on with the newest.
    pub(super) fn open(tree: sled::Tree) -> StoreResult<Dictionaries> {
        let current = match tree.last()? {
            Some((key, value)) => Some((number_of(&key)?, Dictionary::from(value.as_ref()))),
            None => None,
        };
        let kept = u32::try_from(tree.len()).unwrap_or(u32::MAX).min(16);
        let next_after = FIRST_AFTER.saturating_mul(1 << kept).min(MOST_AFTER);
        Ok(Dictionaries {
            loaded: RwLock::new(current.iter().cloned().collect()),
            current: RwLock::new(current),
            sampler: Mutex::new(Sampler {
                next_after,
                ..Sampler::default()
            }),
            tree,
        })
    }

    /// Wraps a record of `tree` in its envelope and packs it with the
    /// current dictionary (the released one before the store has its own).
    pub(super) fn encode_packed<T: Serialize>(
        &self,
        tree: &'static str,
        value: &T,
    ) -> StoreResult<Vec<u8>> {
        let json = codec::encode(tree, value)?;
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let packed = match current {
            Some((number, dictionary)) => {
                let [high, low] = number.to_be_bytes();
                codec::deflate(tree, &json, &[PACKED_STORED, high, low], &dictionary)?
            }
            None => codec::pack(tree, &json)?,
        };
        self.sample(tree, json);
        Ok(packed)
    }

    /// Reads a record of `tree`, whichever way it was stored.
    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        tree: &'static str,
        bytes: &[u8],
    ) -> StoreResult<T> {
        match bytes {
            [PACKED_STORED, high, low, packed @ ..] => {
                let dictionary = self.get(tree, u16::from_be_bytes([*high, *low]))?;
                codec::decode_json(tree, &codec::inflate(tree, packed, &dictionary)?)
            }
            _ => codec::decode(tree, bytes),
        }
    }

    /// Dictionary `number`, read once from the tree.
    fn get(&self, tree: &'static str, number: u16) -> StoreResult<Dictionary> {
        if let Some(d) = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&number)
        {
            return Ok(d.clone());
        }
        let Some(bytes) = self.tree.get(number.to_be_bytes())? else {
            return Err(StoreError::Corrupt {
                tree,
                reason: format!(
                    "record packed with the store's dictionary {number}, which is missing"
                ),
            });
        };
        let dictionary = Dictionary::from(bytes.as_ref());
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(number, dictionary.clone());
        Ok(dictionary)
    }

    /// Remembers `json` among the newest of its kind; keeps a new dictionary
    /// when it is time. A dictionary that cannot be written is not used (the
    /// records go on with the current one).
    fn sample(&self, tree: &'static str, json: Vec<u8>) {
        let mut sampler = self.sampler.lock().unwrap_or_else(|e| e.into_inner());
        if json.len() <= SAMPLE_MOST {
            let recent = sampler.recent.entry(tree).or_default();
            recent.push_back(json);
            if recent.len() > SAMPLES_PER_KIND {
                recent.pop_front();
            }
        }
        sampler.packed += 1;
        if sampler.packed < sampler.next_after {
            return;
        }
        sampler.packed = 0;
        sampler.next_after = (sampler.next_after * 2).min(MOST_AFTER);
        let mut dictionary: Vec<u8> = sampler
            .recent
            .values()
            .flatten()
            .flatten()
            .copied()
            .collect();
        if dictionary.len() > DICTIONARY_MOST {
            dictionary.drain(..dictionary.len() - DICTIONARY_MOST);
        }
        let next = match &*self.current.read().unwrap_or_else(|e| e.into_inner()) {
            Some((number, _)) => number.checked_add(1),
            None => Some(1),
        };
        let Some(number) = next else {
            return;
        };
        let kept = self
            .tree
            .insert(number.to_be_bytes(), dictionary.as_slice())
            .and_then(|_| self.tree.flush());
        if kept.is_err() {
            return;
        }
        let dictionary = Dictionary::from(dictionary);
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(number, dictionary.clone());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((number, dictionary));
    }
}

fn number_of(key: &[u8]) -> StoreResult<u16> {
    <[u8; 2]>::try_from(key)
        .map(u16::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            tree: super::DICTIONARIES_TREE,
            reason: "a dictionary's number is not 2 bytes".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Run {
        project: String,
        command: String,
        packages: Vec<String>,
        auc: f64,
    }

    fn run(i: u64) -> Run {
        Run {
            project: format!("churn-{}", i / 500),
            command: "python -m churn.train --config configs/xgb-large.yaml --folds 5".into(),
            packages: [
                "numpy==2.1.0",
                "pandas==2.2.2",
                "xgboost==2.1.1",
                "scikit-learn==1.5.0",
            ]
            .map(String::from)
            .to_vec(),
            // Short decimals: serde_json reads some long ones back 1 ulp off.
            auc: (i * 7919 % 1000) as f64 / 1000.0,
        }
    }

    fn dictionaries(dir: &std::path::Path) -> (sled::Db, Dictionaries) {
        let db = sled::open(dir).expect("db");
        let tree = db.open_tree("dictionaries").expect("tree");
        (db, Dictionaries::open(tree).expect("open"))
    }

    #[test]
    fn records_pack_smaller_once_the_store_has_its_own_dictionary_and_read_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, dicts) = dictionaries(dir.path());
        let mut stored = Vec::new();
        for i in 0..FIRST_AFTER + 10 {
            stored.push(dicts.encode_packed("runs", &run(i)).expect("pack"));
        }
        let first = &stored[0];
        let last = &stored[stored.len() - 1];
        assert_eq!(first[0], codec::PACKED, "the released dictionary first");
        assert_eq!(&last[..3], &[PACKED_STORED, 0, 1], "then the store's first");
        assert!(
            last.len() * 3 < first.len() * 2,
            "{} bytes with the store's dictionary, {} with the released one",
            last.len(),
            first.len()
        );
        drop(dicts);
        drop(db);
        let (_db, dicts) = dictionaries(dir.path());
        for (i, bytes) in stored.iter().enumerate() {
            assert_eq!(
                dicts.decode::<Run>("runs", bytes).expect("read"),
                run(i as u64)
            );
        }
        // Packing goes on with the dictionary kept before.
        let again = dicts.encode_packed("runs", &run(7)).expect("pack");
        assert_eq!(&again[..3], &[PACKED_STORED, 0, 1]);
    }

    #[test]
    fn dictionaries_are_kept_less_often_as_the_store_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, dicts) = dictionaries(dir.path());
        for i in 0..FIRST_AFTER * 7 {
            dicts.encode_packed("runs", &run(i)).expect("pack");
        }
        // After 1024, 2048 and 4096 packs.
        assert_eq!(dicts.tree.len(), 3);
        let newest = dicts.encode_packed("runs", &run(1)).expect("pack");
        assert_eq!(&newest[..3], &[PACKED_STORED, 0, 3]);
    }

    #[test]
    fn a_record_whose_dictionary_is_missing_or_damaged_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, dicts) = dictionaries(dir.path());
        for i in 0..FIRST_AFTER {
            dicts.encode_packed("runs", &run(i)).expect("pack");
        }
        let packed = dicts.encode_packed("runs", &run(1)).expect("pack");
        let mut unknown = packed.clone();
        unknown[2] = 9;
        let err = dicts
            .decode::<Run>("runs", &unknown)
            .expect_err("missing")
            .to_string();
        assert!(err.contains("dictionary 9, which is missing"), "{err}");
        for cut in [3, packed.len() / 2, packed.len() - 1] {
            assert!(
                dicts.decode::<Run>("runs", &packed[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(dicts.decode::<Run>("runs", &[PACKED_STORED]).is_err());
    }
}
