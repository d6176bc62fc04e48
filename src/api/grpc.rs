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

use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_server::Admin;
use crate::proto::v1::lock_server::Lock;
use crate::server::ops::{session_ttl, Acquire, NodeStatus};
use crate::server::{LockService, Meta};

#[derive(Clone)]
pub struct GrpcApi {
    service: Arc<LockService>,
}

impl GrpcApi {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }
}

fn status(err: ApiError) -> Status {
    err.to_status()
}

fn name_of(bytes: Vec<u8>) -> Result<String, Status> {
    String::from_utf8(bytes).map_err(|_| {
        status(ApiError::new(ErrorCode::InvalidName, "lock name is not valid UTF-8: send the name as UTF-8 bytes"))
    })
}

/// The client's key, or `None` when it left the field empty.
fn key_of(key: String) -> Result<Option<LockKey>, Status> {
    if key.is_empty() {
        return Ok(None);
    }
    LockKey::new(key).map(Some).map_err(|e| status(e.into()))
}

fn required_key(key: String) -> Result<LockKey, Status> {
    key_of(key)?
        .ok_or_else(|| status(ApiError::new(ErrorCode::InvalidKey, "key is empty: give the key the grant returned")))
}

fn header(meta: Meta) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader { group: meta.group, node_id: meta.node_id, index: meta.index })
}

#[tonic::async_trait]
impl Lock for GrpcApi {
    type SessionStream = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send + 'static>>;

    async fn acquire(&self, request: Request<pb::AcquireRequest>) -> Result<Response<pb::AcquireResponse>, Status> {
        let req = request.into_inner();
        let session = (req.session_id != 0).then_some((req.session_id, true));
        let asked = Acquire {
            name: name_of(req.name)?,
            key: key_of(req.key)?,
            size: req.size,
            permits: req.permits,
            ttl_ms: req.ttl_ms,
            wait_ms: Some(req.wait_ms),
            session,
        };
        let params = asked.params(self.service.config());
        let size = params.size;
        let (meta, grant) = self.service.acquire(params).await.map_err(status)?;
        Ok(Response::new(pb::AcquireResponse {
            header: header(meta),
            key: grant.key.to_string(),
            fencing_token: grant.token,
            permits: grant.permits,
            ttl_ms: grant.ttl_ms,
            size,
        }))
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::ReleaseResponse>, Status> {
        let req = request.into_inner();
        let meta = self.service.release(name_of(req.name)?, required_key(req.key)?).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseResponse { header: header(meta) }))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::RefreshResponse>, Status> {
        let req = request.into_inner();
        let (meta, grant) =
            self.service.refresh(name_of(req.name)?, required_key(req.key)?, req.ttl_ms).await.map_err(status)?;
        Ok(Response::new(pb::RefreshResponse {
            header: header(meta),
            fencing_token: grant.token,
            ttl_ms: grant.ttl_ms,
        }))
    }

    async fn describe(&self, request: Request<pb::DescribeRequest>) -> Result<Response<pb::DescribeResponse>, Status> {
        let name = name_of(request.into_inner().name)?;
        let (meta, view) = self.service.describe(name).await.map_err(status)?;
        let lock = view.map(|v| pb::LockInfo {
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
                })
                .collect(),
        });
        Ok(Response::new(pb::DescribeResponse { header: header(meta), lock }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let req = request.into_inner();
        let prefix = name_of(req.prefix)?;
        let after = if req.page_token.is_empty() { None } else { Some(name_of(req.page_token)?) };
        let limit = if req.limit == 0 { self.service.config().default_list_page } else { req.limit };
        let (rows, more) = self.service.list(prefix, after, limit as usize).await.map_err(status)?;
        let next_page_token =
            if more { rows.last().map(|r| r.name.clone().into_bytes()).unwrap_or_default() } else { Vec::new() };
        let locks = rows
            .into_iter()
            .map(|r| pb::LockSummary {
                name: r.name.into_bytes(),
                size: r.size,
                permits_held: r.held,
                holders: r.holders,
                waiters: r.waiters,
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
        let config = self.service.config();
        let ttl = session_ttl((first.ttl_ms != 0).then_some(first.ttl_ms), config).map_err(status)?;
        let ttl_ms = ttl.as_millis() as u64;
        let sessions = self.service.sessions().clone();
        let id = sessions.open(conn, Some(ttl)).map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let opened = pb::SessionResponse { session_id: id, ttl_ms };
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
            service.release_holds(sessions.close(id));
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn validate_fence(
        &self,
        request: Request<pb::ValidateFenceRequest>,
    ) -> Result<Response<pb::ValidateFenceResponse>, Status> {
        let req = request.into_inner();
        let (meta, key) = self.service.validate_fence(name_of(req.name)?, req.fencing_token).await.map_err(status)?;
        Ok(Response::new(pb::ValidateFenceResponse {
            header: header(meta),
            valid: key.is_some(),
            key: key.map(|k| k.to_string()).unwrap_or_default(),
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
        let (meta, released) =
            self.service.force_release(name_of(req.name)?, key_of(req.key)?).await.map_err(status)?;
        Ok(Response::new(pb::ForceReleaseResponse { header: header(meta), released }))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = request.into_inner();
        for (what, addr) in [("client_addr", &req.client_addr), ("peer_addr", &req.peer_addr)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                let msg = format!("{what} {addr:?} is not an ip:port address");
                return Err(status(ApiError::new(ErrorCode::InvalidArgument, msg)));
            }
        }
        if req.node_id == 0 {
            return Err(status(ApiError::new(ErrorCode::InvalidArgument, "node_id must be at least 1")));
        }
        let info = crate::raft::NodeInfo { client_addr: req.client_addr, peer_addr: req.peer_addr };
        let groups = self.service.add_node(req.node_id, info).await.map_err(status)?;
        Ok(Response::new(pb::MembershipResponse { groups }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let id = request.into_inner().node_id;
        let groups = self.service.remove_node(id).await.map_err(status)?;
        Ok(Response::new(pb::MembershipResponse { groups }))
    }

    async fn most_contended(
        &self,
        request: Request<pb::MostContendedRequest>,
    ) -> Result<Response<pb::MostContendedResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 10,
            n => n.min(1000),
        };
        let locks = self
            .service
            .most_contended(limit as usize)
            .into_iter()
            .map(|(name, queued)| pb::ContendedLock { name: name.into_bytes(), queued })
            .collect();
        Ok(Response::new(pb::MostContendedResponse { locks }))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let st = NodeStatus::of(self.service.groups(), self.service.syncer_stats());
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
        }))
    }
}
