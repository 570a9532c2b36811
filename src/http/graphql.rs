//! `/graphql` as GraphQL over HTTP describes it: operations in a JSON `POST`
//! body, or queries in a `GET` query string; documents by text or by id.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::error::{self, AppError};
use crate::graphql::persisted::PersistedDocuments;
use crate::graphql::request_checks::SelectedOperation;
use crate::graphql::schema::GatehouseSchema;
use crate::http::negotiate::{Format, negotiate};
use crate::http::response;

/// What the endpoint needs.
#[derive(Clone)]
pub struct Endpoint {
    pub schema: GatehouseSchema,
    pub documents: PersistedDocuments,
}

/// A request's parameters, from a JSON body or a query string.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
    /// A trusted document's id, as the persisted-documents proposal sends it.
    document_id: Option<String>,
}

/// The same, as a query string carries them: JSON values as strings.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryString {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
    document_id: Option<String>,
}

/// `POST /graphql` with a JSON body: any operation.
pub async fn post(
    State(endpoint): State<Endpoint>,
    Extension(context): Extension<Arc<RequestContext>>,
    headers: HeaderMap,
    // The guard has already read the body, within the limit.
    body: Bytes,
) -> Response {
    let format = negotiate(&headers, false);
    match parse_body(&headers, &body) {
        Ok(params) => run(&endpoint, context, params, false, format).await,
        Err(err) => response::error(err, format),
    }
}

/// `GET /graphql?query=…`: queries only.
pub async fn get(
    State(endpoint): State<Endpoint>,
    Extension(context): Extension<Arc<RequestContext>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let format = negotiate(&headers, false);
    match parse_query_string(&uri) {
        Ok(params) => run(&endpoint, context, params, true, format).await,
        Err(err) => response::error(err, format),
    }
}

async fn run(
    endpoint: &Endpoint,
    context: Arc<RequestContext>,
    params: Params,
    sent_with_get: bool,
    format: Format,
) -> Response {
    let id = match document_id(&params) {
        Ok(id) => id.map(str::to_owned),
        Err(err) => return response::error(err, format),
    };
    let resolved = match endpoint.documents.resolve(params.query, id.as_deref()) {
        Ok(resolved) => resolved,
        Err(err) => return response::error(err, format),
    };
    // Whose quota a newly kept document counts on.
    let client = context.client.peer;
    let variables =
        async_graphql::Variables::from_json(Value::Object(params.variables.unwrap_or_default()));
    let mut request = async_graphql::Request::new(resolved.query.as_str())
        .variables(variables)
        .data(context)
        .data(SelectedOperation {
            name: params.operation_name.clone(),
            read_only: sent_with_get,
        });
    request.operation_name = params.operation_name;
    let mut result = endpoint.schema.execute(request).await;
    error::ensure_codes(&mut result);
    if let Some(hash) = resolved.keep_as
        && !response::never_ran(&result)
    {
        endpoint.documents.keep(hash, &resolved.query, client);
    }
    response::render(result, format)
}

/// Only JSON is accepted: a form cannot send it cross-site without a
/// preflight, and one body format means one parser to harden.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, AppError> {
    if !is_json(headers) {
        return Err(AppError::UnsupportedMediaType);
    }
    match body.trim_ascii_start().first() {
        None => Err(AppError::BadRequest("The request body is empty".into())),
        Some(b'[') => Err(AppError::BadRequest(
            "Batched requests are not supported; send one operation per request".into(),
        )),
        Some(_) => serde_json::from_slice(body)
            .map_err(|e| AppError::BadRequest(format!("The body is not a GraphQL request: {e}"))),
    }
}

fn parse_query_string(uri: &Uri) -> Result<Params, AppError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        AppError::BadRequest(format!("The query string's {what} is not valid: {e}"))
    };
    let Query(raw) =
        Query::<QueryString>::try_from_uri(uri).map_err(|e| bad("parameters", &e.body_text()))?;
    let json = |what, value: Option<String>| -> Result<Option<Map<String, Value>>, AppError> {
        value
            .map(|v| serde_json::from_str(&v).map_err(|e| bad(what, &e)))
            .transpose()
            .map(Option::flatten)
    };
    Ok(Params {
        variables: json("variables", raw.variables)?,
        extensions: json("extensions", raw.extensions)?,
        query: raw.query,
        operation_name: raw.operation_name,
        document_id: raw.document_id,
    })
}

/// The id a request names its document by: `documentId`, or the hash in
/// `extensions.persistedQuery` (automatic persisted queries, version 1).
fn document_id(params: &Params) -> Result<Option<&str>, AppError> {
    let Some(persisted) = params
        .extensions
        .as_ref()
        .and_then(|e| e.get("persistedQuery"))
    else {
        return Ok(params.document_id.as_deref());
    };
    let unsupported = || {
        AppError::BadRequest(
            "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": \"…\"}".into(),
        )
    };
    if persisted.get("version").and_then(Value::as_u64) != Some(1) {
        return Err(unsupported());
    }
    persisted
        .get("sha256Hash")
        .and_then(Value::as_str)
        .map(Some)
        .ok_or_else(unsupported)
}

/// Whether the request declares a JSON body.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}
