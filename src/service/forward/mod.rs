//! One-hop forwarding of client work to a group's leader (or to a node
//! that holds the group), over the peer connection this node keeps to it.
//!
//! - [`call`]: the sending side, one function per kind of work;
//! - [`serve`]: the receiving side, which serves it on this node only.
//!
//! Invariant: a refusal carries the receiver's `ApiError` (code, message,
//! leader) unchanged, encoded as a [`Refusal`].

pub mod call;
pub mod serve;

use serde::{Deserialize, Serialize};

use crate::codec::encode;
use crate::error::{ApiError, ErrorCode};

/// An `ApiError` as a refusal's body.
#[derive(Serialize, Deserialize)]
pub struct Refusal {
    code: i32,
    message: String,
    leader: Option<String>,
}

impl Refusal {
    pub fn encode(err: &ApiError) -> Vec<u8> {
        encode(&Refusal { code: err.code as i32, message: err.message.clone(), leader: err.leader.clone() })
    }

    pub fn into_error(self) -> ApiError {
        let code = ErrorCode::try_from(self.code).unwrap_or(ErrorCode::Internal);
        ApiError { code, message: self.message, leader: self.leader }
    }
}
