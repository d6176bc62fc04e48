//! The gRPC `Election` service: decode, run the election op, encode.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::grpc_wire::{compacted, header, key_of, name_of, required_key, status};
use crate::lock::Value;
use crate::proto::v1 as pb;
use crate::proto::v1::election_server::Election;
use crate::service::ops::acquire::InSession;
use crate::service::ops::election::campaign::Campaign;
use crate::service::ops::election::leader::Leader;
use crate::service::ops::election::observe::{Observe, Observed};
use crate::service::ops::election::proclaim::Proclaim;
use crate::service::ops::election::resign::Resign;
use crate::service::ops::election::Leadership;
use crate::service::LockService;

#[derive(Clone)]
pub struct ElectionApi {
    service: Arc<LockService>,
}

impl ElectionApi {
    pub fn new(service: Arc<LockService>) -> Self {
        Self { service }
    }
}

fn leadership(l: Leadership) -> pb::Leadership {
    pb::Leadership {
        election: l.election.into_bytes(),
        key: l.key.to_string(),
        term: l.term,
        value: l.value.into_vec(),
        ttl_ms: l.ttl_ms,
    }
}

fn observed(item: Observed) -> pb::ObserveResponse {
    match item {
        Observed::Leader { index, leader } => {
            pb::ObserveResponse { index, leader: leader.map(leadership), compacted: None }
        }
        Observed::Compacted { group, oldest, applied } => {
            pb::ObserveResponse { index: applied, leader: None, compacted: Some(compacted(group, oldest, applied)) }
        }
    }
}

pub type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::ObserveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Election for ElectionApi {
    type ObserveStream = ObserveStream;

    async fn campaign(&self, request: Request<pb::CampaignRequest>) -> Result<Response<pb::CampaignResponse>, Status> {
        let req = request.into_inner();
        let campaign = Campaign {
            election: name_of(req.election)?,
            value: Value::from(req.value),
            ttl_ms: req.ttl_ms,
            wait_ms: (req.wait_ms != 0).then_some(req.wait_ms),
            key: key_of(req.key)?,
            session: (req.session_id != 0).then_some(InSession { id: req.session_id, keep_alive: true }),
        };
        let won = campaign.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::CampaignResponse { header: header(won.meta), leader: Some(leadership(won.leader)) }))
    }

    async fn proclaim(&self, request: Request<pb::ProclaimRequest>) -> Result<Response<pb::ProclaimResponse>, Status> {
        let req = request.into_inner();
        let proclaim =
            Proclaim { election: name_of(req.election)?, key: required_key(req.key)?, value: Value::from(req.value) };
        let meta = proclaim.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::ProclaimResponse { header: header(meta) }))
    }

    async fn leader(&self, request: Request<pb::LeaderRequest>) -> Result<Response<pb::LeaderResponse>, Status> {
        let election = name_of(request.into_inner().election)?;
        let now = Leader { election }.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::LeaderResponse { header: header(now.meta), leader: now.leader.map(leadership) }))
    }

    async fn resign(&self, request: Request<pb::ResignRequest>) -> Result<Response<pb::ResignResponse>, Status> {
        let req = request.into_inner();
        let resign = Resign { election: name_of(req.election)?, key: required_key(req.key)? };
        let meta = resign.run(&self.service).await.map_err(status)?;
        Ok(Response::new(pb::ResignResponse { header: header(meta) }))
    }

    async fn observe(&self, request: Request<pb::ObserveRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        let req = request.into_inner();
        let observe = Observe { election: name_of(req.election)?, start_index: req.start_index };
        let items = observe.run(&self.service).await.map_err(status)?;
        let stream = futures::stream::unfold(items, |mut items| async move {
            let item = items.recv().await?;
            Some((Ok(observed(item)), items))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
