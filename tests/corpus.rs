//! The bad-input corpus: valid seed requests for every gRPC method and
//! REST route, the ways to damage them (random bytes, byte mutations, broken
//! gRPC framing, JSON tokens and extreme values spliced in), and a seeded
//! random source, so that every case can be replayed from its seed.
//!
//! Invariants: everything is a pure function of the seed and the case; seeds
//! only name locks the caller chooses (never a test's held locks), and no
//! seed reaches the membership calls, which a random body could turn into a
//! real change.

#![allow(dead_code)]

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardlock::proto::ldlm as lpb;
use shardlock::proto::v1 as pb;

use crate::raw::frame;

// ---- gRPC ------------------------------------------------------------------

/// Every client method that takes one message, and the Session stream.
/// AddNode and RemoveNode are left out: a random body may decode into a
/// valid membership change.
pub const GRPC_METHODS: &[&str] = &[
    "/shardlock.v1.Lock/Acquire",
    "/shardlock.v1.Lock/Release",
    "/shardlock.v1.Lock/Refresh",
    "/shardlock.v1.Lock/Describe",
    "/shardlock.v1.Lock/List",
    "/shardlock.v1.Lock/ValidateFence",
    "/shardlock.v1.Lock/Session",
    "/shardlock.v1.Admin/ForceRelease",
    "/shardlock.v1.Admin/Status",
    "/shardlock.v1.Admin/MostContended",
    "/ldlm.LDLM/Lock",
    "/ldlm.LDLM/TryLock",
    "/ldlm.LDLM/Unlock",
    "/ldlm.LDLM/Renew",
];

/// A valid request of `method` on a lock name no other case uses.
pub fn grpc_seed(method: &str, name: &str) -> Vec<u8> {
    let (n, key) = (name.as_bytes().to_vec(), "0123456789abcdef".to_owned());
    match method.rsplit('/').next().unwrap() {
        "Acquire" => pb::AcquireRequest { name: n, ttl_ms: Some(5000), ..Default::default() }.encode_to_vec(),
        "Release" => pb::ReleaseRequest { name: n, key }.encode_to_vec(),
        "Refresh" => pb::RefreshRequest { name: n, key, ttl_ms: Some(5000) }.encode_to_vec(),
        "Describe" => pb::DescribeRequest { name: n }.encode_to_vec(),
        "List" => pb::ListRequest { prefix: b"fuzz/".to_vec(), limit: 5, page_token: n }.encode_to_vec(),
        "ValidateFence" => pb::ValidateFenceRequest { name: n, fencing_token: 1 }.encode_to_vec(),
        "Session" => pb::SessionRequest { ttl_ms: 1000 }.encode_to_vec(),
        "ForceRelease" => pb::ForceReleaseRequest { name: n, key: String::new() }.encode_to_vec(),
        "Status" => pb::StatusRequest {}.encode_to_vec(),
        "MostContended" => pb::MostContendedRequest { limit: 3 }.encode_to_vec(),
        "Lock" => lpb::LockRequest {
            name: name.into(),
            wait_timeout_seconds: Some(1),
            lock_timeout_seconds: Some(5),
            size: None,
        }
        .encode_to_vec(),
        "TryLock" => {
            lpb::TryLockRequest { name: name.into(), lock_timeout_seconds: Some(5), size: None }.encode_to_vec()
        }
        "Unlock" => lpb::UnlockRequest { name: name.into(), key }.encode_to_vec(),
        "Renew" => lpb::RenewRequest { name: name.into(), key, lock_timeout_seconds: 5 }.encode_to_vec(),
        other => panic!("no seed for {other}"),
    }
}

/// A whole request body with damaged framing (the message may be fine).
pub fn bad_framing(rng: &mut StdRng, message: &[u8]) -> (&'static str, Vec<u8>) {
    let mut framed = frame(message);
    match rng.random_range(0..7) {
        0 => ("an empty body", Vec::new()),
        1 => {
            framed.truncate(rng.random_range(1..5));
            ("a cut frame header", framed)
        }
        2 => {
            framed.extend_from_slice(&[0; 3]);
            let len = (message.len() as u32 + 10).to_be_bytes();
            framed[1..5].copy_from_slice(&len);
            ("a frame shorter than its length", framed)
        }
        3 => {
            framed[0] = 1;
            ("a compressed flag without grpc-encoding", framed)
        }
        4 => {
            framed[0] = rng.random_range(2..=255);
            ("an unknown compression flag", framed)
        }
        5 => {
            framed.extend_from_slice(&frame(&random_bytes(rng, 32)));
            ("a second, random message", framed)
        }
        _ => {
            framed.extend_from_slice(&[0, 0, 0]);
            ("trailing bytes after the frame", framed)
        }
    }
}

/// `message` with `field` (tag number) set to bytes that are not UTF-8.
pub fn with_bad_utf8(mut message: Vec<u8>, field: u8) -> Vec<u8> {
    message.extend_from_slice(&[field << 3 | 2, 3, 0xff, 0xfe, b'x']);
    message
}

// ---- REST ------------------------------------------------------------------

/// Every POST route and a valid body for it; `NAME` is replaced per case.
pub const REST_SEEDS: &[(&str, &str)] = &[
    ("/v1/lock/acquire", r#"{"name": "NAME", "ttl_ms": 5000, "wait_ms": 0, "size": 1, "permits": 1}"#),
    ("/v1/lock/release", r#"{"name": "NAME", "key": "0123456789abcdef"}"#),
    ("/v1/lock/refresh", r#"{"name": "NAME", "key": "0123456789abcdef", "ttl_ms": 5000}"#),
    ("/v1/lock/describe", r#"{"name": "NAME"}"#),
    ("/v1/lock/list", r#"{"prefix": "fuzz/", "limit": 5, "page_token": "NAME"}"#),
    ("/v1/lock/validate-fence", r#"{"name": "NAME", "fencing_token": 1}"#),
    ("/v1/admin/force-release", r#"{"name": "NAME", "key": null}"#),
    ("/v1/session/open", r#"{"ttl_ms": 1000}"#),
    ("/v1/session/keepalive", r#"{"session_id": 1}"#),
    ("/v1/session/close", r#"{"session_id": 999999}"#),
    ("/v1/admin/most-contended", r#"{"limit": 3}"#),
];

/// JSON fragments spliced into bodies: extreme numbers, wrong types, broken syntax.
pub const JSON_TOKENS: &[&[u8]] = &[
    b"-1",
    b"18446744073709551616",
    b"18446744073709551615",
    b"-9223372036854775808",
    b"1e400",
    b"0.5",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"",
    b"{",
    b"}",
    b",",
    b":",
    b"\\u0000",
    b"\\ud800",
    b"\xff\xfe",
];

/// Values put in place of a field's value.
pub const EXTREMES: &[&str] = &[
    "-1",
    "0",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e400",
    "-0.0",
    "\"12\"",
    "null",
    "[1]",
    "{\"a\": 1}",
    "\"\\u0000\\u0001\\u007f\"",
];

/// `seed` with the value of one of its fields replaced by an extreme.
pub fn retyped(rng: &mut StdRng, seed: &str) -> String {
    let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_str(seed).unwrap();
    let fields: Vec<String> = body.keys().cloned().collect();
    let field = &fields[rng.random_range(0..fields.len())];
    let extreme = EXTREMES[rng.random_range(0..EXTREMES.len())];
    body.insert(field.clone(), serde_json::Value::Null);
    serde_json::to_string(&body).unwrap().replace(&format!("\"{field}\":null"), &format!("\"{field}\":{extreme}"))
}

// ---- seeded mutation -------------------------------------------------------

/// A deterministic source of bad input: the seed is printed with a failure.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max_len);
    (0..len).map(|_| rng.random()).collect()
}

/// `input` with one to four random edits: flip, replace, insert, delete,
/// truncate, or duplicate a slice (splice in `tokens` for text formats).
pub fn mutate(rng: &mut StdRng, input: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = if out.is_empty() { 0 } else { rng.random_range(0..out.len()) };
        match rng.random_range(0..7) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.random_range(0..8),
            1 if !out.is_empty() => out[at] = rng.random(),
            2 => out.insert(at, rng.random()),
            3 if !out.is_empty() => {
                out.remove(at);
            }
            4 => out.truncate(at),
            5 if !out.is_empty() => {
                let end = rng.random_range(at..=out.len());
                let slice = out[at..end].to_vec();
                out.splice(at..at, slice);
            }
            _ if !tokens.is_empty() => {
                let token = tokens[rng.random_range(0..tokens.len())];
                out.splice(at..at, token.iter().copied());
            }
            _ => out.push(rng.random()),
        }
    }
    out
}
