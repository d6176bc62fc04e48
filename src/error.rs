//! The one table that maps error codes to gRPC and HTTP statuses.
//!
//! Every surface (gRPC, REST, the client) speaks [`ErrorCode`], the enum of
//! `proto/shardlock/v1/errors.proto`. [`row`] is the only place that picks a
//! gRPC code, an HTTP status and whether a client may retry; its `match` is
//! exhaustive, so a new code cannot be added without a row. [`ApiError`]
//! carries a code across the wire as a `tonic::Status` with the code name in
//! the `shardlock-code` metadata and, for `NotLeader`, the leader's address
//! in `shardlock-leader`.

use axum::http::StatusCode;
use tonic::metadata::MetadataValue;

use crate::lock::LockError;
pub use crate::proto::v1::ErrorCode;

/// Metadata key holding the [`ErrorCode`] name of a failed call.
pub const CODE_METADATA: &str = "shardlock-code";
/// Metadata key holding the leader's client address on `NotLeader`.
pub const LEADER_METADATA: &str = "shardlock-leader";

/// How one code travels: its gRPC code, its HTTP status, and whether the
/// same request may simply be sent again (to the same or another node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub grpc: tonic::Code,
    pub http: StatusCode,
    pub retryable: bool,
}

pub fn row(code: ErrorCode) -> Row {
    use tonic::Code as G;
    use ErrorCode as E;
    let (grpc, http, retryable) = match code {
        E::InvalidArgument | E::InvalidName | E::InvalidKey | E::InvalidSize => (G::InvalidArgument, 400, false),
        E::InvalidPermits | E::InvalidTtl | E::InvalidWait => (G::InvalidArgument, 400, false),
        E::SizeMismatch | E::NotHolder => (G::FailedPrecondition, 409, false),
        E::KeyInUse => (G::AlreadyExists, 409, false),
        E::LockBusy => (G::Aborted, 423, false),
        E::WaitTimeout => (G::DeadlineExceeded, 423, false),
        E::WaitCancelled => (G::Cancelled, 499, false),
        E::TooManyWaiters => (G::ResourceExhausted, 429, true),
        E::NotFound | E::NoSession => (G::NotFound, 404, false),
        E::NotLeader | E::Unavailable | E::Draining => (G::Unavailable, 503, true),
        E::Unauthenticated => (G::Unauthenticated, 401, false),
        E::MessageTooLarge => (G::OutOfRange, 413, false),
        E::Stale => (G::Aborted, 409, false),
        E::Internal | E::Unspecified => (G::Internal, 500, false),
    };
    let http = StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Row { grpc, http, retryable }
}

impl ErrorCode {
    /// Whether the answer says the key holds nothing: the key is not a
    /// holder (`NOT_HOLDER`), or the lock is gone (`NOT_FOUND`: the apply
    /// that emptied it deleted it). A retried release or a session's upkeep
    /// takes either as "already released".
    pub fn means_not_held(self) -> bool {
        matches!(self, ErrorCode::NotHolder | ErrorCode::NotFound)
    }
}

impl From<&LockError> for ErrorCode {
    fn from(err: &LockError) -> Self {
        match err {
            LockError::EmptyName { .. } | LockError::NameTooLong { .. } => ErrorCode::InvalidName,
            LockError::InvalidKey { .. } => ErrorCode::InvalidKey,
            LockError::InvalidSize { .. } => ErrorCode::InvalidSize,
            LockError::InvalidPermits { .. } => ErrorCode::InvalidPermits,
            LockError::InvalidTtl { .. } => ErrorCode::InvalidTtl,
            LockError::InvalidWait { .. } => ErrorCode::InvalidWait,
            LockError::SizeMismatch { .. } => ErrorCode::SizeMismatch,
            LockError::KeyInUse { .. } => ErrorCode::KeyInUse,
            LockError::NotHolder => ErrorCode::NotHolder,
            LockError::NotWaiting | LockError::WaitCancelled => ErrorCode::WaitCancelled,
            LockError::Busy => ErrorCode::LockBusy,
            LockError::TooManyWaiters { .. } => ErrorCode::TooManyWaiters,
            LockError::NotFound => ErrorCode::NotFound,
            LockError::StaleExpiry | LockError::NotIdle => ErrorCode::Stale,
            LockError::WaitTimedOut => ErrorCode::WaitTimeout,
            LockError::SharedSemaphore { .. } | LockError::ValueTooLarge { .. } => ErrorCode::InvalidArgument,
            LockError::ModeInUse { .. } => ErrorCode::KeyInUse,
        }
    }
}

/// An error as every surface reports it: a code, a message that says what
/// to do, and the leader's address when the code is `NotLeader`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub leader: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), leader: None }
    }

    pub fn not_leader(leader: Option<String>) -> Self {
        let message = match &leader {
            Some(addr) => {
                format!("this node does not lead the lock's group: send the request to {addr}")
            }
            None => "the lock's group has no leader right now: retry shortly".to_owned(),
        };
        Self { code: ErrorCode::NotLeader, message, leader }
    }

    pub fn row(&self) -> Row {
        row(self.code)
    }

    /// The gRPC status of this error, with its code (and leader) in metadata.
    pub fn to_status(&self) -> tonic::Status {
        let mut status = tonic::Status::new(self.row().grpc, self.message.clone());
        let md = status.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(self.code.as_str_name()) {
            md.insert(CODE_METADATA, v);
        }
        if let Some(v) = self.leader.as_deref().and_then(|l| MetadataValue::try_from(l).ok()) {
            md.insert(LEADER_METADATA, v);
        }
        status
    }

    /// Reads an error back from a gRPC status (used by the client). A status
    /// without our metadata (a transport failure, say) maps by its gRPC code.
    pub fn from_status(status: &tonic::Status) -> Self {
        let md = status.metadata();
        let text = |key: &str| md.get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let named = text(CODE_METADATA).and_then(|name| ErrorCode::from_str_name(&name));
        let code = named.unwrap_or_else(|| transport_code(status.code()));
        Self { code, message: status.message().to_owned(), leader: text(LEADER_METADATA) }
    }
}

/// The code of a status that lacks our metadata: it comes from the transport
/// (refused, reset or broken connection) or a proxy, and is worth a retry
/// unless it says otherwise.
fn transport_code(code: tonic::Code) -> ErrorCode {
    match code {
        tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
        tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
        tonic::Code::DeadlineExceeded => ErrorCode::WaitTimeout,
        tonic::Code::Unimplemented => ErrorCode::Internal,
        _ => ErrorCode::Unavailable,
    }
}

impl From<LockError> for ApiError {
    fn from(err: LockError) -> Self {
        Self::new(ErrorCode::from(&err), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_codes() -> impl Iterator<Item = ErrorCode> {
        (0..64).filter_map(|i| ErrorCode::try_from(i).ok())
    }

    #[test]
    fn every_code_has_a_row_and_survives_the_wire() {
        let mut n = 0;
        for code in all_codes() {
            n += 1;
            let err = ApiError { code, message: "m".into(), leader: Some("127.0.0.1:7001".into()) };
            let status = err.to_status();
            assert_eq!(status.code(), row(code).grpc, "{code:?}");
            assert_eq!(ApiError::from_status(&status), err, "{code:?}");
        }
        assert_eq!(n, 24, "a new ErrorCode needs a row and a test");
    }

    /// `InvalidArgument` as the README writes it: `INVALID_ARGUMENT`.
    fn upper_snake(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// The README's error table, one entry per code: (gRPC, HTTP, retryable).
    fn readme_table() -> std::collections::BTreeMap<String, (String, u16, bool)> {
        let readme = include_str!("../README.md");
        let table = readme.split("### Errors").nth(1).expect("README has an Errors section");
        let mut rows = std::collections::BTreeMap::new();
        for line in table.lines().skip_while(|l| !l.starts_with("| code")).skip(2) {
            let Some(cells) = line.strip_prefix('|') else { break };
            let cells: Vec<&str> = cells.split('|').map(str::trim).collect();
            let retryable = cells[0].contains("(retryable)");
            let http: u16 = cells[2].parse().expect("an HTTP status");
            for code in cells[0].replace("(retryable)", "").split(',') {
                rows.insert(code.trim().to_owned(), (cells[1].to_owned(), http, retryable));
            }
        }
        rows
    }

    #[test]
    fn the_readme_error_table_is_this_table() {
        let documented = readme_table();
        for code in all_codes().filter(|&c| c != ErrorCode::Unspecified) {
            let name = code.as_str_name();
            let r = row(code);
            let expected = (upper_snake(&format!("{:?}", r.grpc)), r.http.as_u16(), r.retryable);
            assert_eq!(documented.get(name), Some(&expected), "README's error table, row of {name}");
        }
        assert_eq!(documented.len(), all_codes().count() - 1, "the README lists a code src/error.rs has not");
    }

    #[test]
    fn lock_errors_keep_their_message() {
        let err = ApiError::from(LockError::SizeMismatch { size: 1, asked: 2 });
        assert_eq!(err.code, ErrorCode::SizeMismatch);
        assert_eq!(err.row().http, StatusCode::CONFLICT);
        assert!(err.message.starts_with("the lock has size 1"));
    }

    #[test]
    fn a_bare_transport_status_maps_by_grpc_code() {
        let err = ApiError::from_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.row().retryable);
    }
}
