//! Downgrade: the exclusive holder of a lock of size 1 turns shared, in one
//! entry — same key, token and lease, the lock never free in between — and
//! the shared waiters at the head of the queue join it. A shared holder is
//! answered as it is, so a retry is harmless; there is no upgrade.

use crate::error::ApiError;
use crate::lock::{Command, Grant, LockKey, Reply};
use crate::service::errors::internal;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Downgrade {
    pub name: String,
    pub key: LockKey,
}

/// The hold, now shared, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downgraded {
    pub meta: Meta,
    pub grant: Grant,
}

impl Downgrade {
    pub async fn run(self, svc: &LockService) -> Result<Downgraded, ApiError> {
        svc.admit()?;
        svc.config().limits.check_name(&self.name)?;
        let group = svc.group_of(&self.name);
        let cmd = Command::Downgrade { name: self.name, key: self.key };
        let applied = svc.write(group, &cmd).await?;
        match applied.outcome.reply? {
            Reply::Downgraded(grant) => Ok(Downgraded { meta: svc.meta(group, applied.index), grant }),
            other => Err(internal(format!("{cmd} answered {other:?}"))),
        }
    }
}
