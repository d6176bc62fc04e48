//! Shared and exclusive holds, and the values holders carry, through the
//! Rust client (gRPC), REST and RESP (redis-cli), on real nodes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shardlock::client::{AcquireOptions, Client};
use shardlock::error::ErrorCode;
use shardlock::lock::Mode;
use shardlock::proto::v1 as pb;

use crate::fixtures::checker::{check, Hold};
use crate::fixtures::harness::{http, wait_for, Cluster};
use crate::fixtures::workload::keep_fault_for;

const GROUPS: u32 = 8;

fn shared(key: &str, wait_ms: u64, value: &str) -> AcquireOptions {
    AcquireOptions {
        key: Some(key.into()),
        wait_ms,
        mode: Mode::Shared,
        value: Some(value.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn exclusive(key: &str, wait_ms: u64) -> AcquireOptions {
    AcquireOptions { key: Some(key.into()), wait_ms, ..Default::default() }
}

/// The keys of `name`'s holders and waiters, with their modes.
async fn state(client: &Client, name: &str) -> (Vec<(String, i32)>, Vec<(String, i32)>) {
    let lock = client.describe(name).await.unwrap().lock.unwrap_or_default();
    let holders = lock.holders.iter().map(|h| (h.key.clone(), h.mode)).collect();
    let waiters = lock.waiters.iter().map(|w| (w.key.clone(), w.mode)).collect();
    (holders, waiters)
}

const SHARED: i32 = pb::Mode::Shared as i32;
const EXCLUSIVE: i32 = pb::Mode::Exclusive as i32;

#[tokio::test]
async fn readers_share_a_writer_waits_and_downgrades() {
    let cluster = Cluster::start(3, GROUPS).await;
    let (a, b) = (cluster.client(1).await, cluster.client(2).await);
    let name = "rw/doc";

    // Two readers hold together, each with its own token and value.
    let r1 = a.acquire(name, shared("r1", 0, "reader-1")).await.unwrap();
    let r2 = b.acquire(name, shared("r2", 0, "reader-2")).await.unwrap();
    assert!(r2.fencing_token > r1.fencing_token);
    assert_eq!((r1.mode, r1.value.as_deref()), (SHARED, Some(&b"reader-1"[..])));
    let busy = a.acquire(name, exclusive("w", 0)).await.unwrap_err();
    assert_eq!(busy.code, ErrorCode::LockBusy, "a writer cannot join readers");

    // A queued writer holds back a later reader.
    let writer = tokio::spawn({
        let b = b.clone();
        async move { b.acquire(name, exclusive("w", 30_000)).await }
    });
    wait_for("the writer to queue", Duration::from_secs(10), || async {
        (state(&a, name).await.1 == vec![("w".to_owned(), EXCLUSIVE)]).then_some(())
    })
    .await;
    let late = a.acquire(name, shared("r3", 0, "reader-3")).await.unwrap_err();
    assert_eq!(late.code, ErrorCode::LockBusy, "no reader barges past a queued writer");
    let reader = tokio::spawn({
        let a = a.clone();
        async move { a.acquire(name, shared("r3", 30_000, "reader-3")).await }
    });
    wait_for("the reader to queue behind the writer", Duration::from_secs(10), || async {
        (state(&a, name).await.1.len() == 2).then_some(())
    })
    .await;

    // The writer waits for the last reader, then holds alone.
    a.release(name, &r1.key).await.unwrap();
    assert!(!writer.is_finished());
    b.release(name, &r2.key).await.unwrap();
    let w = writer.await.unwrap().unwrap();
    assert!(w.fencing_token > r2.fencing_token);
    assert_eq!(state(&a, name).await.0, vec![("w".to_owned(), EXCLUSIVE)]);

    // No upgrade of a reader nor a shared retry of the writer; a downgrade
    // keeps the writer's token and lets the queued reader in.
    let retry = b.acquire(name, shared("w", 0, "")).await.unwrap_err();
    assert_eq!(retry.code, ErrorCode::KeyInUse);
    let down = b.downgrade(name, "w").await.unwrap();
    assert_eq!(down.fencing_token, w.fencing_token);
    let r3 = reader.await.unwrap().unwrap();
    assert!(r3.fencing_token > w.fencing_token);
    let (holders, waiters) = state(&a, name).await;
    assert_eq!(holders, vec![("r3".to_owned(), SHARED), ("w".to_owned(), SHARED)]);
    assert!(waiters.is_empty());
    let upgrade = a.acquire(name, exclusive("r3", 0)).await.unwrap_err();
    assert_eq!(upgrade.code, ErrorCode::KeyInUse, "an upgrade is refused");

    // A semaphore refuses shared mode.
    let semaphore = AcquireOptions { size: Some(3), ..shared("s", 0, "") };
    assert_eq!(a.acquire("rw/sem", semaphore).await.unwrap_err().code, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn values_are_set_by_holders_and_shown_everywhere() {
    let cluster = Cluster::start_with(3, GROUPS, "[limits]\nmax_value_bytes = 16\n").await;
    let client = cluster.client(1).await;
    let opts = AcquireOptions { value: Some(b"10.0.0.7:5432".to_vec()), key: Some("p".into()), ..Default::default() };
    let grant = client.acquire("db/primary", opts).await.unwrap();
    assert_eq!(grant.value.as_deref(), Some(&b"10.0.0.7:5432"[..]));

    // Only the holder changes it, within the limit.
    assert_eq!(
        client.set_value("db/primary", "other", Some(b"x".to_vec())).await.unwrap_err().code,
        ErrorCode::NotHolder
    );
    let big = client.set_value("db/primary", "p", Some(vec![b'x'; 17])).await.unwrap_err();
    assert_eq!(big.code, ErrorCode::InvalidArgument);
    client.set_value("db/primary", "p", Some(b"10.0.0.8:5432".to_vec())).await.unwrap();

    // Describe, List, REST and RESP show it.
    let lock = client.describe("db/primary").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].value.as_deref(), Some(&b"10.0.0.8:5432"[..]));
    let listed = client.list("db/", 10, Vec::new()).await.unwrap();
    assert_eq!(listed.locks[0].values[0].value, b"10.0.0.8:5432");
    let (code, body) = http(&cluster.addr(2), "POST", "/v1/lock/describe", r#"{"name": "db/primary"}"#).await;
    assert_eq!(code, 200, "{body}");
    let described: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(described["lock"]["holders"][0]["value"], "10.0.0.8:5432");
    assert_eq!(described["lock"]["holders"][0]["mode"], "exclusive");

    // REST: a shared hold with a value, a value change, a downgrade.
    let body = r#"{"name": "db/replica", "mode": "shared", "value": "r-1", "key": "r1"}"#;
    let (code, reply) = http(&cluster.addr(3), "POST", "/v1/lock/acquire", body).await;
    assert_eq!(code, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!((reply["mode"].as_str(), reply["value"].as_str()), (Some("shared"), Some("r-1")));
    let set = r#"{"name": "db/replica", "key": "r1", "value": "r-2"}"#;
    let (code, reply) = http(&cluster.addr(3), "POST", "/v1/lock/set-value", set).await;
    assert_eq!(code, 200, "{reply}");
    let bad_mode = r#"{"name": "db/x", "mode": "sometimes"}"#;
    let (code, reply) = http(&cluster.addr(3), "POST", "/v1/lock/acquire", bad_mode).await;
    assert!(code == 400 && reply.contains("INVALID_ARGUMENT"), "{code} {reply}");
    let (code, reply) = http(&cluster.addr(1), "POST", "/v1/lock/acquire", r#"{"name": "db/w", "key": "w"}"#).await;
    assert_eq!(code, 200, "{reply}");
    let (code, reply) = http(&cluster.addr(1), "POST", "/v1/lock/downgrade", r#"{"name": "db/w", "key": "w"}"#).await;
    assert!(code == 200 && reply.contains("\"mode\":\"shared\""), "{reply}");

    // RESP: MODE and VALUE on LOCK, SETVALUE, DOWNGRADE.
    let resp = |args: &'static [&'static str]| {
        let addr = cluster.addr(2);
        async move {
            let (host, port) = addr.rsplit_once(':').unwrap();
            let out = tokio::process::Command::new("redis-cli")
                .args(["-h", host, "-p", port])
                .args(args)
                .kill_on_drop(true)
                .output()
                .await
                .expect("redis-cli runs (make test installs redis-tools)");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let locked = resp(&["LOCK", "db/cli", "KEY", "c1", "MODE", "shared", "VALUE", "v-1"]).await;
    assert!(locked.contains("shared") && locked.contains("v-1"), "{locked}");
    let set = resp(&["SETVALUE", "db/cli", "c1", "v-2"]).await;
    assert!(set.contains("v-2"), "{set}");
    let described = resp(&["DESCRIBE", "db/cli"]).await;
    assert!(described.contains("v-2") && described.contains("shared"), "{described}");
    let refused = resp(&["DOWNGRADE", "db/cli", "nobody"]).await;
    assert!(refused.contains("NOT_HOLDER"), "{refused}");
}

/// Readers and writers on one lock, concurrently: the checker (taught
/// modes) finds no exclusive hold beside any other, and readers did hold
/// together.
#[tokio::test]
async fn readers_and_writers_under_concurrency_never_overlap() {
    let cluster = Cluster::start(3, GROUPS).await;
    let client = cluster.client(1).await;
    let history = Arc::new(Mutex::new(Vec::<Hold>::new()));
    let ttl = Duration::from_secs(10);
    let workers: Vec<_> = (0..8)
        .map(|id| {
            let (client, history) = (client.clone(), history.clone());
            tokio::spawn(async move {
                for n in 0..25 {
                    let mode = if (id + n) % 3 == 0 { Mode::Exclusive } else { Mode::Shared };
                    let opts = AcquireOptions {
                        wait_ms: 30_000,
                        ttl_ms: Some(ttl.as_millis() as u64),
                        mode,
                        ..Default::default()
                    };
                    let sent = Instant::now();
                    let grant = client.acquire("rw/busy", opts).await.unwrap();
                    let granted = Instant::now();
                    keep_fault_for(Duration::from_millis(5)).await;
                    let released = Some(Instant::now());
                    client.release("rw/busy", &grant.key).await.unwrap();
                    let shared = mode == Mode::Shared;
                    let hold = Hold {
                        lock: "rw/busy".into(),
                        size: 1,
                        client: id,
                        token: grant.fencing_token,
                        sent,
                        granted,
                        released,
                        ttl,
                        shared,
                    };
                    history.lock().unwrap().push(hold);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let history = history.lock().unwrap();
    assert_eq!(history.len(), 200);
    assert_eq!(check(&history), vec![]);
    let readers: Vec<&Hold> = history.iter().filter(|h| h.shared).collect();
    let together = readers.iter().any(|a| {
        readers.iter().any(|b| a.token != b.token && a.granted < b.released.unwrap() && b.granted < a.released.unwrap())
    });
    assert!(together, "readers never held together");
}
