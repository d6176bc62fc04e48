//! Validate-fence: whether a fencing token belongs to a live holder of a
//! lock, read linearizably on its group's leader.

use crate::error::ApiError;
use crate::lock::LockKey;
use crate::service::errors::internal;
use crate::service::query::{ReadAnswer, ReadQuery};
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct ValidateFence {
    pub name: String,
    pub token: u64,
}

/// The live holder owning the token (`None`: the token is stale), and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub meta: Meta,
    pub holder: Option<LockKey>,
}

impl ValidateFence {
    pub async fn run(self, svc: &LockService) -> Result<Fence, ApiError> {
        svc.admit()?;
        svc.config().limits.check_name(&self.name)?;
        let group = svc.group_of(&self.name);
        match svc.read(group, &ReadQuery::ValidateFence { name: self.name, token: self.token }).await? {
            (meta, ReadAnswer::Fence(holder)) => Ok(Fence { meta, holder }),
            (_, other) => Err(internal(format!("validate_fence answered {other:?}"))),
        }
    }
}
