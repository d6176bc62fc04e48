//! Linearizable reads: describe, validate-fence and list.
//!
//! Invariant: every read is answered on its group's leader after a
//! read-index round (see `server::read`), one hop away at most.

use super::{internal, LockService, Meta};
use crate::error::ApiError;
use crate::lock::LockKey;
use crate::routing::GroupId;
use crate::server::forward;
use crate::server::proposer::refused;
use crate::server::read::{answer, LockRow, LockView, ReadAnswer, ReadQuery};

impl LockService {
    /// A linearizable read of `group`, on its leader (one hop if need be).
    pub async fn read(&self, group: GroupId, query: &ReadQuery) -> Result<(Meta, ReadAnswer), ApiError> {
        let router = self.groups.router();
        let remote = |leader| forward::read(router, leader, group, query);
        let (index, answer) = self.proposer.on_leader(group, || self.read_local(group, query), remote).await?;
        Ok((self.meta(group, index), answer))
    }

    /// One attempt on this node; `NotLeader` unless it leads the group.
    pub async fn read_local(&self, group: GroupId, query: &ReadQuery) -> Result<(u64, ReadAnswer), ApiError> {
        let index = self.groups.read_index(group).await.map_err(|e| refused(group, e))?;
        let state = self.groups.state(group);
        let ans = state.read(|table| answer(group, table, &self.keeper, query));
        Ok((index, ans))
    }

    pub async fn describe(&self, name: String) -> Result<(Meta, Option<LockView>), ApiError> {
        self.admit()?;
        self.config.limits.check_name(&name)?;
        let group = self.group_of(&name);
        match self.read(group, &ReadQuery::Describe { name }).await? {
            (meta, ReadAnswer::Describe(view)) => Ok((meta, view)),
            (_, other) => Err(internal(format!("describe answered {other:?}"))),
        }
    }

    pub async fn validate_fence(&self, name: String, token: u64) -> Result<(Meta, Option<LockKey>), ApiError> {
        self.admit()?;
        self.config.limits.check_name(&name)?;
        let group = self.group_of(&name);
        match self.read(group, &ReadQuery::ValidateFence { name, token }).await? {
            (meta, ReadAnswer::Fence(key)) => Ok((meta, key)),
            (_, other) => Err(internal(format!("validate_fence answered {other:?}"))),
        }
    }

    /// One page of locks whose names start with `prefix`, across all groups,
    /// in name order, after `after`. Returns the page and whether more follow.
    pub async fn list(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<LockRow>, bool), ApiError> {
        self.admit()?;
        let limit = limit.clamp(1, self.config.max_list_page as usize);
        let query = ReadQuery::List { prefix, after, limit: limit + 1 };
        let reads = (0..self.config.groups).map(|g| self.read(g, &query));
        let mut rows = Vec::new();
        for result in futures::future::join_all(reads).await {
            match result? {
                (_, ReadAnswer::List(mut page)) => rows.append(&mut page),
                (_, other) => return Err(internal(format!("list answered {other:?}"))),
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }
}
