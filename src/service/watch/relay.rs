//! Relaying a group's history from a node that holds it, for watches on a
//! node that does not.
//!
//! The holding node answers a [`RelayRequest`] with the watched events of
//! the entries from `from` on, as soon as it has applied one (waiting up to
//! `wait_ms` otherwise: a long poll, so nothing is sent while nothing
//! changes); [`serve`] is that side. The relaying node copies what it gets
//! into a history of its own for the watch ([`Relay`]), which the watch's
//! feed reads as it reads a replica's.
//!
//! Invariants: a reply holds every watched event of every entry from
//! `from` to its `applied`, or says `Compacted`; the relay asks next from
//! `applied + 1`, so its copy has no gap and no repeat; it stops when the
//! watch is gone (its copy is dropped), after `Compacted`, or when no node
//! holding the group answered for the caller's retry window, and then
//! closes its copy, which ends the watch (the client resumes elsewhere).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::{History, Read};
use super::{Event, Filter};
use crate::error::ApiError;
use crate::routing::GroupId;

/// Longest a holding node keeps a relay request waiting for an entry.
pub const WAIT: Duration = Duration::from_secs(1);
/// Most events in one reply (a longer run comes in several).
const MAX_EVENTS: usize = 1000;

/// What the relaying node asks of a node that holds the group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelayRequest {
    pub filter: Filter,
    /// The first index wanted; 0 asks only where the group is now.
    pub from: u64,
    pub wait_ms: u64,
}

/// The holding node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayRead {
    /// Every watched event of the entries from `from` to `applied`, by
    /// entry (entries with none left out).
    Entries {
        entries: Vec<(u64, Vec<Event>)>,
        applied: u64,
    },
    Compacted {
        oldest: u64,
        applied: u64,
    },
}

/// Serves `req` for `group` from this node's `history`.
pub async fn serve(history: &History, group: GroupId, req: &RelayRequest) -> RelayRead {
    let Some(mut applied_rx) = history.subscribe(group) else {
        return RelayRead::Compacted { oldest: 0, applied: 0 };
    };
    if req.from == 0 {
        return RelayRead::Entries { entries: Vec::new(), applied: history.applied(group) };
    }
    let wait = tokio::time::sleep(Duration::from_millis(req.wait_ms).min(WAIT * 10));
    tokio::pin!(wait);
    loop {
        match history.read(group, req.from) {
            Read::Compacted { oldest, applied } => return RelayRead::Compacted { oldest, applied },
            Read::Closed => return RelayRead::Compacted { oldest: 0, applied: 0 },
            Read::Entries { entries, applied } if applied >= req.from => {
                return matching(&req.filter, entries, applied)
            }
            Read::Entries { .. } => {}
        }
        tokio::select! {
            changed = applied_rx.changed() => if changed.is_err() {
                return RelayRead::Entries { entries: Vec::new(), applied: history.applied(group) };
            },
            _ = &mut wait => return RelayRead::Entries { entries: Vec::new(), applied: history.applied(group) },
        }
    }
}

/// The watched events of `entries`, up to `MAX_EVENTS` (then `applied` is
/// the last entry sent).
fn matching(filter: &Filter, entries: Vec<super::history::Entry>, mut applied: u64) -> RelayRead {
    let mut out = Vec::new();
    let mut events = 0;
    for entry in entries {
        if events >= MAX_EVENTS {
            applied = out.last().map_or(applied, |(index, _)| *index);
            break;
        }
        let watched: Vec<Event> = entry.events.iter().filter(|e| filter.matches(&e.name)).cloned().collect();
        if !watched.is_empty() {
            events += watched.len();
            out.push((entry.index, watched));
        }
    }
    RelayRead::Entries { entries: out, applied }
}

/// One group of a watch, copied from a node that holds it into `copy`.
pub struct Relay {
    pub group: GroupId,
    pub filter: Filter,
    /// The first index to copy (the copy starts just before it).
    pub from: u64,
}

impl Relay {
    /// Copies until the watch drops `copy`; `fetch` sends one request to a
    /// node holding the group (retrying for its window).
    pub fn spawn<F, Fut>(self, copy: &Arc<History>, fetch: F)
    where
        F: Fn(RelayRequest) -> Fut + Send + 'static,
        Fut: Future<Output = Result<RelayRead, ApiError>> + Send + 'static,
    {
        copy.reset(self.group, self.from.saturating_sub(1));
        tokio::spawn(self.run(Arc::downgrade(copy), fetch));
    }

    async fn run<F, Fut>(self, copy: Weak<History>, fetch: F)
    where
        F: Fn(RelayRequest) -> Fut,
        Fut: Future<Output = Result<RelayRead, ApiError>>,
    {
        let mut next = self.from;
        loop {
            let req = RelayRequest { filter: self.filter.clone(), from: next, wait_ms: WAIT.as_millis() as u64 };
            let read = fetch(req).await;
            let Some(copy) = copy.upgrade() else { return }; // The watch is gone.
            match read {
                Ok(RelayRead::Entries { entries, applied }) => {
                    for (index, events) in entries {
                        copy.record(self.group, index, events);
                    }
                    copy.record(self.group, applied, Vec::new());
                    next = next.max(applied + 1);
                }
                Ok(RelayRead::Compacted { applied, .. }) => {
                    copy.reset(self.group, applied);
                    return;
                }
                Err(err) => {
                    tracing::info!(group = self.group, error = %err.message, "a watch relay lost the group's nodes");
                    copy.close(self.group);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::watch::event::sample as event;

    #[tokio::test]
    async fn serves_what_is_watched_waits_for_more_and_says_compacted() {
        let history = History::new(1, 3);
        history.record(0, 1, vec![event("a", 1), event("b", 1)]);
        history.record(0, 2, vec![]);
        let req = |from| RelayRequest { filter: Filter::Name("a".into()), from, wait_ms: 50 };
        assert_eq!(serve(&history, 0, &req(0)).await, RelayRead::Entries { entries: vec![], applied: 2 });
        let got = serve(&history, 0, &req(1)).await;
        assert_eq!(got, RelayRead::Entries { entries: vec![(1, vec![event("a", 1)])], applied: 2 });
        // Nothing new: the request waits, then says where the group is.
        assert_eq!(serve(&history, 0, &req(3)).await, RelayRead::Entries { entries: vec![], applied: 2 });
        for i in 3..6 {
            history.record(0, i, vec![event("a", i)]);
        }
        assert!(matches!(serve(&history, 0, &req(1)).await, RelayRead::Compacted { oldest: 2, applied: 5 }));
    }

    #[tokio::test]
    async fn a_relay_copies_without_gaps_and_closes_when_the_group_is_lost() {
        let source = Arc::new(History::new(1, 100));
        let copy = Arc::new(History::new(1, 100));
        let fetched = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let fetch = {
            let (source, fetched) = (source.clone(), fetched.clone());
            move |req: RelayRequest| {
                let (source, fetched) = (source.clone(), fetched.clone());
                async move {
                    if fetched.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3 {
                        return Err(ApiError::new(crate::error::ErrorCode::Unavailable, "gone"));
                    }
                    Ok(serve(&source, 0, &req).await)
                }
            }
        };
        source.record(0, 5, vec![event("a", 5)]);
        source.record(0, 6, vec![event("b", 6)]);
        let mut woken = copy.subscribe(0).unwrap();
        Relay { group: 0, filter: Filter::Prefix("a".into()), from: 5 }.spawn(&copy, fetch);
        woken.wait_for(|applied| *applied >= 6).await.unwrap();
        let Read::Entries { entries, applied } = copy.read(0, 5) else { panic!("a gap") };
        assert_eq!((entries.len(), entries[0].index, applied), (1, 5, 6));
        woken.wait_for(|_| matches!(copy.read(0, 7), Read::Closed)).await.unwrap();
    }
}
