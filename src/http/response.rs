//! Renders a GraphQL response as HTTP, in the negotiated format: the status
//! from its errors, the headers that status promises, and no `data` entry
//! when the document never ran.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use async_graphql::Value;

use crate::error::{AppError, AuthFailure, ErrorStatus};
use crate::http::negotiate::Format;
use crate::request_labels;

/// The whole HTTP response for `response`, sent as `format`.
/// Field errors have already nulled what the spec says they null
/// (`graphql::null_propagation`).
pub fn render(response: async_graphql::Response, format: Format) -> Response {
    // Data means the operation ran and produced something: GraphQL over
    // HTTP requires a 2xx then, whatever its field errors say.
    let status = if response.data == Value::Null {
        status_for(&response.errors, format)
    } else {
        StatusCode::OK
    };
    let outcome = response.errors.first().map_or("OK", |error| {
        match error.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(Value::String(code)) => code.as_str(),
            _ => "ERROR",
        }
    });
    request_labels::set_outcome(outcome);
    let body = if never_ran(&response) {
        serde_json::to_vec(&Refused {
            errors: &response.errors,
        })
    } else {
        serde_json::to_vec(&response)
    }
    // Values are JSON already: serialising them cannot fail.
    .unwrap_or_default();
    let mut http = Response::new(Body::from(body));
    *http.status_mut() = status;
    let headers = http.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // Answers about sessions are for this caller, now: no cache may keep one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    for (name, value) in response.http_headers.iter() {
        headers.append(name, value.clone());
    }
    add_status_headers(&mut http, &response.errors);
    http
}

/// An error raised outside the schema (the guard, an unusable request),
/// shaped like a GraphQL response.
pub fn error(err: AppError, format: Format) -> Response {
    render(
        async_graphql::Response::from_errors(vec![err.into_server_error()]),
        format,
    )
}

/// A request error: the document never ran, so there is no `data` to
/// report, not even `null`.
#[derive(Serialize)]
struct Refused<'a> {
    errors: &'a [async_graphql::ServerError],
}

/// Whether nothing executed: no data, and no error at a field's path.
pub fn never_ran(response: &async_graphql::Response) -> bool {
    response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The status of the most severe error. With `application/json`, a
/// refused document is a 200: the body says why.
fn status_for(errors: &[async_graphql::ServerError], format: Format) -> StatusCode {
    errors
        .iter()
        .map(|e| match ErrorStatus::of(e) {
            ErrorStatus {
                refuses_document: true,
                ..
            } if format == Format::Json => StatusCode::OK,
            ErrorStatus { status, .. } => status,
        })
        .max_by_key(|status| match *status {
            StatusCode::OK => 0,
            StatusCode::UNAUTHORIZED => 1,
            other => other.as_u16(),
        })
        .unwrap_or(StatusCode::OK)
}

/// Adds the headers a status promises: RFC 6750's challenge on a 401
/// (`invalid_token` unless no token was sent), `Retry-After` on a 429 and
/// `Allow` on a 405.
fn add_status_headers(http: &mut Response, errors: &[async_graphql::ServerError]) {
    let extension = |name: &str| {
        errors
            .iter()
            .find_map(|e| e.extensions.as_ref()?.get(name).cloned())
    };
    match http.status() {
        StatusCode::UNAUTHORIZED => {
            let missing =
                extension("reason") == Some(Value::from(AuthFailure::MissingToken.reason()));
            let challenge = if missing {
                "Bearer"
            } else {
                r#"Bearer error="invalid_token""#
            };
            http.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        StatusCode::TOO_MANY_REQUESTS => {
            if let Some(Value::Number(seconds)) = extension("retryAfter")
                && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
            {
                http.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            http.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{PathSegment, ServerError};

    use super::*;
    use crate::error::tests::{documented, rows_of, samples};

    fn field_error(err: AppError) -> ServerError {
        let mut error = err.into_server_error();
        error.path = vec![PathSegment::Field("me".into())];
        error
    }

    #[test]
    fn data_that_is_not_null_is_a_200_whatever_its_errors() {
        let mut response = async_graphql::Response::new(async_graphql::value!({"a": null}));
        response.errors = vec![field_error(AppError::Unauthenticated(
            AuthFailure::MissingToken,
        ))];
        assert_eq!(
            render(response, Format::GraphQLResponse).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn null_data_takes_the_status_of_its_most_severe_error() {
        let mut response = async_graphql::Response::new(Value::Null);
        response.errors = vec![
            field_error(AppError::BadUserInput(String::new())),
            field_error(AppError::EmailNotVerified),
        ];
        let http = render(response, Format::GraphQLResponse);
        assert_eq!(http.status(), StatusCode::FORBIDDEN);
    }

    /// The status `render` gives, and whether the body has a `data` entry.
    async fn rendered(
        response: async_graphql::Response,
    ) -> (StatusCode, Option<serde_json::Value>) {
        let http = render(response, Format::GraphQLResponse);
        let status = http.status();
        let body = axum::body::to_bytes(http.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, body.get("data").cloned())
    }

    /// The README's table, read as `render` applies it: a request error has
    /// its status and no `data`; a field error has its status once `data`
    /// is null, and is a 200 beside data that is not.
    #[tokio::test]
    async fn the_readme_error_table_holds_for_request_and_field_errors() {
        let table = documented();
        for (index, error) in samples().iter().enumerate() {
            let fresh = || samples().swap_remove(index);
            for row in rows_of(&table, error) {
                let documented = StatusCode::from_u16(row.status).unwrap();
                let code = &row.code;
                if row.kind != "field" {
                    let refused =
                        async_graphql::Response::from_errors(vec![fresh().into_server_error()]);
                    assert_eq!(rendered(refused).await, (documented, None), "{code}");
                }
                if row.kind != "request" {
                    let mut failed = async_graphql::Response::new(Value::Null);
                    failed.errors = vec![field_error(fresh())];
                    let null = Some(serde_json::Value::Null);
                    assert_eq!(rendered(failed).await, (documented, null), "{code}");
                    let mut partial = async_graphql::Response::new(async_graphql::value!({"a": 1}));
                    partial.errors = vec![field_error(fresh())];
                    assert_eq!(rendered(partial).await.0, StatusCode::OK, "{code}");
                }
            }
        }
    }
}
