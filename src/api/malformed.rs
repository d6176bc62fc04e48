//! Typed answers to requests that never reach a handler.
//!
//! tonic decodes a request before the service runs and answers what it
//! cannot decode — bytes that are not the method's protobuf message, a
//! `string` field holding invalid UTF-8, an empty or truncated body, a bad
//! compression flag — with a bare `INTERNAL` status. Those are the client's
//! fault, so [`typed_grpc`] turns them into `INVALID_ARGUMENT` with the
//! `shardlock-code` metadata of every other error; tonic's bare
//! `OUT_OF_RANGE` for a message over `max_message_bytes` gets
//! `MESSAGE_TOO_LARGE` (the gRPC edge asks [`typed_grpc`] of every answer). [`method_not_allowed`] answers a known REST path
//! called with the wrong method (`405`) with the JSON error body. [`unknown_route`] answers
//! a path nothing serves: a gRPC client gets `UNIMPLEMENTED`, anyone else
//! the JSON error body of the REST API with `404 NOT_FOUND` (tonic's own
//! fallback would answer an HTTP client `200` with an empty body).
//!
//! Invariants: every error a handler returns carries `shardlock-code`
//! (built by `ApiError::to_status`) and is passed through untouched; only an
//! `INTERNAL` status without it is rewritten, and only when tonic answered
//! before any response body (a trailers-only answer, which is how decoding
//! failures of unary and stream-opening messages leave).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::rest::RestError;
use crate::error::{ApiError, ErrorCode, CODE_METADATA};

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// `err` as the client of a request with `headers` reads it: a gRPC status
/// for gRPC, else the REST error body.
pub fn answer(headers: &HeaderMap, err: ApiError) -> Response {
    if is_grpc(headers) {
        err.to_status().into_http::<Body>().map(Body::new)
    } else {
        RestError(err).into_response()
    }
}

/// The REST error body of `err` with HTTP `status` (not its code's).
fn rest_answer(status: axum::http::StatusCode, err: ApiError) -> Response {
    let mut resp = RestError(err).into_response();
    *resp.status_mut() = status;
    resp
}

/// The gRPC status code of tonic's own trailers-only answer (no
/// `shardlock-code`), if the response is one.
fn bare_status(headers: &HeaderMap) -> Option<&[u8]> {
    let status = headers.get("grpc-status")?;
    (!headers.contains_key(CODE_METADATA)).then_some(status.as_bytes())
}

/// The typed error to answer instead of tonic's own bare answer with
/// `headers`, if it is one (see the module doc).
pub fn typed_grpc(headers: &HeaderMap) -> Option<ApiError> {
    let code = match bare_status(headers) {
        Some(b"13") => ErrorCode::InvalidArgument,
        Some(b"11") => ErrorCode::MessageTooLarge,
        _ => return None,
    };
    let why = tonic::Status::from_header_map(headers).map(|s| s.message().to_lowercase()).unwrap_or_default();
    let message = match code {
        ErrorCode::MessageTooLarge => {
            format!("the message is over max_message_bytes ({why}): send a smaller one")
        }
        _ => format!(
            "the request is not a well-formed grpc message of this method ({why}): \
             send exactly one protobuf message of the method's request type, with strings in UTF-8"
        ),
    };
    Some(ApiError::new(code, message))
}

/// Most request headers, and most bytes of them, a request may carry.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a request head is over [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`], if
/// it is.
pub fn over_header_limits(headers: &HeaderMap) -> Option<ApiError> {
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() <= MAX_HEADERS && bytes <= MAX_HEADER_BYTES {
        return None;
    }
    let msg = format!(
        "the request has {} headers of {bytes} bytes: send at most {MAX_HEADERS} headers of at most {MAX_HEADER_BYTES} bytes",
        headers.len()
    );
    Some(ApiError::new(ErrorCode::InvalidArgument, msg))
}

/// Refuses a request whose head is over the limits with `431` and the
/// JSON error body. (HTTP/1 is parsed with room for more, so that these
/// answers carry a body; a head over hyper's own buffer is still refused
/// by hyper, without one.)
pub async fn header_limits(req: Request, next: Next) -> Response {
    match over_header_limits(req.headers()) {
        None => next.run(req).await,
        Some(err) => rest_answer(axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, err),
    }
}

/// A REST route called with a method it does not take.
pub async fn method_not_allowed(req: Request) -> Response {
    let msg = format!(
        "{} is not allowed on {}: see /v1/openapi.json for each route's method",
        req.method(),
        req.uri().path()
    );
    rest_answer(axum::http::StatusCode::METHOD_NOT_ALLOWED, ApiError::new(ErrorCode::InvalidArgument, msg))
}

/// The fallback of the client port: a path that no service or route serves.
pub async fn unknown_route(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if is_grpc(req.headers()) {
        let msg = format!("no grpc method {path}: check the service and method name");
        return tonic::Status::unimplemented(msg).into_http::<Body>();
    }
    let msg = format!("no route {} {path}: see /v1/openapi.json for the routes", req.method());
    RestError(ApiError::new(ErrorCode::NotFound, msg)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_statuses_are_rewritten() {
        let bare = tonic::Status::internal("failed to decode Protobuf message").into_http::<Body>();
        assert_eq!(bare_status(bare.headers()), Some(&b"13"[..]));
        let big = tonic::Status::out_of_range("message length too large").into_http::<Body>();
        assert_eq!(bare_status(big.headers()), Some(&b"11"[..]));
        let ours = ApiError::new(ErrorCode::Internal, "internal error: x; see the server log").to_status();
        assert_eq!(bare_status(ours.into_http::<Body>().headers()), None);
        let busy = ApiError::new(ErrorCode::LockBusy, "busy").to_status().into_http::<Body>();
        assert_eq!(bare_status(busy.headers()), None);
    }

    #[test]
    fn a_decode_failure_becomes_invalid_argument() {
        let bare = tonic::Status::internal("failed to decode Protobuf message: invalid wire type").into_http::<Body>();
        let typed = typed_grpc(bare.headers()).expect("retyped");
        assert_eq!(typed.code, ErrorCode::InvalidArgument);
        assert!(typed.message.contains("invalid wire type"), "{}", typed.message);
        let ours = ApiError::new(ErrorCode::LockBusy, "busy").to_status().into_http::<Body>();
        assert_eq!(typed_grpc(ours.headers()), None);
    }
}
