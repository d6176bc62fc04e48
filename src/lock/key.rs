//! Holder keys.
//!
//! Invariant: a [`LockKey`] is 1 to [`LockKey::MAX_LEN`] bytes of
//! `[A-Za-z0-9._:-]`, whoever built it (clients, the server's generator or
//! serde), so a key is always safe to print, to put in a header or an
//! environment variable, and to compare byte-wise.

use serde::{Deserialize, Serialize};

use super::LockError;

/// The name of a lock, shared by the table and by what tracks the lock
/// (effects, the lease keeper, waits) instead of copied.
pub type Name = std::sync::Arc<str>;

/// The key under which a holder or a waiter is known.
///
/// Clients may choose it (which makes a retried acquire idempotent); the
/// server otherwise generates 128 random bits, as 32 hex digits, before it
/// proposes the command. Held as a boxed `str`, not a `String`: a table
/// keeps one per holder and waiter, and the 8 bytes of capacity are waste.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LockKey(Box<str>);

impl LockKey {
    /// The longest key accepted, in bytes (a UUID or 32 hex digits fit).
    pub const MAX_LEN: usize = 64;

    /// Checks the shape of `key` and wraps it.
    pub fn new(key: impl Into<String>) -> Result<Self, LockError> {
        let key = key.into();
        if key.is_empty() || key.len() > Self::MAX_LEN {
            return Err(LockError::InvalidKey { len: key.len() });
        }
        if !key.bytes().all(is_key_byte) {
            return Err(LockError::InvalidKey { len: key.len() });
        }
        Ok(Self(key.into_boxed_str()))
    }

    /// The key made of 128 bits, as 32 lowercase hex digits.
    pub fn from_u128(bits: u128) -> Self {
        Self(format!("{bits:032x}").into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

impl TryFrom<String> for LockKey {
    type Error = LockError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<LockKey> for String {
    fn from(key: LockKey) -> Self {
        key.0.into_string()
    }
}

impl std::fmt::Display for LockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases: &[(&str, bool)] = &[
            ("k1", true),
            ("0f3a9b6c-1d2e-4f50-8a9b-0c1d2e3f4a5b", true),
            ("host:pid.17_x", true),
            ("", false),
            ("has space", false),
            ("slash/", false),
            ("é", false),
            (&"a".repeat(64), true),
            (&"a".repeat(65), false),
        ];
        for (key, ok) in cases {
            assert_eq!(LockKey::new(*key).is_ok(), *ok, "key {key:?}");
        }
    }

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let a = LockKey::from_u128(1);
        let b = LockKey::from_u128(u128::MAX);
        assert_eq!(a.as_str().len(), 32);
        assert!(LockKey::new(a.as_str()).is_ok() && LockKey::new(b.as_str()).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn serde_refuses_bad_shapes() {
        assert!(serde_json::from_str::<LockKey>("\"ok-key\"").is_ok());
        assert!(serde_json::from_str::<LockKey>("\"bad key\"").is_err());
    }
}
