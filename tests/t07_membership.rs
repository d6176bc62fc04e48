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

/// A removed node that keeps running keeps the node list it had when it
/// left, which the cluster outgrows. A client that reaches it first (its
/// only seed) takes its list only when no member answers: it follows the
/// nodes the removed node names to one that is still in the cluster.
#[tokio::test]
async fn a_client_does_not_take_its_view_from_a_removed_node() {
    let mut cluster = Cluster::processes(3, GROUPS, "").await;
    let admin = cluster.client(3).await;
    admin.remove_node(1).await.unwrap();
    cluster.wait_placed(&[2, 3]).await;
    let four = cluster.spawn_joiner().await;
    admin.add_node(four, &cluster.addr(four), &cluster.peer_addr(four)).await.unwrap();
    cluster.wait_placed(&[2, 3, 4]).await;

    // Node 1 still runs, and still lists the cluster of before node 4.
    let mut stale = pb::admin_client::AdminClient::connect(format!("http://{}", cluster.addr(1))).await.unwrap();
    let status = stale.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert!(status.removed);
    assert!(status.nodes.iter().all(|n| n.node_id != four), "node 1's list is the old one: {:?}", status.nodes);

    let client = shardlock::client::Client::connect(&cluster.addr(1)).await.unwrap();
    let mut nodes: Vec<u64> = client.topology().nodes.keys().copied().collect();
    nodes.sort();
    assert_eq!(nodes, [2, 3, 4], "the view of a member, not of the removed seed");
    let grant = client.acquire("member/after", AcquireOptions::default()).await.unwrap();
    client.release("member/after", &grant.key).await.unwrap();
}
