//! Watch: the changes of one lock, or of every lock under a name prefix,
//! streamed from this node's replicas as it applies them.
//!
//! Each watched group starts at the index the client asked for (to resume)
//! or after the index this node has applied; a quiet stream gets progress
//! every `progress_ms` (default 1000, 100 to 60000); `max_watches` bounds
//! the streams open on a node. A group this node holds a replica of is read
//! from its own history; any other is relayed from a node that holds it
//! (`watch::relay`), into a copy the feed reads the same way.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::{ApiError, ErrorCode};
use crate::routing::GroupId;
use crate::service::forward::call;
use crate::service::watch::relay::{Relay, RelayRead, RelayRequest};
use crate::service::watch::{Cursor, Feed, Filter, History, Item};
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
    pub async fn run(self, svc: &LockService) -> Result<Watching, ApiError> {
        svc.admit()?;
        let groups = self.groups(svc)?;
        let slot = take_slot(svc)?;
        let remote: Vec<GroupId> = groups.iter().copied().filter(|g| !svc.cluster().hosts(*g)).collect();
        let config = svc.config();
        let copy = (!remote.is_empty()).then(|| Arc::new(History::new(config.groups, config.watch_history)));
        let mut cursors = Vec::with_capacity(groups.len());
        for group in groups {
            cursors.push(match &copy {
                Some(copy) if remote.contains(&group) => self.relayed(svc, group, copy).await?,
                _ => self.local(svc, group),
            });
        }
        let progress = self.progress_ms.unwrap_or(DEFAULT_PROGRESS_MS).clamp(100, 60_000);
        let feed = Feed { filter: self.filter, cursors, progress_every: Duration::from_millis(progress) };
        Ok(Watching { items: feed.spawn(BUFFER), _slot: slot })
    }

    /// The groups watched, once the request is checked.
    fn groups(&self, svc: &LockService) -> Result<Vec<GroupId>, ApiError> {
        let config = svc.config();
        let groups = match &self.filter {
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
        Ok(groups)
    }

    /// A group this node holds a replica of, read from its own history.
    fn local(&self, svc: &LockService, group: GroupId) -> Cursor {
        let history = svc.history().clone();
        let next = self.start.get(&group).copied().unwrap_or_else(|| history.applied(group) + 1);
        Cursor { group, next, history }
    }

    /// A group relayed from a node that holds it, into `copy`.
    async fn relayed(&self, svc: &LockService, group: GroupId, copy: &Arc<History>) -> Result<Cursor, ApiError> {
        let next = match self.start.get(&group) {
            Some(next) => (*next).max(1), // Log indexes start at 1.
            None => now_elsewhere(svc, group, &self.filter).await? + 1,
        };
        Relay { group, filter: self.filter.clone(), from: next }.spawn(copy, fetcher(svc, group));
        Ok(Cursor { group, next, history: copy.clone() })
    }
}

type RelayFetch = Pin<Box<dyn Future<Output = Result<RelayRead, ApiError>> + Send>>;

/// Sends relay requests for `group` to a node that holds it, retrying (and
/// following leader changes) for the routing's retry window.
fn fetcher(svc: &LockService, group: GroupId) -> impl Fn(RelayRequest) -> RelayFetch + Send + 'static {
    let (routing, cluster) = (svc.routing().clone(), svc.cluster().clone());
    move |req| {
        let (routing, cluster) = (routing.clone(), cluster.clone());
        Box::pin(async move {
            let not_here = || async { Err(ApiError::not_leader(None)) };
            routing.on_leader(group, not_here, |node| call::watch_read(cluster.router(), node, group, &req)).await
        })
    }
}

/// The index `group` is at on a node that holds it.
async fn now_elsewhere(svc: &LockService, group: GroupId, filter: &Filter) -> Result<u64, ApiError> {
    let ask = RelayRequest { filter: filter.clone(), from: 0, wait_ms: 0 };
    match fetcher(svc, group)(ask).await? {
        RelayRead::Entries { applied, .. } | RelayRead::Compacted { applied, .. } => Ok(applied),
    }
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
