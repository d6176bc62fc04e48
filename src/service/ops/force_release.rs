//! Force-release (admin): ends one holder's hold, or every holder's.

use crate::error::ApiError;
use crate::lock::{Command, LockKey, Reply};
use crate::service::errors::internal;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct ForceRelease {
    pub name: String,
    /// The holder to release; `None` releases every holder.
    pub key: Option<LockKey>,
}

/// How many holds ended, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForceReleased {
    pub meta: Meta,
    pub released: u32,
}

impl ForceRelease {
    pub async fn run(self, svc: &LockService) -> Result<ForceReleased, ApiError> {
        svc.admit()?;
        svc.config().limits.check_name(&self.name)?;
        let group = svc.group_of(&self.name);
        let cmd = Command::ForceRelease { name: self.name, key: self.key };
        let applied = svc.write(group, &cmd).await?;
        match applied.outcome.reply? {
            Reply::ForceReleased { holders } => {
                Ok(ForceReleased { meta: svc.meta(group, applied.index), released: holders })
            }
            other => Err(internal(format!("{cmd} answered {other:?}"))),
        }
    }
}
