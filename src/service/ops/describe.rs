//! Describe: a lock's holders and waiters, read linearizably on its
//! group's leader.

use crate::error::ApiError;
use crate::service::errors::internal;
use crate::service::query::{LockView, ReadAnswer, ReadQuery};
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Describe {
    pub name: String,
}

/// The lock as its leader sees it (`None`: no such lock), and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    pub meta: Meta,
    pub lock: Option<LockView>,
}

impl Describe {
    pub async fn run(self, svc: &LockService) -> Result<Described, ApiError> {
        svc.admit()?;
        svc.config().limits.check_name(&self.name)?;
        let group = svc.group_of(&self.name);
        match svc.read(group, &ReadQuery::Describe { name: self.name }).await? {
            (meta, ReadAnswer::Describe(lock)) => Ok(Described { meta, lock }),
            (_, other) => Err(internal(format!("describe answered {other:?}"))),
        }
    }
}
