//! Elections from the client: campaign for leadership and keep it, read
//! and observe who leads.
//!
//! Invariants: a [`Leadership`] keeps its lease alive like a
//! [`LockGuard`] (it is one) and says when it is lost; a campaign carries
//! its key from the first attempt, so a retried campaign never takes a
//! second place in the queue; an observation stream resumes after the last
//! index it delivered when its node's stream breaks, so it skips no leader.

use futures::Stream;
use tonic::Streaming;

use super::guard::LockGuard;
use super::reopen::Reopen;
use super::rpc::{unreachable, Client};
use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::proto::v1 as pb;
use crate::proto::v1::election_client::ElectionClient;

/// How to campaign.
#[derive(Clone, Debug, Default)]
pub struct CampaignOptions {
    /// Lease TTL of the leadership; the server's default when `None`.
    pub ttl_ms: Option<u64>,
    /// How long to wait for leadership; 0: as long as the cluster allows.
    pub wait_ms: u64,
    /// The campaigner's key; drawn when `None`.
    pub key: Option<String>,
}

/// Leadership of an election, kept alive until dropped (then resigned).
pub struct Leadership {
    guard: LockGuard,
    value: Vec<u8>,
}

impl Leadership {
    pub fn election(&self) -> &str {
        self.guard.name()
    }

    pub fn key(&self) -> &str {
        self.guard.key()
    }

    /// The term: this leader's fencing token, above every earlier leader's.
    pub fn term(&self) -> u64 {
        self.guard.fencing_token()
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Resolves with the reason once leadership is lost (never while held).
    pub async fn lost(&self) -> String {
        self.guard.lost().await
    }

    /// Why leadership was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.guard.lost_reason()
    }

    /// Changes the leader's value; `NOT_HOLDER` once leadership is lost.
    pub async fn proclaim(&mut self, value: &[u8]) -> Result<(), ApiError> {
        self.guard.client().proclaim(self.election(), self.key(), value).await?;
        self.value = value.to_vec();
        Ok(())
    }

    /// Resigns now and waits for the answer.
    pub async fn resign(self) -> Result<(), ApiError> {
        self.guard.release().await
    }
}

/// A change of leadership, as `observe` delivers it.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// From log index `index` on, `leader` leads (`None`: nobody does).
    Leader { index: u64, leader: Option<pb::Leadership> },
    /// The last item: the history needed is gone; observe again.
    Compacted(pb::WatchCompacted),
}

impl Client {
    fn election_client(&self, addr: &str) -> Result<ElectionClient<tonic::transport::Channel>, ApiError> {
        Ok(ElectionClient::new(self.channel(addr)?))
    }

    /// Waits in `election`'s queue until leading, then keeps the
    /// leadership's lease alive until the returned guard is dropped.
    pub async fn campaign(&self, election: &str, value: &[u8], opts: CampaignOptions) -> Result<Leadership, ApiError> {
        let key = opts.key.clone().unwrap_or_else(|| LockKey::from_u128(rand::random()).to_string());
        let req = pb::CampaignRequest {
            election: election.as_bytes().to_vec(),
            value: value.to_vec(),
            ttl_ms: opts.ttl_ms,
            session_id: 0,
            wait_ms: opts.wait_ms,
            key,
        };
        let won = self
            .with_retry(election, |ch, _| {
                let req = self.request(req.clone());
                async move { ElectionClient::new(ch).campaign(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        let leader =
            won.leader.ok_or_else(|| ApiError::new(ErrorCode::Internal, "a campaign answered no leadership"))?;
        let grant = pb::AcquireResponse {
            header: won.header,
            key: leader.key,
            fencing_token: leader.term,
            permits: 1,
            ttl_ms: leader.ttl_ms,
            size: 1,
            mode: pb::Mode::Exclusive as i32,
            value: Some(leader.value.clone()),
        };
        Ok(Leadership { guard: LockGuard::start(self.clone(), election, grant), value: leader.value })
    }

    /// Changes the value of `election`'s leader, while `key` leads.
    pub async fn proclaim(&self, election: &str, key: &str, value: &[u8]) -> Result<(), ApiError> {
        let req =
            pb::ProclaimRequest { election: election.as_bytes().to_vec(), key: key.to_owned(), value: value.to_vec() };
        self.with_retry(election, |ch, _| {
            let req = self.request(req.clone());
            async move { ElectionClient::new(ch).proclaim(req).await.map(|_| ()) }
        })
        .await
    }

    /// The leader of `election` now (a linearizable read), or `None`.
    pub async fn leader(&self, election: &str) -> Result<Option<pb::Leadership>, ApiError> {
        let req = pb::LeaderRequest { election: election.as_bytes().to_vec() };
        self.with_retry(election, |ch, _| {
            let req = self.request(req.clone());
            async move { ElectionClient::new(ch).leader(req).await.map(|r| r.into_inner().leader) }
        })
        .await
    }

    /// Ends the leadership of `key` (a retry that finds it gone counts as done).
    pub async fn resign(&self, election: &str, key: &str) -> Result<(), ApiError> {
        self.release(election, key).await.map(|_| ())
    }

    /// The leaders of `election` as a stream: the current one (or none),
    /// then every change; see the module doc.
    pub fn observe(&self, election: &str) -> impl Stream<Item = Result<Observation, ApiError>> + Send + 'static {
        let observer = Observer {
            client: self.clone(),
            election: election.to_owned(),
            last: None,
            skip: 0,
            stream: None,
            done: false,
        };
        futures::stream::unfold(observer, |mut o| async move {
            if o.done {
                return None;
            }
            let item = o.next().await;
            o.done |= item.is_err();
            Some((item, o))
        })
    }
}

struct Observer {
    client: Client,
    election: String,
    /// The index of the last item delivered, and how many items of that
    /// index were delivered (an entry may change the leader more than once).
    last: Option<(u64, usize)>,
    /// Items of `last`'s index a resumed stream repeats, still to drop.
    skip: usize,
    stream: Option<Streaming<pb::ObserveResponse>>,
    done: bool,
}

impl Observer {
    async fn next(&mut self) -> Result<Observation, ApiError> {
        let mut reopen = Reopen::new();
        loop {
            let err = match self.stream.as_mut() {
                None => {
                    let addr = reopen.addr(&self.client, &self.election);
                    // Resume at the last index delivered, dropping what of it was delivered.
                    let start_index = self.last.map(|(index, _)| index);
                    self.skip = self.last.map_or(0, |(_, n)| n);
                    let req = pb::ObserveRequest { election: self.election.as_bytes().to_vec(), start_index };
                    match self.client.election_client(&addr)?.observe(self.client.request(req)).await {
                        Ok(stream) => {
                            self.stream = Some(stream.into_inner());
                            continue;
                        }
                        Err(status) => unreachable(&addr, status),
                    }
                }
                Some(stream) => match stream.message().await {
                    Ok(Some(resp)) if self.repeated(&resp) => continue,
                    Ok(Some(resp)) => return Ok(self.take(resp)),
                    Ok(None) => ApiError::new(ErrorCode::Unavailable, "the observe stream ended: resuming"),
                    Err(status) => ApiError::from_status(&status),
                },
            };
            self.stream = None;
            reopen.after(&self.client, err).await?;
        }
    }

    fn take(&mut self, resp: pb::ObserveResponse) -> Observation {
        if let Some(compacted) = resp.compacted {
            self.done = true;
            return Observation::Compacted(compacted);
        }
        self.last = match self.last {
            Some((index, n)) if index == resp.index => Some((index, n + 1)),
            _ => Some((resp.index, 1)),
        };
        Observation::Leader { index: resp.index, leader: resp.leader }
    }

    /// Whether a resumed stream's `resp` was delivered already.
    fn repeated(&mut self, resp: &pb::ObserveResponse) -> bool {
        let again = self.skip > 0 && resp.compacted.is_none() && self.last.is_some_and(|(i, _)| i == resp.index);
        if again {
            self.skip -= 1;
        } else {
            self.skip = 0;
        }
        again
    }
}
