//! A checker for histories of lock operations, as clients observed them.
//!
//! Each record is one acquire that succeeded: when it was sent, when its
//! grant came back, when the release was sent (if it was), and the grant's
//! fencing token and TTL. From the client's side a hold surely lasted at
//! least from the grant's answer to the earlier of (release sent, request
//! sent + TTL): the real hold began before the answer, and ended no earlier
//! than the release was sent or the lease could run out. So if more of these
//! intervals overlap than the lock's size, the service broke its promise,
//! whatever faults happened. The checker also verifies that tokens are unique
//! per lock and ordered like the grants in real time, and it replays the
//! writes a fenced resource accepted.
//!
//! Invariants of the checker itself are tested below on hand-made bad
//! histories, so it provably fails when it should.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Hold {
    pub lock: String,
    pub size: u32,
    pub client: usize,
    pub token: u64,
    pub sent: Instant,
    pub granted: Instant,
    pub released: Option<Instant>,
    pub ttl: Duration,
}

impl Hold {
    /// The part of the hold the client can be sure of.
    fn sure(&self) -> (Instant, Instant) {
        let lease_end = self.sent + self.ttl;
        let end = self.released.map_or(lease_end, |r| r.min(lease_end));
        (self.granted, end)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// More holders at once than the lock's size.
    Overlap { lock: String, holders: usize, size: u32 },
    /// Two grants of one lock with the same token.
    DuplicateToken { lock: String, token: u64 },
    /// A grant answered before another was requested has the larger token.
    TokenOrder { lock: String, earlier: u64, later: u64 },
    /// A fenced resource accepted a write older than one it had accepted.
    StaleWrite { lock: String, token: u64, after: u64 },
}

/// Checks every lock of `history`; returns every violation found.
pub fn check(history: &[Hold]) -> Vec<Violation> {
    let mut by_lock: HashMap<&str, Vec<&Hold>> = HashMap::new();
    for h in history {
        by_lock.entry(h.lock.as_str()).or_default().push(h);
    }
    let mut out = Vec::new();
    for (lock, holds) in by_lock {
        out.extend(overlaps(lock, &holds));
        out.extend(tokens(lock, &holds));
    }
    out
}

fn overlaps(lock: &str, holds: &[&Hold]) -> Option<Violation> {
    let size = holds.first()?.size;
    // +1 at a start, -1 at an end; ends sort before starts at the same instant.
    let mut events: Vec<(Instant, i32)> = Vec::new();
    for h in holds {
        let (start, end) = h.sure();
        if start < end {
            events.push((start, 1));
            events.push((end, -1));
        }
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    (most as u32 > size).then(|| Violation::Overlap { lock: lock.to_owned(), holders: most as usize, size })
}

fn tokens(lock: &str, holds: &[&Hold]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for h in holds {
        if seen.insert(h.token, h.client).is_some() {
            out.push(Violation::DuplicateToken { lock: lock.to_owned(), token: h.token });
        }
    }
    let mut by_answer: Vec<&&Hold> = holds.iter().collect();
    by_answer.sort_by_key(|h| h.granted);
    // Real-time order: if a was answered before b was sent, a.token < b.token.
    let mut max_before = 0u64;
    let mut by_sent: Vec<&&Hold> = holds.iter().collect();
    by_sent.sort_by_key(|h| h.sent);
    let mut i = 0;
    for b in by_sent {
        while i < by_answer.len() && by_answer[i].granted < b.sent {
            max_before = max_before.max(by_answer[i].token);
            i += 1;
        }
        if max_before >= b.token && max_before != 0 {
            out.push(Violation::TokenOrder { lock: lock.to_owned(), earlier: max_before, later: b.token });
        }
    }
    out
}

/// The holds behind violation `v`, for its report: for an overlap those
/// surely holding at the instant most did; for token faults those with the
/// tokens named.
pub fn explain<'a>(history: &'a [Hold], v: &Violation) -> Vec<&'a Hold> {
    let of = |lock: &str| history.iter().filter(|h| h.lock == lock).collect::<Vec<_>>();
    match v {
        Violation::Overlap { lock, .. } => {
            let holds = of(lock);
            let busiest = holds
                .iter()
                .map(|h| h.sure().0)
                .max_by_key(|t| holds.iter().filter(|h| h.sure().0 <= *t && *t < h.sure().1).count());
            let Some(t) = busiest else { return Vec::new() };
            holds.into_iter().filter(|h| h.sure().0 <= t && t < h.sure().1).collect()
        }
        Violation::DuplicateToken { lock, token } => of(lock).into_iter().filter(|h| h.token == *token).collect(),
        Violation::TokenOrder { lock, earlier, later } => {
            of(lock).into_iter().filter(|h| h.token == *earlier || h.token == *later).collect()
        }
        Violation::StaleWrite { .. } => Vec::new(),
    }
}

/// A resource guarded by fencing tokens: it accepts a write only if its
/// token is at least the highest it accepted (per lock).
#[derive(Default)]
pub struct FencedResource {
    highest: HashMap<String, u64>,
    pub accepted: Vec<(String, u64)>,
    pub rejected: usize,
}

impl FencedResource {
    pub fn write(&mut self, lock: &str, token: u64) -> bool {
        let top = self.highest.entry(lock.to_owned()).or_insert(0);
        if token < *top {
            self.rejected += 1;
            return false;
        }
        *top = token;
        self.accepted.push((lock.to_owned(), token));
        true
    }

    /// Replays the accepted writes: each lock's tokens never go back.
    pub fn check(&self) -> Vec<Violation> {
        let mut top: HashMap<&str, u64> = HashMap::new();
        let mut out = Vec::new();
        for (lock, token) in &self.accepted {
            let t = top.entry(lock.as_str()).or_insert(0);
            if *token < *t {
                out.push(Violation::StaleWrite { lock: lock.clone(), token: *token, after: *t });
            }
            *t = (*t).max(*token);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn hold(base: Instant, client: usize, token: u64, sent: u64, granted: u64, released: u64) -> Hold {
        Hold {
            lock: "m".into(),
            size: 1,
            client,
            token,
            sent: at(base, sent),
            granted: at(base, granted),
            released: Some(at(base, released)),
            ttl: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_correct_history_passes() {
        let t = Instant::now();
        let history = [hold(t, 1, 1, 0, 5, 10), hold(t, 2, 2, 1, 12, 20), hold(t, 3, 3, 2, 21, 30)];
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn two_holders_of_a_mutex_are_caught() {
        let t = Instant::now();
        let history = [hold(t, 1, 1, 0, 5, 20), hold(t, 2, 2, 6, 10, 30), hold(t, 3, 3, 31, 32, 40)];
        let overlap = Violation::Overlap { lock: "m".into(), holders: 2, size: 1 };
        assert_eq!(check(&history), vec![overlap.clone()]);
        let culprits: Vec<usize> = explain(&history, &overlap).iter().map(|h| h.client).collect();
        assert_eq!(culprits, vec![1, 2]);
    }

    #[test]
    fn an_expired_lease_is_not_an_overlap() {
        let t = Instant::now();
        let mut first = hold(t, 1, 1, 0, 5, 5000);
        first.ttl = Duration::from_millis(100); // its client paused past the lease
        let history = [first, hold(t, 2, 2, 50, 200, 300)];
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn semaphores_allow_their_size() {
        let t = Instant::now();
        let mut history = vec![hold(t, 1, 1, 0, 5, 50), hold(t, 2, 2, 0, 6, 50), hold(t, 3, 3, 0, 7, 50)];
        for h in &mut history {
            h.size = 3;
        }
        assert_eq!(check(&history), vec![]);
        history.push(Hold { size: 3, ..hold(t, 4, 4, 0, 8, 50) });
        assert_eq!(check(&history), vec![Violation::Overlap { lock: "m".into(), holders: 4, size: 3 }]);
    }

    #[test]
    fn token_faults_are_caught() {
        let t = Instant::now();
        let dup = [hold(t, 1, 7, 0, 5, 10), hold(t, 2, 7, 11, 12, 20)];
        assert!(check(&dup).contains(&Violation::DuplicateToken { lock: "m".into(), token: 7 }));
        let backwards = [hold(t, 1, 9, 0, 5, 10), hold(t, 2, 4, 11, 12, 20)];
        assert!(check(&backwards).contains(&Violation::TokenOrder { lock: "m".into(), earlier: 9, later: 4 }));
    }

    #[test]
    fn the_fenced_resource_refuses_and_reports_stale_writes() {
        let mut r = FencedResource::default();
        assert!(r.write("m", 3) && r.write("m", 5) && !r.write("m", 4));
        assert_eq!((r.rejected, r.check()), (1, vec![]));
        r.accepted.push(("m".into(), 2)); // a broken resource that took it anyway
        assert_eq!(r.check(), vec![Violation::StaleWrite { lock: "m".into(), token: 2, after: 5 }]);
    }
}
