//! Watching from the client: a stream of one lock's changes, or of a name
//! prefix's, that outlives the node it reads from.
//!
//! Invariants: the stream remembers, per group, the index after the last
//! event or progress it delivered (the server's first message is a
//! progress giving every group's starting point), and when its node's
//! stream breaks it reconnects — to the group's leader, another node, or
//! the one a `NOT_LEADER` names — asking each group to resume there, so it
//! delivers no event twice and skips none. It retries for `RETRY_FOR`
//! after its last successful message, then yields the error and ends; it
//! also ends after `Compacted`.

use std::collections::{BTreeMap, HashMap};

use futures::Stream;
use tonic::Streaming;

use super::reopen::Reopen;
use super::rpc::{unreachable, Client};
use crate::error::{ApiError, ErrorCode};
use crate::proto::v1 as pb;
use crate::proto::v1::lock_client::LockClient;

/// What to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchTarget {
    /// One lock.
    Name(String),
    /// Every lock whose name starts with it (empty: every lock).
    Prefix(String),
}

/// Where to start and how often a quiet stream reports progress.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Per group, the index to start at (resume after the last one seen);
    /// other groups start at the index their node has applied.
    pub start: BTreeMap<u32, u64>,
    /// 0: the server's default (1000 ms).
    pub progress_ms: u32,
}

/// One item of a watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchItem {
    /// The watched events of one log entry of one group, in order.
    Events(Vec<pb::WatchEvent>),
    /// Nothing watched changed: per group, the index applied so far.
    Progress(HashMap<u32, u64>),
    /// The last item: the history needed is gone; re-read the locks, then
    /// watch again from `current_index + 1`.
    Compacted(pb::WatchCompacted),
}

struct Watcher {
    client: Client,
    target: WatchTarget,
    cursors: BTreeMap<u32, u64>,
    progress_ms: u32,
    stream: Option<Streaming<pb::WatchResponse>>,
    done: bool,
}

impl Client {
    /// Watches `target` from `opts.start`; see the module doc.
    pub fn watch(
        &self,
        target: WatchTarget,
        opts: WatchOptions,
    ) -> impl Stream<Item = Result<WatchItem, ApiError>> + Send + 'static {
        let watcher = Watcher {
            client: self.clone(),
            target,
            cursors: opts.start,
            progress_ms: opts.progress_ms,
            stream: None,
            done: false,
        };
        futures::stream::unfold(watcher, |mut w| async move {
            if w.done {
                return None;
            }
            let item = w.next().await;
            w.done |= item.is_err();
            Some((item, w))
        })
    }
}

impl Watcher {
    fn name_hint(&self) -> &str {
        match &self.target {
            WatchTarget::Name(name) => name,
            WatchTarget::Prefix(_) => "",
        }
    }

    async fn next(&mut self) -> Result<WatchItem, ApiError> {
        let mut reopen = Reopen::new();
        loop {
            let err = match self.stream.as_mut() {
                None => match self.open(&mut reopen).await {
                    Ok(stream) => {
                        self.stream = Some(stream);
                        continue;
                    }
                    Err(err) => err,
                },
                Some(stream) => match stream.message().await {
                    Ok(Some(resp)) => return Ok(self.take(resp)),
                    Ok(None) => ApiError::new(ErrorCode::Unavailable, "the watch stream ended: resuming"),
                    Err(status) => ApiError::from_status(&status),
                },
            };
            self.stream = None;
            reopen.after(&self.client, err).await?;
        }
    }

    async fn open(&mut self, reopen: &mut Reopen) -> Result<Streaming<pb::WatchResponse>, ApiError> {
        let addr = reopen.addr(&self.client, self.name_hint());
        let target = match &self.target {
            WatchTarget::Name(name) => pb::watch_request::Target::Name(name.as_bytes().to_vec()),
            WatchTarget::Prefix(prefix) => pb::watch_request::Target::Prefix(prefix.as_bytes().to_vec()),
        };
        let req = pb::WatchRequest {
            target: Some(target),
            start_index: self.cursors.iter().map(|(g, i)| (*g, *i)).collect(),
            progress_ms: self.progress_ms,
        };
        let mut lock = LockClient::new(self.client.channel(&addr)?);
        lock.watch(self.client.request(req)).await.map(|r| r.into_inner()).map_err(|s| unreachable(&addr, s))
    }

    /// Notes how far the stream got, and turns a message into an item.
    fn take(&mut self, resp: pb::WatchResponse) -> WatchItem {
        if let Some(compacted) = resp.compacted {
            self.done = true;
            return WatchItem::Compacted(compacted);
        }
        if !resp.events.is_empty() {
            for e in &resp.events {
                self.cursors.insert(e.group, e.index + 1);
            }
            return WatchItem::Events(resp.events);
        }
        for (group, index) in &resp.progress {
            self.cursors.insert(*group, index + 1);
        }
        WatchItem::Progress(resp.progress)
    }
}
