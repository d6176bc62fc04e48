//! Watch: the changes of one lock, or of every lock under a name prefix,
//! streamed from this node's replicas as it applies them.
//!
//! Each watched group starts at the index the client asked for (to resume)
//! or after the index this node has applied; a quiet stream gets progress
//! every `progress_ms` (default 1000, 100 to 60000); `max_watches` bounds
//! the streams open on a node. The node must hold a replica of every group
//! watched; one that does not refuses with a retryable `NOT_LEADER` naming
//! the group's leader, which does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::{ApiError, ErrorCode};
use crate::routing::GroupId;
use crate::service::watch::{Feed, Filter, Item};
use crate::service::LockService;

/// Progress interval when the client names none.
pub const DEFAULT_PROGRESS_MS: u64 = 1000;
/// Items a stream buffers for a slow client before the feed waits.
const BUFFER: usize = 256;

#[derive(Clone, Debug)]
pub struct Watch {
    pub filter: Filter,
    /// Per group, the index to start at; other groups start now.
    pub start: BTreeMap<GroupId, u64>,
    pub progress_ms: Option<u64>,
}

/// An open watch: its items, and its place among the node's open watches
/// (given back when this is dropped).
pub struct Watching {
    pub items: mpsc::Receiver<Item>,
    _slot: Slot,
}

/// One of the node's `max_watches` places.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Watch {
    /// Opens the stream; it runs until the client drops it or it ends with
    /// `Item::Compacted`.
    pub fn run(self, svc: &LockService) -> Result<Watching, ApiError> {
        svc.admit()?;
        let config = svc.config();
        let groups: Vec<GroupId> = match &self.filter {
            Filter::Name(name) => {
                config.limits.check_name(name)?;
                vec![svc.group_of(name)]
            }
            Filter::Prefix(prefix) => {
                if prefix.len() > config.limits.max_name_bytes {
                    config.limits.check_name(prefix)?;
                }
                (0..config.groups).collect()
            }
        };
        if let Some(group) = self.start.keys().find(|g| **g >= config.groups) {
            let why = format!("group {group} does not exist: this cluster has groups 0 to {}", config.groups - 1);
            return Err(ApiError::new(ErrorCode::InvalidArgument, why));
        }
        for &group in &groups {
            if !svc.cluster().hosts(group) {
                return Err(ApiError::not_leader(host_addr(svc, group)));
            }
        }
        let slot = take_slot(svc)?;
        let history = svc.history();
        let from: Vec<(GroupId, u64)> = groups
            .iter()
            .map(|&g| (g, self.start.get(&g).copied().unwrap_or_else(|| history.applied(g) + 1)))
            .collect();
        let progress = self.progress_ms.unwrap_or(DEFAULT_PROGRESS_MS).clamp(100, 60_000);
        let feed = Feed { filter: self.filter, cursors: from, progress_every: Duration::from_millis(progress) };
        Ok(Watching { items: feed.spawn(history.clone(), BUFFER), _slot: slot })
    }
}

/// The client address of a node that holds `group` (its leader if known).
fn host_addr(svc: &LockService, group: GroupId) -> Option<String> {
    let node = svc.cluster().route(group)?;
    svc.cluster().nodes().nodes.get(&node).map(|n| n.client_addr.clone())
}

fn take_slot(svc: &LockService) -> Result<Slot, ApiError> {
    let open = svc.watches();
    let max = svc.config().max_watches;
    if open.fetch_add(1, Ordering::SeqCst) >= max {
        open.fetch_sub(1, Ordering::SeqCst);
        let why = format!("this node has {max} watch streams open (max_watches): retry later or on another node");
        return Err(ApiError::new(ErrorCode::Unavailable, why));
    }
    Ok(Slot(open.clone()))
}
