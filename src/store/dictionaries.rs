//! The store's own packing dictionaries, sampled from the records it packs.
//!
//! The released dictionary (`records-v1.dict`) knows the field names and
//! typical values of any lab's records. One lab's records share far more
//! with each other: its projects, commands, working directories, hosts,
//! environment, packages and inputs. As RocksDB samples a file's records into
//! its compression dictionary, the store keeps the newest
//! [`SAMPLES_PER_KIND`] finished experiments and provenance records it packs
//! and, after [`FIRST_AFTER`] finished experiments (then twice as many each
//! time, up to [`MOST_AFTER`]), keeps them as a new dictionary in the
//! `dictionaries` tree and packs with it from then on. What changes in a lab
//! (a new project, a new package set) is in the next dictionary. Metric
//! summaries are packed with it too but neither sampled nor counted: they
//! are rewritten at every read of a running experiment's metrics, and their
//! bulk is numbers, which no dictionary shortens.
//!
//! A record packed so starts with [`PACKED_STORED`] and the dictionary's
//! number (u16 BE). A dictionary is stored with its blake3 hash (raw deflate
//! has no checksum, so a damaged one would read as other values) and never
//! removed or overwritten; each is flushed before the first record packed
//! with it is written, so no record names a dictionary a crash lost. Every
//! dictionary a read has used stays in memory (about 20 of at most 30 KiB
//! at a million experiments). In `cargo bench --bench history` (c) this took
//! the store from 2 060 to 1 646 bytes per experiment at a million.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{self, PACKED_STORED};
use super::{EXPERIMENTS_TREE, PROVENANCE_TREE, StoreError, StoreResult};

/// Newest records of each kind a dictionary is made of.
const SAMPLES_PER_KIND: usize = 2;
/// Largest record sampled (a larger one is mostly its own content).
const SAMPLE_MOST: usize = 8 << 10;
/// Largest dictionary (deflate looks back 32 KiB).
const DICTIONARY_MOST: usize = 30 << 10;
/// Finished experiments packed before the first dictionary is kept.
const FIRST_AFTER: u64 = 1 << 10;
/// Most finished experiments between two dictionaries.
const MOST_AFTER: u64 = 1 << 16;
/// Bytes of the hash stored before a dictionary.
const HASH_LEN: usize = 32;

/// A dictionary's bytes.
type Dictionary = Arc<[u8]>;

/// The dictionaries of one store (see the module doc).
pub(super) struct Dictionaries {
    tree: sled::Tree,
    loaded: RwLock<HashMap<u16, Dictionary>>,
    current: RwLock<Option<(u16, Dictionary)>>,
    sampler: Mutex<Sampler>,
    /// The highest number stored; held while a dictionary is kept.
    highest: Mutex<u16>,
}

#[derive(Default)]
struct Sampler {
    recent: BTreeMap<&'static str, VecDeque<Vec<u8>>>,
    /// Finished experiments packed since the current dictionary was kept.
    packed: u64,
    /// How many after which the next dictionary is kept.
    next_after: u64,
}

impl Dictionaries {
    /// The dictionaries kept in `tree`; packing goes on with the newest.
    /// Keys of another layout are left alone, and a damaged newest
    /// dictionary is not packed with (reading records packed with it says
    /// so): neither stops the store from opening.
    pub(super) fn open(tree: sled::Tree) -> StoreResult<Dictionaries> {
        let mut highest = 0;
        for key in tree.iter().keys().rev() {
            if let Ok(number) = <[u8; 2]>::try_from(key?.as_ref()) {
                highest = u16::from_be_bytes(number);
                break;
            }
        }
        let current = match highest {
            0 => None,
            n => tree
                .get(n.to_be_bytes())?
                .and_then(|stored| verified(&stored))
                .map(|d| (n, d)),
        };
        let next_after = FIRST_AFTER
            .saturating_mul(1 << highest.min(6))
            .min(MOST_AFTER);
        Ok(Dictionaries {
            loaded: RwLock::new(current.iter().cloned().collect()),
            current: RwLock::new(current),
            sampler: Mutex::new(Sampler {
                next_after,
                ..Sampler::default()
            }),
            highest: Mutex::new(highest),
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
        if let Some(dictionary) = self.sample(tree, json) {
            self.keep(dictionary);
        }
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

    /// Dictionary `number`, read and checked once.
    fn get(&self, tree: &'static str, number: u16) -> StoreResult<Dictionary> {
        if let Some(d) = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&number)
        {
            return Ok(d.clone());
        }
        let corrupt = |what: &str| StoreError::Corrupt {
            tree,
            reason: format!("record packed with the store's dictionary {number}, which is {what}"),
        };
        let stored = self
            .tree
            .get(number.to_be_bytes())?
            .ok_or_else(|| corrupt("missing"))?;
        let dictionary = verified(&stored).ok_or_else(|| corrupt("damaged"))?;
        self.loaded
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(number, dictionary.clone());
        Ok(dictionary)
    }

    /// Remembers `json` among the newest of its kind; the next dictionary's
    /// bytes when it is time to keep one.
    fn sample(&self, tree: &'static str, json: Vec<u8>) -> Option<Vec<u8>> {
        if tree != EXPERIMENTS_TREE && tree != PROVENANCE_TREE {
            return None;
        }
        let mut sampler = self.sampler.lock().unwrap_or_else(|e| e.into_inner());
        if json.len() <= SAMPLE_MOST {
            let recent = sampler.recent.entry(tree).or_default();
            recent.push_back(json);
            if recent.len() > SAMPLES_PER_KIND {
                recent.pop_front();
            }
        }
        if tree != EXPERIMENTS_TREE {
            return None;
        }
        sampler.packed += 1;
        if sampler.packed < sampler.next_after {
            return None;
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
        Some(dictionary)
    }

    /// Stores `dictionary` under the next number, flushes, then packs with
    /// it. One that cannot be written is not used (records go on with the
    /// current one); a number is never written twice.
    fn keep(&self, dictionary: Vec<u8>) {
        let mut highest = self.highest.lock().unwrap_or_else(|e| e.into_inner());
        let Some(number) = highest.checked_add(1) else {
            tracing::warn!(
                "the store has {} packing dictionaries, the most it can number: records go on with the newest",
                u16::MAX
            );
            return;
        };
        let mut stored = blake3::hash(&dictionary).as_bytes().to_vec();
        stored.extend_from_slice(&dictionary);
        let written = self
            .tree
            .compare_and_swap(number.to_be_bytes(), None::<&[u8]>, Some(stored))
            .map(|swapped| swapped.is_ok());
        *highest = number;
        if !matches!(written, Ok(true)) || self.tree.flush().is_err() {
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

/// A stored dictionary's bytes, if its hash matches them.
fn verified(stored: &[u8]) -> Option<Dictionary> {
    let (hash, dictionary) = stored.split_at_checked(HASH_LEN)?;
    (blake3::hash(dictionary).as_bytes() == hash).then(|| Dictionary::from(dictionary))
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

    /// `n` finished experiments (as `run`s) packed, what they were packed as.
    fn pack_runs(dicts: &Dictionaries, runs: std::ops::Range<u64>) -> Vec<Vec<u8>> {
        runs.map(|i| {
            dicts
                .encode_packed(EXPERIMENTS_TREE, &run(i))
                .expect("pack")
        })
        .collect()
    }

    #[test]
    fn records_pack_smaller_once_the_store_has_its_own_dictionary_and_read_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, dicts) = dictionaries(dir.path());
        let stored = pack_runs(&dicts, 0..FIRST_AFTER + 10);
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
                dicts.decode::<Run>(EXPERIMENTS_TREE, bytes).expect("read"),
                run(i as u64)
            );
        }
        // Packing goes on with the dictionary kept before, and the next is
        // kept after twice as many.
        let again = pack_runs(&dicts, 0..2 * FIRST_AFTER - 1);
        assert_eq!(&again[again.len() - 1][..3], &[PACKED_STORED, 0, 1]);
        let next = pack_runs(&dicts, 0..2);
        assert_eq!(&next[1][..3], &[PACKED_STORED, 0, 2]);
    }

    #[test]
    fn only_finished_experiments_count_and_dictionaries_come_less_often() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, dicts) = dictionaries(dir.path());
        // Metric summaries, rewritten at every read, keep no dictionary.
        for i in 0..FIRST_AFTER * 3 {
            dicts
                .encode_packed(super::super::METRICS_READ_TREE, &run(i))
                .expect("pack");
        }
        assert_eq!(dicts.tree.len(), 0);
        pack_runs(&dicts, 0..FIRST_AFTER * 7);
        // After 1024, 2048 and 4096 experiments.
        assert_eq!(dicts.tree.len(), 3);
        let newest = pack_runs(&dicts, 0..1);
        assert_eq!(&newest[0][..3], &[PACKED_STORED, 0, 3]);
    }

    #[test]
    fn a_record_whose_dictionary_is_missing_or_damaged_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, dicts) = dictionaries(dir.path());
        pack_runs(&dicts, 0..FIRST_AFTER);
        let packed = pack_runs(&dicts, 0..2).remove(1);
        let mut unknown = packed.clone();
        unknown[2] = 9;
        let err = dicts
            .decode::<Run>(EXPERIMENTS_TREE, &unknown)
            .expect_err("missing")
            .to_string();
        assert!(err.contains("dictionary 9, which is missing"), "{err}");
        for cut in [1, 2, 3, packed.len() / 2, packed.len() - 1] {
            assert!(
                dicts
                    .decode::<Run>(EXPERIMENTS_TREE, &packed[..cut])
                    .is_err(),
                "cut at {cut}"
            );
        }
        // One byte of the stored dictionary changed: found by its hash.
        let mut stored = dicts
            .tree
            .get(1u16.to_be_bytes())
            .expect("get")
            .expect("kept")
            .to_vec();
        let middle = stored.len() / 2;
        stored[middle] ^= 0x20;
        dicts
            .tree
            .insert(1u16.to_be_bytes(), stored)
            .expect("damage");
        drop(dicts);
        let tree = db.open_tree("dictionaries").expect("tree");
        let dicts = Dictionaries::open(tree).expect("a damaged dictionary opens");
        let err = dicts
            .decode::<Run>(EXPERIMENTS_TREE, &packed)
            .expect_err("damaged")
            .to_string();
        assert!(err.contains("dictionary 1, which is damaged"), "{err}");
        // Not packed with; the next dictionary gets the next number.
        let after = pack_runs(&dicts, 0..2 * FIRST_AFTER + 1);
        assert_eq!(after[0][0], codec::PACKED);
        assert_eq!(&after[after.len() - 1][..3], &[PACKED_STORED, 0, 2]);
        assert_eq!(
            dicts
                .decode::<Run>(EXPERIMENTS_TREE, &after[after.len() - 1])
                .expect("read"),
            run(2 * FIRST_AFTER)
        );
    }

    #[test]
    fn keys_of_another_layout_do_not_stop_the_store_from_opening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("db");
        let tree = db.open_tree("dictionaries").expect("tree");
        tree.insert(b"a key of a later build", &b"?"[..])
            .expect("insert");
        let dicts = Dictionaries::open(tree).expect("open");
        let after = pack_runs(&dicts, 0..FIRST_AFTER + 1);
        assert_eq!(&after[FIRST_AFTER as usize][..3], &[PACKED_STORED, 0, 1]);
    }
}
