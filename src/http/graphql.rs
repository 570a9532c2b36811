//! `POST /graphql`: parses a JSON GraphQL request, executes it, and sets the
//! HTTP status from the errors' codes.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::context::RequestContext;
use crate::error::{self, AppError};
use crate::graphql::schema::GatehouseSchema;

/// Executes one GraphQL request sent as `application/json`.
pub async fn execute(
    State(schema): State<GatehouseSchema>,
    Extension(context): Extension<Arc<RequestContext>>,
    headers: HeaderMap,
    // The guard has already read the body, within the limit.
    body: Bytes,
) -> Response {
    let request = match parse(&headers, body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let mut response = schema.execute(request.data(context)).await;
    error::ensure_codes(&mut response);
    error::graphql_response(response)
}

/// Only JSON is accepted: a form cannot send it cross-site without a
/// preflight, and one body format means one parser to harden.
fn parse(headers: &HeaderMap, body: Bytes) -> Result<async_graphql::Request, AppError> {
    if !is_json(headers) {
        return Err(AppError::UnsupportedMediaType);
    }
    match body.trim_ascii_start().first() {
        None => Err(AppError::BadRequest("The request body is empty".into())),
        Some(b'[') => Err(AppError::BadRequest(
            "Batched requests are not supported; send one operation per request".into(),
        )),
        Some(_) => serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("The body is not a GraphQL request: {e}"))),
    }
}

/// Whether the request declares a JSON body.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
