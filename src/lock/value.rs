//! The value a holder carries: a few bytes the holder chose (where the
//! primary can be reached, an election's candidate), replicated with the
//! table and shown to readers and watchers.
//!
//! Invariant: at most `Limits::max_value_bytes` long (checked at the edge
//! and again in apply). Serialised as one byte string, so postcard stores
//! its length and its bytes; in JSON (REST, tests) a value that is UTF-8
//! reads as a string and any other as an array of byte numbers, and both
//! forms read back.

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Value(Box<[u8]>);

impl Value {
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Self {
        Self(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0.into_vec()
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "{} bytes", self.0.len()),
        }
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes.into_boxed_slice())
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().into())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) if s.is_human_readable() => s.serialize_str(text),
            _ => s.serialize_bytes(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> Visitor<'de> for Bytes {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            // JSON writes bytes as an array of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Value::from(bytes))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_bytes_in_both_encodings() {
        let v = Value::from("10.0.0.7:5432");
        let bin = postcard::to_allocvec(&v).unwrap();
        assert_eq!(bin[0] as usize, v.len(), "a length, then the bytes");
        assert_eq!(postcard::from_bytes::<Value>(&bin).unwrap(), v);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"10.0.0.7:5432\"", "UTF-8 reads as text in JSON");
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v);
        let binary = Value::from(vec![0xff, 0]);
        let json = serde_json::to_string(&binary).unwrap();
        assert_eq!(json, "[255,0]");
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), binary);
        assert_eq!(format!("{v:?}"), "\"10.0.0.7:5432\"");
        assert_eq!(format!("{:?}", Value::from(vec![0xff, 0])), "2 bytes");
    }
}
