//! Per-call metrics and request ids of every surface, around the whole router.
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
use axum::http::HeaderValue;
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

fn code_of(resp: &Response) -> String {
    match resp.headers().get(CODE_METADATA).and_then(|v| v.to_str().ok()) {
        Some(code) => code.to_owned(),
        None if resp.status().is_success() => "OK".to_owned(),
        None => format!("HTTP_{}", resp.status().as_u16()),
    }
}

const REQUEST_ID: &str = "x-request-id";

fn request_id(req: &Request) -> String {
    let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
    match given {
        Some(id) if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => id.to_owned(),
        _ => format!("{:016x}", rand::random::<u64>()),
    }
}

pub async fn observe(req: Request, next: Next) -> Response {
    let Some((surface, call)) = classify(req.uri().path()) else { return next.run(req).await };
    let id = request_id(&req);
    let started = Instant::now();
    let span = tracing::debug_span!("request", id = %id, surface, call);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let code = code_of(&resp);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match code.as_str() {
        "INTERNAL" => tracing::warn!(id = %id, surface, call, code = %code, ms, "request failed"),
        _ => span.in_scope(|| tracing::debug!(code = %code, ms, "request done")),
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    metrics::counter!(API_REQUESTS, "surface" => surface, "call" => call, "code" => code).increment(1);
    metrics::histogram!(API_DURATION, "surface" => surface, "call" => call).record(started.elapsed().as_secs_f64());
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
