//! The error contract at the HTTP edge: statuses, codes, reasons, challenges.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, spawn_app, spawn_app_on};

async fn post_raw(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.expect("GraphQL-shaped body"))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rejected_token_gets_401_invalid_token_with_a_challenge() {
    let app = spawn_app().await;
    let unknown = format!("gth_{}", "A".repeat(43));
    for token in [unknown.as_str(), "garbage", "gth_short"] {
        let reply = app.graphql("{ __typename }", json!({}), Some(token)).await;
        reply.assert_unauthenticated("INVALID_TOKEN");
        assert_eq!(
            reply.headers["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }
}

#[tokio::test]
async fn the_guard_runs_even_for_operations_that_need_no_session() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    app.logout(&token).await.data("logout");
    app.graphql("{ __typename }", json!({}), Some(&token))
        .await
        .assert_unauthenticated("REVOKED");
}

#[tokio::test]
async fn a_non_bearer_authorization_is_an_invalid_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic YWRhOnB3")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["reason"], "INVALID_TOKEN");
}

#[tokio::test]
async fn malformed_requests_get_4xx_with_graphql_shaped_errors() {
    let app = spawn_app().await;
    let cases: [(&str, &str, StatusCode, &str); 5] = [
        (
            "application/json",
            "{\"query\":",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            "application/json",
            "",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            "application/json",
            "[{\"query\":\"{__typename}\"}]",
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            "text/plain",
            "{\"query\":\"{__typename}\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/x-www-form-urlencoded",
            "query=%7B__typename%7D",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ];
    for (content_type, body, status, expected) in cases {
        let (got, reply) = post_raw(&app, content_type, body).await;
        assert_eq!(got, status, "{content_type} {body:?}: {reply}");
        assert_eq!(code(&reply), expected, "{reply}");
    }
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(65 * 1024);
    let body =
        json!({ "query": "{ __typename }", "variables": { "padding": padding } }).to_string();
    let (status, reply) = post_raw(&app, "application/json", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&reply), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn wrong_variable_types_are_graphql_errors_not_crashes() {
    let app = spawn_app().await;
    let reply = app
        .graphql(
            "mutation($input: LoginInput!) { login(input: $input) { token } }",
            json!({ "input": { "email": 42, "password": ["x"] } }),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "GRAPHQL_VALIDATION_FAILED", "{}", reply.body);
}

/// Parsed documents are cached by their text: a repeat must still be
/// refused if abusive, and validated against its own variables.
#[tokio::test]
async fn a_repeated_document_is_still_limited_and_validated() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ me {{ {}id{} }} }}",
        "session { ".repeat(12),
        " }".repeat(12)
    );
    for _ in 0..2 {
        let reply = app.graphql(&deep, json!({}), None).await;
        assert_eq!(reply.code(), "QUERY_TOO_DEEP", "{}", reply.body);
    }

    let login = "mutation($input: LoginInput!) { login(input: $input) { token } }";
    let good = json!({ "input": { "email": "nobody@example.com", "password": "x" } });
    let bad = json!({ "input": { "email": 42, "password": ["x"] } });
    for (variables, code) in [
        (&good, "INVALID_CREDENTIALS"),
        (&bad, "GRAPHQL_VALIDATION_FAILED"),
        (&good, "INVALID_CREDENTIALS"),
    ] {
        let reply = app.graphql(login, variables.clone(), None).await;
        assert_eq!(reply.code(), code, "{}", reply.body);
    }
}

#[tokio::test]
async fn unparsable_and_invalid_documents_have_codes() {
    let app = spawn_app().await;
    for query in ["{ me { ", "{ nope }", "mutation { login { token } }"] {
        let reply = app.graphql(query, json!({}), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.code(),
            "GRAPHQL_VALIDATION_FAILED",
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn health_answers_once_serving() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn abusive_documents_are_refused_before_execution() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    let deep = format!(
        "{{ me {{ {}id{} }} }}",
        "session { ".repeat(12),
        " }".repeat(12)
    );
    let aliases: String = (0..16).map(|i| format!("a{i}: __typename ")).collect();
    let roots: String = (0..11)
        .map(|i| format!("m{i}: me {{ user {{ id }} }} "))
        .collect();
    let wide: String = (0..260).map(|_| "__typename ").collect();
    for (query, code) in [
        (deep, "QUERY_TOO_DEEP"),
        (format!("{{ me {{ {aliases} }} }}"), "TOO_MANY_ALIASES"),
        (format!("{{ {roots} }}"), "TOO_MANY_ROOT_FIELDS"),
        (
            format!("{{ me {{ session {{ {wide} }} }} }}"),
            "QUERY_TOO_COMPLEX",
        ),
    ] {
        let reply = app.graphql(&query, json!({}), Some(&token)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{code}: {}",
            reply.body
        );
        assert_eq!(reply.code(), code, "{}", reply.body);
        assert!(reply.body["data"].is_null());
    }
}

/// The shape of the introspection query GraphiQL and codegen tools send
/// (TypeRef nested eight deep) stays within the limits.
#[tokio::test]
async fn full_introspection_is_allowed() {
    let app = spawn_app().await;
    let type_ref = format!(
        "kind name {}",
        "ofType { kind name ".repeat(8) + &"}".repeat(8)
    );
    let query = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} \
         types {{ kind name description \
           fields(includeDeprecated: true) {{ name description args {{ name description type {{ ...TypeRef }} defaultValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }} \
           inputFields {{ name description type {{ ...TypeRef }} defaultValue }} \
           interfaces {{ ...TypeRef }} enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} possibleTypes {{ ...TypeRef }} }} \
         directives {{ name description locations args {{ name description type {{ ...TypeRef }} defaultValue }} }} }} }} \
         fragment TypeRef on __Type {{ {type_ref} }}"
    );
    let reply = app.graphql(&query, json!({}), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let types = reply.data("__schema")["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Session"));
}

/// `data`, which must be present, and each error's path.
fn data_and_paths(body: &Value) -> (&Value, Vec<&Value>) {
    let data = body
        .get("data")
        .unwrap_or_else(|| panic!("no data entry: {body}"));
    let paths = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"))
        .iter()
        .map(|e| &e["path"])
        .collect();
    (data, paths)
}

/// A failed non-null field nulls its parent, up to `data` (GraphQL §6.4.4):
/// `securityEvents` is non-null, and so is `me`.
#[tokio::test]
async fn a_failed_non_null_field_nulls_data_through_its_non_null_parents() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    let events = r#"securityEvents(first: 1, after: "garbage") { edges { cursor } }"#;
    for query in [
        format!("{{ me {{ {events} }} }}"),
        format!("{{ me {{ user {{ email }} {events} }} }}"),
        format!(
            "{{ mine: me {{ ... on Viewer {{ user {{ email }} }} ...E }} }} fragment E on Viewer {{ {events} }}"
        ),
    ] {
        let reply = app.graphql(&query, json!({}), Some(&token)).await;
        let (data, paths) = data_and_paths(&reply.body);
        assert_eq!(*data, Value::Null, "{query}: {}", reply.body);
        let key = if query.contains("mine") { "mine" } else { "me" };
        assert_eq!(paths, [&json!([key, "securityEvents"])], "{}", reply.body);
        assert_eq!(reply.code(), "BAD_USER_INPUT");
        // Null data: the status is the error's, a 200 for bad input.
        assert_eq!(reply.status, StatusCode::OK);
    }
}

/// The same for a field an unverified account may not read, whose error
/// has a status of its own once `data` is null.
#[tokio::test]
async fn a_field_refused_to_an_unverified_account_nulls_data_with_its_status() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.mail.require_verified_email = true;
    })
    .await;
    let (_, token, _) = app.signed_in_user().await;
    let reply = app
        .graphql(
            "{ me { user { email } sessions { id } } }",
            json!({}),
            Some(&token),
        )
        .await;
    let (data, paths) = data_and_paths(&reply.body);
    assert_eq!(*data, Value::Null, "{}", reply.body);
    assert_eq!(paths, [&json!(["me", "sessions"])]);
    assert_eq!(reply.code(), "EMAIL_NOT_VERIFIED");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}
