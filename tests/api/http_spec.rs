//! GraphQL over HTTP as clients meet it: queries over GET, the media type
//! and status each `Accept` gets, automatic persisted queries, trusted
//! documents, and the cookie's CSRF rule on GET.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{GRAPHQL_RESPONSE, Reply, TestApp, TestDatabase, spawn_app, spawn_app_on};
use crate::web::BROWSER_ACCEPT;

const ME: &str = "query Me { me { user { email } } }";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {e}: {text}"));
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET /graphql` with `params` as its query string.
async fn get(app: &TestApp, params: &[(&str, &str)], token: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url("/graphql")).query(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    reply(request.send().await.unwrap()).await
}

/// A JSON `POST` asking for `accept` (`None`: no `Accept` at all).
async fn post_accepting(app: &TestApp, accept: Option<&str>, body: &Value) -> Reply {
    let mut headers = HeaderMap::new();
    if let Some(accept) = accept {
        headers.insert("accept", accept.parse().unwrap());
    }
    // A client without the tests' default `Accept`.
    let request = reqwest::Client::new()
        .post(app.url("/graphql"))
        .headers(headers)
        .json(body);
    reply(request.send().await.unwrap()).await
}

fn content_type(reply: &Reply) -> &str {
    reply.headers["content-type"].to_str().unwrap()
}

#[tokio::test]
async fn queries_run_over_get() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let me = get(
        &app,
        &[("query", ME), ("operationName", "Me")],
        Some(&token),
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.data("me")["user"]["email"], email.as_str());
    assert_eq!(me.headers["cache-control"], "no-store");

    let skipped = get(
        &app,
        &[
            (
                "query",
                "query($s: Boolean!) { me @skip(if: $s) { user { email } } __typename }",
            ),
            ("variables", r#"{"s": true}"#),
        ],
        Some(&token),
    )
    .await;
    assert_eq!(skipped.data("__typename"), "Query");
    assert!(skipped.body["data"].get("me").is_none(), "{}", skipped.body);

    let bad = get(&app, &[("query", ME), ("variables", "{not json")], None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "BAD_REQUEST");
    let none = get(&app, &[], None).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn a_mutation_over_get_is_405_and_does_nothing() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    let both = "query Me { me { user { email } } } mutation Out { logout }";
    for params in [
        vec![("query", "mutation { logout }")],
        vec![("query", both), ("operationName", "Out")],
        // Ambiguous: validation would refuse it, but it must not run first.
        vec![("query", both)],
    ] {
        let refused = get(&app, &params, Some(&token)).await;
        assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED, "{params:?}");
        assert_eq!(refused.code(), "METHOD_NOT_ALLOWED");
        assert_eq!(refused.headers["allow"], "POST");
        assert!(refused.body.get("data").is_none(), "{}", refused.body);
    }
    // The same document, selecting its query, runs; the session is intact.
    let me = get(
        &app,
        &[("query", both), ("operationName", "Me")],
        Some(&token),
    )
    .await;
    me.data("me");
    app.me(&token).await.data("me");
}

#[tokio::test]
async fn the_media_type_follows_accept() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ __typename }" });
    for (accept, expected) in [
        (None, "application/json"),
        (Some("*/*"), "application/json"),
        (Some("application/json"), "application/json"),
        (Some("text/plain"), "application/json"),
        (Some(GRAPHQL_RESPONSE), GRAPHQL_RESPONSE),
        (
            Some("application/graphql-response+json,application/json;q=0.9"),
            GRAPHQL_RESPONSE,
        ),
    ] {
        let reply = post_accepting(&app, accept, &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{accept:?}");
        assert!(content_type(&reply).starts_with(expected), "{accept:?}");
        assert_eq!(reply.data("__typename"), "Query");
    }
}

#[tokio::test]
async fn a_refused_document_has_no_data_and_the_status_its_media_type_asks_for() {
    let app = spawn_app().await;
    let deep = format!("{{ {}__typename{} }}", "me { ".repeat(20), " }".repeat(20));
    let cases = [
        (json!({ "query": "{" }), "GRAPHQL_VALIDATION_FAILED"),
        (json!({ "query": "{ nope }" }), "GRAPHQL_VALIDATION_FAILED"),
        (
            json!({ "query": "query($s: Boolean!) { __typename @skip(if: $s) }", "variables": { "s": "yes" } }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (json!({ "query": deep }), "QUERY_TOO_DEEP"),
    ];
    for (body, code) in cases {
        let modern = post_accepting(&app, Some(GRAPHQL_RESPONSE), &body).await;
        assert_eq!(modern.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(modern.code(), code, "{body}");
        assert!(modern.body.get("data").is_none(), "{}", modern.body);

        let legacy = post_accepting(&app, Some("application/json"), &body).await;
        assert_eq!(legacy.status, StatusCode::OK, "{body}");
        assert_eq!(legacy.code(), code, "{body}");
        assert!(legacy.body.get("data").is_none(), "{}", legacy.body);
    }
    // A body that is not a GraphQL request is a 400 either way.
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let response = reqwest::Client::new()
            .post(app.url("/graphql"))
            .header("accept", accept)
            .header("content-type", "application/json")
            .body("{\"query\": ")
            .send()
            .await
            .unwrap();
        let reply = reply(response).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{accept}");
        assert_eq!(reply.code(), "BAD_REQUEST");
    }
}

#[tokio::test]
async fn a_field_error_keeps_its_data_and_a_sign_in_failure_stays_401() {
    let app = spawn_app().await;
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let anonymous = post_accepting(&app, Some(accept), &json!({ "query": ME })).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{accept}");
        assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
        assert!(
            anonymous.body.get("data").is_some(),
            "it ran: {}",
            anonymous.body
        );
        assert!(content_type(&anonymous).starts_with(accept));

        let response = reqwest::Client::new()
            .post(app.url("/graphql"))
            .header("accept", accept)
            .bearer_auth("gth_not-a-token")
            .json(&json!({ "query": ME }))
            .send()
            .await
            .unwrap();
        let bad_token = reply(response).await;
        assert_eq!(bad_token.status, StatusCode::UNAUTHORIZED);
        assert_eq!(bad_token.reason(), "INVALID_TOKEN");
        assert!(bad_token.body.get("data").is_none(), "{}", bad_token.body);
        assert!(content_type(&bad_token).starts_with(accept));
    }
}

/// `extensions.persistedQuery` for `query`'s hash.
fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[tokio::test]
async fn automatic_persisted_queries_register_once_and_run_by_hash() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let hash = sha256(ME);
    let by_hash = json!({ "extensions": persisted(&hash) });

    let miss = app.post_value(&by_hash, Some(&token)).await;
    assert_eq!(miss.code(), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(miss.message(), "PersistedQueryNotFound");

    // A text under another's hash is refused and never kept.
    let forged = app
        .post_value(
            &json!({ "query": "{ __typename }", "extensions": persisted(&hash) }),
            Some(&token),
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(forged.code(), "BAD_REQUEST");
    assert_eq!(
        app.post_value(&by_hash, Some(&token)).await.code(),
        "PERSISTED_QUERY_NOT_FOUND"
    );

    let registered = app
        .post_value(
            &json!({ "query": ME, "extensions": persisted(&hash) }),
            Some(&token),
        )
        .await;
    assert_eq!(registered.data("me")["user"]["email"], email.as_str());
    let hit = app.post_value(&by_hash, Some(&token)).await;
    assert_eq!(hit.data("me")["user"]["email"], email.as_str());
    let over_get = get(
        &app,
        &[("extensions", &persisted(&hash).to_string())],
        Some(&token),
    )
    .await;
    assert_eq!(over_get.data("me")["user"]["email"], email.as_str());

    // A document refused by the limits is not kept either.
    let deep = format!("{{ {}__typename{} }}", "me { ".repeat(20), " }".repeat(20));
    let refused = app
        .post_value(
            &json!({ "query": deep, "extensions": persisted(&sha256(&deep)) }),
            None,
        )
        .await;
    assert_eq!(refused.code(), "QUERY_TOO_DEEP");
    let later = app
        .post_value(&json!({ "extensions": persisted(&sha256(&deep)) }), None)
        .await;
    assert_eq!(later.code(), "PERSISTED_QUERY_NOT_FOUND");

    let wrong_version = app
        .post_value(
            &json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }),
            None,
        )
        .await;
    assert_eq!(wrong_version.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn trusted_documents_mode_runs_only_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("persisted-documents.json");
    let register =
        "mutation Register($input: RegisterInput!) { register(input: $input) { token } }";
    std::fs::write(
        &manifest,
        json!({ sha256(ME): ME, sha256(register): register }).to_string(),
    )
    .unwrap();
    let database = TestDatabase::create().await;
    let path = manifest.clone();
    let app = spawn_app_on(database, move |s| s.web.trusted_documents = Some(path)).await;

    let email = "trusted@example.com";
    let signed_up = app
        .post_value(
            &json!({
                "documentId": sha256(register),
                "variables": { "input": { "email": email, "password": crate::helpers::PASSWORD } }
            }),
            None,
        )
        .await;
    let token = signed_up.data("register")["token"]
        .as_str()
        .unwrap()
        .to_owned();

    for body in [
        json!({ "documentId": sha256(ME) }),
        json!({ "documentId": format!("sha256:{}", sha256(ME)) }),
        json!({ "extensions": persisted(&sha256(ME)) }),
        json!({ "query": ME }),
    ] {
        let me = app.post_value(&body, Some(&token)).await;
        assert_eq!(me.data("me")["user"]["email"], email, "{body}");
    }
    let by_get = get(&app, &[("documentId", &sha256(ME))], Some(&token)).await;
    assert_eq!(by_get.data("me")["user"]["email"], email);

    // Anything else is refused before it is parsed: even text that would
    // not parse gets the same answer.
    for query in [
        "{ me { user { email } } }",
        "{{{{",
        "{ __schema { types { name } } }",
    ] {
        let refused = app
            .post_value(&json!({ "query": query }), Some(&token))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.code(), "DOCUMENT_NOT_TRUSTED", "{query}");
        assert!(refused.body.get("data").is_none());
    }
    let unknown = app
        .post_value(
            &json!({ "extensions": persisted(&sha256("{ __typename }")) }),
            None,
        )
        .await;
    assert_eq!(unknown.code(), "PERSISTED_QUERY_NOT_FOUND");
    let registration = app
        .post_value(
            &json!({ "query": "{ __typename }", "extensions": persisted(&sha256("{ __typename }")) }),
            None,
        )
        .await;
    assert_eq!(registration.code(), "DOCUMENT_NOT_TRUSTED");

    // GraphiQL would send documents of its own: a browser gets no page.
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(!page.text().await.unwrap().contains("<!doctype html>"));
}

#[tokio::test]
async fn the_cookie_is_honoured_on_get_only_with_a_preflighted_header() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.session_cookie = true;
        s.web.cookie_secure = false;
        s.web.cors_origins = vec!["http://localhost:5173".into()];
    })
    .await;
    let signed_up = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({
            "query": "mutation($i: RegisterInput!) { register(input: $i) { token } }",
            "variables": { "i": { "email": "get@example.com", "password": crate::helpers::PASSWORD } }
        }))
        .send()
        .await
        .unwrap();
    let cookie = signed_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("gatehouse_session="))
        .expect("a session cookie");

    let me = |header: Option<(&'static str, &'static str)>| {
        let mut request = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", ME)])
            .header("cookie", &cookie);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.send()
    };
    // What an <img> or a link on another site can send.
    let simple = reply(me(None).await.unwrap()).await;
    assert_eq!(simple.status, StatusCode::FORBIDDEN);
    assert_eq!(simple.code(), "PREFLIGHT_REQUIRED");
    for header in [
        ("gatehouse-preflight", "1"),
        ("content-type", "application/json"),
    ] {
        let allowed = reply(me(Some(header)).await.unwrap()).await;
        assert_eq!(
            allowed.data("me")["user"]["email"],
            "get@example.com",
            "{header:?}"
        );
    }

    // An allowed origin may send the header; the preflight says so.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "gatehouse-preflight")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("gatehouse-preflight"), "{allowed}");
}

#[tokio::test]
async fn variables_are_coerced_before_any_field_runs() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    // `logout` comes first: had the request started, it would have run.
    let revoke =
        "mutation($id: ID!) { logout revokeSession(input: {sessionId: $id}) { session { id } } }";
    let login = "mutation($in: LoginInput!) { logout login(input: $in) { token } }";
    for (query, variables) in [
        (revoke, json!({})),
        (revoke, json!({ "id": 1.5 })),
        (login, json!({ "in": "a string" })),
        (login, json!({ "in": { "email": "a@example.com" } })),
        (
            login,
            json!({ "in": { "email": "a@example.com", "password": "x", "admin": true } }),
        ),
    ] {
        let body = json!({ "query": query, "variables": variables });
        let refused = app.post_value(&body, Some(&token)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{variables}");
        assert_eq!(refused.code(), "GRAPHQL_VALIDATION_FAILED", "{variables}");
        assert!(refused.body.get("data").is_none(), "{}", refused.body);
    }
    app.me(&token).await.data("me");
}

/// `me` is non-null, so its failure nulls `data` (GraphQL §6.4.4), even
/// beside a root field that succeeded; with `data` null, the status is the
/// error's. (Non-null `data` is a 200: `http::response`'s unit tests.)
#[tokio::test]
async fn a_failed_non_null_root_field_nulls_data_and_sets_the_status() {
    let app = spawn_app().await;
    for query in ["{ __typename me { user { email } } }", ME] {
        let reply = app.post_value(&json!({ "query": query }), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
        assert_eq!(reply.body.get("data"), Some(&Value::Null), "{}", reply.body);
        assert_eq!(reply.code(), "UNAUTHENTICATED");
        assert_eq!(reply.reason(), "MISSING_TOKEN");
        assert_eq!(reply.headers["vary"], "accept");
    }
}

#[tokio::test]
async fn a_method_without_a_route_is_405_before_the_guard() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    // Had the guard run, the forged token would be a 401.
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        for auth in ["Bearer gth_forged", &format!("Bearer {token}")] {
            let response = app
                .client
                .request(method.clone(), app.url("/graphql"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
        }
    }
    app.me(&token).await.data("me");
}

/// A client whose requests come from `ip`, on the loopback network.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_address_cannot_evict_anothers_persisted_queries() {
    let app = spawn_app().await;
    let send = |client: reqwest::Client, body: Value| {
        let url = app.url("/graphql");
        async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let (mine, flood) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    let doc = "query Mine { __typename }";
    let registered = send(
        mine.clone(),
        json!({ "query": doc, "extensions": persisted(&sha256(doc)) }),
    )
    .await;
    assert_eq!(registered["data"]["__typename"], "Query", "{registered}");
    // More documents than the whole store holds, from one other address.
    for i in 0..520 {
        let text = format!("query Flood{i} {{ __typename }}");
        let body = json!({ "query": text, "extensions": persisted(&sha256(&text)) });
        send(flood.clone(), body).await;
    }
    let hit = send(mine, json!({ "extensions": persisted(&sha256(doc)) })).await;
    assert_eq!(hit["data"]["__typename"], "Query", "{hit}");
    // The flooding address's own oldest went first.
    let first = "query Flood0 { __typename }";
    let gone = send(flood, json!({ "extensions": persisted(&sha256(first)) })).await;
    assert_eq!(
        gone["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
        "{gone}"
    );
}
