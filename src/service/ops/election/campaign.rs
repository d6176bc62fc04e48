//! Campaign: wait in the election's queue until this campaigner leads.
//!
//! An acquire of the election's lock (size 1, exclusive) carrying the
//! campaigner's value; it waits up to `wait_ms`, or as long as the limits
//! allow (`max_wait_ms`) when the campaigner names no wait.

use std::sync::Arc;

use super::Leadership;
use crate::error::ApiError;
use crate::lock::{LockKey, Mode, Value};
use crate::service::ops::acquire::{Acquire, InSession};
use crate::service::{LockService, Meta};

#[derive(Clone, Debug)]
pub struct Campaign {
    pub election: String,
    pub value: Value,
    pub ttl_ms: Option<u64>,
    /// How long to wait for leadership; `None` as long as the limits allow.
    pub wait_ms: Option<u64>,
    pub key: Option<LockKey>,
    pub session: Option<InSession>,
}

/// The leadership won, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaigned {
    pub meta: Meta,
    pub leader: Leadership,
}

impl Campaign {
    pub async fn run(self, svc: &Arc<LockService>) -> Result<Campaigned, ApiError> {
        let wait_ms = self.wait_ms.unwrap_or(svc.config().limits.max_wait_ms);
        let acquire = Acquire {
            name: self.election.clone(),
            key: self.key,
            size: Some(1),
            permits: Some(1),
            ttl_ms: self.ttl_ms,
            wait_ms: Some(wait_ms),
            mode: Some(Mode::Exclusive),
            value: Some(self.value),
            session: self.session,
        };
        let granted = acquire.run(svc).await?;
        Ok(Campaigned { meta: granted.meta, leader: Leadership::of_grant(&self.election, &granted.grant) })
    }
}
