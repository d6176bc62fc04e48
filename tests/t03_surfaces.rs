//! The client surfaces: the Rust client's LockGuard and sessions, REST,
//! the CLI, and typed errors for bad input at every surface.

use std::time::Duration;

use serde_json::Value;
use shardlock::client::{AcquireOptions, Client};
use shardlock::error::{ApiError, ErrorCode};
use shardlock::proto::v1 as pb;

use crate::fixtures::harness::{http, wait_for, Cluster};

const GROUPS: u32 = 8;

fn ttl(ms: u64) -> AcquireOptions {
    AcquireOptions { ttl_ms: Some(ms), ..Default::default() }
}

fn waiting(ms: u64) -> AcquireOptions {
    AcquireOptions { wait_ms: ms, ..Default::default() }
}

async fn released(client: &Client, name: &str) -> Option<()> {
    let lock = client.describe(name).await.ok()?.lock;
    lock.is_none_or(|l| l.holders.is_empty()).then_some(())
}

#[tokio::test]
async fn a_lock_guard_keeps_its_lease_and_reports_its_loss() {
    let cluster = Cluster::start(3, GROUPS).await;
    let (a1, a2) = (cluster.addr(1), cluster.addr(2));
    let client = Client::connect_any(&[a1.as_str(), a2.as_str()]).await.unwrap();
    let other = cluster.client(3).await;

    // Phase 1: a 1 s lease outlives a 3 s wait of another client.
    let guard = client.lock("guarded", ttl(1000)).await.unwrap();
    let err = other.acquire("guarded", waiting(3000)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitTimeout);
    let lock = other.describe("guarded").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].key, guard.key());
    assert_eq!(lock.holders[0].fencing_token, guard.fencing_token());

    // Phase 2: an operator forces it out; the guard says so.
    other.force_release("guarded", None).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), guard.lost()).await.expect("loss reported");
    assert!(reason.contains("lock lost"), "{reason}");

    // Phase 3: dropping a guard releases its lock.
    let dropped = client.lock("dropped", ttl(60_000)).await.unwrap();
    drop(dropped);
    wait_for("the dropped guard's release", Duration::from_secs(10), || released(&other, "dropped")).await;
}

#[tokio::test]
async fn sessions_release_what_they_hold() {
    let cluster = Cluster::start(3, GROUPS).await;
    let client = cluster.client(1).await;
    let other = cluster.client(2).await;

    // gRPC session: the node keeps the grant alive past its TTL...
    let session = client.session(Some(1000)).await.unwrap();
    let grant = session.acquire("s/grpc", ttl(1000)).await.unwrap();
    let err = other.acquire("s/grpc", waiting(2500)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::WaitTimeout);
    // ...and releases it when the session ends.
    session.close();
    wait_for("the session's grant to be released", Duration::from_secs(10), || released(&other, "s/grpc")).await;
    let next = other.acquire("s/grpc", AcquireOptions::default()).await.unwrap();
    assert!(next.fencing_token > grant.fencing_token);

    // REST session without keepalives: it expires and releases its grant.
    let addr = cluster.addr(1);
    let (code, body) = http(&addr, "POST", "/v1/session/open", r#"{"ttl_ms": 500}"#).await;
    assert_eq!(code, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["session_id"].as_u64().unwrap();
    let acquire = format!(r#"{{"name": "s/rest", "ttl_ms": 60000, "session_id": {id}}}"#);
    let (code, body) = http(&addr, "POST", "/v1/lock/acquire", &acquire).await;
    assert_eq!(code, 200, "{body}");
    wait_for("the expired REST session's grant to go", Duration::from_secs(10), || released(&other, "s/rest")).await;
    let keepalive = format!(r#"{{"session_id": {id}}}"#);
    let (code, body) = http(&addr, "POST", "/v1/session/keepalive", &keepalive).await;
    assert_eq!((code, body.contains("NO_SESSION")), (404, true), "{body}");

    // An acquire naming a session that does not exist is refused.
    let grpc_err = {
        let mut raw = cluster.raw(1).await;
        let req = pb::AcquireRequest { name: b"s/x".to_vec(), session_id: 12345, ..Default::default() };
        ApiError::from_status(&raw.acquire(req).await.unwrap_err())
    };
    assert_eq!(grpc_err.code, ErrorCode::NoSession);
}

#[tokio::test]
async fn rest_serves_every_call_with_typed_errors() {
    let cluster = Cluster::start(3, GROUPS).await;
    let addr = cluster.addr(2);
    let post = |path: &'static str, body: String| {
        let addr = addr.clone();
        async move {
            let (code, text) = http(&addr, "POST", path, &body).await;
            (code, serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
        }
    };

    // Phase 1: the happy path.
    let (code, grant) = post("/v1/lock/acquire", r#"{"name": "rest/a", "ttl_ms": 30000}"#.into()).await;
    assert_eq!(code, 200, "{grant}");
    let key = grant["key"].as_str().unwrap().to_owned();
    let token = grant["fencing_token"].as_u64().unwrap();
    let (_, lock) = post("/v1/lock/describe", r#"{"name": "rest/a"}"#.into()).await;
    assert_eq!(lock["lock"]["holders"][0]["key"], key.as_str());
    let (code, refreshed) =
        post("/v1/lock/refresh", format!(r#"{{"name": "rest/a", "key": "{key}", "ttl_ms": 5000}}"#)).await;
    assert_eq!((code, refreshed["ttl_ms"].as_u64()), (200, Some(5000)));
    let (_, fence) =
        post("/v1/lock/validate-fence", format!(r#"{{"name": "rest/a", "fencing_token": {token}}}"#)).await;
    assert_eq!(fence["valid"], true);
    let (_, listed) = post("/v1/lock/list", r#"{"prefix": "rest/"}"#.into()).await;
    assert_eq!(listed["locks"][0]["name"], "rest/a");

    // Phase 2: bad input gets its code and status, and changes nothing.
    let cases: Vec<(&'static str, String, u16, &str)> = vec![
        ("/v1/lock/acquire", "{not json".into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "colour": "red"}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": 12}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "ttl_ms": -1}"#.into(), 400, "INVALID_ARGUMENT"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "ttl_ms": 99999999999999}"#.into(), 400, "INVALID_TTL"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "wait_ms": 18446744073709551615}"#.into(), 400, "INVALID_WAIT"),
        ("/v1/lock/acquire", format!(r#"{{"name": "{}"}}"#, "n".repeat(5000)), 400, "INVALID_NAME"),
        ("/v1/lock/acquire", r#"{"name": ""}"#.into(), 400, "INVALID_NAME"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "size": 0}"#.into(), 400, "INVALID_SIZE"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "size": 2}"#.into(), 409, "SIZE_MISMATCH"),
        ("/v1/lock/acquire", r#"{"name": "rest/a", "key": "has spaces"}"#.into(), 400, "INVALID_KEY"),
        ("/v1/lock/acquire", r#"{"name": "rest/a"}"#.into(), 423, "LOCK_BUSY"),
        ("/v1/lock/release", r#"{"name": "rest/a", "key": "stranger"}"#.into(), 409, "NOT_HOLDER"),
        ("/v1/lock/release", r#"{"name": "rest/nope", "key": "stranger"}"#.into(), 404, "NOT_FOUND"),
        ("/v1/lock/refresh", r#"{"name": "rest/a"}"#.into(), 400, "INVALID_ARGUMENT"),
    ];
    for (path, body, status, code) in cases {
        let (got, reply) = post(path, body.clone()).await;
        assert_eq!((got, reply["code"].as_str()), (status, Some(code)), "{path} {body}: {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, lock) = post("/v1/lock/describe", r#"{"name": "rest/a"}"#.into()).await;
    assert_eq!(lock["lock"]["holders"][0]["key"], key.as_str(), "no holder is lost");

    // Phase 3: a blocking wait over REST is handed the lock on release.
    let waiter = tokio::spawn(post("/v1/lock/acquire", r#"{"name": "rest/a", "wait_ms": 20000}"#.into()));
    let client = cluster.client(1).await;
    wait_for("the REST waiter to queue", Duration::from_secs(10), || async {
        client.describe("rest/a").await.ok()?.lock.filter(|l| l.waiters.len() == 1)
    })
    .await;
    let (code, _) = post("/v1/lock/release", format!(r#"{{"name": "rest/a", "key": "{key}"}}"#)).await;
    assert_eq!(code, 200);
    let (code, second) = waiter.await.unwrap();
    assert_eq!(code, 200, "{second}");
    assert!(second["fencing_token"].as_u64().unwrap() > token);

    // Phase 4: health, readiness, status and the OpenAPI description.
    assert_eq!(http(&addr, "GET", "/healthz", "").await.0, 200);
    // Ready once every group has a leader (a transfer leaves one briefly without).
    let ready = || async { (http(&addr, "GET", "/readyz", "").await.0 == 200).then_some(()) };
    wait_for("the node to be ready", Duration::from_secs(10), ready).await;
    let (code, status) = http(&addr, "GET", "/v1/admin/status", "").await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&status).unwrap()["groups"].as_array().unwrap().len(), GROUPS as usize);
    let (code, spec) = http(&addr, "GET", "/v1/openapi.json", "").await;
    assert_eq!((code, serde_json::from_str::<Value>(&spec).unwrap()["openapi"].as_str()), (200, Some("3.0.3")));
}

#[tokio::test]
async fn grpc_bad_input_gets_typed_errors() {
    let cluster = Cluster::start(1, GROUPS).await;
    let mut raw = cluster.raw(1).await;
    let held =
        raw.acquire(pb::AcquireRequest { name: b"g/a".to_vec(), ..Default::default() }).await.unwrap().into_inner();
    let cases: Vec<(pb::AcquireRequest, tonic::Code, ErrorCode)> = vec![
        (
            pb::AcquireRequest { name: vec![0xff, 0xfe], ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidName,
        ),
        (
            pb::AcquireRequest { name: vec![b'x'; 2000], ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidName,
        ),
        (
            pb::AcquireRequest { name: b"g/a".to_vec(), ttl_ms: Some(u64::MAX), ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidTtl,
        ),
        (
            pb::AcquireRequest { name: b"g/a".to_vec(), wait_ms: u64::MAX, ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidWait,
        ),
        (
            pb::AcquireRequest { name: b"g/a".to_vec(), size: Some(0), ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidSize,
        ),
        (
            pb::AcquireRequest { name: b"g/a".to_vec(), permits: Some(3), ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidPermits,
        ),
        (
            pb::AcquireRequest { name: b"g/a".to_vec(), key: "bad key".into(), ..Default::default() },
            tonic::Code::InvalidArgument,
            ErrorCode::InvalidKey,
        ),
        (pb::AcquireRequest { name: b"g/a".to_vec(), ..Default::default() }, tonic::Code::Aborted, ErrorCode::LockBusy),
    ];
    for (req, grpc, code) in cases {
        let status = raw.acquire(req.clone()).await.unwrap_err();
        assert_eq!((status.code(), ApiError::from_status(&status).code), (grpc, code), "{req:?}: {status:?}");
    }
    let release = pb::ReleaseRequest { name: b"g/a".to_vec(), key: "stranger".into() };
    let status = raw.release(release).await.unwrap_err();
    assert_eq!(ApiError::from_status(&status).code, ErrorCode::NotHolder);
    let lock = raw.describe(pb::DescribeRequest { name: b"g/a".to_vec() }).await.unwrap().into_inner().lock.unwrap();
    assert_eq!(lock.holders[0].key, held.key, "no holder is lost");
}

async fn cli(args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardlock")).args(args).kill_on_drop(true).output();
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("cli finished").expect("cli runs")
}

#[tokio::test]
async fn the_cli_runs_a_command_under_a_lock() {
    let cluster = Cluster::start(3, GROUPS).await;
    let addr = cluster.addr(1);
    let client = cluster.client(2).await;

    // Phase 1: `lock -- CMD` hands the key and token to the command, then releases.
    let out = cli(&[
        "lock",
        "cli/job",
        "--ttl",
        "10s",
        "--addr",
        &addr,
        "--",
        "sh",
        "-c",
        "echo token=$SHARDLOCK_FENCING_TOKEN key=$SHARDLOCK_KEY",
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("token=") && !stdout.contains("token= "), "{stdout}");
    wait_for("the cli lock's release", Duration::from_secs(10), || released(&client, "cli/job")).await;

    // Phase 2: the command's exit code passes through.
    let out = cli(&["lock", "cli/job", "--addr", &addr, "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(out.status.code(), Some(3));

    // Phase 3: losing the lock stops the command (SIGTERM) and exits 75.
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardlock"))
        .args(["lock", "cli/lost", "--ttl", "1s", "--addr", &addr, "--", "sleep", "60"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("the cli to hold cli/lost", Duration::from_secs(10), || async {
        client.describe("cli/lost").await.ok()?.lock.filter(|l| l.holders.len() == 1)
    })
    .await;
    let out = cli(&["admin", "force-release", "cli/lost", "--addr", &addr]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("released 1"));
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(status.status.code(), Some(75));

    // Phase 4: tables and JSON.
    client.acquire("cli/listed", ttl(30_000)).await.unwrap();
    let out = cli(&["list", "cli/", "--addr", &addr]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("cli/listed"));
    for args in [vec!["list", "cli/"], vec!["describe", "cli/listed"], vec!["status"]] {
        let mut full = args.clone();
        full.extend(["--json", "--addr", &addr]);
        let out = cli(&full).await;
        let parsed: Result<Value, _> = serde_json::from_slice(&out.stdout);
        assert!(parsed.is_ok(), "{args:?} --json printed {}", String::from_utf8_lossy(&out.stdout));
    }
    let out = cli(&["status", "--json", "--addr", &addr]).await;
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["healthy"], true);
    let out = cli(&["describe", "cli/listed", "--addr", "127.0.0.1:1"]).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("error:"));
}
