//! Watch over REST: `GET /v1/lock/watch?name=N` (or `?prefix=P`) answers
//! with server-sent events, one per watch item: `events` (a JSON array of
//! the events of one entry), `progress` (an object of group → index) and
//! `compacted` (the last one). `start` resumes: `group:index` pairs,
//! comma-separated; `progress_ms` sets the progress interval.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::error::RestError;
use super::Svc;
use crate::error::{ApiError, ErrorCode};
use crate::lock::{Mode, Value};
use crate::routing::GroupId;
use crate::service::ops::watch::Watch;
use crate::service::watch::{Event, Filter, Item};

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    pub name: Option<String>,
    pub prefix: Option<String>,
    /// `group:index` pairs, comma-separated.
    pub start: Option<String>,
    pub progress_ms: Option<u64>,
}

/// One event as REST shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventView {
    pub kind: String,
    pub group: GroupId,
    pub index: u64,
    pub name: String,
    pub key: String,
    pub fencing_token: u64,
    pub permits: u32,
    pub mode: Mode,
    pub value: Option<Value>,
    pub reason: String,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            group: e.group,
            index: e.index,
            name: e.name.to_string(),
            key: e.key.to_string(),
            fencing_token: e.token,
            permits: e.permits,
            mode: e.mode,
            value: e.value,
            reason: e.reason.as_str().to_owned(),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct CompactedView {
    pub group: GroupId,
    pub oldest_index: u64,
    pub current_index: u64,
}

fn bad(why: impl Into<String>) -> RestError {
    RestError(ApiError::new(ErrorCode::InvalidArgument, why))
}

/// Reads `start`: `group:index` pairs, comma-separated.
pub fn starts(text: &str) -> Result<BTreeMap<GroupId, u64>, RestError> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let parsed = pair.split_once(':').and_then(|(g, i)| Some((g.trim().parse().ok()?, i.trim().parse().ok()?)));
        let (group, index) = parsed.ok_or_else(|| bad(format!("start {pair:?} is not group:index")))?;
        out.insert(group, index);
    }
    Ok(out)
}

/// One watch item as a server-sent event.
pub fn sse_event(item: Item) -> SseEvent {
    let event =
        match item {
            Item::Events(events) => {
                let views: Vec<EventView> = events.into_iter().map(EventView::from).collect();
                SseEvent::default().event("events").json_data(views)
            }
            Item::Progress(reached) => {
                let progress: BTreeMap<String, u64> = reached.into_iter().map(|(g, i)| (g.to_string(), i)).collect();
                SseEvent::default().event("progress").json_data(progress)
            }
            Item::Compacted { group, oldest, applied } => SseEvent::default()
                .event("compacted")
                .json_data(CompactedView { group, oldest_index: oldest, current_index: applied }),
        };
    // Our own types always serialise.
    event.unwrap_or_else(|_| SseEvent::default().comment("unserialisable item"))
}

/// The query of a watch or observe, or the REST error saying what is wrong.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, RestError> {
    q.map(|Query(q)| q).map_err(|e| bad(format!("malformed query: {}", e.body_text().to_lowercase())))
}

pub async fn watch(
    State(svc): Svc,
    q: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, RestError> {
    let q = query(q)?;
    let filter = match (q.name, q.prefix) {
        (Some(name), None) => Filter::Name(name),
        (None, Some(prefix)) => Filter::Prefix(prefix),
        _ => return Err(bad("give one of name (one lock) or prefix (empty for every lock)")),
    };
    let start = starts(q.start.as_deref().unwrap_or(""))?;
    let watching = Watch { filter, start, progress_ms: q.progress_ms }.run(&svc).await?;
    let stream = futures::stream::unfold(watching, |mut watching| async move {
        let item = watching.items.recv().await?;
        Some((Ok(sse_event(item)), watching))
    });
    Ok(Sse::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_group_index_pairs() {
        assert_eq!(starts("0:5,3:17").ok(), Some(BTreeMap::from([(0, 5), (3, 17)])));
        assert_eq!(starts("").ok(), Some(BTreeMap::new()));
        assert!(starts("0-5").is_err());
        assert!(starts("x:1").is_err());
    }
}
