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
