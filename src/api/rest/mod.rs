//! The REST (JSON over HTTP) API: the same calls as gRPC, on the same port.
//!
//! Every call is a `POST` with a JSON body under `/v1/...`, after etcd's
//! gateway (lock names may hold any character, so they travel in bodies, not
//! paths). Bodies are parsed strictly: unknown fields, wrong types, negative
//! numbers and malformed JSON get `400` with code `INVALID_ARGUMENT` and
//! serde's reason. Every error body is `{"code", "message", "leader"}` with
//! the HTTP status of the one code table (`crate::error::row`, see
//! [`error`]). The calls live by domain in [`lock`], [`watch`],
//! [`election`], [`session`] and [`admin`]. Watch and Observe are `GET`s
//! answered with server-sent events.
//!
//! Invariant: [`ROUTES`] is the one route table. The router is built from
//! it ([`handler`] gives each entry its handler), and a test checks it
//! against the OpenAPI description shipped in
//! `proto/shardlock/v1/openapi.json` (served at `GET /v1/openapi.json`), so a
//! route cannot be served and not documented, nor the other way round.

pub mod admin;
pub mod election;
pub mod error;
pub mod lock;
pub mod session;
pub mod watch;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use self::error::RestError;
use crate::error::{ApiError, ErrorCode};
use crate::lock::LockKey;
use crate::service::{LockService, Meta};

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../../proto/shardlock/v1/openapi.json");

/// Every route: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/lock/acquire"),
    ("post", "/v1/lock/release"),
    ("post", "/v1/lock/refresh"),
    ("post", "/v1/lock/describe"),
    ("post", "/v1/lock/list"),
    ("post", "/v1/lock/validate-fence"),
    ("post", "/v1/lock/set-value"),
    ("post", "/v1/lock/downgrade"),
    ("get", "/v1/lock/watch"),
    ("post", "/v1/election/campaign"),
    ("post", "/v1/election/proclaim"),
    ("post", "/v1/election/leader"),
    ("post", "/v1/election/resign"),
    ("get", "/v1/election/observe"),
    ("post", "/v1/admin/force-release"),
    ("get", "/v1/admin/status"),
    ("post", "/v1/admin/most-contended"),
    ("post", "/v1/session/open"),
    ("post", "/v1/session/keepalive"),
    ("post", "/v1/session/close"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

type Svc = State<Arc<LockService>>;

/// The handler of one entry of [`ROUTES`]; `None` for a route without one.
pub fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<LockService>>> {
    let route = match (method, path) {
        ("post", "/v1/lock/acquire") => post(lock::acquire),
        ("post", "/v1/lock/release") => post(lock::release),
        ("post", "/v1/lock/refresh") => post(lock::refresh),
        ("post", "/v1/lock/describe") => post(lock::describe),
        ("post", "/v1/lock/list") => post(lock::list),
        ("post", "/v1/lock/validate-fence") => post(lock::validate_fence),
        ("post", "/v1/lock/set-value") => post(lock::set_value),
        ("post", "/v1/lock/downgrade") => post(lock::downgrade),
        ("get", "/v1/lock/watch") => get(watch::watch),
        ("post", "/v1/election/campaign") => post(election::campaign),
        ("post", "/v1/election/proclaim") => post(election::proclaim),
        ("post", "/v1/election/leader") => post(election::leader),
        ("post", "/v1/election/resign") => post(election::resign),
        ("get", "/v1/election/observe") => get(election::observe),
        ("post", "/v1/admin/force-release") => post(admin::force_release),
        ("get", "/v1/admin/status") => get(admin::status),
        ("post", "/v1/admin/most-contended") => post(admin::most_contended),
        ("post", "/v1/session/open") => post(session::session_open),
        ("post", "/v1/session/keepalive") => post(session::session_keepalive),
        ("post", "/v1/session/close") => post(session::session_close),
        ("get", "/v1/openapi.json") => get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        ("get", "/healthz") => get(|| async { "ok\n" }),
        ("get", "/readyz") => get(readyz),
        ("get", "/metrics") => {
            get(|| async { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render()) })
        }
        _ => return None,
    };
    Some(route)
}

/// The router of every entry of [`ROUTES`].
pub fn router(service: Arc<LockService>) -> Router {
    let routes = ROUTES.iter().fold(Router::new(), |router, &(method, path)| {
        let route = handler(method, path).unwrap_or_else(|| panic!("route {method} {path} has no handler"));
        router.route(path, route)
    });
    routes.layer(DefaultBodyLimit::max(service.config().max_message_bytes)).with_state(service)
}

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

pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, RestError> {
    serde_json::from_slice(body)
        .map_err(|e| RestError(ApiError::new(ErrorCode::InvalidArgument, format!("malformed request body: {e}"))))
}

pub(crate) fn key(key: String) -> Result<LockKey, RestError> {
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

async fn readyz(State(svc): Svc) -> (StatusCode, String) {
    let cluster = svc.cluster();
    if cluster.removed() {
        return (StatusCode::SERVICE_UNAVAILABLE, "removed from the cluster: safe to stop\n".into());
    }
    let leaderless = (0..cluster.groups().count()).filter(|g| cluster.route(*g).is_none()).count();
    if leaderless == 0 {
        (StatusCode::OK, "ready\n".into())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{leaderless} groups have no leader\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::admin::*;
    use super::lock::*;
    use super::session::*;
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
        for (method, path) in ROUTES {
            assert!(handler(method, path).is_some(), "{method} {path} is listed but has no handler");
        }
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
        assert_eq!(documented("SetValueRequest"), fields::<SetValueBody>());
        assert_eq!(documented("CampaignRequest"), fields::<super::election::CampaignBody>());
        assert_eq!(documented("ProclaimRequest"), fields::<super::election::ProclaimBody>());
        assert_eq!(documented("ElectionRequest"), fields::<super::election::ElectionBody>());
        assert_eq!(documented("ResignRequest"), fields::<super::election::ResignBody>());
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
