//! Voter changes: of one group through its leader, or of every group.
//!
//! Invariant: each change goes to the group's leader (one hop at most) and
//! is retried while the group elects one; changing every group reports how
//! many changed before the first failure.

use super::LockService;
use crate::error::{ApiError, ErrorCode};
use crate::raft::membership::{MembershipChange, MembershipError};
use crate::routing::GroupId;
use crate::server::forward;

impl LockService {
    /// Applies `change` to `group` through its leader (one hop if need be),
    /// retrying while the group elects a leader.
    pub async fn change_membership(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        let router = self.groups.router();
        let remote = |leader| forward::change_membership(router, leader, group, change);
        self.proposer.on_leader(group, || self.change_membership_local(group, change), remote).await
    }

    /// One attempt on this node; `NotLeader` unless it leads the group.
    pub async fn change_membership_local(&self, group: GroupId, change: &MembershipChange) -> Result<(), ApiError> {
        match self.groups.change_membership(group, change).await {
            Ok(()) => Ok(()),
            Err(MembershipError::NotLeader(leader)) => Err(ApiError::not_leader(leader.map(|n| n.client_addr))),
            Err(MembershipError::Failed(why)) => Err(ApiError::new(ErrorCode::Unavailable, format!("{why}: retry"))),
        }
    }

    /// Applies `change` to every group, a few at a time; returns how many.
    pub async fn change_membership_everywhere(&self, change: MembershipChange) -> Result<u32, ApiError> {
        use futures::StreamExt;
        let groups = 0..self.config.groups;
        let results: Vec<Result<(), ApiError>> = futures::stream::iter(groups)
            .map(|g| self.change_membership(g, &change))
            .buffer_unordered(8)
            .collect()
            .await;
        let done = results.iter().filter(|r| r.is_ok()).count() as u32;
        match results.into_iter().find_map(Result::err) {
            Some(err) => Err(ApiError::new(
                err.code,
                format!("{done} of {} groups changed; {}", self.config.groups, err.message),
            )),
            None => Ok(done),
        }
    }
}
