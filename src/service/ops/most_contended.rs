//! Most-contended (admin): the lock names that queued most often.
//!
//! Every node applies every entry of the groups it holds, so any node
//! answers for those since it started. At most `MAX` names, 10 by default.

use crate::service::LockService;

const DEFAULT: u32 = 10;
const MAX: u32 = 1000;

#[derive(Clone, Copy, Debug, Default)]
pub struct MostContended {
    pub limit: Option<u32>,
}

/// A lock name and how often an acquire of it queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contended {
    pub name: String,
    pub queued: u64,
}

impl MostContended {
    pub fn run(self, svc: &LockService) -> Vec<Contended> {
        let limit = self.limit.unwrap_or(DEFAULT).min(MAX);
        svc.contention().top(limit as usize).into_iter().map(|(name, queued)| Contended { name, queued }).collect()
    }
}
