//! SetValue: the holder changes (or clears) the value it carries; only a
//! live holder of the lock may (Proclaim of an election is this call).

use crate::error::ApiError;
use crate::lock::{Command, Grant, LockKey, Reply, Value};
use crate::service::errors::internal;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct SetValue {
    pub name: String,
    pub key: LockKey,
    /// The new value; `None` clears it.
    pub value: Option<Value>,
}

/// The hold with its new value, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueSet {
    pub meta: Meta,
    pub grant: Grant,
}

impl SetValue {
    pub async fn run(self, svc: &LockService) -> Result<ValueSet, ApiError> {
        svc.admit()?;
        let limits = &svc.config().limits;
        limits.check_name(&self.name)?;
        limits.check_value(self.value.as_ref())?;
        let group = svc.group_of(&self.name);
        let cmd = Command::SetValue { name: self.name, key: self.key, value: self.value };
        let applied = svc.write(group, &cmd).await?;
        match applied.outcome.reply? {
            Reply::ValueSet(grant) => Ok(ValueSet { meta: svc.meta(group, applied.index), grant }),
            other => Err(internal(format!("{cmd} answered {other:?}"))),
        }
    }
}
