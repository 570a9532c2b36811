//! One request, one clock, one verdict: what a client is shown is what the
//! database holds, slides only go forward, and a session that ends during a
//! request stops acting at once.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use gatehouse::clock::Clock;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, TestDatabase, spawn_app, spawn_app_with_clock, timestamp};

const IDLE: TimeDelta = TimeDelta::minutes(30);
const ABSOLUTE: TimeDelta = TimeDelta::hours(2);

async fn app_at(clock: Clock) -> TestApp {
    spawn_app_with_clock(TestDatabase::create().await, clock, |s| {
        s.idle_timeout = IDLE.to_std().unwrap();
        s.absolute_timeout = ABSOLUTE.to_std().unwrap();
    })
    .await
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// When the server would first refuse the session, from what it stores.
async fn enforced_expiry(app: &TestApp, id: &str) -> DateTime<Utc> {
    let row = app.session_row(id).await;
    (row.last_activity_at + IDLE).min(row.created_at + ABSOLUTE)
}

#[tokio::test]
async fn a_mutation_list_stops_at_its_own_revocation() {
    let app = spawn_app().await;
    for second in [
        "revokeOtherSessions",
        "refreshSession { expiresAt }",
        r#"changePassword(input: {currentPassword: "correct horse battery", newPassword: "a new passphrase"}) { revokedSessions }"#,
    ] {
        let (email, token, _) = app.signed_in_user().await;
        let other = app.login(&email, PASSWORD).await;
        let other = other.data("login")["token"].as_str().unwrap().to_owned();
        let query = format!("mutation {{ logout {second} }}");
        let reply = app.graphql(&query, json!({}), Some(&token)).await;
        // The second field is non-null, so its failure nulls `data`
        // (GraphQL §6.4.4), and the status is its error's.
        assert_eq!(reply.body.get("data"), Some(&Value::Null), "{}", reply.body);
        assert_eq!(reply.status, reqwest::StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "UNAUTHENTICATED");
        assert_eq!(reply.reason(), "REVOKED");
        assert_eq!(reply.body["errors"].as_array().unwrap().len(), 1);
        // `logout` ran all the same.
        app.me(&token).await.assert_unauthenticated("REVOKED");
        // Nothing the later field would have done was done.
        app.me(&other).await.data("me");
        app.login(&email, PASSWORD).await.data("login");
    }
}

#[tokio::test]
async fn racing_slides_never_go_back_and_show_what_is_stored() {
    let app = spawn_app().await;
    let (_, token, id) = app.signed_in_user().await;
    let replies = join_all((0..30).map(|_| app.refresh_session(&token))).await;
    let shown: Vec<DateTime<Utc>> = replies
        .iter()
        .map(|r| timestamp(&r.data("refreshSession")["session"]["lastActivityAt"]))
        .collect();
    let stored = app.session_row(&id).await.last_activity_at;
    assert!(shown.iter().all(|t| *t <= stored), "{shown:?} vs {stored}");
    assert_eq!(shown.iter().max(), Some(&stored));
}

#[tokio::test]
async fn refresh_racing_a_revocation_never_revives_the_session() {
    let app = spawn_app().await;
    let (email, token, id) = app.signed_in_user().await;
    let other = app.login(&email, PASSWORD).await;
    let other = other.data("login")["token"].as_str().unwrap().to_owned();
    let refreshes = join_all((0..20).map(|_| app.refresh_session(&token)));
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.revoke_session(&other, &id).await
    };
    let (refreshes, revoked) = tokio::join!(refreshes, revoke);
    revoked.data("revokeSession");
    for reply in &refreshes {
        if reply.body.get("errors").is_some() {
            reply.assert_unauthenticated("REVOKED");
        }
    }
    assert!(app.session_row(&id).await.revoked_at.is_some());
    app.me(&token).await.assert_unauthenticated("REVOKED");
}

#[tokio::test]
async fn no_activity_slides_past_the_absolute_cap() {
    let clock = Clock::manual(t0());
    let app = app_at(clock.clone()).await;
    let (_, token, id) = app.signed_in_user().await;
    let cap = t0() + ABSOLUTE;
    // Active all along: a request every 20 minutes.
    let mut at = t0();
    while at + TimeDelta::minutes(20) < cap {
        at += TimeDelta::minutes(20);
        clock.set(at);
        app.refresh_session(&token).await.data("refreshSession");
    }
    clock.set(cap - TimeDelta::microseconds(1));
    let refreshed = app.refresh_session(&token).await;
    assert_eq!(
        timestamp(&refreshed.data("refreshSession")["expiresAt"]),
        cap
    );
    assert_eq!(enforced_expiry(&app, &id).await, cap);
    clock.set(cap);
    app.refresh_session(&token)
        .await
        .assert_unauthenticated("ABSOLUTE_TIMEOUT");
}

#[tokio::test]
async fn the_idle_limit_is_judged_at_the_request_instant() {
    let clock = Clock::manual(t0());
    let app = app_at(clock.clone()).await;
    let (_, token, _) = app.signed_in_user().await;
    clock.set(t0() + IDLE - TimeDelta::microseconds(1));
    let me = app.me(&token).await;
    let shown = timestamp(&me.data("me")["session"]["expiresAt"]);
    assert_eq!(shown, t0() + IDLE * 2 - TimeDelta::microseconds(1));
    clock.set(shown);
    app.me(&token).await.assert_unauthenticated("IDLE_TIMEOUT");
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Me,
    Refresh,
}

/// For any interleaving of requests and clock steps, the expiry a client
/// is shown is exactly the one the server enforces, and a refusal comes
/// only once that instant has passed.
#[test]
fn shown_expiry_is_always_the_enforced_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock = Clock::manual(t0());
    let app = runtime.block_on(app_at(clock.clone()));
    let steps = prop::collection::vec(
        (
            0i64..(IDLE.num_seconds() * 3 / 2),
            0i64..1_000_000,
            prop_oneof![Just(Step::Me), Just(Step::Refresh)],
        ),
        1..12,
    );
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&steps, |steps| {
            runtime.block_on(async {
                let (_, token, id) = app.signed_in_user().await;
                let mut now = clock.now();
                for (seconds, micros, step) in steps {
                    now += TimeDelta::seconds(seconds) + TimeDelta::microseconds(micros);
                    clock.set(now);
                    let reply = match step {
                        Step::Me => app.me(&token).await,
                        Step::Refresh => app.refresh_session(&token).await,
                    };
                    let enforced = enforced_expiry(&app, &id).await;
                    if reply.body.get("errors").is_some() {
                        prop_assert_eq!(reply.status, 401, "{}", reply.body);
                        prop_assert!(enforced <= now, "refused at {} before {}", now, enforced);
                        break;
                    }
                    let shown = match step {
                        Step::Me => &reply.body["data"]["me"]["session"]["expiresAt"],
                        Step::Refresh => &reply.body["data"]["refreshSession"]["expiresAt"],
                    };
                    prop_assert_eq!(timestamp(shown), enforced);
                    prop_assert!(enforced > now);
                }
                Ok(())
            })
        })
        .unwrap();
}

/// Sends `body` to `/graphql` over `stream`, the headers first, calling
/// `between` before the body goes; returns the raw response head and body.
async fn send_in_two_parts(
    stream: &mut tokio::net::TcpStream,
    app: &TestApp,
    token: &str,
    body: &str,
    between: impl std::future::Future<Output = ()>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    between.await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    // One response: read until its body (JSON) is complete.
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((_, json)) = text.split_once("\r\n\r\n")
            && serde_json::from_str::<serde_json::Value>(json).is_ok()
        {
            return text.into_owned();
        }
    }
}

/// Found by attack: the instant was taken when the headers arrived, so a
/// client that sent its body slowly was judged before its session ended
/// and could refresh an idle session back to life.
#[tokio::test]
async fn a_request_is_judged_when_it_has_arrived_not_when_it_began() {
    let clock = Clock::manual(t0());
    let app = app_at(clock.clone()).await;
    let (_, token, id) = app.signed_in_user().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = json!({ "query": "{ me { session { expiresAt } } }" }).to_string();
    let idle_out = async {
        // Long enough for the server to have read the headers.
        tokio::time::sleep(Duration::from_millis(300)).await;
        clock.set(t0() + IDLE);
    };
    let response = send_in_two_parts(&mut stream, &app, &token, &body, idle_out).await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("IDLE_TIMEOUT"), "{response}");
    assert_eq!(app.session_row(&id).await.last_activity_at, t0());
}

/// A refused request's body is read before the answer, so the connection
/// stays usable for the next request instead of being reset.
#[tokio::test]
async fn a_refused_request_leaves_its_connection_usable() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = json!({ "query": "{ me { user { id } } }" }).to_string();
    let unknown = "gth_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let refused = send_in_two_parts(&mut stream, &app, unknown, &body, async {}).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let served = send_in_two_parts(&mut stream, &app, &token, &body, async {}).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

/// Found by attack: a write after a wait (here two slow password hashes)
/// was judged at the request's instant, so a session that reached its cap
/// meanwhile still changed the password.
#[tokio::test]
async fn a_write_after_a_wait_is_judged_when_it_lands() {
    let clock = Clock::manual(t0());
    let app = spawn_app_with_clock(TestDatabase::create().await, clock.clone(), |s| {
        // No idle limit before the cap, so only the cap can end it.
        s.idle_timeout = ABSOLUTE.to_std().unwrap();
        s.absolute_timeout = ABSOLUTE.to_std().unwrap();
        // Slow hashes: the session ends while they run.
        s.hashing.argon2_iterations = 40;
    })
    .await;
    let (email, token, _) = app.signed_in_user().await;
    clock.set(t0() + ABSOLUTE - TimeDelta::seconds(1));
    let change = app.change_password(&token, PASSWORD, "a new passphrase");
    let cap_passes = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        clock.set(t0() + ABSOLUTE);
    };
    let (reply, ()) = tokio::join!(change, cap_passes);
    reply.assert_unauthenticated("ABSOLUTE_TIMEOUT");
    app.login(&email, PASSWORD).await.data("login");
}
