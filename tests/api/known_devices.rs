//! OWASP's device cookies, against the real binary: strangers guessing
//! from many addresses lock the account for strangers only, while the
//! owner signs in at once from a device that signed in before.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Server, TestDatabase, client, serve_with};

const WRONG: &str = "not the password";
const LOGIN: &str = "mutation($e: String!, $p: String!, $d: String) {
    login(input: {email: $e, password: $p, knownDevice: $d}) { token knownDevice } }";

/// A client whose connections come from `ip` (any 127.0.0.0/8 address).
fn from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().unwrap();
    reqwest::Client::builder()
        .local_address(ip)
        .default_headers(client_headers())
        .build()
        .unwrap()
}

fn client_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static(crate::helpers::GRAPHQL_RESPONSE),
    );
    headers
}

async fn login(
    server: &Server,
    http: &reqwest::Client,
    email: &str,
    password: &str,
    device: Option<&str>,
) -> Value {
    let body = json!({ "query": LOGIN, "variables": { "e": email, "p": password, "d": device } });
    let url = format!("http://{}/graphql", server.addr);
    http.post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn code(reply: &Value) -> &str {
    reply["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {reply}"))
}

async fn register(server: &Server, email: &str) -> String {
    let (status, body) = server
        .post(
            json!({
                "query": "mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { knownDevice } }",
                "variables": { "e": email, "p": PASSWORD },
            }),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["register"]["knownDevice"]
        .as_str()
        .expect("a device token on sign-up")
        .to_owned()
}

#[tokio::test]
async fn strangers_guessing_from_many_addresses_cannot_lock_out_the_owner() {
    let database = TestDatabase::create().await;
    let server = serve_with(&database.url, "info", &[]);
    let email = "owner@example.com";
    let device = register(&server, email).await;
    assert!(device.starts_with("ghd_"));

    // 32 strangers guess until the account is locked for strangers.
    let mut locked = false;
    for i in 0..32 {
        let stranger = from(&format!("127.0.1.{}", i + 1));
        let reply = login(&server, &stranger, email, WRONG, None).await;
        locked |= code(&reply) == "RATE_LIMITED";
    }
    assert!(
        locked,
        "the guessing flood locked the account for strangers"
    );
    let stranger = from("127.0.1.200");
    let right = login(&server, &stranger, email, PASSWORD, None).await;
    assert_eq!(
        code(&right),
        "RATE_LIMITED",
        "a stranger is still locked out"
    );

    // The owner, on the device that signed up, gets in at once.
    let started = Instant::now();
    let owner = login(&server, &client(), email, PASSWORD, Some(&device)).await;
    assert!(owner["errors"].is_null(), "{owner}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(owner["data"]["login"]["knownDevice"], device.as_str());

    // Another account's device, or a made-up one, is a stranger's.
    let other = register(&server, "other@example.com").await;
    let foreign = login(&server, &client(), email, PASSWORD, Some(&other)).await;
    assert_eq!(code(&foreign), "RATE_LIMITED");
    let forged = format!("ghd_{}", "A".repeat(43));
    let forged = login(&server, &client(), email, PASSWORD, Some(&forged)).await;
    assert_eq!(code(&forged), "RATE_LIMITED");
}

#[tokio::test]
async fn a_known_device_has_a_guessing_budget_of_its_own() {
    let database = TestDatabase::create().await;
    let server = serve_with(&database.url, "info", &[]);
    let email = "owner@example.com";
    let device = register(&server, email).await;
    // Whoever holds the device token still cannot guess freely: it locks
    // after the account's number of failures, for that device alone.
    for _ in 0..5 {
        let wrong = login(&server, &client(), email, WRONG, Some(&device)).await;
        assert_eq!(code(&wrong), "INVALID_CREDENTIALS");
    }
    let locked = login(&server, &client(), email, PASSWORD, Some(&device)).await;
    assert_eq!(code(&locked), "RATE_LIMITED");
    // A stranger's attempt is not locked by it.
    let fresh = login(&server, &client(), email, PASSWORD, None).await;
    assert!(fresh["errors"].is_null(), "{fresh}");
    let new_device = fresh["data"]["login"]["knownDevice"].as_str().unwrap();
    assert_ne!(new_device, device);
}

#[tokio::test]
async fn a_new_password_forgets_every_known_device() {
    let database = TestDatabase::create().await;
    let server = serve_with(&database.url, "info", &[]);
    let email = "owner@example.com";
    let device = register(&server, email).await;
    let signed_in = login(&server, &client(), email, PASSWORD, Some(&device)).await;
    let token = signed_in["data"]["login"]["token"].as_str().unwrap();
    let (status, changed) = server
        .post(
            json!({ "query": "mutation { changePassword(input: {currentPassword: \"correct horse battery\", newPassword: \"a new and longer passphrase\"}) { revokedSessions } }" }),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert!(changed["errors"].is_null(), "{changed}");
    // Strangers lock the account; the old device is one of them now.
    for i in 0..6 {
        let stranger = from(&format!("127.0.2.{}", i + 1));
        login(&server, &stranger, email, WRONG, None).await;
    }
    let new = "a new and longer passphrase";
    let old_device = login(&server, &client(), email, new, Some(&device)).await;
    assert_eq!(code(&old_device), "RATE_LIMITED");
}

/// With the session cookie on, a browser keeps its device in an HttpOnly
/// cookie of its own, which a later sign-in presents without any script.
#[tokio::test]
async fn a_browser_keeps_its_device_in_a_cookie() {
    let app = crate::helpers::spawn_app_on(TestDatabase::create().await, |s| {
        s.web.session_cookie = true;
        s.web.cookie_secure = false;
    })
    .await;
    let (email, _, _) = app.signed_in_user().await;
    let body = json!({ "query": LOGIN, "variables": { "e": email, "p": PASSWORD } });
    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("gatehouse_device="))
        .expect("a device cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    for _ in 0..6 {
        app.login(&email, WRONG).await;
    }
    assert_eq!(app.login(&email, PASSWORD).await.code(), "RATE_LIMITED");
    let reply: Value = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", &pair)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply["errors"].is_null(), "{reply}");
}
