//! The REST error: every failed call answers `{"code", "message",
//! "leader"}` with the HTTP status of the one code table
//! (`crate::error::row`) and the code in the `shardlock-code` header.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// An error as the REST API returns it.
pub struct RestError(pub ApiError);

#[derive(Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub leader: Option<String>,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let e = self.0;
        let body =
            ErrorBody { code: e.code.as_str_name().to_owned(), message: e.message.clone(), leader: e.leader.clone() };
        let code = [(crate::error::CODE_METADATA, e.code.as_str_name())];
        (e.row().http, code, Json(body)).into_response()
    }
}

impl From<ApiError> for RestError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

pub type Reply<T> = Result<Json<T>, RestError>;
