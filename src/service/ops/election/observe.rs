//! Observe: an election's leaders, as a stream: the leader (or none) at the
//! index the stream starts from, then every change.
//!
//! Built on the watch of the election's lock: the events of each applied
//! entry move the leadership (a grant, an end of the leader's hold, a
//! value change of the leader); after each entry that changed it, one
//! item says who leads from that index on, `None` when nobody does. A
//! release that hands the lock to the next campaigner is one entry: the
//! next leader follows with no "no leader" between, because there was none
//! at any index. Without `start_index` the stream starts with the leader in
//! this node's replica, at the index that replica reflects (on a node
//! without one, with a linearizable read at the index it reflects); a resumed
//! stream starts not knowing who leads, and learns from the first change.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::leader::Leader;
use super::Leadership;
use crate::error::ApiError;
use crate::lock::{LockTable, Mode};
use crate::routing::GroupId;
use crate::service::ops::watch::{Watch, Watching};
use crate::service::watch::{Event, Filter, Item, Kind};
use crate::service::LockService;

#[derive(Clone, Debug)]
pub struct Observe {
    pub election: String,
    /// Resume after the last item received; `None`: from the leader now.
    pub start_index: Option<u64>,
}

/// One item of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// From log index `index` on, `leader` leads (`None`: nobody does).
    Leader { index: u64, leader: Option<Leadership> },
    /// The last item: the history the stream needed is gone; `Leader` says
    /// who leads now, and observing again goes on from there.
    Compacted { group: GroupId, oldest: u64, applied: u64 },
}

impl Observe {
    pub async fn run(self, svc: &LockService) -> Result<mpsc::Receiver<Observed>, ApiError> {
        svc.config().limits.check_name(&self.election)?;
        let group = svc.group_of(&self.election);
        let mut first = None;
        let start = match self.start_index {
            Some(index) => index,
            None if svc.cluster().hosts(group) => {
                let state = svc.groups().state(group);
                let (leader, index) = state.read_at(|table| leader_in(table, &self.election));
                first = Some(Observed::Leader { index, leader });
                index + 1
            }
            // Not held here: who leads, read where the group is (the watch
            // below is relayed from there).
            None => {
                let now = Leader { election: self.election.clone() }.run(svc).await?;
                first = Some(Observed::Leader { index: now.meta.index, leader: now.leader });
                now.meta.index + 1
            }
        };
        let watch = Watch {
            filter: Filter::Name(self.election.clone()),
            start: BTreeMap::from([(group, start)]),
            progress_ms: Some(60_000),
        };
        let watching = watch.run(svc).await?;
        let (tx, rx) = mpsc::channel(64);
        let known = match &first {
            Some(Observed::Leader { leader, .. }) => Some(leader.clone()),
            _ => None,
        };
        tokio::spawn(relay(self.election, watching, known, first, tx));
        Ok(rx)
    }
}

/// The election's leader in `table`.
fn leader_in(table: &LockTable, election: &str) -> Option<Leadership> {
    let lock = table.get(election)?;
    let (key, h) = lock.holders().iter().find(|(_, h)| h.mode == Mode::Exclusive)?;
    Some(Leadership {
        election: election.to_owned(),
        key: key.clone(),
        term: h.token,
        value: table.value_of(election, key).cloned().unwrap_or_default(),
        ttl_ms: h.ttl_ms,
    })
}

/// Who leads, as the stream knows it: `None` until it knows (a resumed
/// stream), then `Some(None)` for no leader.
type Known = Option<Option<Leadership>>;

/// Turns the watch's events into leaderships, one item per entry that
/// changed who leads or the leader's value.
async fn relay(
    election: String,
    mut watching: Watching,
    mut leader: Known,
    first: Option<Observed>,
    tx: mpsc::Sender<Observed>,
) {
    if let Some(first) = first {
        if tx.send(first).await.is_err() {
            return;
        }
    }
    while let Some(item) = watching.items.recv().await {
        let out = match item {
            Item::Events(events) => {
                let before = leader.clone();
                for event in &events {
                    step(&election, &mut leader, event);
                }
                if leader == before {
                    continue;
                }
                let index = events.first().map_or(0, |e| e.index);
                Observed::Leader { index, leader: leader.clone().flatten() }
            }
            Item::Progress(_) => continue,
            Item::Compacted { group, oldest, applied } => Observed::Compacted { group, oldest, applied },
        };
        let last = matches!(out, Observed::Compacted { .. });
        if tx.send(out).await.is_err() || last {
            return;
        }
    }
}

/// Moves the leadership by one event of the election's lock. The lock has
/// size 1, so an exclusive hold that ends is the leader's, and a value
/// that changes is the leader's (election locks have no shared holders).
fn step(election: &str, leader: &mut Known, event: &Event) {
    let elected = |ttl_ms| Leadership {
        election: election.to_owned(),
        key: event.key.clone(),
        term: event.token,
        value: event.value.clone().unwrap_or_default(),
        ttl_ms,
    };
    match event.kind {
        Kind::Granted if event.mode == Mode::Exclusive => *leader = Some(Some(elected(event.ttl_ms))),
        Kind::Released | Kind::Expired | Kind::ForceReleased if event.mode == Mode::Exclusive => *leader = Some(None),
        Kind::Downgraded => *leader = Some(None),
        Kind::ValueChanged => match leader {
            Some(Some(l)) if l.key == event.key => l.value = event.value.clone().unwrap_or_default(),
            // A stream that resumed learns of the leader from its value.
            _ => *leader = Some(Some(elected(0))),
        },
        _ => {}
    }
}
