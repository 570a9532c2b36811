//! What browsers and SPAs get: GraphiQL, CORS, the cookie transport and its
//! CSRF defences, and the production switches.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, TestDatabase, spawn_app, spawn_app_on};

/// What a browser's address bar sends.
pub const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

async fn navigate(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn graphiql_and_every_asset_it_loads_come_from_the_server() {
    let app = spawn_app().await;
    let page = navigate(&app, "/graphql").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names another host"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/graphiql/"))
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    for asset in assets {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/javascript") || content_type.starts_with("text/css")
        );
        assert!(
            response.bytes().await.unwrap().len() > 100,
            "{asset} is empty"
        );
    }
}

#[tokio::test]
async fn a_browser_navigation_gets_the_page_and_runs_nothing() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    let response = app
        .client
        .get(app.url("/graphql?query=mutation%20%7B%20logout%20%7D"))
        .header("accept", BROWSER_ACCEPT)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("<!doctype html>"));
    app.me(&token).await.data("me");
}

#[tokio::test]
async fn playground_and_introspection_can_be_turned_off() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.playground = false;
        s.web.introspection = false;
    })
    .await;
    let page = navigate(&app, "/graphql").await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let asset = app
        .client
        .get(app.url("/graphiql/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::NOT_FOUND);
    let introspection = app
        .graphql("{ __schema { types { name } } }", json!({}), None)
        .await;
    assert!(
        introspection.body["data"]["__schema"].is_null(),
        "{}",
        introspection.body
    );
    let (_, token, _) = app.signed_in_user().await;
    app.me(&token).await.data("me");
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.cors_origins = vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ];
    })
    .await;

    let allowed = preflight(&app, "https://app.example.com").await;
    assert!(allowed.status().is_success());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(methods.contains("post"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));

    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.net",
        "null",
    ] {
        let refused = preflight(&app, origin).await;
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin} was allowed"
        );
    }

    // The real request: the allowed origin may read the answer and its
    // WWW-Authenticate; another origin gets no CORS headers.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("origin", "http://localhost:5173")
        .json(&json!({ "query": "{ me { user { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("www-authenticate") && exposed.contains("retry-after"));
    let other = app
        .client
        .post(app.url("/graphql"))
        .header("origin", "https://evil.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// Registers over plain HTTP, keeping the response's headers.
async fn register_raw(app: &TestApp, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { token } }",
            "variables": { "e": email, "p": PASSWORD }
        }))
        .send()
        .await
        .unwrap()
}

/// The session cookie from a `Set-Cookie`, as `name=value`.
fn session_cookie(response: &reqwest::Response) -> (String, String) {
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.contains("gatehouse_session"))
        .expect("a session cookie was set");
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    (pair, set_cookie)
}

async fn post_with_cookie(
    app: &TestApp,
    cookie: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .header("cookie", cookie)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn me_query() -> String {
    json!({ "query": "{ me { user { email } } }" }).to_string()
}

#[tokio::test]
async fn the_cookie_transport_signs_in_keeps_and_clears_the_session() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.session_cookie = true;
        s.web.cookie_secure = false;
    })
    .await;
    let login = register_raw(&app, "cookie@example.com").await;
    let (cookie, set_cookie) = session_cookie(&login);
    assert!(cookie.starts_with("gatehouse_session=gth_"), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(flag), "{set_cookie} lacks {flag}");
    }

    let me = post_with_cookie(&app, &cookie, "application/json", me_query()).await;
    assert_eq!(me.status(), StatusCode::OK);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["data"]["me"]["user"]["email"], "cookie@example.com");

    let logout = post_with_cookie(
        &app,
        &cookie,
        "application/json",
        json!({ "query": "mutation { logout }" }).to_string(),
    )
    .await;
    let (cleared, _) = session_cookie(&logout);
    assert_eq!(cleared, "gatehouse_session=");
    let after = post_with_cookie(&app, &cookie, "application/json", me_query()).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        session_cookie(&after).0,
        "gatehouse_session=",
        "a dead cookie is cleared"
    );
}

#[tokio::test]
async fn a_cross_site_form_post_cannot_act_with_the_cookie() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.session_cookie = true;
    })
    .await;
    let login = register_raw(&app, "victim@example.com").await;
    let (cookie, set_cookie) = session_cookie(&login);
    assert!(cookie.starts_with("__Host-gatehouse_session="), "{cookie}");
    assert!(set_cookie.contains("Secure"), "{set_cookie}");

    // What an HTML form on another site can send: urlencoded, multipart, text/plain.
    let logout = json!({ "query": "mutation { logout }" }).to_string();
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            "query=mutation%20%7B%20logout%20%7D".to_owned(),
        ),
        (
            "multipart/form-data; boundary=x",
            format!(
                "--x\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\n{logout}\r\n--x--\r\n"
            ),
        ),
        ("text/plain", logout.clone()),
    ] {
        let response = post_with_cookie(&app, &cookie, content_type, body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
    }
    let still = post_with_cookie(&app, &cookie, "application/json", me_query()).await;
    assert_eq!(still.status(), StatusCode::OK, "the forged logout acted");
}

/// Every `access-control-*` header of a response.
fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn another_origin_gets_no_cors_header_at_all() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.cors_origins = vec!["https://app.example.com".into()];
        s.web.session_cookie = true;
    })
    .await;
    let allowed = preflight(&app, "https://app.example.com").await;
    assert!(cors_headers(&allowed).len() >= 3, "{:?}", allowed.headers());

    let refused = preflight(&app, "https://evil.example.com").await;
    assert_eq!(cors_headers(&refused), Vec::<String>::new());
    let no_origin = preflight(&app, "").await;
    assert_eq!(cors_headers(&no_origin), Vec::<String>::new());
    let request = app
        .client
        .post(app.url("/graphql"))
        .header("origin", "https://evil.example.com")
        .json(&json!({ "query": "{ me { user { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(cors_headers(&request), Vec::<String>::new());
}

async fn post_with_both(
    app: &TestApp,
    bearer: &str,
    cookie: &str,
    query: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .bearer_auth(bearer)
        .header("cookie", cookie)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn logout_with_a_bearer_and_another_sessions_cookie_leaves_the_cookie_alone() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.web.session_cookie = true;
        s.web.cookie_secure = false;
    })
    .await;
    let (cookie_b, _) = session_cookie(&register_raw(&app, "both@example.com").await);
    let bearer_a = app.login("both@example.com", PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The bearer is the credential: A ends, and B's cookie is not cleared.
    let logout = post_with_both(&app, &bearer_a, &cookie_b, "mutation { logout }").await;
    assert_eq!(logout.status(), StatusCode::OK);
    let cleared = logout
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().contains("gatehouse_session"));
    assert!(!cleared, "B's cookie was cleared: {:?}", logout.headers());
    app.me(&bearer_a).await.assert_unauthenticated("REVOKED");
    let me = post_with_cookie(&app, &cookie_b, "application/json", me_query()).await;
    assert_eq!(me.status(), StatusCode::OK, "B must still be live");

    // The cookie and the bearer naming the same session: it ends, and the
    // cookie is cleared.
    let token_b = cookie_b.trim_start_matches("gatehouse_session=");
    let logout = post_with_both(&app, token_b, &cookie_b, "mutation { logout }").await;
    assert_eq!(session_cookie(&logout).0, "gatehouse_session=");
    let after = post_with_cookie(&app, &cookie_b, "application/json", me_query()).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}
