//! A data directory of data format 1 (JSON log entries, JSON
//! snapshots, one command per entry, idle locks kept until `GcIdle`) opens
//! in this build and gives the table that version had.
//!
//! `tests/fixtures/format1/db.hex` is every key and value of that
//! node's RocksDB (`ldb scan --hex` of each column family), made by a
//! single node of the last version that wrote format 1 (commit 8cb2b10), with 2 groups and `snapshot_every_entries = 20`
//! (so snapshots were taken and the log purged behind them): grants,
//! releases, an expiry, a semaphore, a FIFO waiter, a timed-out wait, a
//! force-release, collected idle locks, and one idle lock (`idle/e`) that
//! was not yet collected when the node was killed. The expected answers are
//! what that version itself answered on a copy of that directory
//! (`expected-*.json` beside it).

use std::path::Path;
use std::time::Duration;

use shardlock::config::Config;
use shardlock::node::Node;
use shardlock::proto::v1 as pb;
use shardlock::proto::v1::lock_client::LockClient;
use shardlock::testing::{Db, CF_LOG, CF_META, CF_SNAPSHOTS};
use tonic::transport::Channel;

use crate::fixtures::harness::wait_for;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format1");

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim().trim_start_matches("0x");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Rebuilds the format-1 node's data directory under `dir`.
fn restore_fixture(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(Path::new(FIXTURE).join("IDENTITY"), dir.join("IDENTITY")).unwrap();
    let db = Db::open(&dir.join("db"), true).unwrap();
    let dump = std::fs::read_to_string(Path::new(FIXTURE).join("db.hex")).unwrap();
    let mut batch = rocksdb::WriteBatch::default();
    for line in dump.lines().filter(|l| !l.trim().is_empty()) {
        let (cf, rest) = line.split_once(' ').expect("cf name");
        let (key, value) = rest.split_once(" : ").expect("key : value");
        let cf = match cf {
            "raft_log" => CF_LOG,
            "raft_meta" => CF_META,
            "snapshots" => CF_SNAPSHOTS,
            other => panic!("unknown column family {other}"),
        };
        batch.put_cf(db.cf(cf).unwrap(), hex(key), hex(value));
    }
    db.write(batch).unwrap();
}

async fn start(dir: &Path, idle_grace_ms: u64) -> (Node, LockClient<Channel>) {
    let client = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        node_id: 1,
        groups: 2,
        data_dir: dir.to_owned(),
        client_addr: client.local_addr().unwrap().to_string(),
        peer_addr: peer.local_addr().unwrap().to_string(),
        idle_lock_grace_ms: idle_grace_ms,
        ..Config::default()
    };
    let node = Node::start_with(config, client, peer).await.expect("the format-1 data directory opens");
    let raw = LockClient::connect(format!("http://{}", node.client_addr())).await.unwrap();
    (node, raw)
}

async fn describe(raw: &LockClient<Channel>, name: &str) -> Option<pb::LockInfo> {
    let req = pb::DescribeRequest { name: name.as_bytes().to_vec() };
    raw.clone().describe(req).await.ok().map(|r| r.into_inner().lock)?
}

async fn wait_described(raw: &LockClient<Channel>, name: &str) -> pb::LockInfo {
    wait_for(&format!("{name} to be described"), Duration::from_secs(20), || describe(raw, name)).await
}

fn holders(lock: &pb::LockInfo) -> Vec<(String, u32, u64)> {
    lock.holders.iter().map(|h| (h.key.clone(), h.permits, h.fencing_token)).collect()
}

async fn acquire(raw: &LockClient<Channel>, name: &str, key: &str) -> u64 {
    let req = pb::AcquireRequest {
        name: name.as_bytes().to_vec(),
        key: key.into(),
        ttl_ms: Some(60_000),
        ..Default::default()
    };
    raw.clone().acquire(req).await.expect("acquire").into_inner().fencing_token
}

#[tokio::test]
async fn a_format_1_data_directory_opens_with_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    restore_fixture(&data);

    // Phase 1: the replayed table is the one format 1's writer answered with.
    let (node, raw) = start(&data, 60_000).await;
    let held = wait_described(&raw, "held/a").await;
    assert_eq!(holders(&held), vec![("ka".to_owned(), 1, 1)]);
    let pool = wait_described(&raw, "pool").await;
    assert_eq!((pool.size, holders(&pool)), (3, vec![("p1".to_owned(), 2, 4)]), "semaphore of size 3");
    let w = wait_described(&raw, "w").await;
    assert_eq!(holders(&w), vec![("w1".to_owned(), 1, 1)]);
    assert_eq!(w.waiters.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), vec!["w2"], "the FIFO waiter");
    let idle = wait_described(&raw, "idle/e").await;
    assert!(idle.holders.is_empty() && idle.waiters.is_empty(), "an old idle lock is still there, idle");
    for gone in ["exp/b", "idle/c", "idle/d", "f", "n/1", "n/20"] {
        assert!(describe(&raw, gone).await.is_none(), "{gone} ended before the upgrade");
    }
    let list = raw.clone().list(pb::ListRequest { limit: 100, ..Default::default() }).await.unwrap().into_inner();
    let names: Vec<String> = list.locks.iter().map(|l| String::from_utf8_lossy(&l.name).into_owned()).collect();
    let mut want = vec!["held/a".to_owned(), "idle/e".to_owned()];
    want.extend((21..=30).map(|i| format!("n/{i}")));
    want.extend(["pool".to_owned(), "w".to_owned()]);
    want.sort();
    assert_eq!(names, want);

    // Phase 2: fencing tokens continue where the format-1 counters were
    // (expected-probes.json), and new entries follow the current rules: a
    // release that empties a lock deletes it in the same apply.
    let tokens = [
        acquire(&raw, "probe/0", "kp0").await,
        acquire(&raw, "probe/1", "kp1").await,
        acquire(&raw, "probe/2", "kp2").await,
        acquire(&raw, "probe/3", "kp3").await,
    ];
    assert_eq!(tokens, [17, 25, 18, 19]);
    let release = pb::ReleaseRequest { name: b"probe/0".to_vec(), key: "kp0".into() };
    raw.clone().release(release).await.unwrap();
    assert!(describe(&raw, "probe/0").await.is_none(), "the release deleted the emptied lock");
    node.shutdown().await;

    // Phase 3: the log now holds both formats; it replays to the same table,
    // and the old idle lock is collected by the leader after its grace.
    let (node, raw) = start(&data, 200).await;
    let probe = wait_described(&raw, "probe/3").await;
    assert_eq!(holders(&probe), vec![("kp3".to_owned(), 1, 19)]);
    assert_eq!(holders(&wait_described(&raw, "pool").await), vec![("p1".to_owned(), 2, 4)]);
    assert!(describe(&raw, "probe/0").await.is_none());
    wait_for("the old idle lock to be collected", Duration::from_secs(20), || async {
        describe(&raw, "idle/e").await.is_none().then_some(())
    })
    .await;
    node.shutdown().await;
}
