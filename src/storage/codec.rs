//! Encoding of what the node writes to disk and sends between nodes.
//!
//! Invariant: every stored value starts with a format byte, so a future
//! format can be told apart and an unknown one is refused rather than
//! misread (openraft's serde format is not stable across versions).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Format 1: JSON.
const FORMAT_JSON: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_JSON];
    // Serialising our own types to JSON cannot fail (no non-string map keys).
    serde_json::to_writer(&mut out, value).expect("json encoding of shardlock types");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_JSON, body)) => serde_json::from_slice(body).map_err(std::io::Error::other),
        Some((format, _)) => Err(std::io::Error::other(format!(
            "stored value has format {format}, unknown to this build: upgrade shardlock"
        ))),
        None => Err(std::io::Error::other("stored value is empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let v = vec![1u64, 2, 3];
        assert_eq!(decode::<Vec<u64>>(&encode(&v)).unwrap(), v);
        assert!(decode::<Vec<u64>>(&[]).is_err());
        assert!(decode::<Vec<u64>>(&[9, b'[', b']']).unwrap_err().to_string().contains("format 9"));
    }
}
