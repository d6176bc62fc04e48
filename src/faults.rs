//! Test-only fault hooks, all behind this one seam, so that production
//! code shows exactly where a test can bend it. Both are off unless a test
//! turns them on; neither touches the lock core (`src/lock`).
//!
//! - [`BROKEN_ADMITS_QUEUED`]: the `chaos-broken` build answers a blocking
//!   acquire that queues as if it were granted, so the fault harness can
//!   prove that its checker catches a lock that admits two holders
//!   (`make test` runs t08 once with it and expects the catch);
//! - [`SlowDisk`]: `storage.test_only_sync_delay_ms` sleeps before every WAL
//!   sync while the file [`SLOW_DISK_SWITCH`] exists in the data directory,
//!   so a test can slow a node's disk while it leads.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;

/// The `chaos-broken` feature (tests only, never for production).
pub const BROKEN_ADMITS_QUEUED: bool = cfg!(feature = "chaos-broken");

/// The file in a node's data directory that turns a configured slow disk
/// on while it exists.
pub const SLOW_DISK_SWITCH: &str = "TEST_ONLY_SLOW_DISK";

/// A slow disk: `delay` before every sync while the file `switch` exists
/// (always, without a switch); none by default.
#[derive(Clone, Debug, Default)]
pub struct SlowDisk {
    pub delay: Duration,
    pub switch: Option<PathBuf>,
}

impl SlowDisk {
    /// The slow disk `config` asks for (none unless a test set the delay).
    pub fn of(config: &Config) -> Self {
        let delay = Duration::from_millis(config.storage.test_only_sync_delay_ms);
        if !delay.is_zero() {
            tracing::warn!(
                ms = config.storage.test_only_sync_delay_ms,
                switch = SLOW_DISK_SWITCH,
                "test_only_sync_delay_ms is on: wal syncs are slowed while the switch file is in the data directory"
            );
        }
        Self { delay, switch: Some(config.data_dir.join(SLOW_DISK_SWITCH)) }
    }

    /// The delay to apply before the next sync (one `stat` per sync when on).
    pub fn now(&self) -> Duration {
        match &self.switch {
            _ if self.delay.is_zero() => Duration::ZERO,
            Some(switch) if !switch.exists() => Duration::ZERO,
            _ => self.delay,
        }
    }
}
