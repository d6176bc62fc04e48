//! Per-call metrics and request ids of the HTTP surfaces: around the REST
//! router, and in the gRPC edge (`grpc_edge`).
//!
//! Every API request has an id: the client's `x-request-id` (if it is 1 to
//! 64 printable ASCII characters) or 64 random bits; the id is echoed in the
//! response's `x-request-id`, names a `request` tracing span at debug level
//! (free unless debug logging is on), and goes with the warning of a failed
//! request.
//!
//! Invariant: labels are bounded — the surface, a call name from the fixed
//! lists below ("unknown" otherwise, so a client cannot mint labels), and a
//! result code: the `shardlock-code` header our errors carry, else "OK" or
//! the HTTP status.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::CODE_METADATA;
use crate::metrics::{API_DURATION, API_REQUESTS};

const GRPC_CALLS: &[&str] = &[
    "Acquire",
    "Release",
    "Refresh",
    "Describe",
    "List",
    "ValidateFence",
    "Session",
    "ForceRelease",
    "Status",
    "AddNode",
    "RemoveNode",
    "MostContended",
    "SetValue",
    "Downgrade",
    "Watch",
    "Campaign",
    "Proclaim",
    "Leader",
    "Resign",
    "Observe",
];
const LDLM_CALLS: &[&str] = &["Lock", "TryLock", "Unlock", "Renew"];

fn known(calls: &'static [&'static str], name: &str) -> &'static str {
    calls.iter().find(|c| **c == name).copied().unwrap_or("unknown")
}

/// (surface, call) of a request path, or `None` for probes and metrics.
fn classify(path: &str) -> Option<(&'static str, &'static str)> {
    if let Some(rest) = path.strip_prefix("/shardlock.v1.") {
        let method = rest.rsplit('/').next().unwrap_or("");
        return Some(("grpc", known(GRPC_CALLS, method)));
    }
    if let Some(method) = path.strip_prefix("/ldlm.LDLM/") {
        return Some(("ldlm", known(LDLM_CALLS, method)));
    }
    if let Some((_, call)) = super::ldlm_rest::ROUTES.iter().find(|(_, p)| *p == path) {
        return Some(("ldlm_rest", call));
    }
    if path.starts_with("/v1/") {
        let call = super::rest::ROUTES.iter().find(|(_, p)| *p == path).map_or("unknown", |(_, p)| *p);
        return Some(("rest", call));
    }
    None
}

fn code_of(headers: &HeaderMap, status: StatusCode) -> String {
    match headers.get(CODE_METADATA).and_then(|v| v.to_str().ok()) {
        Some(code) => code.to_owned(),
        None if status.is_success() => "OK".to_owned(),
        None => format!("HTTP_{}", status.as_u16()),
    }
}

const REQUEST_ID: &str = "x-request-id";

fn request_id(headers: &HeaderMap) -> String {
    let given = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok());
    match given {
        Some(id) if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => id.to_owned(),
        _ => format!("{:016x}", rand::random::<u64>()),
    }
}

/// `code` as a `'static` name when it is one of ours ("OK" or an error
/// code), for the registered-once metric handles.
fn static_code(code: &str) -> Option<&'static str> {
    match code {
        "OK" => Some("OK"),
        other => crate::error::ErrorCode::from_str_name(other).map(|c| c.as_str_name()),
    }
}

/// One observed request, from its arrival to its answer.
pub struct Observed {
    id: String,
    surface: &'static str,
    call: &'static str,
    started: Instant,
    span: tracing::Span,
}

impl Observed {
    /// Starts observing a request to `path` (`None` for probes and metrics).
    pub fn start(path: &str, headers: &HeaderMap) -> Option<Self> {
        let (surface, call) = classify(path)?;
        let id = request_id(headers);
        let span = tracing::debug_span!("request", id = %id, surface, call);
        Some(Self { id, surface, call, started: Instant::now(), span })
    }

    /// The request's tracing span, to run its handler in.
    pub fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Records the answer (`resp`), tags it with the request id, and logs
    /// it when it is an internal error.
    pub fn finish<B>(self, resp: &mut axum::http::Response<B>) {
        let Self { id, surface, call, started, span } = self;
        let code = code_of(resp.headers(), resp.status());
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match code.as_str() {
            "INTERNAL" => tracing::warn!(id = %id, surface, call, code = %code, ms, "request failed"),
            _ => span.in_scope(|| tracing::debug!(code = %code, ms, "request done")),
        }
        if let Ok(mut value) = HeaderValue::from_str(&id) {
            // Unique per request: HTTP/2 sends it as a never-indexed literal
            // instead of churning its header compression table.
            value.set_sensitive(true);
            resp.headers_mut().insert(REQUEST_ID, value);
        }
        match static_code(&code) {
            Some(code) => crate::metrics::api_request(surface, call, code, started.elapsed()),
            None => {
                metrics::counter!(API_REQUESTS, "surface" => surface, "call" => call, "code" => code).increment(1);
                metrics::histogram!(API_DURATION, "surface" => surface, "call" => call)
                    .record(started.elapsed().as_secs_f64());
            }
        }
    }
}

/// The middleware of the REST router.
pub async fn observe(req: Request, next: Next) -> Response {
    let Some(observed) = Observed::start(req.uri().path(), req.headers()) else { return next.run(req).await };
    let mut resp = next.run(req).instrument(observed.span()).await;
    observed.finish(&mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(classify("/shardlock.v1.Lock/Acquire"), Some(("grpc", "Acquire")));
        assert_eq!(classify("/shardlock.v1.Lock/Whatever123"), Some(("grpc", "unknown")));
        assert_eq!(classify("/ldlm.LDLM/TryLock"), Some(("ldlm", "TryLock")));
        assert_eq!(classify("/v1/lock/acquire"), Some(("rest", "/v1/lock/acquire")));
        assert_eq!(classify("/v1/made/up"), Some(("rest", "unknown")));
        assert_eq!(classify("/healthz"), None);
    }
}
