//! One watcher's feed: the events of the locks it watches, read from each
//! group's history as entries are applied, and sent in log order per group.
//!
//! Invariants: a feed first sends `Progress` with each group's starting
//! point (the index before its cursor), so a client knows where to resume
//! every group from its first message on; it reads every watched group
//! from its cursor with no gap (it moves a cursor only past what it read);
//! it sends the events of one entry in one item; it ends without a word
//! when a history it reads is closed (a relay lost its source); it says `Progress` when
//! nothing it watches
//! changed for `progress_every`; it ends after `Compacted` when a group's
//! history no longer reaches its cursor, or when its receiver is gone; it
//! never holds a history lock across an `.await`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{select_all, FutureExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::history::{Entry, History, Read};
use super::Event;
use crate::metrics::{WATCHES, WATCH_COMPACTED, WATCH_DELAY, WATCH_EVENTS};
use crate::routing::GroupId;

/// Which locks a feed watches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Filter {
    Name(String),
    /// Every lock whose name starts with it (all locks when empty).
    Prefix(String),
}

impl Filter {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Filter::Name(n) => n == name,
            Filter::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// What a feed sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// The watched events of one entry (one group, one index), in order.
    Events(Vec<Event>),
    /// Nothing watched changed: per watched group, the index applied so far.
    Progress(Vec<(GroupId, u64)>),
    /// The last item: `group`'s history no longer reaches back to the
    /// feed's cursor; events before `oldest` are gone, and the group is at
    /// `applied`.
    Compacted { group: GroupId, oldest: u64, applied: u64 },
}

pub struct Feed {
    pub filter: Filter,
    /// Per watched group, the next index to read, and the history read: the
    /// node's own, or a relay's copy.
    pub cursors: Vec<Cursor>,
    pub progress_every: Duration,
}

pub struct Cursor {
    pub group: GroupId,
    pub next: u64,
    pub history: Arc<History>,
}

/// Counts an open feed in the `WATCHES` gauge while it lives.
struct Open;

impl Open {
    fn new() -> Self {
        metrics::gauge!(WATCHES).increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(WATCHES).decrement(1.0);
    }
}

impl Feed {
    /// Runs the feed in its own task; its items arrive on the receiver,
    /// which may hold up to `buffer` of them.
    pub fn spawn(self, buffer: usize) -> mpsc::Receiver<Item> {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(mut self, tx: mpsc::Sender<Item>) {
        let _open = Open::new();
        let mut wakers: Vec<_> = self.cursors.iter().filter_map(|c| c.history.subscribe(c.group)).collect();
        let mut quiet_since = Instant::now();
        if tx.send(Item::Progress(self.reached())).await.is_err() {
            return;
        }
        loop {
            let mut sent = false;
            for i in 0..self.cursors.len() {
                let (group, cursor) = (self.cursors[i].group, self.cursors[i].next);
                match self.cursors[i].history.read(group, cursor) {
                    Read::Closed => return, // The stream ends; its client resumes elsewhere.
                    Read::Compacted { oldest, applied } => {
                        metrics::counter!(WATCH_COMPACTED).increment(1);
                        let _ = tx.send(Item::Compacted { group, oldest, applied }).await;
                        return;
                    }
                    Read::Entries { entries, applied } => {
                        for entry in &entries {
                            if let Some(item) = self.matching(entry) {
                                sent = true;
                                if tx.send(item).await.is_err() {
                                    return;
                                }
                            }
                        }
                        self.cursors[i].next = cursor.max(applied + 1);
                    }
                }
            }
            if sent {
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= self.progress_every {
                if tx.send(Item::Progress(self.reached())).await.is_err() {
                    return;
                }
                quiet_since = Instant::now();
            }
            let changed = async {
                if wakers.is_empty() {
                    std::future::pending::<()>().await;
                }
                let _ = select_all(wakers.iter_mut().map(|w| w.changed().boxed())).await;
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until((quiet_since + self.progress_every).into()) => {}
                _ = tx.closed() => return,
            }
        }
    }

    /// The events of `entry` this feed watches, as one item.
    fn matching(&self, entry: &Entry) -> Option<Item> {
        let events: Vec<Event> = entry.events.iter().filter(|e| self.filter.matches(&e.name)).cloned().collect();
        if events.is_empty() {
            return None;
        }
        metrics::counter!(WATCH_EVENTS).increment(events.len() as u64);
        metrics::histogram!(WATCH_DELAY).record(entry.applied_at.elapsed().as_secs_f64());
        Some(Item::Events(events))
    }

    /// Per watched group, the last index read.
    fn reached(&self) -> Vec<(GroupId, u64)> {
        self.cursors.iter().map(|c| (c.group, c.next.saturating_sub(1))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::watch::event::sample as event;

    #[tokio::test]
    async fn sends_what_it_watches_in_order_then_progress_then_compacted() {
        let history = Arc::new(History::new(1, 4));
        history.record(0, 1, vec![event("a", 1), event("b", 1)]);
        let cursors = vec![Cursor { group: 0, next: 1, history: history.clone() }];
        let feed = Feed { filter: Filter::Prefix("a".into()), cursors, progress_every: Duration::from_millis(50) };
        let mut rx = feed.spawn(8);
        assert_eq!(rx.recv().await, Some(Item::Progress(vec![(0, 0)])), "first, where each group starts");
        assert_eq!(rx.recv().await, Some(Item::Events(vec![event("a", 1)])));
        history.record(0, 2, vec![event("b", 2)]);
        history.record(0, 3, vec![event("ab", 3)]);
        assert_eq!(rx.recv().await, Some(Item::Events(vec![event("ab", 3)])));
        assert_eq!(rx.recv().await, Some(Item::Progress(vec![(0, 3)])), "quiet: how far it got");
        // A history of four events no longer reaches index 1: a feed that
        // starts there ends at once, saying so.
        for i in 4..9 {
            history.record(0, i, vec![event("z", i)]);
        }
        let cursors = vec![Cursor { group: 0, next: 1, history }];
        let late = Feed { filter: Filter::Name("a".into()), cursors, progress_every: Duration::from_secs(9) };
        let mut rx = late.spawn(8);
        assert!(matches!(rx.recv().await, Some(Item::Progress(_))));
        assert!(matches!(rx.recv().await, Some(Item::Compacted { group: 0, applied: 8, .. })));
        assert_eq!(rx.recv().await, None, "the feed ends after compacted");
    }
}
