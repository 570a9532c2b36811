//! Every request gets an id (the caller's `x-request-id` if well-formed, or
//! a new one), returned in the response and carried by every log line made
//! while serving it, and ends with one log line: method, path, status,
//! GraphQL operation and outcome, and duration. Nothing else of the request
//! is logged: a query string or body can hold a password.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

use crate::measure;
use crate::request_labels;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Characters of a path that are logged.
const MAX_LOGGED_PATH: usize = 256;

/// The middleware: outermost, so that every line carries the id.
pub async fn log_request(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = Instant::now();
    let (mut response, labels) =
        request_labels::scope(next.run(request).instrument(span.clone())).await;
    let took = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let outcome = labels.outcome.as_deref().unwrap_or("-");
    // Refused before the schema ran (the guard, limits, size), or not a
    // GraphQL request at all: `none`, in the log as in the metric.
    let operation = labels.operation.as_deref().unwrap_or("none");
    if path == "/graphql" {
        measure::request(operation, outcome, took);
    }
    // A path is the caller's text: enough of it to find the route.
    let path: String = path.chars().take(MAX_LOGGED_PATH).collect();
    span.in_scope(|| {
        tracing::info!(
            %method,
            path,
            status = response.status().as_u16(),
            operation,
            outcome,
            duration_ms = took.as_secs_f64() * 1000.0,
            "request"
        );
    });
    response
}

/// 1 to 64 letters, digits, `-`, `_`, `.` or `:`: enough for UUIDs and the
/// ids proxies make, and nothing a log line could be forged with.
fn well_formed(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_kept() {
        assert!(well_formed("3f2b9a1c-0000-4000-8000-000000000000"));
        assert!(well_formed("req_01HXYZ.abc:1"));
        for bad in ["", "a b", "x\ny", "\"quoted\"", &"a".repeat(65), "é"] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
