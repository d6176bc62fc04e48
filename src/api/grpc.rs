//! The gRPC `Lock` and `Admin` services: decode, fill defaults, call the
//! lock service, encode. No lock logic lives here.
//!
//! Invariants: names arrive as bytes and must be UTF-8 (else INVALID_NAME);
//! an empty key means "generate one"; every error leaves as a status built
//! by `ApiError::to_status` (one code table for all surfaces).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Conn;

use super::grpc_watch;
use super::grpc_wire::{bytes_of, header, key_of, mode_of, name_of, pb_mode, required_key, status};
use crate::error::{ApiError, ErrorCode};
use crate::lock::Value;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_server::Admin;
use crate::proto::v1::lock_server::Lock;
use crate::service::ops::acquire::{Acquire, InSession};
use crate::service::ops::describe::Describe;
use crate::service::ops::downgrade::Downgrade;
use crate::service::ops::force_release::ForceRelease;
use crate::service::ops::list::List;
use crate::service::ops::membership::{AddNode, RemoveNode};
use crate::service::ops::most_contended::MostContended;
use crate::service::ops::refresh::Refresh;
use crate::service::ops::release::Release;
use crate::service::ops::session::{self, OpenSession, SessionOpened};
use crate::service::ops::set_value::SetValue;
use crate::service::ops::status::NodeStatus;
use crate::service::ops::validate_fence::ValidateFence;
use crate::service::LockService;

#[derive(Clone)]
pub struct GrpcApi {
    service: Arc<LockService>,
}

impl GrpcApi {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl Lock for GrpcApi {
    type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send + 'static>>;
    type WatchStream = grpc_watch::WatchStream;

    async fn acquire(&self, request: Request<pb::AcquireRequest>) -> Result<Response<pb::AcquireResponse>, Status> {
        let req = request.into_inner();
        let asked = Acquire {
            name: name_of(req.name)?,
            key: key_of(req.key)?,
            size: req.size,
            permits: req.permits,
            ttl_ms: req.ttl_ms,
            wait_ms: Some(req.wait_ms),
            mode: Some(mode_of(req.mode)?),
            value: req.value.map(Value::from),
            session: (req.session_id != 0).then_some(InSession { id: req.session_id, keep_alive: true }),
        };
        let granted = asked.run(&self.service).await.map_err(status)?;
        let grant = granted.grant;
        Ok(Response::new(pb::AcquireResponse {
            header: header(granted.meta),
            key: grant.key.to_string(),
            fencing_token: grant.token,
            permits: grant.permits,
            ttl_ms: grant.ttl_ms,
            size: granted.size,
            mode: pb_mode(grant.mode),
            value: bytes_of(grant.value),
        }))
    }

    async fn set_value(&self, request: Request<pb::SetValueRequest>) -> Result<Response<pb::SetValueResponse>, Status> {
        let req = request.into_inner();
        let set = SetValue { name: name_of(req.name)?, key: required_key(req.key)?, value: req.value.map(Value::from) };
        let done = set.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::SetValueResponse { header: header(done.meta), fencing_token: done.grant.token }))
    }

    async fn downgrade(
        &self,
        request: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        let req = request.into_inner();
        let downgrade = Downgrade { name: name_of(req.name)?, key: required_key(req.key)? };
        let done = downgrade.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::DowngradeResponse { header: header(done.meta), fencing_token: done.grant.token }))
    }

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        grpc_watch::watch(&self.service, request.into_inner()).await.map(Response::new)
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::ReleaseResponse>, Status> {
        let req = request.into_inner();
        let release = Release { name: name_of(req.name)?, key: required_key(req.key)? };
        let released = release.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse { header: header(released.meta) }))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::RefreshResponse>, Status> {
        let req = request.into_inner();
        let refresh = Refresh { name: name_of(req.name)?, key: required_key(req.key)?, ttl_ms: req.ttl_ms };
        let refreshed = refresh.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::RefreshResponse {
            header: header(refreshed.meta),
            fencing_token: refreshed.grant.token,
            ttl_ms: refreshed.grant.ttl_ms,
        }))
    }

    async fn describe(&self, request: Request<pb::DescribeRequest>) -> Result<Response<pb::DescribeResponse>, Status> {
        let name = name_of(request.into_inner().name)?;
        let described = Describe { name }.run(&self.service).await.map_err(status)?;
        let lock = described.lock.map(|v| pb::LockInfo {
            name: v.name.into_bytes(),
            size: v.size,
            permits_held: v.held,
            holders: v
                .holders
                .into_iter()
                .map(|h| pb::HolderInfo {
                    key: h.key.to_string(),
                    permits: h.permits,
                    fencing_token: h.token,
                    ttl_ms: h.ttl_ms,
                    remaining_ttl_ms: h.remaining_ttl_ms,
                    mode: pb_mode(h.mode),
                    value: bytes_of(h.value),
                })
                .collect(),
            waiters: v
                .waiters
                .into_iter()
                .map(|w| pb::WaiterInfo {
                    key: w.key.to_string(),
                    permits: w.permits,
                    position: w.position,
                    wait_ms: w.wait_ms,
                    mode: pb_mode(w.mode),
                    value: bytes_of(w.value),
                })
                .collect(),
        });
        Ok(Response::new(pb::DescribeResponse { header: header(described.meta), lock }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let req = request.into_inner();
        let after = if req.page_token.is_empty() { None } else { Some(name_of(req.page_token)?) };
        let list = List { prefix: name_of(req.prefix)?, after, limit: (req.limit != 0).then_some(req.limit) };
        let listed = list.run(&self.service).await.map_err(status)?;
        let next_page_token = listed.next_page_token.map(String::into_bytes).unwrap_or_default();
        let locks = listed
            .locks
            .into_iter()
            .map(|r| pb::LockSummary {
                name: r.name.into_bytes(),
                size: r.size,
                permits_held: r.held,
                holders: r.holders,
                waiters: r.waiters,
                mode: r.mode.map(pb_mode),
                values: r
                    .values
                    .into_iter()
                    .map(|v| pb::HolderValue { key: v.key.to_string(), value: v.value.into_vec() })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListResponse { locks, next_page_token }))
    }

    async fn session(
        &self,
        request: Request<Streaming<pb::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        self.service.admit().map_err(status)?;
        let conn = request.extensions().get::<Conn>().map(|c| c.0);
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            status(ApiError::new(
                ErrorCode::InvalidArgument,
                "the stream ended before its first message opened a session",
            ))
        })?;
        let open = OpenSession { ttl_ms: (first.ttl_ms != 0).then_some(first.ttl_ms), conn };
        let SessionOpened { id, ttl } = open.run(&self.service).map_err(status)?;
        let sessions = self.service.sessions().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let opened = pb::SessionResponse { session_id: id, ttl_ms: ttl.as_millis() as u64 };
        let _ = tx.send(Ok(opened.clone())).await;
        let service = self.service.clone();
        tokio::spawn(async move {
            // Every message is a keepalive; the end of the stream ends the session.
            while let Ok(Some(_)) = inbound.message().await {
                let reply = sessions.keepalive(id).map(|_| opened.clone()).map_err(status);
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    break;
                }
            }
            // Already ended (expired, or closed elsewhere): nothing to release.
            let _ = session::close(&service, id);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn validate_fence(
        &self,
        request: Request<pb::ValidateFenceRequest>,
    ) -> Result<Response<pb::ValidateFenceResponse>, Status> {
        let req = request.into_inner();
        let validate = ValidateFence { name: name_of(req.name)?, token: req.fencing_token };
        let fence = validate.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::ValidateFenceResponse {
            header: header(fence.meta),
            valid: fence.holder.is_some(),
            key: fence.holder.map(|k| k.to_string()).unwrap_or_default(),
        }))
    }
}

#[tonic::async_trait]
impl Admin for GrpcApi {
    async fn force_release(
        &self,
        request: Request<pb::ForceReleaseRequest>,
    ) -> Result<Response<pb::ForceReleaseResponse>, Status> {
        let req = request.into_inner();
        let force = ForceRelease { name: name_of(req.name)?, key: key_of(req.key)? };
        let done = force.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::ForceReleaseResponse { header: header(done.meta), released: done.released }))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = request.into_inner();
        let add = AddNode { id: req.node_id, client_addr: req.client_addr, peer_addr: req.peer_addr };
        let groups = add.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::MembershipResponse { groups }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let remove = RemoveNode { id: request.into_inner().node_id };
        let groups = remove.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::MembershipResponse { groups }))
    }

    async fn most_contended(
        &self,
        request: Request<pb::MostContendedRequest>,
    ) -> Result<Response<pb::MostContendedResponse>, Status> {
        let limit = request.into_inner().limit;
        let top = MostContended { limit: (limit != 0).then_some(limit) }.run(&self.service);
        let locks =
            top.into_iter().map(|c| pb::ContendedLock { name: c.name.into_bytes(), queued: c.queued }).collect();
        Ok(Response::new(pb::MostContendedResponse { locks }))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let st = NodeStatus::of(&self.service);
        let group_status: Vec<pb::GroupStatus> = st
            .groups
            .into_iter()
            .map(|g| pb::GroupStatus {
                group: g.group,
                leader_id: g.leader.unwrap_or(0),
                term: g.term,
                last_log_index: g.last_log_index,
                applied_index: g.applied_index,
                is_leader: g.is_leader,
                locks: g.locks,
                voters: g.voters,
                target: g.target,
                hosted: g.hosted,
                moving: g.moving.unwrap_or_default(),
            })
            .collect();
        let nodes = st
            .members
            .into_iter()
            .map(|(node_id, client_addr, peer_addr)| pb::NodeStatus { node_id, client_addr, peer_addr })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            node_id: st.node_id,
            groups: group_status.len() as u32,
            group_status,
            nodes,
            wal_syncs: st.wal_syncs,
            wal_synced_writes: st.wal_synced_writes,
            removed: st.removed,
        }))
    }
}
