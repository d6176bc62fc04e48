//! Operator calls: force-release, status, most-contended.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::Reply;
use super::{key, parse, Header, RawBody, Svc};
use crate::server::ops::NodeStatus;

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
    let (meta, released) = svc.force_release(b.name, b.key.map(key).transpose()?).await?;
    Ok(Json(ForceReply { header: meta.into(), released }))
}

#[derive(Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: u32,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub applied_index: u64,
    pub is_leader: bool,
}

#[derive(Serialize, Deserialize)]
pub struct StatusReply {
    pub node_id: u64,
    pub groups: Vec<GroupStatus>,
}

pub async fn status(State(svc): Svc) -> Json<StatusReply> {
    let st = NodeStatus::of(svc.groups(), svc.syncer_stats());
    let rows = st
        .groups
        .into_iter()
        .map(|g| GroupStatus {
            group: g.group,
            leader_id: g.leader,
            term: g.term,
            applied_index: g.applied_index,
            is_leader: g.is_leader,
        })
        .collect();
    Json(StatusReply { node_id: st.node_id, groups: rows })
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
    let top = svc.most_contended(b.limit.unwrap_or(10).min(1000) as usize);
    Ok(Json(ContendedReply { locks: top.into_iter().map(|(name, queued)| ContendedLock { name, queued }).collect() }))
}
