//! Lock modes: exclusive (the default) and shared.
//!
//! Invariants, kept by [`super::Lock`]: a lock's holders are either one
//! exclusive holder per permit range (any size) or any number of shared
//! holders (size 1 only, at most `Limits::max_shared_holders`), never both.
//! A semaphore (size above 1) refuses `Shared`. An exclusive holder may turn
//! shared (a downgrade); a shared holder never turns exclusive.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The holder holds alone (with the other holders of a semaphore's
    /// permits).
    #[default]
    Exclusive,
    /// The holder holds together with the other shared holders (readers).
    Shared,
}

impl Mode {
    /// The mode's name on every surface: `exclusive` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }

    /// Reads a mode's name, in any case.
    pub fn parse(text: &str) -> Option<Mode> {
        match text.to_ascii_lowercase().as_str() {
            "exclusive" => Some(Mode::Exclusive),
            "shared" => Some(Mode::Shared),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
