//! Release: the holder gives its permits back; waiters that now fit are
//! granted in the same entry.
//!
//! Invariant: a release that took more than one attempt and finds the key
//! (or its emptied lock) gone counts as done: the first attempt released
//! it, or the hold ended meanwhile; either way the caller no longer holds
//! it (the rule the client applies to its own retries).

use crate::error::ApiError;
use crate::lock::{Command, LockKey, Reply};
use crate::service::errors::internal;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Release {
    pub name: String,
    pub key: LockKey,
}

/// Where the release was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub meta: Meta,
}

impl Release {
    pub async fn run(self, svc: &LockService) -> Result<Released, ApiError> {
        svc.admit()?;
        svc.config().limits.check_name(&self.name)?;
        let group = svc.group_of(&self.name);
        svc.sessions().remove_hold(&self.name, &self.key);
        let cmd = Command::Release { name: self.name, key: self.key };
        let applied = svc.write(group, &cmd).await?;
        let meta = svc.meta(group, applied.index);
        match applied.outcome.reply.map_err(ApiError::from) {
            Ok(Reply::Released) => Ok(Released { meta }),
            Err(err) if applied.retried && err.code.means_not_held() => Ok(Released { meta }),
            Err(err) => Err(err),
            Ok(other) => Err(internal(format!("{cmd} answered {other:?}"))),
        }
    }
}
