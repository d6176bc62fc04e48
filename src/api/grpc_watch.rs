//! The `Lock.Watch` stream: decode the request, open the watch, and send
//! its items as they come.
//!
//! Invariant: the stream owns the watch, so the client going away ends the
//! feed and gives back its place among the node's `max_watches`.

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

use super::grpc_wire::{name_of, status, watch_response};
use crate::error::{ApiError, ErrorCode};
use crate::proto::v1 as pb;
use crate::service::ops::watch::Watch;
use crate::service::watch::Filter;
use crate::service::LockService;

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send + 'static>>;

pub async fn watch(svc: &LockService, req: pb::WatchRequest) -> Result<WatchStream, Status> {
    let filter = match req.target {
        Some(pb::watch_request::Target::Name(name)) => Filter::Name(name_of(name)?),
        Some(pb::watch_request::Target::Prefix(prefix)) => Filter::Prefix(name_of(prefix)?),
        None => {
            let why = "a watch needs a target: set name (one lock) or prefix (empty for every lock)";
            return Err(status(ApiError::new(ErrorCode::InvalidArgument, why)));
        }
    };
    let progress_ms = (req.progress_ms != 0).then_some(u64::from(req.progress_ms));
    let watch = Watch { filter, start: req.start_index.into_iter().collect(), progress_ms };
    let watching = watch.run(svc).await.map_err(status)?;
    let stream = futures::stream::unfold(watching, |mut watching| async move {
        let item = watching.items.recv().await?;
        Some((Ok(watch_response(item)), watching))
    });
    Ok(Box::pin(stream))
}
