//! Encoding of what the node writes to disk and sends between nodes.
//!
//! Format 2, written today, is postcard: compact (varint integers, no field
//! names) and positional, which openraft's types support. Format 1 is the
//! JSON that older versions wrote; it is still read, never written, so a
//! data directory of that version opens (its log entries need the legacy
//! entry type: see `raft::proposal::decode_entry`).
//!
//! Invariant: every stored or sent value starts with its format byte, so a
//! future format can be told apart and an unknown one is refused rather than
//! misread (openraft's serde format is not stable across versions).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Format 1: JSON (read only).
pub const FORMAT_JSON: u8 = 1;
/// Format 2: postcard.
pub const FORMAT_POSTCARD: u8 = 2;

/// Encodes `value` in the current format.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Appends `value`, in the current format, to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    out.push(FORMAT_POSTCARD);
    // Encoding our own types into a growable buffer cannot fail.
    let taken = std::mem::take(out);
    *out = postcard::to_extend(value, taken).expect("postcard encoding of shardlock types");
}

/// Decodes a value of either format.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_POSTCARD, body)) => postcard::from_bytes(body).map_err(std::io::Error::other),
        Some((&FORMAT_JSON, body)) => serde_json::from_slice(body).map_err(std::io::Error::other),
        Some((format, _)) => Err(unknown(*format)),
        None => Err(std::io::Error::other("stored value is empty")),
    }
}

/// Borrowed bytes that serialise as one byte string (not a sequence of
/// numbers): snapshots travel this way.
pub struct BytesRef<'a>(pub &'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Owned bytes read from a byte string (the other end of [`BytesRef`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ByteBuf(pub Vec<u8>);

impl<'de> serde::Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

/// The error for a value of a format this build does not know.
pub fn unknown(format: u8) -> std::io::Error {
    std::io::Error::other(format!("stored value has format {format}, unknown to this build: upgrade shardlock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_formats_and_refusals() {
        let v = vec![1u64, 2, 300];
        let bytes = encode(&v);
        assert_eq!(bytes[0], FORMAT_POSTCARD);
        assert_eq!(bytes.len(), 1 + 1 + 1 + 1 + 2, "format, length, then varints");
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), v);
        let json = [&[FORMAT_JSON][..], b"[1,2,300]"].concat();
        assert_eq!(decode::<Vec<u64>>(&json).unwrap(), v, "format 1 (JSON) still reads");
        assert!(decode::<Vec<u64>>(&[]).is_err());
        assert!(decode::<Vec<u64>>(&[9, b'[', b']']).unwrap_err().to_string().contains("format 9"));
    }
}
