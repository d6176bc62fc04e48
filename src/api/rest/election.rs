//! Election calls over REST: campaign, proclaim, leader, resign (POST with
//! a JSON body) and observe (`GET /v1/election/observe?election=E`,
//! server-sent `leader` events, then `compacted` if the stream cannot go on).

use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::Json;
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::watch::{query, CompactedView};
use super::{key, parse, Header, RawBody, Svc};
use crate::lock::{LockKey, Value};
use crate::service::ops::acquire::InSession;
use crate::service::ops::election::campaign::Campaign;
use crate::service::ops::election::leader::Leader;
use crate::service::ops::election::observe::{Observe, Observed};
use crate::service::ops::election::proclaim::Proclaim;
use crate::service::ops::election::resign::Resign;
use crate::service::ops::election::Leadership;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LeadershipView {
    pub election: String,
    pub key: String,
    pub term: u64,
    pub value: Value,
    pub ttl_ms: u64,
}

impl From<Leadership> for LeadershipView {
    fn from(l: Leadership) -> Self {
        Self { election: l.election, key: l.key.to_string(), term: l.term, value: l.value, ttl_ms: l.ttl_ms }
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    pub election: String,
    pub value: Option<Value>,
    pub ttl_ms: Option<u64>,
    /// How long to wait for leadership; absent: as long as the limits allow.
    pub wait_ms: Option<u64>,
    pub key: Option<String>,
    pub session_id: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct LeaderReply {
    #[serde(flatten)]
    pub header: Header,
    /// Absent (null): no leader.
    pub leader: Option<LeadershipView>,
}

pub async fn campaign(State(svc): Svc, RawBody(body): RawBody) -> Reply<LeaderReply> {
    let b: CampaignBody = parse(&body)?;
    let campaign = Campaign {
        election: b.election,
        value: b.value.unwrap_or_default(),
        ttl_ms: b.ttl_ms,
        wait_ms: b.wait_ms,
        key: b.key.map(key).transpose()?,
        session: b.session_id.map(|id| InSession { id, keep_alive: true }),
    };
    let won = campaign.run(&svc).await?;
    Ok(Json(LeaderReply { header: won.meta.into(), leader: Some(won.leader.into()) }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProclaimBody {
    pub election: String,
    pub key: String,
    pub value: Value,
}

pub async fn proclaim(State(svc): Svc, RawBody(body): RawBody) -> Reply<Header> {
    let b: ProclaimBody = parse(&body)?;
    let meta = Proclaim { election: b.election, key: key(b.key)?, value: b.value }.run(&svc).await?;
    Ok(Json(meta.into()))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ElectionBody {
    pub election: String,
}

pub async fn leader(State(svc): Svc, RawBody(body): RawBody) -> Reply<LeaderReply> {
    let b: ElectionBody = parse(&body)?;
    let now = Leader { election: b.election }.run(&svc).await?;
    Ok(Json(LeaderReply { header: now.meta.into(), leader: now.leader.map(Into::into) }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResignBody {
    pub election: String,
    pub key: String,
}

pub async fn resign(State(svc): Svc, RawBody(body): RawBody) -> Reply<Header> {
    let b: ResignBody = parse(&body)?;
    let key: LockKey = key(b.key)?;
    Ok(Json(Resign { election: b.election, key }.run(&svc).await?.into()))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ObserveQuery {
    pub election: String,
    pub start_index: Option<u64>,
}

/// One observe item as REST shows it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct ObservedView {
    pub index: u64,
    pub leader: Option<LeadershipView>,
}

fn sse_event(item: Observed) -> SseEvent {
    let event = match item {
        Observed::Leader { index, leader } => {
            SseEvent::default().event("leader").json_data(ObservedView { index, leader: leader.map(Into::into) })
        }
        Observed::Compacted { group, oldest, applied } => SseEvent::default()
            .event("compacted")
            .json_data(CompactedView { group, oldest_index: oldest, current_index: applied }),
    };
    event.unwrap_or_else(|_| SseEvent::default().comment("unserialisable item"))
}

pub async fn observe(
    State(svc): Svc,
    q: Result<Query<ObserveQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, super::RestError> {
    let q = query(q)?;
    let items = Observe { election: q.election, start_index: q.start_index }.run(&svc).await?;
    let stream = futures::stream::unfold(items, |mut items| async move {
        let item = items.recv().await?;
        Some((Ok(sse_event(item)), items))
    });
    Ok(Sse::new(stream))
}
