//! The receiving side of forwarding: serves forwarded work on this node.
//!
//! Invariant: forwarded work is served by this node's own Raft only
//! (`propose_local`, `read_local`, a local membership change, its own
//! watch history), never
//! forwarded again; a refusal goes back as this node's `ApiError`.

use std::sync::Arc;

use bytes::Bytes;

use super::Refusal;
use crate::codec::{decode, encode};
use crate::error::{ApiError, ErrorCode};
use crate::lock::{AcquireCmd, Command};
use crate::peer::{Answer, Method};
use crate::raft::membership::MembershipChange;
use crate::raft::NodeId;
use crate::routing::GroupId;
use crate::service::ops::acquire::serve_forwarded;
use crate::service::query::ReadQuery;
use crate::service::watch::relay::{self, RelayRequest};
use crate::service::LockService;

/// The receiving end: serves forwarded work on this node only.
pub struct ForwardService {
    service: Arc<LockService>,
}

fn bad_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidArgument, format!("undecodable forwarded request: {e}"))
}

impl ForwardService {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }

    fn check_group(&self, group: GroupId) -> Result<(), ApiError> {
        if group >= self.service.config().groups {
            return Err(ApiError::new(ErrorCode::InvalidArgument, format!("group {group} does not exist")));
        }
        Ok(())
    }

    /// Serves one forwarded request; its encoded answer or refusal.
    pub async fn handle(&self, method: Method, group: GroupId, body: Bytes) -> Answer {
        self.serve(method, group, body).await.map_err(|e| Refusal::encode(&e))
    }

    async fn serve(&self, method: Method, group: GroupId, body: Bytes) -> Result<Vec<u8>, ApiError> {
        let svc = &self.service;
        match method {
            Method::Propose => {
                self.check_group(group)?;
                let cmd: Command = decode(&body).map_err(bad_body)?;
                Ok(encode(&svc.routing().batcher().propose_local(group, cmd).await?))
            }
            Method::Acquire => {
                self.check_group(group)?;
                let cmd: AcquireCmd = decode(&body).map_err(bad_body)?;
                Ok(encode(&serve_forwarded(svc, group, cmd).await?))
            }
            Method::Read => {
                self.check_group(group)?;
                let query: ReadQuery = decode(&body).map_err(bad_body)?;
                Ok(encode(&svc.read_local(group, &query).await?))
            }
            Method::WatchRead => {
                self.check_group(group)?;
                if !svc.cluster().hosts(group) {
                    return Err(ApiError::not_leader(None));
                }
                let req: RelayRequest = decode(&body).map_err(bad_body)?;
                Ok(encode(&relay::serve(svc.history(), group, &req).await))
            }
            Method::Membership => {
                if group != svc.groups().meta_id() {
                    self.check_group(group)?;
                }
                let change: MembershipChange = decode(&body).map_err(bad_body)?;
                svc.change_membership_local(group, &change).await?;
                Ok(encode(&()))
            }
            Method::Draining => {
                let (node, draining): (NodeId, bool) = decode(&body).map_err(bad_body)?;
                svc.cluster().mark_draining(node, draining);
                tracing::info!(peer = node, draining, "peer draining notice");
                Ok(encode(&()))
            }
            other => Err(ApiError::new(ErrorCode::InvalidArgument, format!("{other:?} is not forwarded work"))),
        }
    }
}
