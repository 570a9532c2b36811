//! Keeps CORS to the configured origins. tower-http's `CorsLayer` withholds
//! only `access-control-allow-origin` from other origins, and still answers
//! their preflights with the allowed methods and headers (and every request
//! with the exposed headers): this removes every CORS header from a
//! response to a request whose `Origin` is not configured, so other origins
//! learn nothing and browsers refuse them outright.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Runs the request; strips CORS headers unless its origin is in `allowed`.
pub async fn only_allowed_origins(
    State(allowed): State<Arc<[HeaderValue]>>,
    request: Request,
    next: Next,
) -> Response {
    let permitted = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| allowed.contains(origin));
    let mut response = next.run(request).await;
    if !permitted {
        strip(response.headers_mut());
    }
    response
}

fn strip(headers: &mut HeaderMap) {
    let cors: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
}
