//! A deadline on every GraphQL request, answered with a clear error instead
//! of a dropped connection. Work cut off is rolled back: every multi-write
//! use case runs in one transaction.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// Runs the rest of the stack, or answers `TIMEOUT` (503) after `limit`.
pub async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Timeout.into_response(),
    }
}
