//! Operator calls: force-release, status, most-contended.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::{key, parse, Header, RawBody, Svc};
use crate::service::ops::force_release::ForceRelease;
use crate::service::ops::most_contended::MostContended;
use crate::service::ops::status::NodeStatus;

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ForceBody {
    pub name: String,
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct ForceReply {
    #[serde(flatten)]
    pub header: Header,
    pub released: u32,
}

pub async fn force_release(State(svc): Svc, RawBody(body): RawBody) -> Reply<ForceReply> {
    let b: ForceBody = parse(&body)?;
    let done = ForceRelease { name: b.name, key: b.key.map(key).transpose()? }.run(&svc).await?;
    Ok(Json(ForceReply { header: done.meta.into(), released: done.released }))
}

#[derive(Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: u32,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub applied_index: u64,
    pub is_leader: bool,
    pub moving: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct StatusReply {
    pub node_id: u64,
    pub removed: bool,
    pub groups: Vec<GroupStatus>,
}

pub async fn status(State(svc): Svc) -> Json<StatusReply> {
    let st = NodeStatus::of(&svc);
    let rows = st
        .groups
        .into_iter()
        .map(|g| GroupStatus {
            group: g.group,
            leader_id: g.leader,
            term: g.term,
            applied_index: g.applied_index,
            is_leader: g.is_leader,
            moving: g.moving,
        })
        .collect();
    Json(StatusReply { node_id: st.node_id, removed: st.removed, groups: rows })
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ContendedBody {
    pub limit: Option<u32>,
}

#[derive(Serialize, Deserialize)]
pub struct ContendedLock {
    pub name: String,
    pub queued: u64,
}

#[derive(Serialize, Deserialize)]
pub struct ContendedReply {
    pub locks: Vec<ContendedLock>,
}

pub async fn most_contended(State(svc): Svc, RawBody(body): RawBody) -> Reply<ContendedReply> {
    let b: ContendedBody = parse(&body)?;
    let top = MostContended { limit: b.limit }.run(&svc);
    Ok(Json(ContendedReply {
        locks: top.into_iter().map(|c| ContendedLock { name: c.name, queued: c.queued }).collect(),
    }))
}
