//! Resign: the leader lets go; the next campaigner leads in the same entry.

use crate::error::ApiError;
use crate::lock::LockKey;
use crate::service::ops::release::Release;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Resign {
    pub election: String,
    pub key: LockKey,
}

impl Resign {
    pub async fn run(self, svc: &LockService) -> Result<Meta, ApiError> {
        Ok(Release { name: self.election, key: self.key }.run(svc).await?.meta)
    }
}
