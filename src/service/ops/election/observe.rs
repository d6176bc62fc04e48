//! Observe: an election's leaders, as a stream: the leader (or none) at the
//! index the stream starts from, then every change.
//!
//! Built on the watch of the election's lock: the events of each applied
//! entry move the leadership (a grant, an end of the leader's hold, a
//! value change of the leader); each change is one item saying who leads
//! from that index on, `None` when nobody does. Commands are batched, so an
//! entry may change the leader more than once: each change is its own item
//! (never skipped), all with the entry's index, in order; a client that
//! resumes from that index skips the items of it it already had. A release
//! that hands the lock to the next campaigner is one entry: the next leader
//! follows with no "no leader" between, because there was none at any
//! index. Without `start_index` the stream starts with the leader in
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
            Item::Events(events) => changes(&election, &mut leader, &events),
            Item::Progress(_) => continue,
            Item::Compacted { group, oldest, applied } => vec![Observed::Compacted { group, oldest, applied }],
        };
        for out in out {
            let last = matches!(out, Observed::Compacted { .. });
            if tx.send(out).await.is_err() || last {
                return;
            }
        }
    }
}

/// The changes of leadership in one entry's events, in order. An entry may
/// hold several commands, so several leaders may follow each other in it:
/// each is an item (all of that entry's index). A leader's end is "no
/// leader" only if nobody was granted after it in the same entry (a
/// hand-off has no moment without a leader).
fn changes(election: &str, leader: &mut Known, events: &[Event]) -> Vec<Observed> {
    let (mut out, mut ended) = (Vec::new(), false);
    for event in events {
        let before = leader.clone();
        step(election, leader, event);
        match leader {
            _ if *leader == before => {}
            Some(Some(now)) => {
                ended = false;
                out.push(Observed::Leader { index: event.index, leader: Some(now.clone()) });
            }
            _ => ended = true,
        }
    }
    if ended {
        out.push(Observed::Leader { index: events.first().map_or(0, |e| e.index), leader: None });
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::LockKey;
    use crate::service::watch::event::sample;

    fn event(kind: Kind, key: &str, token: u64) -> Event {
        Event { kind, key: LockKey::new(key).unwrap(), token, ..sample("e", 7) }
    }

    fn terms(items: &[Observed]) -> Vec<Option<u64>> {
        items
            .iter()
            .map(|o| match o {
                Observed::Leader { index: 7, leader } => leader.as_ref().map(|l| l.term),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_leader_of_an_entry_is_an_item_and_a_hand_off_has_no_gap() {
        let mut leader: Known = Some(None);
        // One entry of several commands: a grant, a hand-off, a forced end
        // and a hand-off again.
        let entry = [
            event(Kind::Granted, "a", 1),
            event(Kind::Released, "a", 1),
            event(Kind::Granted, "b", 2),
            event(Kind::ForceReleased, "b", 2),
            event(Kind::Granted, "c", 3),
        ];
        assert_eq!(terms(&changes("e", &mut leader, &entry)), [Some(1), Some(2), Some(3)]);
        // The leader goes with nobody queued: no leader.
        assert_eq!(terms(&changes("e", &mut leader, &[event(Kind::Expired, "c", 3)])), [None]);
        // Queued and ended waits change nothing.
        assert!(changes("e", &mut leader, &[event(Kind::Queued, "d", 0), event(Kind::WaitEnded, "d", 0)]).is_empty());
        // Granted and gone in one entry: the leader, then no leader.
        let brief = [event(Kind::Granted, "d", 4), event(Kind::Released, "d", 4)];
        assert_eq!(terms(&changes("e", &mut leader, &brief)), [Some(4), None]);
    }
}
