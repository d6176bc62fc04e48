//! Bad input at every surface of a node: malformed gRPC, REST, ldlm and
//! RESP requests (seeded, with fixed case counts), extreme durations and sizes,
//! oversized messages, too many streams on a connection, clients that stall
//! in their headers or their body, and floods of waiters and connections.
//!
//! Each test takes grants with the real client before its barrage and
//! checks after it that the node still answers, every holder still holds
//! with its fencing token, and a fresh acquire works. On every answer:
//! a client's mistake never gets INTERNAL or UNKNOWN; a gRPC error carries
//! the `shardlock-code` metadata; a REST error is a 4xx with the JSON error
//! body; nothing hangs (every raw call is bounded by `raw::CALL_TIMEOUT`).
//! A failing fuzz case prints its seed and case number.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use prost::Message;
use rand::Rng;
use serde_json::Value;
use shardlock::client::{AcquireOptions, Client};
use shardlock::error::{ApiError, ErrorCode};
use shardlock::proto::ldlm as lpb;
use shardlock::proto::ldlm::ldlm_client::LdlmClient;
use shardlock::proto::v1 as pb;
use shardlock::proto::v1::lock_client::LockClient;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::Code;

use crate::fixtures::corpus::{
    self, bad_framing, grpc_seed, mutate, retyped, with_bad_utf8, GRPC_METHODS, JSON_TOKENS, REST_SEEDS,
};
use crate::fixtures::harness::{http, wait_for, Cluster};
use crate::fixtures::raw::{self, frame, grpc_call, http1, post, GrpcReply, H2};

const GROUPS: u32 = 4;
const SEED: u64 = 0x5eed_0009;
/// Small limits, so that the tests reach them in a few requests.
const LIMITS: &str = "max_message_bytes = 65536\nmax_concurrent_streams = 8\nheader_read_timeout_ms = 1000\n\
                      body_read_timeout_ms = 1000\n\n\
                      [limits]\nmax_wait_ms = 10000\nmax_waiters_per_lock = 50\n";
/// Random and mutated gRPC bodies, spread over [`GRPC_METHODS`].
const GRPC_CASES: usize = 300;
/// Random, mutated and retyped JSON bodies, spread over the REST routes.
const REST_CASES: usize = 300;
/// Random and mutated RESP requests, one connection each.
const RESP_CASES: usize = 300;

// ---- holders that must survive --------------------------------------------

struct Held {
    name: &'static str,
    key: String,
    token: u64,
}

/// A mutex and two grants of a semaphore, with leases far longer than the test.
async fn take_grants(client: &Client) -> Vec<Held> {
    let long = |size, permits| AcquireOptions { ttl_ms: Some(600_000), size, permits, ..Default::default() };
    let mut held = Vec::new();
    for (name, opts) in
        [("held/mutex", long(None, None)), ("held/sem", long(Some(3), Some(2))), ("held/sem", long(Some(3), Some(1)))]
    {
        let grant = client.acquire(name, opts).await.expect("a grant before the barrage");
        held.push(Held { name, key: grant.key, token: grant.fencing_token });
    }
    held
}

/// The node answers, every grant holds with its token, and a fresh acquire works.
async fn assert_nothing_lost(cluster: &Cluster, held: &[Held]) {
    let client = cluster.client(1).await;
    for h in held {
        let lock = client.describe(h.name).await.expect("describe after the barrage").lock.expect("the lock exists");
        let holder = lock.holders.iter().find(|x| x.key == h.key);
        let holder = holder.unwrap_or_else(|| panic!("{} lost holder {}: {lock:?}", h.name, h.key));
        assert_eq!(holder.fencing_token, h.token, "{}", h.name);
        let fence = client.validate_fence(h.name, h.token).await.unwrap();
        assert!(fence.valid && fence.key == h.key, "{}: {fence:?}", h.name);
    }
    let fresh = format!("fresh/{:08x}", rand::random::<u32>());
    let grant = client.acquire(&fresh, AcquireOptions::default()).await.expect("a fresh acquire works");
    client.release(&fresh, &grant.key).await.expect("and its release");
    let panics = cluster.panics(1);
    assert!(panics.is_empty(), "the node panicked (whole log searched):\n{}", panics.join("\n"));
}

// ---- gRPC -------------------------------------------------------------------

/// A client's mistake: an OK, or an error other than INTERNAL/UNKNOWN that
/// carries `shardlock-code`; never a transport failure.
fn assert_typed(what: &str, reply: &GrpcReply) {
    assert_eq!(reply.http, 200, "{what}: {reply:?}");
    let status = reply.status.as_ref().unwrap_or_else(|| panic!("{what}: no grpc-status: {reply:?}"));
    if status.code() == Code::Ok {
        return;
    }
    assert!(!matches!(status.code(), Code::Internal | Code::Unknown), "{what}: {status:?}");
    assert!(reply.shardlock_code().is_some(), "{what}: an error without shardlock-code: {status:?}");
}

#[tokio::test]
async fn malformed_grpc_gets_typed_errors_and_loses_no_holder() {
    let cluster = Cluster::processes(1, GROUPS, LIMITS).await;
    let client = cluster.client(1).await;
    let held = take_grants(&client).await;
    let channel = raw::channel(&cluster.addr(1)).await;

    // Phase 1: random bytes, mutated valid messages and damaged framing, to every method.
    let mut rng = corpus::rng(SEED);
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..GRPC_CASES {
        let method = GRPC_METHODS[case % GRPC_METHODS.len()];
        let name = format!("fuzz/{case:04}-{:08x}", rng.random::<u32>());
        let seed = grpc_seed(method, &name);
        let (shape, body) = match (case / GRPC_METHODS.len()) % 3 {
            0 => ("random bytes", frame(&corpus::random_bytes(&mut rng, 48))),
            1 => ("a mutated message", frame(&mutate(&mut rng, &seed, &[]))),
            _ => bad_framing(&mut rng, &seed),
        };
        let reply = grpc_call(&channel, method, body.clone()).await;
        assert_typed(&format!("seed {SEED:#x} case {case}: {shape} to {method} ({body:02x?})"), &reply);
        let code = reply.shardlock_code().unwrap_or_else(|| "OK".into());
        *answers.entry(code).or_default() += 1;
    }
    // The barrage reached the handlers too, not only the decoder.
    eprintln!("grpc answers: {answers:?}");
    assert!(answers.get("OK").is_some_and(|n| *n >= 10) && answers.len() >= 4, "{answers:?}");

    // Phase 2: invalid UTF-8 in `string` fields (tonic refuses these before
    // any handler) and in `bytes` names (the handler refuses them).
    let utf8_cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("/shardlock.v1.Lock/Acquire", with_bad_utf8(grpc_seed("/x/Acquire", "utf8/a"), 6), ErrorCode::InvalidArgument),
        ("/shardlock.v1.Lock/Release", with_bad_utf8(grpc_seed("/x/Release", "utf8/a"), 2), ErrorCode::InvalidArgument),
        ("/shardlock.v1.Lock/Refresh", with_bad_utf8(grpc_seed("/x/Refresh", "utf8/a"), 2), ErrorCode::InvalidArgument),
        (
            "/shardlock.v1.Admin/ForceRelease",
            with_bad_utf8(grpc_seed("/x/ForceRelease", "u"), 2),
            ErrorCode::InvalidArgument,
        ),
        ("/ldlm.LDLM/Lock", with_bad_utf8(Vec::new(), 1), ErrorCode::InvalidArgument),
        ("/ldlm.LDLM/TryLock", with_bad_utf8(Vec::new(), 1), ErrorCode::InvalidArgument),
        ("/ldlm.LDLM/Unlock", with_bad_utf8(grpc_seed("/x/Unlock", "utf8/a"), 2), ErrorCode::InvalidArgument),
        ("/ldlm.LDLM/Renew", with_bad_utf8(Vec::new(), 1), ErrorCode::InvalidArgument),
        ("/shardlock.v1.Lock/Describe", with_bad_utf8(Vec::new(), 1), ErrorCode::InvalidName),
        ("/shardlock.v1.Lock/ValidateFence", with_bad_utf8(Vec::new(), 1), ErrorCode::InvalidName),
        ("/shardlock.v1.Lock/List", with_bad_utf8(Vec::new(), 1), ErrorCode::InvalidName),
    ];
    for (method, body, code) in utf8_cases {
        let reply = grpc_call(&channel, method, frame(&body)).await;
        assert_typed(method, &reply);
        assert_eq!(reply.code(), Some(Code::InvalidArgument), "{method}: {reply:?}");
        assert_eq!(reply.shardlock_code().as_deref(), Some(code.as_str_name()), "{method}");
        let message = reply.status.as_ref().unwrap().message().to_owned();
        assert!(message.contains("utf") || message.contains("UTF"), "{method}: {message}");
    }

    // Phase 3: extreme numbers through the generated client: refused or clamped, never a panic.
    let mut lock = LockClient::new(channel.clone());
    let mutex = &held[0];
    let refresh = pb::RefreshRequest { name: b"held/mutex".to_vec(), key: mutex.key.clone(), ttl_ms: Some(u64::MAX) };
    let err = ApiError::from_status(&lock.refresh(refresh).await.unwrap_err());
    assert_eq!(err.code, ErrorCode::InvalidTtl);
    let fence = pb::ValidateFenceRequest { name: b"held/mutex".to_vec(), fencing_token: u64::MAX };
    assert!(!lock.validate_fence(fence).await.unwrap().into_inner().valid);
    let list = pb::ListRequest { prefix: b"held/".to_vec(), limit: u32::MAX, page_token: Vec::new() };
    assert_eq!(lock.list(list).await.unwrap().into_inner().locks.len(), 2);
    let semaphore = pb::AcquireRequest {
        name: b"extreme/sem".to_vec(),
        size: Some(u32::MAX),
        permits: Some(u32::MAX),
        ..Default::default()
    };
    assert_eq!(ApiError::from_status(&lock.acquire(semaphore).await.unwrap_err()).code, ErrorCode::InvalidSize);
    let session = pb::SessionRequest { ttl_ms: u64::MAX };
    let status = lock.session(futures::stream::iter([session])).await.unwrap_err();
    assert_eq!(ApiError::from_status(&status).code, ErrorCode::InvalidTtl);

    assert_nothing_lost(&cluster, &held).await;
}

// ---- REST ------------------------------------------------------------------

/// A 2xx with a JSON body, or a 4xx with the JSON error body; never 5xx.
fn assert_rest_typed(what: &str, status: u16, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    assert!((200..500).contains(&status), "{what}: HTTP {status} {text}");
    let json: Value =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: HTTP {status}, not JSON ({e}): {text}"));
    if status < 300 {
        return None;
    }
    let code = json["code"].as_str().unwrap_or_else(|| panic!("{what}: no code: {text}"));
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: no message: {text}");
    Some(code.to_owned())
}

#[tokio::test]
async fn malformed_rest_gets_json_errors_and_loses_no_holder() {
    let cluster = Cluster::processes(1, GROUPS, LIMITS).await;
    let client = cluster.client(1).await;
    let held = take_grants(&client).await;
    let addr = cluster.addr(1);

    // Phase 1: random bytes, byte-level mutations and retyped fields, with
    // assorted content types (bodies are parsed whatever the type says).
    let content_types = [Some("application/json"), None, Some("text/plain"), Some("application/x-www-form-urlencoded")];
    let mut rng = corpus::rng(SEED ^ 0x4e57);
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..REST_CASES {
        let (path, seed) = REST_SEEDS[case % REST_SEEDS.len()];
        let seed = seed.replace("NAME", &format!("fuzz/{case:04}-{:08x}", rng.random::<u32>()));
        let (shape, body) = match (case / REST_SEEDS.len()) % 3 {
            0 => ("random bytes", corpus::random_bytes(&mut rng, 64)),
            1 => ("a mutated body", mutate(&mut rng, seed.as_bytes(), JSON_TOKENS)),
            _ => ("a retyped field", retyped(&mut rng, &seed).into_bytes()),
        };
        let content_type = content_types[rng.random_range(0..content_types.len())];
        let (status, reply) = http1(&addr, &post(&addr, path, content_type, &body)).await;
        let what =
            format!("seed {:#x} case {case}: {shape} to {path} ({})", SEED ^ 0x4e57, String::from_utf8_lossy(&body));
        let code = assert_rest_typed(&what, status, &reply).unwrap_or_else(|| "OK".into());
        *answers.entry(code).or_default() += 1;
    }
    eprintln!("rest answers: {answers:?}");
    assert!(answers.get("OK").is_some_and(|n| *n >= 10) && answers.len() >= 4, "{answers:?}");

    // Phase 2: named extremes get their exact code.
    let big_name = "n".repeat(60_000);
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let held_key = &held[0].key;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/lock/acquire", r#"{"name": "x/a", "wait_ms": 18446744073709551616}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "ttl_ms": -9223372036854775808}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "ttl_ms": 1e400}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "ttl_ms": 18446744073709551615}"#.into(), 400, "INVALID_TTL"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "wait_ms": 18446744073709551615}"#.into(), 400, "INVALID_WAIT"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "size": 4294967295}"#.into(), 400, "INVALID_SIZE"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "size": 4294967296}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "x/a", "permits": 0}"#.into(), 400, "INVALID_PERMITS"),
        ("/v1/lock/acquire", r#"{"name": "x/\ud800"}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", format!(r#"{{"name": "{big_name}"}}"#), 400, "INVALID_NAME"),
        ("/v1/lock/acquire", format!(r#"{{"name": "{}"}}"#, "n".repeat(70_000)), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", nested, 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", String::new(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "held/mutex"}"#.into(), 423, "LOCK_BUSY"),
        (
            "/v1/lock/refresh",
            format!(r#"{{"name": "held/mutex", "key": "{held_key}", "ttl_ms": 18446744073709551615}}"#),
            400,
            "INVALID_TTL",
        ),
        ("/v1/lock/release", r#"{"name": "held/mutex", "key": "\u0000"}"#.into(), 400, "INVALID_KEY"),
        ("/v1/session/open", r#"{"ttl_ms": 18446744073709551615}"#.into(), 400, "INVALID_TTL"),
        ("/v1/session/open", r#"{"ttl_ms": 0}"#.into(), 400, "INVALID_TTL"),
        ("/v1/lock/nope", "{}".into(), 404, "NOT_FOUND"),
    ];
    for (path, body, want_status, want_code) in cases {
        let (status, reply) = http1(&addr, &post(&addr, path, Some("application/json"), body.as_bytes())).await;
        let what = format!("{path} {}", &body[..body.len().min(80)]);
        let code = assert_rest_typed(&what, status, &reply);
        assert_eq!((status, code.as_deref()), (want_status, Some(want_code)), "{what}");
    }
    // Raw bytes that are not UTF-8 inside a JSON string.
    let (status, reply) = http1(&addr, &post(&addr, "/v1/lock/acquire", None, b"{\"name\": \"x/\xff\xfe\"}")).await;
    assert_eq!(assert_rest_typed("a name of raw 0xff", status, &reply).as_deref(), Some("INVALID_ARGUMENT"));
    // Control characters are valid UTF-8: such a name is a name like any other.
    let (status, reply) =
        http1(&addr, &post(&addr, "/v1/lock/acquire", None, br#"{"name": "x/\u0000\u0001\u007f"}"#)).await;
    assert_eq!((status, assert_rest_typed("a control-character name", status, &reply)), (200, None));
    // Huge but valid numbers are clamped where the API says so.
    let (status, reply) =
        http1(&addr, &post(&addr, "/v1/lock/list", None, br#"{"prefix": "held/", "limit": 4294967295}"#)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let (status, reply) = http1(&addr, b"GET /v1/nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(assert_rest_typed("GET of an unknown path", status, &reply).as_deref(), Some("NOT_FOUND"));

    assert_nothing_lost(&cluster, &held).await;
}

// ---- ldlm ------------------------------------------------------------------

fn ldlm_code(reply: &lpb::LockResponse) -> Option<i32> {
    reply.error.as_ref().map(|e| e.code)
}

#[tokio::test]
async fn ldlm_bad_input_gets_ldlm_errors() {
    let cluster = Cluster::processes(1, GROUPS, LIMITS).await;
    let client = cluster.client(1).await;
    let held = take_grants(&client).await;
    // An ldlm holder on its own connection (a session: it must outlive the barrage).
    let mut owner = LdlmClient::new(raw::channel(&cluster.addr(1)).await);
    let try_lock = |name: &str, timeout: Option<i32>, size: Option<i32>| lpb::TryLockRequest {
        name: name.into(),
        lock_timeout_seconds: timeout,
        size,
    };
    let mine = owner.try_lock(try_lock("ldlm/held", None, None)).await.unwrap().into_inner();
    assert!(mine.locked, "{mine:?}");

    let mut ldlm = LdlmClient::new(raw::channel(&cluster.addr(1)).await);
    use lpb::ErrorCode as L;
    // Phase 1: TryLock with bad names, timeouts and sizes: refused in the body.
    let cases: Vec<(lpb::TryLockRequest, i32)> = vec![
        (try_lock("", None, None), L::Unknown as i32),
        (try_lock(&"n".repeat(5000), None, None), L::Unknown as i32),
        (try_lock("ldlm/a", Some(i32::MAX), None), L::Unknown as i32),
        (try_lock("ldlm/a", Some(i32::MIN), None), L::Unknown as i32),
        (try_lock("ldlm/a", Some(-1), None), L::Unknown as i32),
        (try_lock("ldlm/a", None, Some(0)), L::InvalidLockSize as i32),
        (try_lock("ldlm/a", None, Some(-1)), L::InvalidLockSize as i32),
        (try_lock("ldlm/a", None, Some(i32::MIN)), L::InvalidLockSize as i32),
        (try_lock("ldlm/a", None, Some(i32::MAX)), L::InvalidLockSize as i32),
        (try_lock("ldlm/held", None, Some(2)), L::LockSizeMismatch as i32),
    ];
    for (req, code) in cases {
        let shown = format!("{:?}", (&req.name[..req.name.len().min(20)], req.lock_timeout_seconds, req.size));
        let reply = ldlm.try_lock(req).await.unwrap_or_else(|s| panic!("{shown}: {s:?}")).into_inner();
        assert!(!reply.locked, "{shown}: {reply:?}");
        assert_eq!(ldlm_code(&reply), Some(code), "{shown}: {reply:?}");
    }
    let busy = ldlm.try_lock(try_lock("ldlm/held", None, None)).await.unwrap().into_inner();
    assert!(!busy.locked && busy.error.is_none(), "{busy:?}");

    // Phase 2: extreme waits: a negative one is refused, a huge one is
    // clamped to limits.max_wait_ms (a free lock is granted at once, a held
    // one times out).
    let lock = |name: &str, wait: Option<i32>| lpb::LockRequest {
        name: name.into(),
        wait_timeout_seconds: wait,
        lock_timeout_seconds: Some(30),
        size: None,
    };
    let reply = ldlm.lock(lock("ldlm/b", Some(-5))).await.unwrap().into_inner();
    assert_eq!((reply.locked, ldlm_code(&reply)), (false, Some(L::Unknown as i32)), "{reply:?}");
    let reply = ldlm.lock(lock("ldlm/b", Some(i32::MAX))).await.unwrap().into_inner();
    assert!(reply.locked, "{reply:?}");
    let reply = ldlm.lock(lock("ldlm/held", Some(1))).await.unwrap().into_inner();
    assert_eq!((reply.locked, ldlm_code(&reply)), (false, Some(L::LockWaitTimeout as i32)), "{reply:?}");

    // Phase 3: Renew and Unlock with extreme timeouts and bad keys.
    let renew = |timeout: i32, key: &str| lpb::RenewRequest {
        name: "ldlm/held".into(),
        key: key.into(),
        lock_timeout_seconds: timeout,
    };
    for timeout in [i32::MAX, i32::MIN, 0, -1] {
        let reply = ldlm.renew(renew(timeout, &mine.key)).await.unwrap().into_inner();
        assert_eq!((reply.locked, ldlm_code(&reply)), (false, Some(L::Unknown as i32)), "{timeout}: {reply:?}");
    }
    let reply = ldlm.renew(renew(30, "not a key")).await.unwrap().into_inner();
    assert_eq!(ldlm_code(&reply), Some(L::LockDoesNotExistOrInvalidKey as i32), "{reply:?}");
    for key in ["", "not a key", &"k".repeat(5000)] {
        let unlock = lpb::UnlockRequest { name: "ldlm/held".into(), key: key.into() };
        let reply = ldlm.unlock(unlock).await.unwrap().into_inner();
        assert!(!reply.unlocked && reply.error.is_some_and(|e| e.code == L::InvalidLockKey as i32), "{key:.20}");
    }

    // The ldlm holder still holds with its key.
    let lock = client.describe("ldlm/held").await.unwrap().lock.expect("ldlm/held exists");
    assert_eq!(lock.holders.len(), 1);
    assert_eq!(lock.holders[0].key, mine.key);
    assert_nothing_lost(&cluster, &held).await;
    drop(owner);
}

// ---- limits ----------------------------------------------------------------

#[tokio::test]
async fn limits_bound_messages_streams_and_slow_clients() {
    let cluster = Cluster::processes(1, GROUPS, LIMITS).await;
    let client = cluster.client(1).await;
    let held = take_grants(&client).await;
    let addr = cluster.addr(1);
    let channel = raw::channel(&addr).await;

    // Phase 1: a message over max_message_bytes (64 KiB here) is refused
    // with OUT_OF_RANGE, also when only its frame header claims the size;
    // the connection stays usable.
    let huge = pb::AcquireRequest { name: vec![b'n'; 70_000], ..Default::default() }.encode_to_vec();
    let huge_ldlm = lpb::TryLockRequest { name: "n".repeat(70_000), ..Default::default() }.encode_to_vec();
    let mut claims_4gib = vec![0, 0xff, 0xff, 0xff, 0xff];
    claims_4gib.extend_from_slice(&[0; 16]);
    for (method, body) in [
        ("/shardlock.v1.Lock/Acquire", frame(&huge)),
        ("/ldlm.LDLM/TryLock", frame(&huge_ldlm)),
        ("/shardlock.v1.Lock/Describe", claims_4gib),
    ] {
        let reply = grpc_call(&channel, method, body).await;
        assert_eq!(reply.code(), Some(Code::OutOfRange), "{method}: {reply:?}");
        assert_eq!(reply.shardlock_code().as_deref(), Some("MESSAGE_TOO_LARGE"), "{method}: {reply:?}");
    }
    let fine = grpc_call(&channel, "/shardlock.v1.Admin/Status", frame(&[])).await;
    assert_eq!(fine.code(), Some(Code::Ok), "the connection still works: {fine:?}");

    // Phase 2: more concurrent streams than max_concurrent_streams (8 here)
    // on one connection: the excess is refused (RST_STREAM REFUSED_STREAM).
    let mut h2 = H2::connect(&addr).await;
    let (allowed, extra) = (8u32, 4u32);
    for i in 0..allowed + extra {
        h2.open_grpc_stream(2 * i + 1, "/shardlock.v1.Lock/Describe").await;
    }
    let mut refused = Vec::new();
    let collect = async {
        while refused.len() < extra as usize {
            let Some((kind, _, id, payload)) = h2.next_frame().await else { break };
            assert_ne!(kind, raw::GOAWAY, "the node dropped the whole connection: {payload:?}");
            if kind == raw::RST_STREAM && payload == raw::REFUSED_STREAM.to_be_bytes() {
                refused.push(id);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect).await.expect("the excess streams are refused");
    refused.sort();
    assert_eq!(refused, (allowed..allowed + extra).map(|i| 2 * i + 1).collect::<Vec<_>>());
    drop(h2);

    // Phase 3: clients that stall before their request is complete are
    // disconnected after header_read_timeout_ms (1 s here): partial HTTP/1
    // headers, nothing at all, part of the HTTP/2 preface.
    let stalls: [&[u8]; 3] = [b"POST /v1/lock/describe HTTP/1.1\r\nHost: x\r\nContent-Le", b"", b"PRI * HTTP/2.0\r\n"];
    for sent in stalls {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        raw::closed_by_peer(&mut stream, Duration::from_secs(8)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(800), "{:?} closed after only {took:?}", String::from_utf8_lossy(sent));
    }

    // Phase 4: a request whose body stalls after its headers is refused
    // after body_read_timeout_ms (1 s here), over REST and gRPC.
    let started = Instant::now();
    let partial = b"POST /v1/lock/describe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"name\"";
    let (status, reply) = http1(&addr, partial).await;
    let code = assert_rest_typed("a stalled REST body", status, &reply);
    assert_eq!((status, code.as_deref()), (400, Some("INVALID_ARGUMENT")));
    assert!(started.elapsed() >= Duration::from_millis(800), "refused after only {:?}", started.elapsed());
    let describe = frame(&pb::DescribeRequest { name: b"held/mutex".to_vec() }.encode_to_vec());
    let first_half = Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(&describe[..4]));
    let stalled = futures::stream::iter([first_half]).chain(futures::stream::pending());
    let reply =
        raw::grpc_call_body(&channel, "/shardlock.v1.Lock/Describe", axum::body::Body::from_stream(stalled)).await;
    assert_eq!(reply.code(), Some(Code::InvalidArgument), "{reply:?}");
    assert_eq!(reply.shardlock_code().as_deref(), Some("INVALID_ARGUMENT"), "{reply:?}");

    // Phase 5: oversized request heads are refused with 431; one within
    // hyper's buffer carries the JSON error body.
    let big_header =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "b".repeat(500_000));
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}Connection: close\r\n\r\n");
    // (The node may reset the connection before a client this eager reads the answer.)
    assert!(matches!(http1(&addr, big_header.as_bytes()).await.0, 431 | 0));
    let (status, body) = http1(&addr, many_headers.as_bytes()).await;
    assert_eq!(status, 431);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a 431 carries the JSON error body");
    assert_eq!(body["code"], "INVALID_ARGUMENT", "{body}");
    assert!(body["message"].as_str().unwrap().contains("at most 100 headers"), "{body}");

    // A REST route called with the wrong method: 405 with the error body.
    let (status, body) = http(&addr, "GET", "/v1/lock/acquire", "").await;
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("\"code\":\"INVALID_ARGUMENT\"") && body.contains("not allowed"), "{body}");

    let again = grpc_call(&channel, "/shardlock.v1.Admin/Status", frame(&[])).await;
    assert_eq!(again.code(), Some(Code::Ok));
    assert_nothing_lost(&cluster, &held).await;
}

// ---- floods ----------------------------------------------------------------

#[tokio::test]
async fn floods_of_waiters_and_connections_lose_no_holder() {
    let extra = "header_read_timeout_ms = 1000\n\n[limits]\nmax_waiters_per_lock = 50\n";
    let cluster = Cluster::processes(1, GROUPS, extra).await;
    let client = cluster.client(1).await;
    let held = take_grants(&client).await;
    let addr = cluster.addr(1);

    // Phase 1: 50 blocking waiters queue behind the mutex; the 51st and
    // later get TOO_MANY_WAITERS at once, at every surface.
    let channel = raw::channel(&addr).await;
    let wait = |i: usize| pb::AcquireRequest {
        name: b"held/mutex".to_vec(),
        wait_ms: 60_000,
        key: format!("waiter-{i}"),
        ..Default::default()
    };
    let waiters: Vec<_> = (0..50)
        .map(|i| {
            let mut lock = LockClient::new(channel.clone());
            let req = wait(i);
            tokio::spawn(async move { lock.acquire(req).await })
        })
        .collect();
    wait_for("50 waiters to queue", Duration::from_secs(30), || async {
        client.describe("held/mutex").await.ok()?.lock.filter(|l| l.waiters.len() == 50)
    })
    .await;
    let mut lock = LockClient::new(channel.clone());
    for i in 50..60 {
        let status = lock.acquire(wait(i)).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(ApiError::from_status(&status).code, ErrorCode::TooManyWaiters);
    }
    let rest = br#"{"name": "held/mutex", "wait_ms": 60000}"#;
    let (status, reply) = http1(&addr, &post(&addr, "/v1/lock/acquire", None, rest)).await;
    assert_eq!(
        (status, assert_rest_typed("a REST waiter too many", status, &reply).as_deref()),
        (429, Some("TOO_MANY_WAITERS"))
    );
    let mut ldlm = LdlmClient::new(channel.clone());
    let req = lpb::LockRequest { name: "held/mutex".into(), wait_timeout_seconds: Some(60), ..Default::default() };
    let status = ldlm.lock(req).await.unwrap_err();
    assert_eq!(ApiError::from_status(&status).code, ErrorCode::TooManyWaiters);

    // The waiters' clients go away: their waits leave the queue.
    for waiter in &waiters {
        waiter.abort();
    }
    drop(channel);
    wait_for("the abandoned waits to leave the queue", Duration::from_secs(30), || async {
        client.describe("held/mutex").await.ok()?.lock.filter(|l| l.waiters.is_empty())
    })
    .await;

    // Phase 2: 300 connections at once — 100 idle, 100 that send half a
    // request and hang up, 100 that send a whole request and hang up without
    // reading — while a client keeps working.
    let mut idle = Vec::new();
    let mut hangups = Vec::new();
    for i in 0..300 {
        let addr = addr.clone();
        if i % 3 == 0 {
            idle.push(TcpStream::connect(&addr).await.expect("an idle connection"));
            continue;
        }
        hangups.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("a flood connection");
            let sent: &[u8] = if i % 3 == 1 {
                b"POST /v1/lock/acquire HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"
            } else {
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            };
            let _ = stream.write_all(sent).await;
        }));
    }
    let during = client.describe("held/mutex").await.expect("the node answers during the flood");
    assert_eq!(during.lock.unwrap().holders[0].key, held[0].key);
    for hangup in hangups {
        hangup.await.unwrap();
    }
    // The idle ones are closed by the node after header_read_timeout_ms.
    let closes = idle.iter_mut().map(|s| raw::closed_by_peer(s, Duration::from_secs(15)));
    futures::future::join_all(closes).await;

    assert_nothing_lost(&cluster, &held).await;
}

#[tokio::test]
async fn connections_over_max_connections_are_refused_with_a_reason() {
    use tokio::io::AsyncReadExt;
    let cluster = Cluster::processes(1, GROUPS, "max_connections = 4\n").await;
    let addr = cluster.addr(1);
    // Four keep-alive connections, each answered once (so each is served).
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "a connection under the limit works");
        held.push(stream);
    }
    // A flood beyond the limit: every one is answered 503 with the reason.
    for _ in 0..20 {
        let (status, body) = http(&addr, "GET", "/healthz", "").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("max_connections (4)") && body.contains("UNAVAILABLE"), "{body}");
    }
    let reply = grpc_call(&raw::channel(&addr).await, "/shardlock.v1.Admin/Status", frame(&[])).await;
    assert_eq!(reply.code(), Some(Code::Unavailable), "{reply:?}");
    assert_eq!(reply.shardlock_code().as_deref(), Some("UNAVAILABLE"), "{reply:?}");
    // One held connection closes: a new one is served again.
    drop(held.pop());
    wait_for("a freed connection slot", Duration::from_secs(15), || async {
        (http(&addr, "GET", "/healthz", "").await.0 == 200).then_some(())
    })
    .await;
}

// ---- RESP -------------------------------------------------------------------

/// Valid RESP requests to mutate.
const RESP_SEEDS: &[&[u8]] = &[
    b"*5\r\n$4\r\nLOCK\r\n$5\r\nr/bad\r\n$3\r\nTTL\r\n$4\r\n5000\r\n*2\r\n$8\r\nDESCRIBE\r\n$5\r\nr/bad\r\n",
    b"*3\r\n$6\r\nUNLOCK\r\n$5\r\nr/bad\r\n$2\r\nk1\r\n",
    b"*3\r\n$8\r\nVALIDATE\r\n$10\r\nheld/mutex\r\n$1\r\n1\r\n",
    b"*4\r\n$4\r\nLIST\r\n$0\r\n\r\n$5\r\nLIMIT\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n",
    b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$8\r\nDESCRIBE\r\n$10\r\nheld/mutex\r\n",
];
const RESP_TOKENS: &[&[u8]] =
    &[b"*", b"$", b"\r\n", b"-1", b"99999999999", b"%2", b"*-1", b"$-5", b"\x00", b"\xff\xfe"];

/// Sends `bytes` on a fresh connection, half-closes it, and reads every
/// reply until the node closes it; returns the replies' bytes.
async fn resp_exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    let _ = stream.shutdown().await;
    let mut out = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out);
    let _ = tokio::time::timeout(raw::CALL_TIMEOUT, read).await.expect("the node answered and closed in time");
    out
}

/// Every reply is a RESP frame; an error reply starts with a code word.
fn assert_resp_replies(what: &str, replies: &[u8]) {
    let mut rest = replies;
    while !rest.is_empty() {
        match redis_protocol::resp3::decode::complete::decode(rest) {
            Ok(Some((frame, used))) => {
                if let redis_protocol::resp3::types::OwnedFrame::SimpleError { data, .. } = &frame {
                    let word = data.split(' ').next().unwrap_or("");
                    assert!(
                        !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                        "{what}: an error without a code: {data}"
                    );
                    assert!(!data.starts_with("INTERNAL"), "{what}: {data}");
                }
                rest = &rest[used..];
            }
            other => panic!("{what}: not a RESP reply ({other:?}): {:?}", String::from_utf8_lossy(rest)),
        }
    }
}

#[tokio::test]
async fn malformed_resp_gets_error_replies_and_loses_no_holder() {
    let cluster = Cluster::processes(1, GROUPS, LIMITS).await;
    let client = cluster.client(1).await;
    let held = take_grants(&client).await;
    let addr = cluster.addr(1);
    let mut rng = corpus::rng(SEED ^ 0x7e5);
    for case in 0..RESP_CASES {
        let bytes = match case % 3 {
            0 => [&b"*"[..], &corpus::random_bytes(&mut rng, 64)].concat(),
            _ => {
                let seed = RESP_SEEDS[case % RESP_SEEDS.len()];
                let mut bytes = mutate(&mut rng, seed, RESP_TOKENS);
                bytes.insert(0, b'*');
                bytes
            }
        };
        let what = format!("resp case {case} (seed {SEED:#x}): {:?}", String::from_utf8_lossy(&bytes));
        assert_resp_replies(&what, &resp_exchange(&addr, &bytes).await);
    }
    // Over the message size limit: refused, and the connection closed.
    let huge = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", 1 << 20);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.write_all(huge.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; 70_000]).await.unwrap();
    let mut reply = vec![0u8; 256];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("-MESSAGE_TOO_LARGE"), "{reply}");
    raw::closed_by_peer(&mut stream, raw::CALL_TIMEOUT).await;
    assert_nothing_lost(&cluster, &held).await;
}
