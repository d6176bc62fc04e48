//! The gRPC wire forms shared by the gRPC services: names, keys, modes,
//! values, headers and statuses, and the watch messages.
//!
//! Invariants: names arrive as bytes and must be UTF-8 (else INVALID_NAME);
//! an empty key means "generate one" where a key is optional; an unknown
//! mode is INVALID_ARGUMENT; every error leaves as a status built by
//! `ApiError::to_status`.

use std::collections::HashMap;

use tonic::Status;

use crate::error::{ApiError, ErrorCode};
use crate::lock::{LockKey, Mode, Value};
use crate::proto::v1 as pb;
use crate::service::watch::{Event, Item, Kind};
use crate::service::Meta;

pub(super) fn status(err: ApiError) -> Status {
    err.to_status()
}

pub(super) fn name_of(bytes: Vec<u8>) -> Result<String, Status> {
    String::from_utf8(bytes).map_err(|_| {
        status(ApiError::new(ErrorCode::InvalidName, "lock name is not valid UTF-8: send the name as UTF-8 bytes"))
    })
}

/// The client's key, or `None` when it left the field empty.
pub(super) fn key_of(key: String) -> Result<Option<LockKey>, Status> {
    if key.is_empty() {
        return Ok(None);
    }
    LockKey::new(key).map(Some).map_err(|e| status(e.into()))
}

pub(super) fn required_key(key: String) -> Result<LockKey, Status> {
    key_of(key)?
        .ok_or_else(|| status(ApiError::new(ErrorCode::InvalidKey, "key is empty: give the key the grant returned")))
}

pub(super) fn header(meta: Meta) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader { group: meta.group, node_id: meta.node_id, index: meta.index })
}

pub(super) fn mode_of(mode: i32) -> Result<Mode, Status> {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Exclusive) => Ok(Mode::Exclusive),
        Ok(pb::Mode::Shared) => Ok(Mode::Shared),
        Err(_) => Err(status(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("mode {mode} is unknown: use MODE_EXCLUSIVE or MODE_SHARED"),
        ))),
    }
}

pub(super) fn pb_mode(mode: Mode) -> i32 {
    match mode {
        Mode::Exclusive => pb::Mode::Exclusive as i32,
        Mode::Shared => pb::Mode::Shared as i32,
    }
}

pub(super) fn bytes_of(value: Option<Value>) -> Option<Vec<u8>> {
    value.map(Value::into_vec)
}

pub(super) fn event(e: Event) -> pb::WatchEvent {
    let kind = match e.kind {
        Kind::Granted => pb::watch_event::Kind::Granted,
        Kind::Released => pb::watch_event::Kind::Released,
        Kind::Expired => pb::watch_event::Kind::Expired,
        Kind::ForceReleased => pb::watch_event::Kind::ForceReleased,
        Kind::Queued => pb::watch_event::Kind::Queued,
        Kind::WaitEnded => pb::watch_event::Kind::WaitEnded,
        Kind::ValueChanged => pb::watch_event::Kind::ValueChanged,
        Kind::Downgraded => pb::watch_event::Kind::Downgraded,
    };
    pb::WatchEvent {
        kind: kind as i32,
        group: e.group,
        index: e.index,
        name: e.name.as_bytes().to_vec(),
        key: e.key.to_string(),
        fencing_token: e.token,
        permits: e.permits,
        mode: pb_mode(e.mode),
        value: bytes_of(e.value),
        reason: e.reason.as_str().to_owned(),
    }
}

pub(super) fn compacted(group: u32, oldest: u64, applied: u64) -> pb::WatchCompacted {
    pb::WatchCompacted { group, oldest_index: oldest, current_index: applied }
}

/// One watch item as its message.
pub(super) fn watch_response(item: Item) -> pb::WatchResponse {
    match item {
        Item::Events(events) => {
            pb::WatchResponse { events: events.into_iter().map(event).collect(), ..Default::default() }
        }
        Item::Progress(reached) => {
            let progress: HashMap<u32, u64> = reached.into_iter().collect();
            pb::WatchResponse { progress, ..Default::default() }
        }
        Item::Compacted { group, oldest, applied } => {
            pb::WatchResponse { compacted: Some(compacted(group, oldest, applied)), ..Default::default() }
        }
    }
}
