//! Property tests: random command sequences against the table's invariants.
//!
//! Operations are abstract ("release the 2nd holder of lock 1") and are
//! resolved against the live state, so most commands hit something real.
//! Every Acquire uses a fresh key; only `Retry` reuses a live key. After
//! each step the runner checks:
//! - a refused command left the table unchanged and had no effect;
//! - held permits equal the holders' sum (1 for shared holders together)
//!   and never exceed the size;
//! - an exclusive holder of a mutex holds alone; shared holders hold only
//!   a mutex, never beside an exclusive one, at most `max_shared_holders`;
//! - a downgrade keeps the lock held by the same key and token, shared;
//! - every holder carries the value it asked for or last set;
//! - a lock's queue head never fits (hand-off was not missed);
//! - an immediate grant happened only with an empty queue (no barging);
//! - hand-off grants are a prefix of the queue in FIFO order;
//! - tokens of each lock strictly increase, one per permit;
//! - a key whose hold or wait ended never holds or waits again;
//! - under the current rules no lock is ever left idle (the apply that
//!   empties a lock deletes it); sequences run under both rule versions.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;

const LOCKS: [&str; 3] = ["l0", "l1", "l2"];
const CASES: u32 = 512;

fn limits() -> Limits {
    Limits { max_waiters_per_lock: 4, max_shared_holders: 3, ..Limits::default() }
}

#[derive(Clone, Debug)]
enum Op {
    Acquire { lock: usize, permits: u32, wait: bool, bad_size: bool, shared: bool, value: Option<u8> },
    Retry { lock: usize, pick: usize, other_mode: bool },
    SetValue { lock: usize, pick: usize, value: Option<u8> },
    Downgrade { lock: usize, pick: usize },
    Release { lock: usize, pick: usize },
    ReleaseDead { pick: usize },
    Refresh { lock: usize, pick: usize },
    Expire { lock: usize, pick: usize, stale: bool },
    Timeout { lock: usize, pick: usize, stale: bool },
    Cancel { lock: usize, pick: usize },
    Force { lock: usize, pick: Option<usize> },
    Gc { lock: usize, stale: bool },
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    let lock = 0..LOCKS.len();
    prop_oneof![
        6 => (lock.clone(), 1..=3u32, any::<bool>(), prop::bool::weighted(0.05), any::<bool>(), prop::option::of(any::<u8>()))
            .prop_map(|(lock, permits, wait, bad_size, shared, value)| Op::Acquire { lock, permits, wait, bad_size, shared, value }),
        1 => (lock.clone(), any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(lock, pick, other_mode)| Op::Retry { lock, pick, other_mode }),
        1 => (lock.clone(), any::<usize>(), prop::option::of(any::<u8>()))
            .prop_map(|(lock, pick, value)| Op::SetValue { lock, pick, value }),
        1 => (lock.clone(), any::<usize>()).prop_map(|(lock, pick)| Op::Downgrade { lock, pick }),
        4 => (lock.clone(), any::<usize>()).prop_map(|(lock, pick)| Op::Release { lock, pick }),
        1 => any::<usize>().prop_map(|pick| Op::ReleaseDead { pick }),
        1 => (lock.clone(), any::<usize>()).prop_map(|(lock, pick)| Op::Refresh { lock, pick }),
        2 => (lock.clone(), any::<usize>(), any::<bool>()).prop_map(|(lock, pick, stale)| Op::Expire { lock, pick, stale }),
        2 => (lock.clone(), any::<usize>(), any::<bool>()).prop_map(|(lock, pick, stale)| Op::Timeout { lock, pick, stale }),
        1 => (lock.clone(), any::<usize>()).prop_map(|(lock, pick)| Op::Cancel { lock, pick }),
        1 => (lock.clone(), prop::option::of(any::<usize>())).prop_map(|(lock, pick)| Op::Force { lock, pick }),
        1 => (lock, any::<bool>()).prop_map(|(lock, stale)| Op::Gc { lock, stale }),
        1 => Just(Op::Snapshot),
    ]
}

/// Size of lock `i`: 1, 2 and 3, so mutexes and semaphores both appear.
fn size_of(lock: usize) -> u32 {
    lock as u32 + 1
}

struct Runner {
    rules: Rules,
    table: LockTable,
    index: u64,
    next_key: u64,
    /// Every key ever used for an acquire, with the lock, permits and mode it asked.
    keys: Vec<(usize, LockKey, u32, Mode)>,
    /// The value each key asked for or last set.
    values: HashMap<LockKey, Option<Value>>,
    dead: HashSet<LockKey>,
    last_token: HashMap<String, u64>,
    outcomes: Vec<Outcome>,
}

impl Runner {
    fn new(rules: Rules) -> Self {
        Self {
            rules,
            table: LockTable::new(limits()),
            index: 0,
            next_key: 0,
            keys: Vec::new(),
            values: HashMap::new(),
            dead: HashSet::new(),
            last_token: HashMap::new(),
            outcomes: Vec::new(),
        }
    }

    fn holder(&self, lock: usize, pick: usize) -> Option<(LockKey, Holder)> {
        let l = self.table.get(LOCKS[lock])?;
        let n = l.holders().len();
        (n > 0).then(|| l.holders().iter().nth(pick % n).map(|(k, h)| (k.clone(), h.clone())))?
    }

    fn waiter(&self, lock: usize, pick: usize) -> Option<Waiter> {
        let l = self.table.get(LOCKS[lock])?;
        let n = l.waiters().len();
        (n > 0).then(|| l.waiters().iter().nth(pick % n).cloned())?
    }

    fn fresh_key(&mut self) -> LockKey {
        self.next_key += 1;
        LockKey::new(format!("k{}", self.next_key)).unwrap()
    }

    /// Turns an abstract operation into a command, or `None` if it has no target.
    fn resolve(&mut self, op: &Op) -> Option<Command> {
        let name = |lock: usize| LOCKS[lock].to_owned();
        Some(match *op {
            Op::Acquire { lock, permits, wait, bad_size, shared, value } => {
                let key = self.fresh_key();
                let size = if bad_size { size_of(lock) + 1 } else { size_of(lock) };
                let permits = permits.min(size);
                // Shared asks land mostly on the mutex; elsewhere they are refused.
                let mode = if shared && (lock == 0 || permits == 3) { Mode::Shared } else { Mode::Exclusive };
                let value = value.map(|v| Value::from(vec![v]));
                self.keys.push((lock, key.clone(), permits, mode));
                self.values.insert(key.clone(), value.clone());
                let wait_ms = if wait { 1000 } else { 0 };
                Command::Acquire(AcquireCmd {
                    name: name(lock),
                    key,
                    size,
                    permits,
                    ttl_ms: 1000,
                    wait_ms,
                    mode,
                    value,
                })
            }
            Op::Retry { lock, pick, other_mode } => {
                let live: Vec<_> = self.keys.iter().filter(|(l, k, ..)| *l == lock && !self.dead.contains(k)).collect();
                let (_, key, permits, mode) = live.get(pick % live.len().max(1)).map(|t| (*t).clone())?;
                let size = size_of(lock);
                let mode = match (other_mode, mode) {
                    (false, mode) => mode,
                    (true, Mode::Shared) => Mode::Exclusive,
                    (true, Mode::Exclusive) => Mode::Shared,
                };
                let value = Some(Value::from("retry"));
                let known = self
                    .table
                    .get(LOCKS[lock])
                    .is_some_and(|l| l.holders().contains_key(&key) || l.waiters().get(&key).is_some());
                if !known {
                    // Its first acquire was refused: this one may be granted, with this value.
                    self.values.insert(key.clone(), value.clone());
                }
                let cmd = AcquireCmd { name: name(lock), key, size, permits, ttl_ms: 2000, wait_ms: 1000, mode, value };
                Command::Acquire(cmd)
            }
            Op::SetValue { lock, pick, value } => {
                let key = self.holder(lock, pick)?.0;
                Command::SetValue { name: name(lock), key, value: value.map(|v| Value::from(vec![v, v])) }
            }
            Op::Downgrade { lock, pick } => Command::Downgrade { name: name(lock), key: self.holder(lock, pick)?.0 },
            Op::Release { lock, pick } => Command::Release { name: name(lock), key: self.holder(lock, pick)?.0 },
            Op::ReleaseDead { pick } => {
                let dead: Vec<_> = self.keys.iter().filter(|(_, k, ..)| self.dead.contains(k)).collect();
                let (lock, key, ..) = dead.get(pick % dead.len().max(1)).map(|t| (*t).clone())?;
                Command::Release { name: name(lock), key }
            }
            Op::Refresh { lock, pick } => Command::Refresh {
                name: name(lock),
                key: self.holder(lock, pick)?.0,
                ttl_ms: (pick % 2 == 0).then_some(3000),
            },
            Op::Expire { lock, pick, stale } => {
                let (key, h) = self.holder(lock, pick)?;
                let lease_index = if stale { h.lease_index.saturating_sub(1) } else { h.lease_index };
                Command::Expire { name: name(lock), key, lease_index }
            }
            Op::Timeout { lock, pick, stale } => {
                let w = self.waiter(lock, pick)?;
                let enqueue_index = if stale { w.enqueue_index + 1 } else { w.enqueue_index };
                Command::WaitTimeout { name: name(lock), key: w.key, enqueue_index }
            }
            Op::Cancel { lock, pick } => Command::CancelWait { name: name(lock), key: self.waiter(lock, pick)?.key },
            Op::Force { lock, pick } => {
                let key = match pick {
                    Some(pick) => Some(self.holder(lock, pick)?.0),
                    None => None,
                };
                Command::ForceRelease { name: name(lock), key }
            }
            Op::Gc { lock, stale } => {
                let since = self.table.get(LOCKS[lock])?.idle_since().unwrap_or(0);
                Command::GcIdle { name: name(lock), idle_since: if stale { since + 1 } else { since } }
            }
            Op::Snapshot => return None,
        })
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        if let Op::Snapshot = op {
            let json = serde_json::to_vec(&self.table.snapshot()).unwrap();
            let restored = LockTable::restore(serde_json::from_slice(&json).unwrap(), limits()).unwrap();
            prop_assert_eq!(&restored, &self.table);
            let bin = postcard::to_allocvec(&self.table.snapshot()).unwrap();
            let restored = LockTable::restore(postcard::from_bytes(&bin).unwrap(), limits()).unwrap();
            prop_assert_eq!(&restored, &self.table);
            self.table = restored;
            return Ok(());
        }
        let Some(cmd) = self.resolve(op) else {
            return Ok(());
        };
        let before = self.table.clone();
        self.index += 1;
        let outcome = self.table.apply_under(self.rules, self.index, &cmd);
        self.check_step(&before, &cmd, &outcome)?;
        self.check_state()?;
        self.outcomes.push(outcome);
        Ok(())
    }

    fn check_step(&mut self, before: &LockTable, cmd: &Command, outcome: &Outcome) -> Result<(), TestCaseError> {
        if outcome.reply.is_err() {
            prop_assert_eq!(&self.table, before, "refused {} changed the table", cmd);
            prop_assert!(outcome.effects.is_empty());
            return Ok(());
        }
        let prev = before.get(cmd.name());
        if let Command::Downgrade { name, key } = cmd {
            let was = prev.and_then(|l| l.holders().get(key)).map(|h| h.token);
            let now = self.table.get(name).and_then(|l| l.holders().get(key)).map(|h| (h.token, h.mode));
            prop_assert_eq!(now, was.map(|t| (t, Mode::Shared)), "a downgrade let go of the lock");
        }
        if let Command::SetValue { key, value, .. } = cmd {
            self.values.insert(key.clone(), value.clone());
        }
        let mut queue: Vec<LockKey> = prev.map_or(Vec::new(), |l| l.waiters().iter().map(|w| w.key.clone()).collect());
        let mut handoffs = 0;
        for effect in &outcome.effects {
            match effect {
                Effect::Granted { name, grant, handoff } => {
                    prop_assert_eq!(self.values.get(&grant.key), Some(&grant.value), "a grant lost its value");
                    let last = self.last_token.get(name.as_ref()).copied().unwrap_or(0);
                    prop_assert!(grant.token > last, "token {} after {} on {}", grant.token, last, name);
                    self.last_token.insert(name.to_string(), grant.token + u64::from(grant.permits) - 1);
                    if *handoff {
                        prop_assert_eq!(queue.get(handoffs), Some(&grant.key), "hand-off out of FIFO order");
                        handoffs += 1;
                    } else {
                        prop_assert!(prev.is_none_or(|l| l.waiters().is_empty()), "barged past a queue");
                    }
                }
                Effect::HoldEnded { key, .. } => {
                    self.dead.insert(key.clone());
                }
                Effect::WaitEnded { key, .. } => {
                    queue.retain(|k| k != key);
                    self.dead.insert(key.clone());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_state(&self) -> Result<(), TestCaseError> {
        for (name, lock) in self.table.iter() {
            if self.rules == Rules::V2 {
                prop_assert!(!lock.is_idle(), "{} was left idle under the current rules", name);
            }
            let shared = lock.holders().values().filter(|h| h.mode == Mode::Shared).count();
            let sum: u32 = lock.holders().values().map(|h| h.permits).sum();
            if shared > 0 {
                prop_assert_eq!(shared, lock.holders().len(), "{}: an exclusive holder beside shared ones", name);
                prop_assert!(
                    lock.size() == 1 && shared <= limits().max_shared_holders,
                    "{}: shared on a semaphore or too many",
                    name
                );
                prop_assert_eq!(lock.held(), 1);
            } else {
                prop_assert_eq!(sum, lock.held());
            }
            prop_assert!(lock.held() <= lock.size(), "{} holds {} of {}", name, lock.held(), lock.size());
            if let Some(head) = lock.waiters().front() {
                let fits = match head.mode {
                    Mode::Exclusive => lock.size() - lock.held() >= head.permits,
                    Mode::Shared => lock.holders().is_empty() || (shared > 0 && shared < limits().max_shared_holders),
                };
                prop_assert!(!fits, "{}: head fits but waits", name);
            }
            for key in lock.holders().keys().chain(lock.waiters().iter().map(|w| &w.key)) {
                prop_assert!(!self.dead.contains(key), "dead key {} is back on {}", key, name);
            }
            for key in lock.holders().keys() {
                let want = self.values.get(key).cloned().flatten();
                prop_assert_eq!(
                    self.table.value_of(name, key).cloned(),
                    want,
                    "{}: {} carries another value",
                    name,
                    key
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_sequences(ops in prop::collection::vec(op(), 1..150), v1 in any::<bool>()) {
        let mut runner = Runner::new(if v1 { Rules::V1 } else { Rules::V2 });
        for op in &ops {
            runner.step(op)?;
        }
    }

    #[test]
    fn restored_snapshot_has_identical_future(ops in prop::collection::vec(op(), 2..120), cut in any::<prop::sample::Index>(), v1 in any::<bool>()) {
        let cut = cut.index(ops.len());
        let mut runner = Runner::new(if v1 { Rules::V1 } else { Rules::V2 });
        for op in &ops[..cut] {
            runner.step(op)?;
        }
        let json = serde_json::to_vec(&runner.table.snapshot()).unwrap();
        let restored = LockTable::restore(serde_json::from_slice(&json).unwrap(), limits()).unwrap();
        prop_assert_eq!(&restored, &runner.table);
        // Resolve the rest once, then feed the same commands to both tables.
        let mut twin = restored;
        for op in &ops[cut..] {
            let Some(cmd) = runner.resolve(op) else { continue };
            runner.index += 1;
            let a = runner.table.apply_under(runner.rules, runner.index, &cmd);
            let b = twin.apply_under(runner.rules, runner.index, &cmd);
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(runner.table, twin);
    }

    #[test]
    fn invalid_acquires_get_typed_errors(
        name_len in 0usize..1100,
        size in prop_oneof![Just(0u32), 1..=8u32, Just(u32::MAX)],
        permits in prop_oneof![Just(0u32), 1..=9u32, Just(u32::MAX)],
        ttl_ms in prop_oneof![Just(0u64), 1..2000u64, Just(u64::MAX)],
        wait_ms in prop_oneof![Just(0u64), 1..2000u64, Just(u64::MAX)],
        shared in any::<bool>(),
        value_len in prop_oneof![Just(0usize), 1..2000usize],
    ) {
        let limits = Limits::default();
        let mut table = LockTable::new(limits.clone());
        let name = "x".repeat(name_len);
        let key = LockKey::new("k").unwrap();
        let mode = if shared { Mode::Shared } else { Mode::Exclusive };
        let value = (value_len > 0).then(|| Value::from(vec![b'v'; value_len]));
        let cmd = Command::Acquire(AcquireCmd { name: name.clone(), key, size, permits, ttl_ms, wait_ms, mode, value });
        let expected = if name_len == 0 {
            Some(LockError::EmptyName { max: limits.max_name_bytes })
        } else if name_len > limits.max_name_bytes {
            Some(LockError::NameTooLong { len: name_len, max: limits.max_name_bytes })
        } else if size == 0 || size > limits.max_size {
            Some(LockError::InvalidSize { size, max: limits.max_size })
        } else if permits == 0 || permits > size {
            Some(LockError::InvalidPermits { permits, size })
        } else if ttl_ms < limits.min_ttl_ms || ttl_ms > limits.max_ttl_ms {
            Some(LockError::InvalidTtl { ttl_ms, min_ms: limits.min_ttl_ms, max_ms: limits.max_ttl_ms })
        } else if wait_ms > limits.max_wait_ms {
            Some(LockError::InvalidWait { wait_ms, max_ms: limits.max_wait_ms })
        } else if shared && size != 1 {
            Some(LockError::SharedSemaphore { size })
        } else if value_len > limits.max_value_bytes {
            Some(LockError::ValueTooLarge { len: value_len, max: limits.max_value_bytes })
        } else {
            None
        };
        let outcome = table.apply(1, &cmd);
        match expected {
            Some(err) => {
                prop_assert_eq!(outcome.reply, Err(err));
                prop_assert!(table.is_empty());
            }
            None => prop_assert!(matches!(outcome.reply, Ok(Reply::Granted(_)))),
        }
    }

    #[test]
    fn mismatched_or_unknown_requests_change_nothing(ops in prop::collection::vec(op(), 1..60), lock in 0..LOCKS.len(), v1 in any::<bool>()) {
        let mut runner = Runner::new(if v1 { Rules::V1 } else { Rules::V2 });
        for op in &ops {
            runner.step(op)?;
        }
        let before = runner.table.clone();
        let stranger = LockKey::new("stranger").unwrap();
        let name = LOCKS[lock].to_owned();
        let in_use = before.get(&name).is_some_and(|l| !l.is_idle());
        let probes = [
            Command::Release { name: name.clone(), key: stranger.clone() },
            Command::Refresh { name: name.clone(), key: stranger.clone(), ttl_ms: Some(1000) },
            Command::CancelWait { name: name.clone(), key: stranger.clone() },
            Command::SetValue { name: name.clone(), key: stranger.clone(), value: None },
            Command::Downgrade { name: name.clone(), key: stranger.clone() },
            Command::Acquire(AcquireCmd { name: name.clone(), key: stranger, size: 9, permits: 1, ttl_ms: 1000, wait_ms: 0, mode: Mode::Exclusive, value: None }),
        ];
        for (i, probe) in probes.iter().enumerate() {
            let out = runner.table.apply_under(runner.rules, runner.index + 1 + i as u64, probe);
            let granted_new = matches!(out.reply, Ok(Reply::Granted(_))) && !in_use;
            if !granted_new {
                prop_assert!(out.reply.is_err(), "{} was not refused", probe);
                prop_assert_eq!(&runner.table, &before);
            }
        }
    }
}
