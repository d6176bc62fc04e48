//! A reply, before it is encoded in the connection's protocol.
//!
//! Invariants: a map is a map in RESP3 and a flat array of field, value in
//! RESP2, fields in the order given; an error reply's text starts with the
//! shardlock code (`LOCK_BUSY the lock is held: …`), as Redis's errors start
//! with `WRONGTYPE`, and holds no line break; encoding is redis-protocol's.

use bytes::{Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{BytesFrame as Frame3, FrameMap};

use crate::error::ApiError;

/// A reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+OK`, or another simple status.
    Status(&'static str),
    Bulk(Bytes),
    Int(i64),
    Nil,
    Array(Vec<Value>),
    Map(Vec<(&'static str, Value)>),
    /// An error: its code (the first word on the wire), then the message.
    Error {
        code: &'static str,
        message: String,
    },
}

impl Value {
    pub fn ok() -> Self {
        Value::Status("OK")
    }

    pub fn text(s: impl Into<String>) -> Self {
        Value::Bulk(Bytes::from(s.into()))
    }

    /// The error reply of `err`: `CODE message`.
    pub fn error(err: &ApiError) -> Self {
        Value::Error { code: err.code.as_str_name(), message: err.message.clone() }
    }

    /// The result code, for metrics: "OK" or the error's code.
    pub fn code(&self) -> &'static str {
        match self {
            Value::Error { code, .. } => code,
            _ => "OK",
        }
    }

    fn error_line(code: &str, message: String) -> Str {
        Str::from(one_line(format!("{code} {message}")))
    }

    fn into_resp2(self) -> Frame2 {
        match self {
            Value::Status(s) => Frame2::SimpleString(Bytes::from_static(s.as_bytes())),
            Value::Bulk(b) => Frame2::BulkString(b),
            Value::Int(i) => Frame2::Integer(i),
            Value::Nil => Frame2::Null,
            Value::Array(items) => Frame2::Array(items.into_iter().map(Value::into_resp2).collect()),
            Value::Map(fields) => Frame2::Array(
                fields
                    .into_iter()
                    .flat_map(|(k, v)| [Frame2::BulkString(Bytes::from_static(k.as_bytes())), v.into_resp2()])
                    .collect(),
            ),
            Value::Error { code, message } => Frame2::Error(Self::error_line(code, message)),
        }
    }

    fn into_resp3(self) -> Frame3 {
        match self {
            Value::Status(s) => Frame3::SimpleString { data: Bytes::from_static(s.as_bytes()), attributes: None },
            Value::Bulk(b) => Frame3::BlobString { data: b, attributes: None },
            Value::Int(i) => Frame3::Number { data: i, attributes: None },
            Value::Nil => Frame3::Null,
            Value::Array(items) => {
                Frame3::Array { data: items.into_iter().map(Value::into_resp3).collect(), attributes: None }
            }
            Value::Map(fields) => {
                let mut map = FrameMap::with_capacity(fields.len());
                for (k, v) in fields {
                    let key = Frame3::BlobString { data: Bytes::from_static(k.as_bytes()), attributes: None };
                    map.insert(key, v.into_resp3());
                }
                Frame3::Map { data: map, attributes: None }
            }
            Value::Error { code, message } => {
                Frame3::SimpleError { data: Self::error_line(code, message), attributes: None }
            }
        }
    }

    /// Appends the reply to `out`, in RESP3 when `resp3` is set, else RESP2.
    pub fn encode(self, resp3: bool, out: &mut BytesMut) {
        let start = out.len();
        let written = if resp3 {
            redis_protocol::resp3::encode::complete::extend_encode(out, &self.into_resp3(), false)
        } else {
            redis_protocol::resp2::encode::extend_encode(out, &self.into_resp2(), false)
        };
        if let Err(err) = written {
            // Sized by the encoder itself: not expected; say so on the wire.
            tracing::error!(error = %err, "a reply did not encode");
            out.truncate(start);
            out.extend_from_slice(b"-INTERNAL internal error: a reply did not encode; see the server log\r\n");
        }
    }
}

/// `text` with line breaks turned into spaces (an error reply is one line).
fn one_line(text: String) -> String {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], " ")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(v: Value, resp3: bool) -> String {
        let mut out = BytesMut::new();
        v.encode(resp3, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn maps_are_maps_in_resp3_and_flat_in_resp2() {
        let grant = Value::Map(vec![("key", Value::text("k")), ("fencing_token", Value::Int(7))]);
        assert_eq!(wire(grant.clone(), false), "*4\r\n$3\r\nkey\r\n$1\r\nk\r\n$13\r\nfencing_token\r\n:7\r\n");
        assert_eq!(wire(grant, true), "%2\r\n$3\r\nkey\r\n$1\r\nk\r\n$13\r\nfencing_token\r\n:7\r\n");
        assert_eq!(wire(Value::ok(), false), "+OK\r\n");
        assert_eq!(wire(Value::Nil, false), "$-1\r\n");
        assert_eq!(wire(Value::Nil, true), "_\r\n");
    }

    #[test]
    fn errors_start_with_the_code_and_stay_on_one_line() {
        let err = ApiError::new(crate::error::ErrorCode::LockBusy, "the lock is held:\r\nretry");
        assert_eq!(wire(Value::error(&err), false), "-LOCK_BUSY the lock is held:  retry\r\n");
    }
}
