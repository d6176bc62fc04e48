//! Watch streams on real nodes: every kind of change, in log order with no
//! gaps, resumed across a node's death and read again after its restart;
//! a history that runs out ends the stream with COMPACTED, and the client
//! recovers; REST serves the same as server-sent events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;
use shardlock::client::{AcquireOptions, WatchItem, WatchOptions, WatchTarget};
use shardlock::error::ErrorCode;
use shardlock::proto::v1 as pb;
use shardlock::routing::group_of;

use crate::fixtures::harness::{wait_for, Cluster, CurlStream};

const GROUPS: u32 = 4;
use pb::watch_event::Kind;

/// The next events from `stream`, skipping progress, within 20 s.
async fn events(
    stream: &mut (impl Stream<Item = Result<WatchItem, shardlock::error::ApiError>> + Unpin),
) -> Vec<pb::WatchEvent> {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("a watch item in time");
        match item.expect("the stream goes on").expect("no error") {
            WatchItem::Events(events) => return events,
            WatchItem::Progress(_) => {}
            WatchItem::Compacted(c) => panic!("unexpected compaction {c:?}"),
        }
    }
}

/// Reads events until `n` of them arrived.
async fn take(
    stream: &mut (impl Stream<Item = Result<WatchItem, shardlock::error::ApiError>> + Unpin),
    n: usize,
) -> Vec<pb::WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(events(stream).await);
    }
    out
}

fn kinds(events: &[pb::WatchEvent]) -> Vec<(Kind, String)> {
    events.iter().map(|e| (Kind::try_from(e.kind).unwrap(), e.key.clone())).collect()
}

fn key(k: &str, wait_ms: u64) -> AcquireOptions {
    AcquireOptions { key: Some(k.into()), wait_ms, ..Default::default() }
}

/// Events of one group come in index order, each (index, position) once.
fn in_order_without_repeats(events: &[pb::WatchEvent]) {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for e in events {
        let before = last.insert(e.group, e.index).unwrap_or(0);
        assert!(e.index >= before, "group {} went back from {before} to {}", e.group, e.index);
        assert!(seen.insert((e.group, e.index, e.kind, e.key.clone())), "an event came twice: {e:?}");
    }
}

#[tokio::test]
async fn every_change_in_order_across_a_node_death_and_restart() {
    // No snapshot during the test: a restarted node replays the whole log.
    let mut cluster = Cluster::processes(3, GROUPS, "[raft]\nsnapshot_every_entries = 100000\n").await;
    let client = cluster.client(1).await;
    let name = "w/a";
    let mut stream = Box::pin(client.watch(WatchTarget::Name(name.into()), WatchOptions::default()));
    // The first message says where the stream starts.
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, WatchItem::Progress(_)), "{first:?}");

    // Grant (with a value), queue, hand-off on release, value change,
    // downgrade, a wait that times out, an expiry, a forced release.
    let opts = AcquireOptions { value: Some(b"v1".to_vec()), ..key("k1", 0) };
    client.acquire(name, opts).await.unwrap();
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.acquire(name, key("k2", 30_000)).await }
    });
    let seen = take(&mut stream, 2).await;
    assert_eq!(kinds(&seen), [(Kind::Granted, "k1".into()), (Kind::Queued, "k2".into())]);
    assert_eq!(seen[0].value.as_deref(), Some(&b"v1"[..]), "the grant's value");
    client.release(name, "k1").await.unwrap();
    waiter.await.unwrap().unwrap();
    let handoff = take(&mut stream, 2).await;
    assert_eq!(kinds(&handoff), [(Kind::Released, "k1".into()), (Kind::Granted, "k2".into())]);
    assert_eq!(handoff[0].index, handoff[1].index, "a hand-off is one entry");
    assert_eq!(handoff[1].reason, "handoff");
    client.set_value(name, "k2", Some(b"v2".to_vec())).await.unwrap();
    client.downgrade(name, "k2").await.unwrap();
    let timed_out = client.acquire(name, key("k3", 300)).await.unwrap_err();
    assert_eq!(timed_out.code, ErrorCode::WaitTimeout);
    let more = take(&mut stream, 4).await;
    assert_eq!(
        kinds(&more),
        [
            (Kind::ValueChanged, "k2".into()),
            (Kind::Downgraded, "k2".into()),
            (Kind::Queued, "k3".into()),
            (Kind::WaitEnded, "k3".into())
        ]
    );
    assert_eq!(
        (more[0].value.as_deref(), more[1].mode, more[3].reason.as_str()),
        (Some(&b"v2"[..]), pb::Mode::Shared as i32, "timed_out")
    );
    client.force_release(name, None).await.unwrap();
    client.acquire(name, AcquireOptions { ttl_ms: Some(600), ..key("k4", 0) }).await.unwrap();
    let ended = take(&mut stream, 3).await;
    assert_eq!(
        kinds(&ended),
        [(Kind::ForceReleased, "k2".into()), (Kind::Granted, "k4".into()), (Kind::Expired, "k4".into())]
    );
    let mut all: Vec<pb::WatchEvent> = [seen, handoff, more, ended].concat();

    // The node the stream reads from dies: the client resumes elsewhere
    // after the last index it delivered, with nothing lost or repeated.
    let group = group_of(name.as_bytes(), GROUPS);
    let leader = cluster.leader_of(name, 2).await;
    cluster.kill(leader);
    let survivor = cluster.alive()[0];
    let other = cluster.client(survivor).await;
    for i in 0..5 {
        let k = format!("after{i}");
        other.acquire(name, key(&k, 10_000)).await.unwrap();
        other.release(name, &k).await.unwrap();
    }
    let after = take(&mut stream, 10).await;
    assert!(after.iter().all(|e| e.key.starts_with("after")), "{after:?}");
    all.extend(after);
    in_order_without_repeats(&all);

    // Restarted, the node rebuilds its history from its log: a watch on it
    // from the first index seen replays the same events.
    cluster.restart(leader).await;
    cluster.wait_ready().await;
    let replay = wait_for("the restarted node to replay its history", Duration::from_secs(30), || async {
        let req = pb::WatchRequest {
            target: Some(pb::watch_request::Target::Name(name.as_bytes().to_vec())),
            start_index: [(group, all[0].index)].into(),
            progress_ms: 0,
        };
        // Pinned to the restarted node: no routing.
        let mut raw = cluster.raw(leader).await.watch(req).await.ok()?.into_inner();
        let mut got = Vec::new();
        while got.len() < all.len() {
            let resp = tokio::time::timeout(Duration::from_secs(5), raw.message()).await.ok()?.ok()??;
            got.extend(resp.events);
        }
        Some(got)
    })
    .await;
    assert_eq!(replay, all, "a replica replays the same events at the same indexes");
}

#[tokio::test]
async fn a_prefix_watch_spans_groups_and_a_lost_history_says_compacted() {
    let cluster = Cluster::start_with(3, GROUPS, "watch_history = 8\n").await;
    let client = cluster.client(2).await;
    let mut stream = Box::pin(client.watch(WatchTarget::Prefix("p/".into()), WatchOptions::default()));
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    let WatchItem::Progress(starts) = first else { panic!("{first:?}") };
    assert_eq!(starts.len(), GROUPS as usize, "every group's starting point");
    let names: Vec<String> = (0..8).map(|i| format!("p/{i}")).collect();
    for n in &names {
        let g = client.acquire(n, AcquireOptions::default()).await.unwrap();
        client.release(n, &g.key).await.unwrap();
        client.acquire("elsewhere", AcquireOptions::default()).await.ok();
    }
    let seen = take(&mut stream, 16).await;
    let locks: BTreeSet<String> = seen.iter().map(|e| String::from_utf8_lossy(&e.name).into_owned()).collect();
    assert_eq!(locks, names.iter().cloned().collect(), "only the prefix's locks");
    in_order_without_repeats(&seen);
    // More than 8 events in p/0's group push its oldest out.
    for _ in 0..10 {
        let g = client.acquire("p/0", AcquireOptions::default()).await.unwrap();
        client.release("p/0", &g.key).await.unwrap();
    }

    // A watch from index 1 asks for more than 8 events back.
    let group = group_of(b"p/0", GROUPS);
    let start = BTreeMap::from([(group, 1)]);
    let mut old = Box::pin(client.watch(WatchTarget::Name("p/0".into()), WatchOptions { start, progress_ms: 0 }));
    let compacted = loop {
        match tokio::time::timeout(Duration::from_secs(10), old.next()).await.unwrap().unwrap().unwrap() {
            WatchItem::Compacted(c) => break c,
            WatchItem::Progress(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(compacted.group, group);
    assert!(compacted.oldest_index > 1 && compacted.current_index >= compacted.oldest_index, "{compacted:?}");
    assert!(old.next().await.is_none(), "the stream ends after compacted");
    // Recover: re-read, then watch from the current index on.
    let now = client.describe("p/0").await.unwrap();
    assert!(now.lock.is_none(), "released above");
    let start = BTreeMap::from([(group, compacted.current_index + 1)]);
    let mut fresh = Box::pin(client.watch(WatchTarget::Name("p/0".into()), WatchOptions { start, progress_ms: 0 }));
    client.acquire("p/0", key("again", 0)).await.unwrap();
    assert_eq!(kinds(&take(&mut fresh, 1).await), [(Kind::Granted, "again".into())]);

    // REST: the same as server-sent events; an old start says compacted.
    let mut sse = CurlStream::get(&cluster.addr(3), "/v1/lock/watch?prefix=p%2F");
    let (event, data) = sse.event(Duration::from_secs(10)).await.expect("the first event");
    assert_eq!(event, "progress", "{data}");
    client.release("p/0", "again").await.unwrap();
    let (event, data) = sse.event(Duration::from_secs(10)).await.expect("an event");
    assert_eq!(event, "events", "{data}");
    let released: Value = serde_json::from_str(&data).unwrap();
    assert_eq!((released[0]["kind"].as_str(), released[0]["key"].as_str()), (Some("released"), Some("again")));
    let mut stale = CurlStream::get(&cluster.addr(3), &format!("/v1/lock/watch?name=p%2F0&start={group}:1"));
    let mut last = String::new();
    while let Some((event, _)) = stale.event(Duration::from_secs(10)).await {
        last = event;
        if last == "compacted" {
            break;
        }
    }
    assert_eq!(last, "compacted");
}

/// A watch opened on a node without a replica of the group: the node
/// relays the group's events from one that holds it.
async fn raw_watch(
    cluster: &Cluster,
    node: u64,
    target: pb::watch_request::Target,
    start: BTreeMap<u32, u64>,
) -> tonic::Streaming<pb::WatchResponse> {
    let req = pb::WatchRequest { target: Some(target), start_index: start.into_iter().collect(), progress_ms: 0 };
    cluster.raw(node).await.watch(req).await.expect("the node serves the watch").into_inner()
}

/// Events from a raw stream until `n` of them arrived, within 20 s.
async fn raw_take(stream: &mut tonic::Streaming<pb::WatchResponse>, n: usize) -> Vec<pb::WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let resp = tokio::time::timeout(Duration::from_secs(20), stream.message()).await.expect("in time");
        let resp = resp.expect("no error").expect("the stream goes on");
        assert!(resp.compacted.is_none(), "{resp:?}");
        out.extend(resp.events);
    }
    out
}

#[tokio::test]
async fn a_node_without_a_replica_relays_the_groups_it_lacks() {
    let cluster = Cluster::start_with(4, GROUPS, "replication_factor = 3\n").await;
    let voters = cluster.wait_placed(&[1, 2, 3, 4]).await;
    // A node that holds no replica of some group, and a lock of that group.
    let (group, node) = (0..GROUPS)
        .find_map(|g| (1..=4).find(|n| !voters[g as usize].contains(n)).map(|n| (g, n)))
        .expect("with 4 nodes and 3 replicas, each group lacks a node");
    let name = (0..).map(|i| format!("relay/{i}")).find(|n| group_of(n.as_bytes(), GROUPS) == group).unwrap();
    let client = cluster.client(1).await;

    // One lock, and a prefix spanning held and relayed groups, watched on
    // that node, pinned (no client-side routing).
    let mut one =
        raw_watch(&cluster, node, pb::watch_request::Target::Name(name.clone().into_bytes()), BTreeMap::new()).await;
    let mut all =
        raw_watch(&cluster, node, pb::watch_request::Target::Prefix(b"relay/".to_vec()), BTreeMap::new()).await;
    for stream in [&mut one, &mut all] {
        let first = stream.message().await.unwrap().unwrap();
        assert!(first.events.is_empty() && first.progress.len() >= 1, "first, where it starts: {first:?}");
    }
    let names: Vec<String> = (0..8).map(|i| format!("relay/{i}")).chain([name.clone()]).collect();
    for n in &names {
        let g = client.acquire(n, key(&format!("k-{n}").replace('/', "-"), 0)).await.unwrap();
        client.release(n, &g.key).await.unwrap();
    }
    let seen = raw_take(&mut one, 2).await;
    assert_eq!(
        kinds(&seen),
        [
            (Kind::Granted, format!("k-{name}").replace('/', "-")),
            (Kind::Released, format!("k-{name}").replace('/', "-"))
        ]
    );
    assert!(seen.iter().all(|e| e.group == group));
    let spanned = raw_take(&mut all, 2 * names.len()).await;
    in_order_without_repeats(&spanned);
    let groups: BTreeSet<u32> = spanned.iter().map(|e| e.group).collect();
    assert!(groups.contains(&group), "the relayed group's events came: {groups:?}");

    // Resumed on the same node from the first event's index, the relay
    // replays the same events.
    let start = BTreeMap::from([(group, seen[0].index)]);
    let mut again = raw_watch(&cluster, node, pb::watch_request::Target::Name(name.clone().into_bytes()), start).await;
    assert_eq!(raw_take(&mut again, 2).await, seen, "the same events at the same indexes");

    // The election of that group, observed there: who leads now, then each change.
    let mut elections =
        shardlock::proto::v1::election_client::ElectionClient::connect(format!("http://{}", cluster.addr(node)))
            .await
            .unwrap();
    let mut observed = elections
        .observe(pb::ObserveRequest { election: name.clone().into_bytes(), start_index: None })
        .await
        .unwrap()
        .into_inner();
    let now = tokio::time::timeout(Duration::from_secs(20), observed.message()).await.unwrap().unwrap().unwrap();
    assert!(now.leader.is_none(), "nobody leads yet: {now:?}");
    let leading = client.campaign(&name, b"primary", Default::default()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), observed.message()).await.unwrap().unwrap().unwrap();
    assert_eq!(next.leader.map(|l| l.term), Some(leading.term()), "the new leader, relayed");
}
