//! Linearizable reads: the queries, and their answers computed on a leader
//! (`LockService::read` routes them there).
//!
//! Invariant: an answer is computed only on the group leader after openraft's
//! read-index confirmed its leadership and its state machine caught up, so a
//! read sees every write acknowledged before it began. Queries and answers
//! are data, so a follower can forward them one hop to the leader.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::lock::{Lock, LockKey, LockTable, Mode, Value};
use crate::routing::GroupId;
use crate::upkeep::keeper::Keeper;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ReadQuery {
    Describe { name: String },
    List { prefix: String, after: Option<String>, limit: usize },
    ValidateFence { name: String, token: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    pub key: LockKey,
    pub permits: u32,
    #[serde(rename = "fencing_token")]
    pub token: u64,
    pub ttl_ms: u64,
    pub remaining_ttl_ms: u64,
    pub mode: Mode,
    pub value: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiterView {
    pub key: LockKey,
    pub permits: u32,
    pub position: u32,
    pub wait_ms: u64,
    pub mode: Mode,
    pub value: Option<Value>,
}

/// The value one holder carries (a listing shows those that carry one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderValue {
    pub key: LockKey,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockView {
    pub name: String,
    pub size: u32,
    pub held: u32,
    pub holders: Vec<HolderView>,
    pub waiters: Vec<WaiterView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRow {
    pub name: String,
    pub size: u32,
    pub held: u32,
    pub holders: u32,
    pub waiters: u32,
    /// The holders' mode; `None` when nobody holds.
    pub mode: Option<Mode>,
    pub values: Vec<HolderValue>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ReadAnswer {
    Describe(Option<LockView>),
    List(Vec<LockRow>),
    /// The key of the live holder owning the token, if any.
    Fence(Option<LockKey>),
}

/// Computes the answer to `query` from `table` (on the leader).
pub fn answer(group: GroupId, table: &LockTable, keeper: &Keeper, query: &ReadQuery) -> ReadAnswer {
    match query {
        ReadQuery::Describe { name } => {
            ReadAnswer::Describe(table.get(name).map(|lock| view(group, name, lock, table, keeper)))
        }
        ReadQuery::List { prefix, after, limit } => ReadAnswer::List(
            table
                .list(prefix, after.as_deref(), *limit)
                .into_iter()
                .map(|s| LockRow {
                    name: s.name,
                    size: s.size,
                    held: s.held,
                    holders: s.holders as u32,
                    waiters: s.waiters as u32,
                    mode: s.mode,
                    values: s.values.into_iter().map(|(key, value)| HolderValue { key, value }).collect(),
                })
                .collect(),
        ),
        ReadQuery::ValidateFence { name, token } => {
            ReadAnswer::Fence(table.validate_fence(name, *token).map(|(key, _)| key.clone()))
        }
    }
}

/// The lock `name` as Describe shows it.
pub fn view(group: GroupId, name: &str, lock: &Lock, table: &LockTable, keeper: &Keeper) -> LockView {
    let now = Instant::now();
    let holders = lock
        .holders()
        .iter()
        .map(|(key, h)| HolderView {
            key: key.clone(),
            permits: h.permits,
            token: h.token,
            ttl_ms: h.ttl_ms,
            remaining_ttl_ms: keeper.remaining(group, h.token, now).map_or(h.ttl_ms, |d| d.as_millis() as u64),
            mode: h.mode,
            value: table.value_of(name, key).cloned(),
        })
        .collect();
    let waiters = lock
        .waiters()
        .iter()
        .enumerate()
        .map(|(i, w)| WaiterView {
            key: w.key.clone(),
            permits: w.permits,
            position: i as u32,
            wait_ms: w.wait_ms,
            mode: w.mode,
            value: w.value.clone(),
        })
        .collect();
    LockView { name: name.to_owned(), size: lock.size(), held: lock.held(), holders, waiters }
}
