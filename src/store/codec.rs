//! Record envelopes: every stored value is `{"v": VERSION, "data": …}` in JSON,
//! so a later build can read (and migrate) what an earlier one wrote.
//!
//! The bulky records of history (finished experiments, metric summaries,
//! provenance) are stored *packed*: the same JSON envelope, deflated against
//! a preset dictionary of typical records (`records-v1.dict`), after a tag
//! byte that JSON never starts with and the dictionary's number. A dictionary
//! lets each small record refer back to the field names and common values it
//! shares with every other, which plain deflate of one record cannot: a
//! finished experiment, its 20 metric summaries and its provenance take about
//! 1.2 KB instead of 5.7 KB. A released dictionary never changes (a test pins
//! its hash); a better one is added as number 2 beside it. Once a store has
//! packed enough, it packs with dictionaries sampled from its own records
//! (`dictionaries.rs`). Records written before packing existed are JSON and
//! read as they are.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, StoreResult};

/// Version of the record layouts written by this build.
const RECORD_VERSION: u32 = 1;

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    data: &'a T,
}

#[derive(serde::Deserialize)]
struct EnvelopeIn<T> {
    v: u32,
    data: T,
}

/// Wraps a record in its versioned envelope.
pub(super) fn encode<T: Serialize>(tree: &'static str, value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(&EnvelopeOut {
        v: RECORD_VERSION,
        data: value,
    })
    .map_err(|e| StoreError::Corrupt {
        tree,
        reason: format!("cannot encode: {e}"),
    })
}

/// First byte of a record packed with a released dictionary (a JSON
/// envelope starts with `{`).
pub(super) const PACKED: u8 = 0x01;
/// First byte of a record packed with one of the store's own dictionaries
/// (`dictionaries.rs`).
pub(super) const PACKED_STORED: u8 = 0x02;
/// Number of the dictionary [`encode_packed`] uses.
const DICTIONARY: u8 = 1;
/// Dictionary 1: typical experiment, metric-summary and provenance records.
const DICTIONARY_V1: &[u8] = include_bytes!("records-v1.dict");
/// Most bytes a packed record may unpack to (a corrupt one stops there).
const MAX_UNPACKED: usize = 64 << 20;

thread_local! {
    static PACKER: RefCell<Compress> = RefCell::new(Compress::new(Compression::best(), false));
    static UNPACKER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Wraps a record in its envelope and packs it (see the module doc).
#[cfg(test)]
pub(super) fn encode_packed<T: Serialize>(tree: &'static str, value: &T) -> StoreResult<Vec<u8>> {
    pack(tree, &encode(tree, value)?)
}

/// `bytes` deflated against the released dictionary, after the tag and the
/// dictionary's number.
pub(super) fn pack(tree: &'static str, json: &[u8]) -> StoreResult<Vec<u8>> {
    deflate(tree, json, &[PACKED, DICTIONARY], DICTIONARY_V1)
}

/// `header`, then `json` deflated against `dictionary`.
pub(super) fn deflate(
    tree: &'static str,
    json: &[u8],
    header: &[u8],
    dictionary: &[u8],
) -> StoreResult<Vec<u8>> {
    let failed = |reason: String| StoreError::Corrupt { tree, reason };
    if json.len() > MAX_UNPACKED {
        return Err(failed(format!(
            "a record of {} bytes is larger than the {MAX_UNPACKED} a packed one may be",
            json.len()
        )));
    }
    PACKER.with(|packer| {
        let mut packer = packer.borrow_mut();
        packer.reset();
        packer
            .set_dictionary(dictionary)
            .map_err(|e| failed(format!("cannot pack: {e}")))?;
        let mut out = Vec::with_capacity(json.len() / 2 + 64);
        out.extend_from_slice(header);
        loop {
            let read = packer.total_in() as usize;
            out.reserve(json.len().saturating_sub(read) / 2 + 64);
            let status = packer
                .compress_vec(&json[read..], &mut out, FlushCompress::Finish)
                .map_err(|e| failed(format!("cannot pack: {e}")))?;
            if status == Status::StreamEnd {
                return Ok(out);
            }
        }
    })
}

/// The bytes inside a record packed with a released dictionary.
pub(super) fn unpack(tree: &'static str, bytes: &[u8]) -> StoreResult<Vec<u8>> {
    let corrupt = |reason: String| StoreError::Corrupt { tree, reason };
    let dictionary = match bytes.get(1) {
        Some(&DICTIONARY) => DICTIONARY_V1,
        other => {
            return Err(corrupt(format!(
                "record packed with dictionary {other:?}, unknown to this build"
            )));
        }
    };
    inflate(tree, &bytes[2..], dictionary)
}

/// `packed` inflated against `dictionary`.
pub(super) fn inflate(
    tree: &'static str,
    packed: &[u8],
    dictionary: &[u8],
) -> StoreResult<Vec<u8>> {
    let corrupt = |reason: String| StoreError::Corrupt { tree, reason };
    UNPACKER.with(|unpacker| {
        let mut unpacker = unpacker.borrow_mut();
        unpacker.reset(false);
        unpacker
            .set_dictionary(dictionary)
            .map_err(|e| corrupt(format!("cannot unpack: {e}")))?;
        let mut out = Vec::with_capacity(packed.len() * 5 + 256);
        loop {
            let read = unpacker.total_in() as usize;
            let before = (read, out.len());
            let status = unpacker
                .decompress_vec(&packed[read..], &mut out, FlushDecompress::Finish)
                .map_err(|e| corrupt(format!("cannot unpack: {e}")))?;
            if status == Status::StreamEnd {
                return Ok(out);
            }
            if out.len() >= MAX_UNPACKED {
                return Err(corrupt("packed record unpacks past its limit".into()));
            }
            if out.len() == out.capacity() {
                out.reserve(out.len().min(MAX_UNPACKED + 1 - out.len()));
            } else if before == (unpacker.total_in() as usize, out.len()) {
                // Room to write and nothing more written: the input ended.
                return Err(corrupt("packed record ends early".into()));
            }
        }
    })
}

/// Reads a record from its envelope (packed or not), refusing versions
/// newer than this build.
pub(super) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
    match bytes.first() {
        Some(&PACKED) => decode_json(tree, &unpack(tree, bytes)?),
        Some(&PACKED_STORED) => Err(StoreError::Corrupt {
            tree,
            reason: "record packed with the store's own dictionary, read without it".into(),
        }),
        _ => decode_json(tree, bytes),
    }
}

/// Reads a record from its JSON envelope.
pub(super) fn decode_json<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
    let envelope: EnvelopeIn<T> =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            tree,
            reason: e.to_string(),
        })?;
    if envelope.v > RECORD_VERSION {
        return Err(StoreError::Corrupt {
            tree,
            reason: format!(
                "record version {} is newer than this build ({RECORD_VERSION})",
                envelope.v
            ),
        });
    }
    Ok(envelope.data)
}

/// Version byte of the binary usage-bucket record.
const BUCKET_VERSION: u8 = 1;
/// Length of an encoded bucket: version, count, 4 maxima, 4 sums.
const BUCKET_LEN: usize = 1 + 4 + 8 * 4;

/// Encodes a usage bucket as `version u8, count u32 BE, max f32 ×4, sum f32 ×4`.
/// Single precision (7 significant digits) is plenty for statistics and
/// halves the bulk of the database.
pub(super) fn encode_bucket(bucket: &crate::model::Bucket) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUCKET_LEN);
    out.push(BUCKET_VERSION);
    out.extend_from_slice(&bucket.count.to_be_bytes());
    for v in bucket.max.iter().chain(&bucket.sum) {
        out.extend_from_slice(&(*v as f32).to_be_bytes());
    }
    out
}

/// Decodes [`encode_bucket`]'s format.
pub(super) fn decode_bucket(bytes: &[u8]) -> StoreResult<crate::model::Bucket> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree: "usage",
        reason: reason.to_string(),
    };
    if bytes.len() != BUCKET_LEN {
        return Err(corrupt("usage bucket has the wrong length"));
    }
    if bytes[0] != BUCKET_VERSION {
        return Err(corrupt("usage bucket version is newer than this build"));
    }
    let f = |i: usize| {
        let at = 5 + i * 4;
        f64::from(f32::from_be_bytes(
            bytes[at..at + 4].try_into().unwrap_or([0; 4]),
        ))
    };
    Ok(crate::model::Bucket {
        count: u32::from_be_bytes(bytes[1..5].try_into().unwrap_or([0; 4])),
        max: [f(0), f(1), f(2), f(3)],
        sum: [f(4), f(5), f(6), f(7)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        name: String,
        values: Vec<f64>,
    }

    #[test]
    fn a_packed_record_reads_back_as_written_and_is_smaller() {
        let sample = Sample {
            name: "val_loss".into(),
            values: (0..200).map(|i| f64::from(i) / 7.0).collect(),
        };
        let packed = encode_packed("t", &sample).expect("pack");
        let json = encode("t", &sample).expect("encode");
        assert_eq!(packed[0], PACKED);
        assert!(
            packed.len() < json.len() / 2,
            "{} of {}",
            packed.len(),
            json.len()
        );
        assert_eq!(decode::<Sample>("t", &packed).expect("decode"), sample);
        // A JSON record of an earlier build still reads.
        assert_eq!(decode::<Sample>("t", &json).expect("decode"), sample);
    }

    #[test]
    fn a_damaged_or_unknown_packed_record_is_an_error_not_a_panic() {
        let sample = Sample {
            name: "auc".into(),
            values: vec![0.5; 50],
        };
        let packed = encode_packed("t", &sample).expect("pack");
        for cut in [2, packed.len() / 2, packed.len() - 1] {
            assert!(
                decode::<Sample>("t", &packed[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut newer = packed.clone();
        newer[1] = 9;
        let err = decode::<Sample>("t", &newer)
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("dictionary"), "{err}");
        let mut flipped = packed;
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        let _ = decode::<Sample>("t", &flipped); // an error or other JSON, never a panic
    }

    #[test]
    fn the_released_dictionary_never_changes() {
        // Records packed with dictionary 1 unpack only with these exact bytes:
        // add a new dictionary instead of editing this one.
        assert_eq!(
            blake3::hash(DICTIONARY_V1).to_hex().as_str(),
            "29940e4249475fff50f1daf6f3b105167c9cd9a4552ef69c15b77547babf9735"
        );
    }
}
