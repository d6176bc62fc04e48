//! Client authentication with a shared secret, for every surface.
//!
//! Accepted forms of the `authorization` header (gRPC metadata or HTTP):
//! `Bearer <token>`, `Basic base64(<anything>:<token>)`, and the bare token
//! (ldlm clients send the password as is). Probes (`/healthz`, `/readyz`)
//! and `/metrics` stay open. A refusal is `UNAUTHENTICATED` for gRPC calls
//! (ldlm included) and `401` with the error body for HTTP (`malformed::answer`). Tokens are
//! compared in constant time and never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use crate::config::Secret;
use crate::error::{ApiError, ErrorCode};

const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Equality that takes the same time wherever the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

/// Whether `header` carries `token` in one of the accepted forms.
pub fn authorized(header: Option<&str>, token: &Secret) -> bool {
    let Some(header) = header.map(str::trim) else { return false };
    let presented: Vec<u8> = if let Some(bearer) = header.strip_prefix("Bearer ") {
        bearer.trim().as_bytes().to_vec()
    } else if let Some(basic) = header.strip_prefix("Basic ") {
        let decoded = base64_decode(basic.trim()).unwrap_or_default();
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => decoded,
        }
    } else {
        header.as_bytes().to_vec()
    };
    same(&presented, token.expose().as_bytes())
}

/// Whether `presented` is the token itself (RESP's `AUTH`).
pub fn token_matches(presented: &[u8], token: &Secret) -> bool {
    same(presented, token.expose().as_bytes())
}

/// The middleware: passes authorized requests, refuses the others.
pub async fn require(State(token): State<Option<Arc<Secret>>>, req: Request, next: Next) -> Response {
    let Some(token) = token else { return next.run(req).await };
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if authorized(header, &token) {
        return next.run(req).await;
    }
    let message = if header.is_some() {
        "invalid credentials"
    } else {
        "missing credentials: send authorization: Bearer <token>"
    };
    super::malformed::answer(req.headers(), ApiError::new(ErrorCode::Unauthenticated, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let token = Secret::new("s3cret-s3cret-s3cret");
        assert!(authorized(Some("Bearer s3cret-s3cret-s3cret"), &token));
        assert!(authorized(Some("s3cret-s3cret-s3cret"), &token));
        // base64(":s3cret-s3cret-s3cret") and base64("user:s3cret-s3cret-s3cret")
        assert!(authorized(Some("Basic OnMzY3JldC1zM2NyZXQtczNjcmV0"), &token));
        assert!(authorized(Some("Basic dXNlcjpzM2NyZXQtczNjcmV0LXMzY3JldA=="), &token));
        assert!(!authorized(Some("Bearer wrong"), &token));
        assert!(!authorized(Some("Basic !!!"), &token));
        assert!(!authorized(None, &token));
    }
}
