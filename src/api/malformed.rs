//! Typed answers to requests that never reach a handler.
//!
//! tonic decodes a request before the service runs and answers what it
//! cannot decode — bytes that are not the method's protobuf message, a
//! `string` field holding invalid UTF-8, an empty or truncated body, a bad
//! compression flag — with a bare `INTERNAL` status. Those are the client's
//! fault, so [`typed_grpc`] turns them into `INVALID_ARGUMENT` with the
//! `shardlock-code` metadata of every other error. [`unknown_route`] answers
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

/// Whether a response is tonic's own `INTERNAL` answer to an undecodable request.
fn is_bare_internal(headers: &HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|v| v.as_bytes() == b"13") && !headers.contains_key(CODE_METADATA)
}

/// The middleware on the gRPC services (see the module doc).
pub async fn typed_grpc(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if !is_bare_internal(resp.headers()) {
        return resp;
    }
    let why = tonic::Status::from_header_map(resp.headers()).map(|s| s.message().to_lowercase()).unwrap_or_default();
    let message = format!(
        "the request is not a well-formed grpc message of this method ({why}): \
         send exactly one protobuf message of the method's request type, with strings in UTF-8"
    );
    ApiError::new(ErrorCode::InvalidArgument, message).to_status().into_http::<Body>()
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
    fn only_bare_internal_statuses_are_rewritten() {
        let bare = tonic::Status::internal("failed to decode Protobuf message").into_http::<Body>();
        assert!(is_bare_internal(bare.headers()));
        let ours = ApiError::new(ErrorCode::Internal, "internal error: x; see the server log").to_status();
        assert!(!is_bare_internal(ours.into_http::<Body>().headers()));
        let busy = ApiError::new(ErrorCode::LockBusy, "busy").to_status().into_http::<Body>();
        assert!(!is_bare_internal(busy.headers()));
    }

    #[tokio::test]
    async fn a_decode_failure_becomes_invalid_argument() {
        let app = axum::Router::new()
            .route(
                "/x",
                axum::routing::post(|| async {
                    tonic::Status::internal("failed to decode Protobuf message: invalid wire type").into_http::<Body>()
                }),
            )
            .layer(axum::middleware::from_fn(typed_grpc));
        let req = Request::post("/x").header(CONTENT_TYPE, "application/grpc").body(Body::empty()).unwrap();
        let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
        let status = tonic::Status::from_header_map(resp.headers()).expect("a grpc status");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(ApiError::from_status(&status).code, ErrorCode::InvalidArgument);
        assert!(status.message().contains("invalid wire type"), "{}", status.message());
    }
}
