//! What one committed log entry asks of a group's lock table.
//!
//! Commands carry everything apply needs: keys are chosen before proposal,
//! and time appears only as durations (TTL, wait) or as the log index a
//! leader saw when it decided that a deadline passed. Commands proposed by
//! the leader name the exact lease or wait they end (`lease_index`,
//! `enqueue_index`), so an expiry that raced with a refresh does nothing.
//!
//! Invariant: the encoding of a variant never changes (log entries are
//! positional postcard): a command that needs more fields is a new variant,
//! appended, and the old one stays to read older logs. [`Command::AcquireV1`]
//! is the acquire of logs written before modes and values.

use serde::{Deserialize, Serialize};

use super::{LockKey, Mode, Value};

/// One acquire request, blocking (`wait_ms > 0`) or try-lock (`wait_ms == 0`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireCmd {
    pub name: String,
    pub key: LockKey,
    /// 1 for a mutex, N for a counting semaphore; fixed by the first acquirer.
    pub size: u32,
    /// Permits wanted, all or nothing.
    pub permits: u32,
    /// Lease TTL the grant will carry.
    pub ttl_ms: u64,
    /// How long the request may queue; 0 refuses at once with `Busy`.
    pub wait_ms: u64,
    /// Shared or exclusive; shared only for a lock of size 1.
    pub mode: Mode,
    /// The value the holder will carry.
    pub value: Option<Value>,
}

/// An acquire as logs of the versions before modes and values hold it: an
/// exclusive acquire without a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireV1 {
    pub name: String,
    pub key: LockKey,
    pub size: u32,
    pub permits: u32,
    pub ttl_ms: u64,
    pub wait_ms: u64,
}

impl From<&AcquireV1> for AcquireCmd {
    fn from(a: &AcquireV1) -> Self {
        AcquireCmd {
            name: a.name.clone(),
            key: a.key.clone(),
            size: a.size,
            permits: a.permits,
            ttl_ms: a.ttl_ms,
            wait_ms: a.wait_ms,
            mode: Mode::Exclusive,
            value: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Read from older logs only; applied as the [`Command::Acquire`] it means.
    #[serde(rename = "Acquire")]
    AcquireV1(AcquireV1),
    /// The holder gives its permits back.
    Release { name: String, key: LockKey },
    /// The holder extends its lease; `ttl_ms` replaces the previous TTL.
    Refresh {
        name: String,
        key: LockKey,
        /// The new TTL; `None` keeps the current one.
        ttl_ms: Option<u64>,
    },
    /// Proposed by the leader when the lease granted or refreshed at
    /// `lease_index` ran out on its clock.
    Expire { name: String, key: LockKey, lease_index: u64 },
    /// Proposed by the leader when the wait queued at `enqueue_index` ran out.
    WaitTimeout { name: String, key: LockKey, enqueue_index: u64 },
    /// Proposed by the node whose client stopped waiting (timeout, gone).
    CancelWait { name: String, key: LockKey },
    /// Admin: release one holder, or every holder when `key` is `None`.
    ForceRelease { name: String, key: Option<LockKey> },
    /// Proposed by the leader when a lock idle since `idle_since` outlived
    /// the grace period.
    GcIdle { name: String, idle_since: u64 },
    /// An acquire (of any mode, with or without a value).
    #[serde(rename = "AcquireWithMode")]
    Acquire(AcquireCmd),
    /// The holder changes (or, with `None`, clears) the value it carries.
    SetValue { name: String, key: LockKey, value: Option<Value> },
    /// The exclusive holder of a lock of size 1 turns shared, keeping its
    /// key, token and lease; the lock is never free in between.
    Downgrade { name: String, key: LockKey },
}

impl Command {
    /// The lock this command is about (every command names exactly one).
    pub fn name(&self) -> &str {
        match self {
            Command::Acquire(a) => &a.name,
            Command::AcquireV1(a) => &a.name,
            Command::Release { name, .. }
            | Command::Refresh { name, .. }
            | Command::Expire { name, .. }
            | Command::WaitTimeout { name, .. }
            | Command::CancelWait { name, .. }
            | Command::ForceRelease { name, .. }
            | Command::GcIdle { name, .. }
            | Command::SetValue { name, .. }
            | Command::Downgrade { name, .. } => name,
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Acquire(a) => write!(
                f,
                "acquire({:?}, key={}, size={}, permits={}, ttl={}ms, wait={}ms, {}{})",
                a.name,
                a.key,
                a.size,
                a.permits,
                a.ttl_ms,
                a.wait_ms,
                a.mode,
                if a.value.is_some() { ", with a value" } else { "" }
            ),
            Command::AcquireV1(a) => write!(
                f,
                "acquire({:?}, key={}, size={}, permits={}, ttl={}ms, wait={}ms)",
                a.name, a.key, a.size, a.permits, a.ttl_ms, a.wait_ms
            ),
            Command::Release { name, key } => write!(f, "release({name:?}, key={key})"),
            Command::Refresh { name, key, ttl_ms } => match ttl_ms {
                Some(ttl) => write!(f, "refresh({name:?}, key={key}, ttl={ttl}ms)"),
                None => write!(f, "refresh({name:?}, key={key})"),
            },
            Command::Expire { name, key, lease_index } => {
                write!(f, "expire({name:?}, key={key}, lease_index={lease_index})")
            }
            Command::WaitTimeout { name, key, enqueue_index } => {
                write!(f, "wait_timeout({name:?}, key={key}, enqueue_index={enqueue_index})")
            }
            Command::CancelWait { name, key } => write!(f, "cancel_wait({name:?}, key={key})"),
            Command::ForceRelease { name, key } => match key {
                Some(key) => write!(f, "force_release({name:?}, key={key})"),
                None => write!(f, "force_release({name:?}, all)"),
            },
            Command::GcIdle { name, idle_since } => {
                write!(f, "gc_idle({name:?}, idle_since={idle_since})")
            }
            Command::SetValue { name, key, value } => match value {
                Some(value) => write!(f, "set_value({name:?}, key={key}, {} bytes)", value.len()),
                None => write!(f, "set_value({name:?}, key={key}, none)"),
            },
            Command::Downgrade { name, key } => write!(f, "downgrade({name:?}, key={key})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_acquires_keep_their_encoding() {
        let key = LockKey::new("k1").unwrap();
        let v1 = AcquireV1 { name: "a".into(), key: key.clone(), size: 1, permits: 1, ttl_ms: 300, wait_ms: 0 };
        // Variant 0, then name, key, size, permits, ttl (varint 300 = ac 02), wait.
        let written_before = [0, 1, b'a', 2, b'k', b'1', 1, 1, 0xac, 0x02, 0];
        let read: Command = postcard::from_bytes(&written_before).unwrap();
        assert_eq!(read, Command::AcquireV1(v1.clone()));
        assert_eq!(postcard::to_allocvec(&read).unwrap(), written_before);
        // And in the JSON of format 1.
        let json = r#"{"Acquire":{"name":"a","key":"k1","size":1,"permits":1,"ttl_ms":300,"wait_ms":0}}"#;
        assert_eq!(serde_json::from_str::<Command>(json).unwrap(), Command::AcquireV1(v1.clone()));
        // Release stays variant 1.
        let release = Command::Release { name: "a".into(), key };
        assert_eq!(postcard::to_allocvec(&release).unwrap()[0], 1);
        let now = AcquireCmd::from(&v1);
        assert_eq!((now.mode, now.value), (Mode::Exclusive, None));
    }
}
