//! A deadline on every GraphQL request, answered with a clear error instead
//! of a dropped connection. Work cut off is rolled back: every multi-write
//! use case runs in one transaction.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::AppError;
use crate::http::negotiate::negotiate;
use crate::http::response;

/// Runs the rest of the stack, or answers `TIMEOUT` (503) after `limit`.
pub async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let format = negotiate(request.headers(), false);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => response::error(AppError::Timeout, format),
    }
}
