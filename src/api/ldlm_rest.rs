//! ldlm's REST API on the client port, for ldlm's curl scripts and HTTP
//! clients: the same calls as ldlm's gRPC service ([`super::ldlm`]).
//!
//! As ldlm documents it:
//! - `POST /session` opens a session and sets the `ldlm-session` cookie
//!   (`201`, `{"session_id": "..."}`); every other call needs that cookie,
//!   else `401` with `{"error": "..."}`. Each call renews the session; one
//!   idle for `ldlm_rest_session_idle_ms` (ldlm's default, 10 minutes)
//!   ends, and its locks are released, as `DELETE /session` does;
//! - `POST /v1/lock` is ldlm's TryLock (`name`, `lock_timeout_seconds`,
//!   `size`); `POST /v1/unlock` (`name`, `key`); `POST /v1/renew` (`name`,
//!   `key`, `lock_timeout_seconds`), also at `/v1/refreshlock`;
//! - lock-level failures answer `200` with `"error": {"code", "message"}`
//!   and ldlm's code names (`LockSizeMismatch`, ...); a body that is not
//!   JSON answers `400` the same way; unknown fields are ignored;
//! - the password goes as HTTP Basic (`:<token>`), checked by `auth`.
//!
//! A lock taken without `lock_timeout_seconds` is kept alive by this node
//! while the session lives; one with a timeout expires unless renewed.
//!
//! Invariants: a session id reaches the client only in the cookie and the
//! `POST /session` body; only the cookie is read back.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ldlm::LdlmApi;
use crate::error::ApiError;
use crate::proto::ldlm as pb;
use crate::service::ops::session;
use crate::upkeep::sessions::SessionId;

/// The session cookie's name, as ldlm sets it.
pub const COOKIE: &str = "ldlm-session";

/// Every route of this API: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/session"),
    ("delete", "/session"),
    ("post", "/v1/lock"),
    ("post", "/v1/unlock"),
    ("post", "/v1/renew"),
    ("post", "/v1/refreshlock"),
];

type Api = State<Arc<LdlmApi>>;

pub fn router(api: Arc<LdlmApi>) -> Router {
    Router::new()
        .route("/session", post(open).delete(close))
        .route("/v1/lock", post(lock))
        .route("/v1/unlock", post(unlock))
        .route("/v1/renew", post(renew))
        .route("/v1/refreshlock", post(renew))
        .with_state(api)
}

#[derive(Deserialize)]
struct LockBody {
    name: String,
    lock_timeout_seconds: Option<i32>,
    size: Option<i32>,
}

#[derive(Deserialize)]
struct UnlockBody {
    name: String,
    key: String,
}

#[derive(Deserialize)]
struct RenewBody {
    name: String,
    key: String,
    lock_timeout_seconds: i32,
}

#[derive(Serialize)]
struct ErrorJson {
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct LockJson {
    locked: bool,
    name: String,
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
}

#[derive(Serialize)]
struct UnlockJson {
    unlocked: bool,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
}

impl From<pb::LockResponse> for LockJson {
    fn from(r: pb::LockResponse) -> Self {
        Self { locked: r.locked, name: r.name, key: r.key, error: error_json(r.error) }
    }
}

impl From<pb::UnlockResponse> for UnlockJson {
    fn from(r: pb::UnlockResponse) -> Self {
        Self { unlocked: r.unlocked, name: r.name, error: error_json(r.error) }
    }
}

fn error_json(e: Option<pb::Error>) -> Option<ErrorJson> {
    e.map(|e| ErrorJson {
        code: pb::ErrorCode::try_from(e.code).unwrap_or(pb::ErrorCode::Unknown).as_str_name(),
        message: e.message,
    })
}

/// A `{"error": "..."}` answer with `status`, as ldlm's REST server sends.
fn plain_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The session id of `headers`' `ldlm-session` cookie.
fn cookie(headers: &HeaderMap) -> Option<SessionId> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| value.trim().parse().ok())
}

fn set_cookie(value: &str, max_age: Duration) -> (header::HeaderName, HeaderValue) {
    // Rounded up: a cookie must not expire before its session.
    let secs = max_age.as_millis().div_ceil(1000);
    let text = format!("{COOKIE}={value}; Path=/; Max-Age={secs}; HttpOnly");
    (header::SET_COOKIE, HeaderValue::from_str(&text).expect("a cookie of digits is a valid header"))
}

/// `response` with the session cookie set again, its expiry pushed back
/// as the session's was (as ldlm does on every call).
fn with_cookie(api: &LdlmApi, id: SessionId, mut response: Response) -> Response {
    let (name, value) = set_cookie(&id.to_string(), idle(api));
    response.headers_mut().insert(name, value);
    response
}

fn idle(api: &LdlmApi) -> Duration {
    Duration::from_millis(api.service().config().ldlm_rest_session_idle_ms)
}

/// The caller's live session, renewed; or the `401` to answer.
fn session(api: &LdlmApi, headers: &HeaderMap) -> Result<SessionId, Response> {
    let Some(id) = cookie(headers) else {
        return Err(plain_error(
            StatusCode::UNAUTHORIZED,
            "session cookie not found: create a session with POST /session and send its ldlm-session cookie",
        ));
    };
    match api.service().sessions().keepalive(id) {
        Ok(_) => Ok(id),
        Err(_) => Err(plain_error(
            StatusCode::UNAUTHORIZED,
            "session cookie invalid or expired: create a new session with POST /session",
        )),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|e| {
        let error = ErrorJson { code: "Unknown", message: format!("invalid request body ({e}): send a JSON object") };
        (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
    })
}

/// A shardlock error in ldlm's plain form, with its code's HTTP status.
fn api_error(err: ApiError) -> Response {
    plain_error(err.row().http, err.message)
}

/// One call of a session: the cookie's session is renewed, the body parsed
/// as `B`, `call` answers with `R` (JSON), and the cookie is set again.
async fn in_session<B, R, J, F, Fut>(api: &LdlmApi, headers: &HeaderMap, bytes: &Bytes, call: F) -> Response
where
    B: DeserializeOwned,
    J: Serialize + From<R>,
    F: FnOnce(SessionId, B) -> Fut,
    Fut: std::future::Future<Output = Result<R, tonic::Status>>,
{
    let (id, b) = match session(api, headers).and_then(|id| Ok((id, body::<B>(bytes)?))) {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let answer = match call(id, b).await {
        Ok(r) => Json(J::from(r)).into_response(),
        Err(status) => api_error(ApiError::from_status(&status)),
    };
    with_cookie(api, id, answer)
}

async fn open(State(api): Api) -> Response {
    let opened = api.service().admit().and_then(|()| api.service().sessions().open(None, Some(idle(&api))));
    match opened {
        Ok(id) => {
            with_cookie(&api, id, (StatusCode::CREATED, Json(json!({ "session_id": id.to_string() }))).into_response())
        }
        Err(err) => api_error(err),
    }
}

async fn close(State(api): Api, headers: HeaderMap) -> Response {
    let Some(id) = cookie(&headers) else {
        return plain_error(StatusCode::INTERNAL_SERVER_ERROR, "no ldlm-session cookie: there is no session to close");
    };
    if session::close(api.service(), id).is_err() {
        return plain_error(StatusCode::CONFLICT, "session not found");
    }
    ([set_cookie("", Duration::ZERO)], Json(json!({ "session_id": "" }))).into_response()
}

async fn lock(State(api): Api, headers: HeaderMap, bytes: Bytes) -> Response {
    in_session::<LockBody, _, LockJson, _, _>(&api, &headers, &bytes, |id, b| {
        api.acquire(Some(id), b.name, 0, b.lock_timeout_seconds, b.size)
    })
    .await
}

async fn unlock(State(api): Api, headers: HeaderMap, bytes: Bytes) -> Response {
    in_session::<UnlockBody, _, UnlockJson, _, _>(&api, &headers, &bytes, |_, b| {
        api.unlock(pb::UnlockRequest { name: b.name, key: b.key })
    })
    .await
}

async fn renew(State(api): Api, headers: HeaderMap, bytes: Bytes) -> Response {
    in_session::<RenewBody, _, LockJson, _, _>(&api, &headers, &bytes, |_, b| {
        api.renew(pb::RenewRequest { name: b.name, key: b.key, lock_timeout_seconds: b.lock_timeout_seconds })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; ldlm-session=42; b=2"));
        assert_eq!(cookie(&headers), Some(42));
        headers.insert(header::COOKIE, HeaderValue::from_static("ldlm-session=; x=9"));
        assert_eq!(cookie(&headers), None);
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn errors_carry_ldlm_code_names() {
        let e = error_json(Some(pb::Error { code: pb::ErrorCode::LockSizeMismatch as i32, message: "m".into() }));
        assert_eq!(e.unwrap().code, "LockSizeMismatch");
    }
}
