//! The REST (JSON over HTTP) API: the same calls as gRPC, on the same port.
//!
//! Every call is a `POST` with a JSON body under `/v1/...`, after etcd's
//! gateway (lock names may hold any character, so they travel in bodies, not
//! paths). Bodies are parsed strictly: unknown fields, wrong types, negative
//! numbers and malformed JSON get `400` with code `INVALID_ARGUMENT` and
//! serde's reason. Every error body is `{"code", "message", "leader"}` with
//! the HTTP status of the one code table (`crate::error::row`). The routes
//! are listed in [`ROUTES`], which a test checks against the OpenAPI
//! description shipped in `proto/shardlock/v1/openapi.json` (served at
//! `GET /v1/openapi.json`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::server::read::{LockRow, LockView};
use crate::server::{AcquireParams, LockService, Meta};

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../proto/shardlock/v1/openapi.json");

/// Every route: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/lock/acquire"),
    ("post", "/v1/lock/release"),
    ("post", "/v1/lock/refresh"),
    ("post", "/v1/lock/describe"),
    ("post", "/v1/lock/list"),
    ("post", "/v1/lock/validate-fence"),
    ("post", "/v1/admin/force-release"),
    ("get", "/v1/admin/status"),
    ("post", "/v1/session/open"),
    ("post", "/v1/session/keepalive"),
    ("post", "/v1/session/close"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/v1/admin/most-contended"),
];

type Svc = State<Arc<LockService>>;

pub fn router(service: Arc<LockService>) -> Router {
    Router::new()
        .route("/v1/lock/acquire", post(acquire))
        .route("/v1/lock/release", post(release))
        .route("/v1/lock/refresh", post(refresh))
        .route("/v1/lock/describe", post(describe))
        .route("/v1/lock/list", post(list))
        .route("/v1/lock/validate-fence", post(validate_fence))
        .route("/v1/admin/force-release", post(force_release))
        .route("/v1/admin/status", get(status))
        .route("/v1/session/open", post(session_open))
        .route("/v1/session/keepalive", post(session_keepalive))
        .route("/v1/session/close", post(session_close))
        .route("/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render()) }),
        )
        .route("/v1/admin/most-contended", post(most_contended))
        .layer(DefaultBodyLimit::max(service.config().max_message_bytes))
        .with_state(service)
}

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

type Reply<T> = Result<Json<T>, RestError>;

/// A request body as read off the wire (at most `max_message_bytes`); one
/// that cannot be read is refused with the REST error body, like any other
/// bad input.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = RestError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|e| {
            let why = e.body_text().to_lowercase();
            let msg = format!("cannot read the request body ({why}): send a JSON body of at most max_message_bytes");
            RestError(ApiError::new(ErrorCode::InvalidArgument, msg))
        })
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, RestError> {
    serde_json::from_slice(body)
        .map_err(|e| RestError(ApiError::new(ErrorCode::InvalidArgument, format!("malformed request body: {e}"))))
}

fn key(key: String) -> Result<LockKey, RestError> {
    LockKey::new(key).map_err(|e| RestError(e.into()))
}

/// Where an answer came from (flattened into every write reply).
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
pub struct Header {
    pub group: u32,
    pub node_id: u64,
    pub index: u64,
}

impl From<Meta> for Header {
    fn from(m: Meta) -> Self {
        Self { group: m.group, node_id: m.node_id, index: m.index }
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    pub name: String,
    pub size: Option<u32>,
    pub permits: Option<u32>,
    pub ttl_ms: Option<u64>,
    pub wait_ms: Option<u64>,
    pub key: Option<String>,
    pub session_id: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct GrantReply {
    #[serde(flatten)]
    pub header: Header,
    pub key: String,
    pub fencing_token: u64,
    pub permits: u32,
    pub ttl_ms: u64,
    pub size: u32,
}

async fn acquire(State(svc): Svc, RawBody(body): RawBody) -> Reply<GrantReply> {
    let b: AcquireBody = parse(&body)?;
    let config = svc.config();
    let params = AcquireParams {
        name: b.name,
        key: b.key.map(key).transpose()?,
        size: b.size.unwrap_or(1),
        permits: b.permits.unwrap_or(1),
        ttl_ms: b.ttl_ms.unwrap_or(config.default_ttl_ms),
        wait_ms: b.wait_ms.unwrap_or(0),
        session: b.session_id.map(|id| (id, true)),
    };
    let size = params.size;
    let (meta, g) = svc.acquire(params).await?;
    Ok(Json(GrantReply {
        header: meta.into(),
        key: g.key.to_string(),
        fencing_token: g.token,
        permits: g.permits,
        ttl_ms: g.ttl_ms,
        size,
    }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub name: String,
    pub key: String,
}

async fn release(State(svc): Svc, RawBody(body): RawBody) -> Reply<Header> {
    let b: KeyBody = parse(&body)?;
    Ok(Json(svc.release(b.name, key(b.key)?).await?.into()))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub name: String,
    pub key: String,
    pub ttl_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub struct RefreshReply {
    #[serde(flatten)]
    pub header: Header,
    pub fencing_token: u64,
    pub ttl_ms: u64,
}

async fn refresh(State(svc): Svc, RawBody(body): RawBody) -> Reply<RefreshReply> {
    let b: RefreshBody = parse(&body)?;
    let (meta, g) = svc.refresh(b.name, key(b.key)?, b.ttl_ms).await?;
    Ok(Json(RefreshReply { header: meta.into(), fencing_token: g.token, ttl_ms: g.ttl_ms }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct DescribeReply {
    #[serde(flatten)]
    pub header: Header,
    pub lock: Option<LockView>,
}

async fn describe(State(svc): Svc, RawBody(body): RawBody) -> Reply<DescribeReply> {
    let b: NameBody = parse(&body)?;
    let (meta, lock) = svc.describe(b.name).await?;
    Ok(Json(DescribeReply { header: meta.into(), lock }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    pub prefix: Option<String>,
    pub limit: Option<u32>,
    pub page_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct ListReply {
    pub locks: Vec<LockRow>,
    pub next_page_token: Option<String>,
}

async fn list(State(svc): Svc, RawBody(body): RawBody) -> Reply<ListReply> {
    let b: ListBody = parse(&body)?;
    let limit = b.limit.unwrap_or(svc.config().default_list_page) as usize;
    let (locks, more) = svc.list(b.prefix.unwrap_or_default(), b.page_token, limit).await?;
    let next_page_token = if more { locks.last().map(|l| l.name.clone()) } else { None };
    Ok(Json(ListReply { locks, next_page_token }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FenceBody {
    pub name: String,
    pub fencing_token: u64,
}

#[derive(Serialize, Deserialize)]
pub struct FenceReply {
    #[serde(flatten)]
    pub header: Header,
    pub valid: bool,
    pub key: Option<String>,
}

async fn validate_fence(State(svc): Svc, RawBody(body): RawBody) -> Reply<FenceReply> {
    let b: FenceBody = parse(&body)?;
    let (meta, holder) = svc.validate_fence(b.name, b.fencing_token).await?;
    Ok(Json(FenceReply { header: meta.into(), valid: holder.is_some(), key: holder.map(|k| k.to_string()) }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ForceBody {
    pub name: String,
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct ForceReply {
    #[serde(flatten)]
    pub header: Header,
    pub released: u32,
}

async fn force_release(State(svc): Svc, RawBody(body): RawBody) -> Reply<ForceReply> {
    let b: ForceBody = parse(&body)?;
    let (meta, released) = svc.force_release(b.name, b.key.map(key).transpose()?).await?;
    Ok(Json(ForceReply { header: meta.into(), released }))
}

#[derive(Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: u32,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub applied_index: u64,
    pub is_leader: bool,
}

#[derive(Serialize, Deserialize)]
pub struct StatusReply {
    pub node_id: u64,
    pub groups: Vec<GroupStatus>,
}

async fn status(State(svc): Svc) -> Json<StatusReply> {
    let groups = svc.groups();
    let rows = (0..groups.count())
        .map(|g| {
            let v = groups.view(g);
            GroupStatus {
                group: g,
                leader_id: v.leader,
                term: v.term,
                applied_index: v.applied_index,
                is_leader: v.is_leader,
            }
        })
        .collect();
    Json(StatusReply { node_id: groups.me(), groups: rows })
}

async fn readyz(State(svc): Svc) -> (StatusCode, String) {
    let groups = svc.groups();
    let leaderless = (0..groups.count()).filter(|g| groups.view(*g).leader.is_none()).count();
    if leaderless == 0 {
        (StatusCode::OK, "ready\n".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{leaderless} groups have no leader\n"))
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionOpenBody {
    pub ttl_ms: Option<u64>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    pub session_id: u64,
}

#[derive(Serialize, Deserialize)]
pub struct SessionReply {
    pub session_id: u64,
    pub ttl_ms: u64,
}

async fn session_open(State(svc): Svc, RawBody(body): RawBody) -> Reply<SessionReply> {
    svc.admit()?;
    let b: SessionOpenBody = parse(&body)?;
    let config = svc.config();
    let ttl_ms = b.ttl_ms.unwrap_or(config.session_ttl_ms);
    if !(100..=config.limits.max_ttl_ms).contains(&ttl_ms) {
        let msg = format!("session ttl of {ttl_ms} ms is out of range: use 100 to {} ms", config.limits.max_ttl_ms);
        return Err(RestError(ApiError::new(ErrorCode::InvalidTtl, msg)));
    }
    let session_id = svc.sessions().open(None, Some(Duration::from_millis(ttl_ms)))?;
    Ok(Json(SessionReply { session_id, ttl_ms }))
}

async fn session_keepalive(State(svc): Svc, RawBody(body): RawBody) -> Reply<SessionReply> {
    let b: SessionBody = parse(&body)?;
    let ttl = svc.sessions().keepalive(b.session_id)?;
    Ok(Json(SessionReply { session_id: b.session_id, ttl_ms: ttl.as_millis() as u64 }))
}

#[derive(Serialize, Deserialize)]
pub struct SessionClosed {
    pub released: usize,
}

async fn session_close(State(svc): Svc, RawBody(body): RawBody) -> Reply<SessionClosed> {
    let b: SessionBody = parse(&body)?;
    svc.sessions().check(b.session_id)?;
    let holds = svc.sessions().close(b.session_id);
    let released = holds.len();
    svc.release_holds(holds);
    Ok(Json(SessionClosed { released }))
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ContendedBody {
    pub limit: Option<u32>,
}

#[derive(Serialize, Deserialize)]
pub struct ContendedLock {
    pub name: String,
    pub queued: u64,
}

#[derive(Serialize, Deserialize)]
pub struct ContendedReply {
    pub locks: Vec<ContendedLock>,
}

async fn most_contended(State(svc): Svc, RawBody(body): RawBody) -> Reply<ContendedReply> {
    let b: ContendedBody = parse(&body)?;
    let top = svc.most_contended(b.limit.unwrap_or(10).min(1000) as usize);
    Ok(Json(ContendedReply { locks: top.into_iter().map(|(name, queued)| ContendedLock { name, queued }).collect() }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn spec() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is valid JSON")
    }

    #[test]
    fn openapi_lists_exactly_the_served_routes() {
        let spec = spec();
        assert_eq!(spec["openapi"], "3.0.3");
        let mut documented = BTreeSet::new();
        for (path, ops) in spec["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let served: BTreeSet<_> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(documented, served);
    }

    fn fields<T: Serialize + Default>() -> BTreeSet<String> {
        serde_json::to_value(T::default()).unwrap().as_object().unwrap().keys().cloned().collect()
    }

    fn documented(schema: &str) -> BTreeSet<String> {
        spec()["components"]["schemas"][schema]["properties"].as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn openapi_request_schemas_match_the_parsed_bodies() {
        assert_eq!(documented("AcquireRequest"), fields::<AcquireBody>());
        assert_eq!(documented("KeyRequest"), fields::<KeyBody>());
        assert_eq!(documented("RefreshRequest"), fields::<RefreshBody>());
        assert_eq!(documented("NameRequest"), fields::<NameBody>());
        assert_eq!(documented("ListRequest"), fields::<ListBody>());
        assert_eq!(documented("FenceRequest"), fields::<FenceBody>());
        assert_eq!(documented("ForceReleaseRequest"), fields::<ForceBody>());
        assert_eq!(documented("SessionOpenRequest"), fields::<SessionOpenBody>());
        assert_eq!(documented("SessionRequest"), fields::<SessionBody>());
        assert_eq!(documented("MostContendedRequest"), fields::<ContendedBody>());
    }

    proptest::proptest! {
        /// Any bytes at all parse or are refused with INVALID_ARGUMENT; nothing panics.
        #[test]
        fn any_body_parses_or_is_invalid_argument(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let bytes = Bytes::from(body);
            for code in [
                parse::<AcquireBody>(&bytes).err().map(|e| e.0.code),
                parse::<RefreshBody>(&bytes).err().map(|e| e.0.code),
                parse::<ListBody>(&bytes).err().map(|e| e.0.code),
                parse::<SessionOpenBody>(&bytes).err().map(|e| e.0.code),
            ] {
                proptest::prop_assert!(code.is_none_or(|c| c == ErrorCode::InvalidArgument));
            }
        }
    }

    #[test]
    fn bodies_are_parsed_strictly() {
        let bad = [r#"{"name": "a", "sise": 2}"#, r#"{"name": 7}"#, r#"{"name": "a", "ttl_ms": -5}"#, "{", ""];
        for body in bad {
            let err = parse::<AcquireBody>(&Bytes::from(body)).err().expect(body);
            assert_eq!(err.0.code, ErrorCode::InvalidArgument, "{body}");
        }
        assert!(parse::<AcquireBody>(&Bytes::from(r#"{"name": "a", "size": 3}"#)).is_ok());
    }
}
