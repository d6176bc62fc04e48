//! Membership: a node joins the cluster and takes the replicas placement
//! gives it (learner first, then voter), another leaves and its replicas
//! move away, while the locks stay available; the node that left knows it.

use std::time::Duration;

use shardlock::client::AcquireOptions;
use shardlock::error::{row, ApiError};
use shardlock::proto::v1 as pb;
use shardlock::routing::Placement;

use crate::fixtures::harness::{http, wait_for, Cluster};

const GROUPS: u32 = 4;

#[tokio::test]
async fn nodes_join_and_leave_and_replicas_follow_placement() {
    // Quiet after 300 ms: each change meets quiet leaders (lapsed leases).
    let mut cluster = Cluster::processes(3, GROUPS, "[raft]\nquiesce_after_ms = 300\n").await;
    let client = cluster.client(2).await;
    let held =
        client.acquire("member/a", AcquireOptions { ttl_ms: Some(120_000), ..Default::default() }).await.unwrap();

    // Phase 1: node 4 starts without bootstrapping, then an operator adds it:
    // with 4 nodes at factor 3 it holds 3 of the 4 groups.
    let four = cluster.spawn_joiner().await;
    let (c, p) = (cluster.addr(four), cluster.peer_addr(four));
    let share = Placement::new(GROUPS, &[1, 2, 3, 4], 3).load(4) as u32;
    assert_eq!(share, 3);
    assert_eq!(client.add_node(four, &c, &p).await.unwrap(), share);
    assert_eq!(client.add_node(four, &c, &p).await.unwrap(), share, "adding twice is harmless");
    let voters = cluster.wait_placed(&[1, 2, 3, 4]).await;
    assert!(voters.iter().all(|v| v.len() == 3), "three voters per group: {voters:?}");
    assert_eq!(voters.iter().filter(|v| v.contains(&4)).count() as u32, share);
    let joined = cluster.client(four).await;
    let lock = joined.describe("member/a").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].key, held.key);

    // Phase 2: node 1 leaves; its replicas move to 2, 3 and 4; it stops.
    let held_by_one = Placement::new(GROUPS, &[1, 2, 3, 4], 3).load(1) as u32;
    assert_eq!(client.remove_node(1).await.unwrap(), held_by_one);
    let voters = cluster.wait_placed(&[2, 3, 4]).await;
    assert!(voters.iter().all(|v| v == &[2, 3, 4]), "node 1 out of every group: {voters:?}");

    // Phase 3: node 1, still running, knows it was removed: its status
    // says so, a client call gets a retryable error naming the cluster's
    // nodes, and its readiness probe fails, so it is safe to stop.
    let removed = cluster.client(1).await;
    let status = wait_for("node 1 to know it was removed", Duration::from_secs(20), || async {
        removed.status().await.ok().filter(|s| s.removed)
    })
    .await;
    assert_eq!(status.node_id, 1);
    let mut raw = cluster.raw(1).await;
    let refused = raw.describe(pb::DescribeRequest { name: b"member/a".to_vec() }).await.unwrap_err();
    let refused = ApiError::from_status(&refused);
    assert!(row(refused.code).retryable, "{refused:?}");
    assert!(refused.message.contains("removed") && refused.message.contains(&cluster.addr(2)), "{}", refused.message);
    let (code, body) = http(&cluster.addr(1), "GET", "/readyz", "").await;
    assert_eq!(code, 503, "{body}");
    cluster.kill(1);
    let lock = client.describe("member/a").await.unwrap().lock.unwrap();
    assert_eq!(lock.holders[0].fencing_token, held.fencing_token);
    let next = joined.acquire("member/b", AcquireOptions::default()).await.unwrap();
    assert!(next.fencing_token > 0);
    client.release("member/a", &held.key).await.unwrap();
}
