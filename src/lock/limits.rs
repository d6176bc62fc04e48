//! Bounds on what one request may ask.
//!
//! The same limits are checked at the edge (for a clear early answer) and
//! again in apply (so a bad entry can never corrupt the table). Every replica
//! of a cluster must run with the same limits; they come from one config.
//! Bounds keep deadline arithmetic far from overflow: the largest TTL or
//! wait is checked here, before any `Instant + Duration`.

use serde::{Deserialize, Serialize};

use super::{LockError, Mode, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest lock name, in bytes.
    pub max_name_bytes: usize,
    /// Largest semaphore size (1 is a mutex).
    pub max_size: u32,
    /// Shortest lease; shorter leases would expire before a refresh can land.
    pub min_ttl_ms: u64,
    /// Longest lease.
    pub max_ttl_ms: u64,
    /// Longest wait of a blocking acquire.
    pub max_wait_ms: u64,
    /// Most waiters queued on one lock.
    pub max_waiters_per_lock: usize,
    /// Most shared holders of one lock at once; more wait in the queue.
    pub max_shared_holders: usize,
    /// Longest value a holder may carry, in bytes.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_bytes: 1024,
            max_size: 1_000_000,
            min_ttl_ms: 500,
            max_ttl_ms: 7 * 24 * 3600 * 1000,
            max_wait_ms: 24 * 3600 * 1000,
            max_waiters_per_lock: 10_000,
            max_shared_holders: 1_000,
            max_value_bytes: 1024,
        }
    }
}

impl Limits {
    pub fn check_name(&self, name: &str) -> Result<(), LockError> {
        let max = self.max_name_bytes;
        match name.len() {
            0 => Err(LockError::EmptyName { max }),
            len if len > max => Err(LockError::NameTooLong { len, max }),
            _ => Ok(()),
        }
    }

    pub fn check_size(&self, size: u32) -> Result<(), LockError> {
        if size == 0 || size > self.max_size {
            return Err(LockError::InvalidSize { size, max: self.max_size });
        }
        Ok(())
    }

    pub fn check_permits(&self, permits: u32, size: u32) -> Result<(), LockError> {
        if permits == 0 || permits > size {
            return Err(LockError::InvalidPermits { permits, size });
        }
        Ok(())
    }

    pub fn check_ttl(&self, ttl_ms: u64) -> Result<(), LockError> {
        if ttl_ms < self.min_ttl_ms || ttl_ms > self.max_ttl_ms {
            let (min_ms, max_ms) = (self.min_ttl_ms, self.max_ttl_ms);
            return Err(LockError::InvalidTtl { ttl_ms, min_ms, max_ms });
        }
        Ok(())
    }

    pub fn check_wait(&self, wait_ms: u64) -> Result<(), LockError> {
        if wait_ms > self.max_wait_ms {
            return Err(LockError::InvalidWait { wait_ms, max_ms: self.max_wait_ms });
        }
        Ok(())
    }

    /// Shared mode is for locks of size 1.
    pub fn check_mode(&self, mode: Mode, size: u32) -> Result<(), LockError> {
        if mode == Mode::Shared && size != 1 {
            return Err(LockError::SharedSemaphore { size });
        }
        Ok(())
    }

    pub fn check_value(&self, value: Option<&Value>) -> Result<(), LockError> {
        match value {
            Some(v) if v.len() > self.max_value_bytes => {
                Err(LockError::ValueTooLarge { len: v.len(), max: self.max_value_bytes })
            }
            _ => Ok(()),
        }
    }

    /// Checks that the limits themselves make sense (used by config validation).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_name_bytes == 0 {
            return Err("limits.max_name_bytes must be at least 1".into());
        }
        if self.max_size == 0 {
            return Err("limits.max_size must be at least 1".into());
        }
        if self.min_ttl_ms == 0 || self.min_ttl_ms > self.max_ttl_ms {
            return Err("limits.min_ttl_ms must be at least 1 and at most limits.max_ttl_ms".into());
        }
        // Ten years: far below any Instant overflow, far above any sane lease.
        const CEILING_MS: u64 = 10 * 365 * 24 * 3600 * 1000;
        if self.max_ttl_ms > CEILING_MS || self.max_wait_ms > CEILING_MS {
            return Err(format!("limits.max_ttl_ms and limits.max_wait_ms must be at most {CEILING_MS}"));
        }
        if self.max_waiters_per_lock == 0 {
            return Err("limits.max_waiters_per_lock must be at least 1".into());
        }
        if self.max_shared_holders == 0 {
            return Err("limits.max_shared_holders must be at least 1".into());
        }
        // Values travel in log entries, snapshots and every watch event.
        const VALUE_CEILING: usize = 64 * 1024;
        if self.max_value_bytes > VALUE_CEILING {
            return Err(format!("limits.max_value_bytes must be at most {VALUE_CEILING}"));
        }
        Ok(())
    }
}
