//! Record envelopes: every stored value is `{"v": VERSION, "data": …}` in JSON,
//! so a later build can read (and migrate) what an earlier one wrote.

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

/// Reads a record from its envelope, refusing versions newer than this build.
pub(super) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
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
