//! Placement: which nodes hold a group, and which of them should lead it.
//!
//! Each group lives on `factor` nodes chosen by rendezvous (highest random
//! weight) hashing with bounded loads: every (group, node) pair has a score,
//! `xxh3(group, node)`, and pairs are taken best score first while the group
//! still needs replicas and the node is below its share. A node's share is
//! `groups × factor / nodes`, rounded down or up (the nodes that get one more
//! are ranked by their own hash), so no node holds more than one replica
//! more than another. Plain rendezvous hashing cannot promise that: with 64
//! groups on 12 nodes its loads differ by 10 or more. Where the greedy pass
//! leaves a group short (its best nodes filled up), an augmenting path moves
//! replicas along until a node with room takes one.
//!
//! Preferred leaders are chosen the same way among each group's replicas,
//! with shares of `groups / nodes`, so leaderships differ by at most one
//! between nodes.
//!
//! Invariants: the result depends only on (groups, the set of node ids,
//! factor), so every node computes the same placement from the same node
//! list; a group's replicas are distinct; with `factor >= nodes` every node
//! holds every group (a single node, or three nodes at the default factor,
//! behave as before). Because scores do not depend on the node count, a
//! joining node takes over the pairs it scores best on, and the other
//! replicas mostly stay where they were (tested below).

use std::collections::{BTreeSet, VecDeque};

use xxhash_rust::xxh3::xxh3_64;

use super::GroupId;

pub type NodeId = u64;

/// Where every group of a cluster lives and who should lead it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    replicas: Vec<Vec<NodeId>>,
    leaders: Vec<Option<NodeId>>,
}

impl Placement {
    /// The placement of `groups` groups on `nodes` with `factor` replicas each.
    pub fn new(groups: u32, nodes: &[NodeId], factor: usize) -> Self {
        let nodes: Vec<NodeId> = nodes.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let factor = factor.clamp(1, nodes.len().max(1));
        let replicas = if nodes.is_empty() {
            vec![Vec::new(); groups as usize]
        } else if factor == nodes.len() {
            vec![nodes.clone(); groups as usize]
        } else {
            assign(groups, &nodes, factor, |_, _| true, Salt::Replica)
        };
        let leaders = assign(groups, &nodes, 1, |g, n| replicas[g].contains(&n), Salt::Leader);
        let leaders = leaders.into_iter().map(|l| l.first().copied()).collect();
        Self { replicas, leaders }
    }

    /// The nodes that hold `group`, in id order.
    pub fn replicas(&self, group: GroupId) -> &[NodeId] {
        self.replicas.get(group as usize).map_or(&[], |r| r.as_slice())
    }

    /// The node that should lead `group` when it is healthy.
    pub fn preferred_leader(&self, group: GroupId) -> Option<NodeId> {
        self.leaders.get(group as usize).copied().flatten()
    }

    /// How many groups `node` holds a replica of.
    pub fn load(&self, node: NodeId) -> usize {
        self.replicas.iter().filter(|r| r.contains(&node)).count()
    }
}

/// A deterministic choice among a group's current voters, for when no
/// placement applies (the successor of a dead leader): the `g % n`-th in
/// id order.
pub fn fallback_leader(group: GroupId, voters: &[NodeId]) -> Option<NodeId> {
    let ids: Vec<NodeId> = voters.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    (!ids.is_empty()).then(|| ids[group as usize % ids.len()])
}

#[derive(Clone, Copy)]
enum Salt {
    Replica = 0,
    Leader = 1,
}

fn score(salt: Salt, group: usize, node: NodeId) -> u64 {
    let mut bytes = [0u8; 17];
    bytes[0] = salt as u8;
    bytes[1..9].copy_from_slice(&(group as u64).to_le_bytes());
    bytes[9..].copy_from_slice(&node.to_le_bytes());
    xxh3_64(&bytes)
}

/// Each node's share of `total` picks: the floor, and one more for the
/// `total % nodes` nodes that rank first by their own hash.
fn shares(nodes: &[NodeId], total: usize) -> Vec<usize> {
    let (base, extra) = (total / nodes.len(), total % nodes.len());
    let mut ranked: Vec<usize> = (0..nodes.len()).collect();
    ranked.sort_by_key(|&i| (xxh3_64(&nodes[i].to_le_bytes()), nodes[i]));
    let mut caps = vec![base; nodes.len()];
    for &i in ranked.iter().take(extra) {
        caps[i] += 1;
    }
    caps
}

/// Picks `need` distinct allowed nodes for every group, best scores first,
/// no node above its share (loosened only where no assignment fits).
fn assign(
    groups: u32,
    nodes: &[NodeId],
    need: usize,
    allowed: impl Fn(usize, NodeId) -> bool,
    salt: Salt,
) -> Vec<Vec<NodeId>> {
    let groups = groups as usize;
    if nodes.is_empty() {
        return vec![Vec::new(); groups];
    }
    let mut state = State { picks: vec![Vec::new(); groups], load: vec![0; nodes.len()], caps: Vec::new() };
    state.caps = shares(nodes, groups * need);
    let mut pairs: Vec<(u64, usize, usize)> = Vec::with_capacity(groups * nodes.len());
    for g in 0..groups {
        for (i, &n) in nodes.iter().enumerate() {
            if allowed(g, n) {
                pairs.push((score(salt, g, n), g, i));
            }
        }
    }
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    for &(_, g, i) in &pairs {
        if state.picks[g].len() < need && state.load[i] < state.caps[i] {
            state.take(g, i);
        }
    }
    let edges = |g: usize, i: usize| allowed(g, nodes[i]);
    for g in 0..groups {
        while state.picks[g].len() < need {
            if !state.augment(g, nodes.len(), &edges) && !state.loosen(g, &edges) {
                break;
            }
        }
    }
    state.picks.iter().map(|p| p.iter().map(|&i| nodes[i]).collect::<BTreeSet<_>>().into_iter().collect()).collect()
}

/// A partial assignment: node indexes per group, picks per node, shares.
struct State {
    picks: Vec<Vec<usize>>,
    load: Vec<usize>,
    caps: Vec<usize>,
}

impl State {
    fn take(&mut self, g: usize, i: usize) {
        self.picks[g].push(i);
        self.load[i] += 1;
    }

    /// Finds a chain: `g` takes node n1 from group y1, y1 takes n2 from y2,
    /// ..., the last takes a node with room; applies it. False when none exists.
    fn augment(&mut self, g: usize, nodes: usize, allowed: &impl Fn(usize, usize) -> bool) -> bool {
        // taker[node]: the group that would take it; via[group]: the node it gives up.
        let mut taker: Vec<Option<usize>> = vec![None; nodes];
        let mut via: Vec<Option<usize>> = vec![None; self.picks.len()];
        let mut seen = vec![false; self.picks.len()];
        seen[g] = true;
        let mut queue = VecDeque::from([g]);
        while let Some(x) = queue.pop_front() {
            for i in 0..nodes {
                if taker[i].is_some() || self.picks[x].contains(&i) || !allowed(x, i) {
                    continue;
                }
                taker[i] = Some(x);
                if self.load[i] < self.caps[i] {
                    self.apply_chain(i, &taker, &via);
                    return true;
                }
                for y in 0..self.picks.len() {
                    if !seen[y] && self.picks[y].contains(&i) {
                        seen[y] = true;
                        via[y] = Some(i);
                        queue.push_back(y);
                    }
                }
            }
        }
        false
    }

    /// Walks the chain back from `end`, the node with room.
    fn apply_chain(&mut self, end: usize, taker: &[Option<usize>], via: &[Option<usize>]) {
        self.load[end] += 1;
        let mut node = end;
        loop {
            let x = taker[node].expect("every node of a chain has a taker");
            self.picks[x].push(node);
            let Some(given_up) = via[x] else { return };
            self.picks[x].retain(|&p| p != given_up);
            node = given_up;
        }
    }

    /// No chain fits the shares: let the least loaded allowed node take one more.
    fn loosen(&mut self, g: usize, allowed: &impl Fn(usize, usize) -> bool) -> bool {
        let pick = (0..self.load.len())
            .filter(|&i| !self.picks[g].contains(&i) && allowed(g, i))
            .min_by_key(|&i| (self.load[i], i));
        match pick {
            Some(i) => {
                self.caps[i] += 1;
                self.take(g, i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[path = "placement_test.rs"]
mod tests;
