//! Reopening a server stream (a watch, an observe) after it breaks: where
//! to open it next and how long to keep trying.
//!
//! Invariants: the first attempt goes to the leader of the name's group
//! when the topology knows it, then the nodes in turn, or the node a
//! `NOT_LEADER` named; an error that is not retryable, or one past
//! `RETRY_FOR` from the first attempt, ends the stream; between attempts
//! the backoff doubles up to 1 s and the topology is refreshed.

use std::time::{Duration, Instant};

use super::rpc::{Client, RETRY_FOR};
use crate::error::{ApiError, ErrorCode};

pub(super) struct Reopen {
    deadline: Instant,
    backoff: Duration,
    attempt: u32,
    /// A `NOT_LEADER` named this node: try it next.
    redirect: Option<String>,
}

impl Reopen {
    pub fn new() -> Self {
        Self { deadline: Instant::now() + RETRY_FOR, backoff: Duration::from_millis(50), attempt: 0, redirect: None }
    }

    /// The node to open the stream about `name` on next.
    pub fn addr(&mut self, client: &Client, name: &str) -> String {
        self.redirect.take().unwrap_or_else(|| client.addr_for(name, self.attempt, self.attempt == 0))
    }

    /// After the stream broke with `err`: `Ok` once it is time to open it
    /// again, or the error that ends it.
    pub async fn after(&mut self, client: &Client, err: ApiError) -> Result<(), ApiError> {
        self.attempt += 1;
        if !err.row().retryable || Instant::now() >= self.deadline {
            return Err(err);
        }
        match (err.code, err.leader) {
            (ErrorCode::NotLeader, Some(leader)) => self.redirect = Some(leader),
            _ => {
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
                let _ = client.refresh_topology().await;
            }
        }
        Ok(())
    }
}
