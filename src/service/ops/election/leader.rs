//! Leader: a linearizable read of an election's leader, or none.

use super::Leadership;
use crate::error::ApiError;
use crate::service::ops::describe::Describe;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Leader {
    pub election: String,
}

/// The leader (`None`: the election has none), and where it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderNow {
    pub meta: Meta,
    pub leader: Option<Leadership>,
}

impl Leader {
    pub async fn run(self, svc: &LockService) -> Result<LeaderNow, ApiError> {
        let described = Describe { name: self.election.clone() }.run(svc).await?;
        let leader = described.lock.and_then(|lock| Leadership::of_holders(&self.election, &lock.holders));
        Ok(LeaderNow { meta: described.meta, leader })
    }
}
