//! hdrhistograms in `report.json`: HdrHistogram's V2 compressed encoding (the one its own
//! interval logs use: `HISTFAAA…`), base64. Lossless, so shards merge exactly, and readable by
//! HdrHistogram's tools in any language.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::de::Error as _;
use serde::{Deserialize, Serialize};

/// A latency histogram in µs, 3 significant figures, up to one hour.
pub fn new() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising into memory cannot fail");
    STANDARD.encode(bytes)
}

pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram is not an HdrHistogram V2 encoding: {e:?}"))
}

pub fn serialize<S: serde::Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
    encode(h).serialize(s)
}

pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
    let text = String::deserialize(d)?;
    let h = decode(&text).map_err(D::Error::custom)?;
    // re-bound to the harness's range, so histograms from any source merge
    let mut out = crate::report::histogram::new();
    out.add(&h)
        .map_err(|e| D::Error::custom(format!("histogram out of range: {e:?}")))?;
    Ok(out)
}
