//! Refresh: the holder extends its lease (and may change its TTL); the
//! lease runs again from the entry that applied it.

use crate::error::ApiError;
use crate::lock::{Command, Grant, LockKey, Reply};
use crate::service::errors::internal;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Refresh {
    pub name: String,
    pub key: LockKey,
    /// The new TTL; `None` keeps the current one.
    pub ttl_ms: Option<u64>,
}

/// The grant as refreshed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refreshed {
    pub meta: Meta,
    pub grant: Grant,
}

impl Refresh {
    pub async fn run(self, svc: &LockService) -> Result<Refreshed, ApiError> {
        svc.admit()?;
        let limits = &svc.config().limits;
        limits.check_name(&self.name)?;
        if let Some(ttl) = self.ttl_ms {
            limits.check_ttl(ttl)?;
        }
        let group = svc.group_of(&self.name);
        let cmd = Command::Refresh { name: self.name, key: self.key, ttl_ms: self.ttl_ms };
        let applied = svc.write(group, &cmd).await?;
        match applied.outcome.reply? {
            Reply::Refreshed(grant) => Ok(Refreshed { meta: svc.meta(group, applied.index), grant }),
            other => Err(internal(format!("{cmd} answered {other:?}"))),
        }
    }
}
