//! Proclaim: the leader changes its value; refused with `NOT_HOLDER` once
//! `key` no longer leads.

use crate::error::ApiError;
use crate::lock::{LockKey, Value};
use crate::service::ops::set_value::SetValue;
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Proclaim {
    pub election: String,
    pub key: LockKey,
    pub value: Value,
}

impl Proclaim {
    pub async fn run(self, svc: &LockService) -> Result<Meta, ApiError> {
        let set = SetValue { name: self.election, key: self.key, value: Some(self.value) };
        Ok(set.run(svc).await?.meta)
    }
}
