//! How `metrics_read` keeps a source's read: the model's record, with each
//! metric's summary as `[count, last_at, "VALUES"]`, VALUES being the bits
//! of its last, smallest and largest value (three `f64`, little-endian) in
//! unpadded base64.
//!
//! Metric values are what programs compute, full-precision doubles with
//! random-looking digits: as decimal text they take about 9.4 bytes each once
//! the record is packed, as base64 of their bits 8. With field names gone
//! too, 20 metrics' summaries pack to about 615 bytes instead of 700 (the
//! largest record of a finished experiment; `cargo bench --bench history`,
//! part c). Summaries written as objects (schema 3 and earlier) still read.

use std::collections::BTreeMap;
use std::fmt;

use base64ct::{Base64Unpadded, Encoding};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{MetricSummary, MetricsRead};

/// Bytes of a summary's three values.
const VALUES_LEN: usize = 24;
/// Characters of those bytes in unpadded base64.
const VALUES_TEXT_LEN: usize = 32;

/// [`MetricsRead`] as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredRead {
    offset: u64,
    malformed: u64,
    last_malformed: Option<String>,
    kept: u64,
    skipped: u64,
    in_long_line: bool,
    #[serde(default)]
    summary: BTreeMap<String, StoredSummary>,
}

impl From<&MetricsRead> for StoredRead {
    fn from(read: &MetricsRead) -> StoredRead {
        StoredRead {
            offset: read.offset,
            malformed: read.malformed,
            last_malformed: read.last_malformed.clone(),
            kept: read.kept,
            skipped: read.skipped,
            in_long_line: read.in_long_line,
            summary: read
                .summary
                .iter()
                .map(|(name, s)| (name.clone(), StoredSummary(*s)))
                .collect(),
        }
    }
}

impl From<StoredRead> for MetricsRead {
    fn from(read: StoredRead) -> MetricsRead {
        MetricsRead {
            offset: read.offset,
            malformed: read.malformed,
            last_malformed: read.last_malformed,
            kept: read.kept,
            skipped: read.skipped,
            in_long_line: read.in_long_line,
            summary: read
                .summary
                .into_iter()
                .map(|(name, s)| (name, s.0))
                .collect(),
        }
    }
}

/// One metric's summary: written as `[count, last_at, "VALUES"]`, read in
/// that form or as the model's object.
struct StoredSummary(MetricSummary);

impl Serialize for StoredSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = &self.0;
        let mut bytes = [0u8; VALUES_LEN];
        for (i, value) in [s.last, s.min, s.max].into_iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        let mut text = [0u8; VALUES_TEXT_LEN];
        let values = Base64Unpadded::encode(&bytes, &mut text)
            .map_err(|e| serde::ser::Error::custom(format!("metric values: {e}")))?;
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element(&s.count)?;
        tuple.serialize_element(&s.last_at)?;
        tuple.serialize_element(values)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for StoredSummary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SummaryVisitor)
    }
}

struct SummaryVisitor;

impl<'de> Visitor<'de> for SummaryVisitor {
    type Value = StoredSummary;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric summary: [count, last_at, values] or an object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StoredSummary, A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"3 elements");
        let count: u64 = seq.next_element()?.ok_or_else(|| missing(0))?;
        let last_at: i64 = seq.next_element()?.ok_or_else(|| missing(1))?;
        let Values([last, min, max]) = seq.next_element()?.ok_or_else(|| missing(2))?;
        Ok(StoredSummary(MetricSummary {
            count,
            last,
            last_at,
            min,
            max,
        }))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StoredSummary, A::Error> {
        MetricSummary::deserialize(de::value::MapAccessDeserializer::new(map)).map(StoredSummary)
    }
}

/// A summary's last, smallest and largest value, read from their base64.
struct Values([f64; 3]);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ValuesVisitor)
    }
}

struct ValuesVisitor;

impl Visitor<'_> for ValuesVisitor {
    type Value = Values;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("three numbers' bits in base64")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Values, E> {
        let mut bytes = [0u8; VALUES_LEN];
        let decoded = Base64Unpadded::decode(text, &mut bytes)
            .map_err(|e| E::custom(format!("metric values: {e}")))?;
        if decoded.len() != VALUES_LEN {
            return Err(E::custom("metric values: not three numbers"));
        }
        let value = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            f64::from_le_bytes(b)
        };
        Ok(Values([value(0), value(1), value(2)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(min: f64) -> MetricsRead {
        let mut summary = BTreeMap::new();
        summary.insert(
            "loss".to_string(),
            MetricSummary {
                count: 3,
                last: 0.30000000000000004,
                last_at: 1_796_500_000_123,
                min,
                max: f64::MAX,
            },
        );
        summary.insert("acc".to_string(), MetricSummary::of(0.9, 7));
        MetricsRead {
            offset: 40,
            malformed: 1,
            last_malformed: Some("loss: not a finite number".into()),
            kept: 4,
            skipped: 2,
            in_long_line: true,
            summary,
        }
    }

    #[test]
    fn a_read_round_trips_bit_for_bit_in_the_compact_form() {
        // Bits as they are: serde_json reads -1.5e-300 back as
        // -1.4999999999999998e-300 from decimal text.
        let json = serde_json::to_string(&StoredRead::from(&read(-1.5e-300))).expect("encode");
        assert!(json.contains(r#""acc":[1,7,""#), "{json}");
        assert!(!json.contains("last_at"), "{json}");
        let back: StoredRead = serde_json::from_str(&json).expect("decode");
        assert_eq!(MetricsRead::from(back), read(-1.5e-300));
    }

    #[test]
    fn summaries_written_as_objects_still_read() {
        let json = serde_json::to_string(&read(-1.5)).expect("model's form");
        assert!(json.contains(r#""last_at":1796500000123"#), "{json}");
        let back: StoredRead = serde_json::from_str(&json).expect("decode");
        assert_eq!(MetricsRead::from(back), read(-1.5));
    }

    #[test]
    fn damaged_values_are_an_error() {
        for bad in [
            r#"{"offset":0,"malformed":0,"last_malformed":null,"kept":0,"skipped":0,"in_long_line":false,"summary":{"a":[1,2,"AAAA"]}}"#,
            r#"{"offset":0,"malformed":0,"last_malformed":null,"kept":0,"skipped":0,"in_long_line":false,"summary":{"a":[1,2,"!!"]}}"#,
            r#"{"offset":0,"malformed":0,"last_malformed":null,"kept":0,"skipped":0,"in_long_line":false,"summary":{"a":[1,2]}}"#,
        ] {
            assert!(serde_json::from_str::<StoredRead>(bad).is_err(), "{bad}");
        }
    }
}
