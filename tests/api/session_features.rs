//! The session features users ask identity services for: passive requests,
//! step-up, deleting the account, the session limit, remember-me, the
//! device list and the security history. Each on SQLite and PostgreSQL,
//! judged on a manual clock where instants matter.

use chrono::{DateTime, TimeDelta, Utc};
use entity::security_event;
use futures_util::future::join_all;
use gatehouse::clock::Clock;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, Reply, TestApp, TestDatabase, spawn_app_on, spawn_app_with_clock, timestamp,
};

const IDLE: TimeDelta = TimeDelta::minutes(30);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn app_at(clock: Clock) -> TestApp {
    spawn_app_with_clock(TestDatabase::create().await, clock, |_| {}).await
}

/// A GraphQL request with extra headers.
async fn send(
    app: &TestApp,
    query: &str,
    variables: Value,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap(),
    }
}

const ME: &str = "{ me { session { id expiresAt lastActivityAt authenticatedAt rememberMe } } }";
const PASSIVE: &[(&str, &str)] = &[("gatehouse-passive", "true")];

async fn login(app: &TestApp, email: &str, remember_me: bool, user_agent: &str) -> Value {
    let reply = send(
        app,
        "mutation($i: LoginInput!) { login(input: $i) { token session { id rememberMe idleExpiresAt absoluteExpiresAt } } }",
        json!({ "i": { "email": email, "password": PASSWORD, "rememberMe": remember_me } }),
        None,
        &[("user-agent", user_agent)],
    )
    .await;
    reply.data("login").clone()
}

async fn reauthenticate(app: &TestApp, token: &str, password: &str) -> Reply {
    send(
        app,
        "mutation($p: String!) { reauthenticate(input: {password: $p}) { session { authenticatedAt } } }",
        json!({ "p": password }),
        Some(token),
        &[],
    )
    .await
}

async fn revoke_others(app: &TestApp, token: &str) -> Reply {
    app.graphql("mutation { revokeOtherSessions }", json!({}), Some(token))
        .await
}

/// Kinds and details of the user's events, newest first, read page by
/// page through the API.
async fn history(app: &TestApp, token: &str) -> Vec<(String, Option<String>)> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = send(
            app,
            "query($after: String) { me { securityEvents(first: 2, after: $after) {
                edges { cursor node { kind revokedBy timeout rememberMe } }
                pageInfo { hasNextPage endCursor } } } }",
            json!({ "after": after }),
            Some(token),
            PASSIVE,
        )
        .await;
        let connection = &page.data("me")["securityEvents"];
        for edge in connection["edges"].as_array().unwrap() {
            let node = &edge["node"];
            let detail = node["revokedBy"]
                .as_str()
                .or(node["timeout"].as_str())
                .map(str::to_owned);
            events.push((node["kind"].as_str().unwrap().to_owned(), detail));
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return events;
        }
        after = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
}

#[tokio::test]
async fn a_passive_request_is_judged_by_every_rule_and_slides_nothing() {
    let clock = Clock::manual(t0());
    let app = app_at(clock.clone()).await;
    let (_, token, _) = app.signed_in_user().await;

    clock.set(t0() + IDLE - TimeDelta::minutes(1));
    let polled = send(&app, ME, json!({}), Some(&token), PASSIVE).await;
    let session = &polled.data("me")["session"];
    // The true expiry, not extended by the poll.
    assert_eq!(timestamp(&session["expiresAt"]), t0() + IDLE);
    assert_eq!(timestamp(&session["lastActivityAt"]), t0());

    clock.set(t0() + IDLE);
    send(&app, ME, json!({}), Some(&token), PASSIVE)
        .await
        .assert_unauthenticated("IDLE_TIMEOUT");

    // A request that is activity slides; the header's absence or `false` is activity.
    let (_, other, _) = app.signed_in_user().await;
    clock.set(t0() + IDLE + TimeDelta::minutes(10));
    let active = send(
        &app,
        ME,
        json!({}),
        Some(&other),
        &[("gatehouse-passive", "false")],
    )
    .await;
    assert_eq!(
        timestamp(&active.data("me")["session"]["expiresAt"]),
        t0() + IDLE * 2 + TimeDelta::minutes(10)
    );
    let refresh = send(
        &app,
        "mutation { refreshSession { expiresAt } }",
        json!({}),
        Some(&other),
        PASSIVE,
    )
    .await;
    assert_eq!(refresh.code(), "BAD_USER_INPUT");
    let garbled = send(
        &app,
        ME,
        json!({}),
        Some(&other),
        &[("gatehouse-passive", "maybe")],
    )
    .await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbled.code(), "BAD_REQUEST");
}

#[tokio::test]
async fn sensitive_operations_need_a_recently_proven_password() {
    let clock = Clock::manual(t0());
    let app = app_at(clock.clone()).await;
    let (email, token, id) = app.signed_in_user().await;
    let phone = login(&app, &email, false, "phone").await;

    clock.set(t0() + TimeDelta::minutes(10));
    let stale = revoke_others(&app, &token).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.body);
    assert_eq!(stale.code(), "REAUTHENTICATION_REQUIRED");
    let extensions = &stale.body["errors"][0]["extensions"];
    assert_eq!(timestamp(&extensions["authenticatedAt"]), t0());
    assert_eq!(extensions["freshAge"], 600);
    assert_eq!(extensions["retryAfterMutation"], "reauthenticate");
    let other = app
        .revoke_session(&token, phone["session"]["id"].as_str().unwrap())
        .await;
    assert_eq!(other.code(), "REAUTHENTICATION_REQUIRED");
    // Nothing was revoked by the refusals.
    app.me(phone["token"].as_str().unwrap()).await.data("me");

    // A wrong password counts like a failed login; the fifth locks.
    for _ in 0..5 {
        let wrong = reauthenticate(&app, &token, "not the password").await;
        assert_eq!(wrong.code(), "INVALID_CREDENTIALS");
    }
    assert_eq!(
        reauthenticate(&app, &token, PASSWORD).await.code(),
        "RATE_LIMITED"
    );
    clock.set(t0() + TimeDelta::minutes(20));
    let proven = reauthenticate(&app, &token, PASSWORD).await;
    let at = timestamp(&proven.data("reauthenticate")["session"]["authenticatedAt"]);
    assert_eq!(at, t0() + TimeDelta::minutes(20));
    assert_eq!(
        revoke_others(&app, &token)
            .await
            .data("revokeOtherSessions"),
        1
    );

    // Revoking one's own session never needs it.
    clock.set(t0() + TimeDelta::minutes(29));
    app.revoke_session(&token, &id).await.data("revokeSession");
}

#[tokio::test]
async fn deleting_the_account_ends_every_session_at_once() {
    let clock = Clock::manual(t0());
    let app = app_at(clock.clone()).await;
    let (email, token, _) = app.signed_in_user().await;
    let phone = login(&app, &email, true, "phone").await;
    let delete = |token: String, password: &'static str| {
        let app = &app;
        async move {
            send(
                app,
                "mutation($p: String!) { deleteAccount(input: {password: $p}) }",
                json!({ "p": password }),
                Some(&token),
                &[],
            )
            .await
        }
    };
    clock.set(t0() + TimeDelta::minutes(11));
    assert_eq!(
        delete(token.clone(), PASSWORD).await.code(),
        "REAUTHENTICATION_REQUIRED"
    );
    reauthenticate(&app, &token, PASSWORD)
        .await
        .data("reauthenticate");
    assert_eq!(
        delete(token.clone(), "wrong password").await.code(),
        "INVALID_CREDENTIALS"
    );
    app.me(&token).await.data("me");
    assert_eq!(
        delete(token.clone(), PASSWORD).await.data("deleteAccount"),
        true
    );

    for token in [token.as_str(), phone["token"].as_str().unwrap()] {
        app.me(token).await.assert_unauthenticated("INVALID_TOKEN");
    }
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    let deleted = security_event::Entity::find()
        .filter(security_event::Column::Kind.eq("ACCOUNT_DELETED"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    // The address is free again.
    app.register(&email, PASSWORD).await.data("register");
}

#[tokio::test]
async fn a_sign_in_past_the_limit_signs_out_the_least_recently_active() {
    let clock = Clock::manual(t0());
    let database = TestDatabase::create().await;
    let app = spawn_app_with_clock(database, clock.clone(), |s| {
        s.sessions.max_sessions_per_user = 2;
    })
    .await;
    let (email, first, _) = app.signed_in_user().await;
    clock.set(t0() + TimeDelta::minutes(1));
    let second = login(&app, &email, false, "second").await;
    // The first is used later than the second: the second is the least recent.
    clock.set(t0() + TimeDelta::minutes(2));
    app.me(&first).await.data("me");
    clock.set(t0() + TimeDelta::minutes(3));
    let third = login(&app, &email, false, "third").await;

    app.me(second["token"].as_str().unwrap())
        .await
        .assert_unauthenticated("SESSION_LIMIT");
    app.me(&first).await.data("me");
    app.me(third["token"].as_str().unwrap()).await.data("me");
    // Both at the same instant, so in either order.
    let mut latest = history(&app, &first).await[..2].to_vec();
    latest.sort();
    assert_eq!(
        latest,
        [
            (
                "SESSION_REVOKED".to_owned(),
                Some("SESSION_LIMIT".to_owned())
            ),
            ("SIGNED_IN".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn parallel_sign_ins_on_two_nodes_never_exceed_the_limit() {
    let database = TestDatabase::create().await;
    let limit = |s: &mut gatehouse::config::Settings| s.sessions.max_sessions_per_user = 3;
    let a = spawn_app_on(database.clone(), limit).await;
    let b = spawn_app_on(database, limit).await;
    let (email, _, _) = a.signed_in_user().await;
    // Waves of four: an account admits five sign-ins in flight at once.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let logins = (0..4).map(|i| {
            let node = if i % 2 == 0 { &a } else { &b };
            let email = email.clone();
            async move { node.login(&email, PASSWORD).await }
        });
        tokens.extend(
            join_all(logins)
                .await
                .iter()
                .map(|r| r.data("login")["token"].as_str().unwrap().to_owned()),
        );
    }
    let mut live = 0;
    for token in &tokens {
        let me = a.me(token).await;
        if me.status == StatusCode::OK {
            live += 1;
        } else {
            me.assert_unauthenticated("SESSION_LIMIT");
        }
    }
    assert_eq!(live, 3, "live sessions after 12 sign-ins, 4 at a time");
}

#[tokio::test]
async fn remember_me_sessions_keep_their_own_timeouts_for_life() {
    let clock = Clock::manual(t0());
    let database = TestDatabase::create().await;
    let app = spawn_app_with_clock(database.clone(), clock.clone(), |_| {}).await;
    let (email, _, _) = app.signed_in_user().await;
    let remembered = login(&app, &email, true, "laptop").await;
    let session = &remembered["session"];
    assert_eq!(session["rememberMe"], true);
    assert_eq!(
        timestamp(&session["idleExpiresAt"]),
        t0() + TimeDelta::days(7)
    );
    assert_eq!(
        timestamp(&session["absoluteExpiresAt"]),
        t0() + TimeDelta::days(30)
    );
    let token = remembered["token"].as_str().unwrap();

    // Past the standard idle timeout, alive; each request slides 7 days.
    let mut at = t0();
    for _ in 0..3 {
        at += TimeDelta::days(6);
        clock.set(at);
        app.me(token).await.data("me");
    }
    clock.set(at + TimeDelta::days(7));
    app.me(token).await.assert_unauthenticated("IDLE_TIMEOUT");

    // The absolute cap holds however active.
    clock.set(t0());
    let capped = login(&app, &email, true, "desktop").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut at = t0();
    while at + TimeDelta::days(5) < t0() + TimeDelta::days(30) {
        at += TimeDelta::days(5);
        clock.set(at);
        app.me(&capped).await.data("me");
    }
    clock.set(t0() + TimeDelta::days(30));
    app.me(&capped)
        .await
        .assert_unauthenticated("ABSOLUTE_TIMEOUT");

    // Turned off, it opens standard sessions, and remembered ones fall back.
    clock.set(t0());
    let off =
        spawn_app_with_clock(database, clock.clone(), |s| s.sessions.remember_me = false).await;
    let standard = login(&off, &email, true, "tablet").await;
    assert_eq!(standard["session"]["rememberMe"], false);
    assert_eq!(
        timestamp(&standard["session"]["idleExpiresAt"]),
        t0() + IDLE
    );
}

#[tokio::test]
async fn the_device_list_reads_the_user_agent() {
    let app = crate::helpers::spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    login(&app, &email, false, chrome).await;
    let me = app
        .graphql(
            "{ me { sessions { current ipAddress lastActivityAt device { browser os kind } } } }",
            json!({}),
            Some(&token),
        )
        .await;
    let sessions = me.data("me")["sessions"].as_array().unwrap().clone();
    let windows = sessions
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other session");
    assert_eq!(windows["device"]["browser"], "Chrome 120");
    assert_eq!(windows["device"]["kind"], "DESKTOP");
    assert!(
        windows["device"]["os"]
            .as_str()
            .unwrap()
            .starts_with("Windows")
    );
    assert_eq!(windows["ipAddress"], "127.0.0.1");
    let this = sessions.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(this["device"]["kind"], "UNKNOWN");
}

#[tokio::test]
async fn the_history_records_every_change_once_newest_first() {
    let clock = Clock::manual(t0());
    let database = TestDatabase::create().await;
    let a = spawn_app_with_clock(database.clone(), clock.clone(), |_| {}).await;
    let b = spawn_app_with_clock(database, clock.clone(), |_| {}).await;
    let (email, token, _) = a.signed_in_user().await;
    let tick = |minutes| clock.set(t0() + TimeDelta::minutes(minutes));

    tick(1);
    let phone = login(&a, &email, true, "phone").await;
    tick(2);
    reauthenticate(&a, &token, PASSWORD)
        .await
        .data("reauthenticate");
    tick(3);
    a.revoke_session(&token, phone["session"]["id"].as_str().unwrap())
        .await
        .data("revokeSession");
    tick(4);
    let idle = login(&a, &email, false, "idle").await;
    let idle = idle["token"].as_str().unwrap();
    tick(5);
    let leaving = login(&a, &email, false, "leaving").await;
    let leaving = leaving["token"].as_str().unwrap();
    tick(6);
    a.logout(leaving).await.data("logout");
    // A logout that changes nothing records nothing.
    assert_ne!(a.logout(leaving).await.status, StatusCode::OK);

    // Both nodes see the idle session expire at once: one event.
    tick(20);
    a.me(&token).await.data("me");
    tick(4 + 30);
    let seen = join_all([a.me(idle), b.me(idle), a.me(idle), b.me(idle)]).await;
    for reply in &seen {
        reply.assert_unauthenticated("IDLE_TIMEOUT");
    }
    tick(40);
    a.change_password(&token, PASSWORD, "a new passphrase")
        .await
        .data("changePassword");

    let events = history(&b, &token).await;
    let expected: Vec<(&str, Option<&str>)> = vec![
        ("PASSWORD_CHANGED", None),
        ("SESSION_EXPIRED", Some("IDLE")),
        ("SIGNED_OUT", None),
        ("SIGNED_IN", None),
        ("SIGNED_IN", None),
        ("SESSION_REVOKED", Some("OTHER_SESSION")),
        ("REAUTHENTICATED", None),
        ("SIGNED_IN", None),
        ("SIGNED_IN", None),
    ];
    let events: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_deref()))
        .collect();
    assert_eq!(events, expected);

    let bad = send(
        &a,
        "{ me { securityEvents(after: \"not-a-cursor\") { edges { cursor } } } }",
        json!({}),
        Some(&token),
        &[],
    )
    .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_sign_in_never_signs_out_the_session_it_opens() {
    let clock = Clock::manual(t0());
    let database = TestDatabase::create().await;
    let app = spawn_app_with_clock(database, clock.clone(), |s| {
        s.sessions.max_sessions_per_user = 1;
    })
    .await;
    let (email, old, old_id) = app.signed_in_user().await;
    // The old session was active after the new sign-in's instant, as when
    // it makes requests while the sign-in waits for its hash.
    app.backdate_session(&old_id, None, Some(t0() + TimeDelta::minutes(2)))
        .await;
    clock.set(t0() + TimeDelta::minutes(1));
    let new = login(&app, &email, false, "new").await;
    app.me(new["token"].as_str().unwrap()).await.data("me");
    app.me(&old).await.assert_unauthenticated("SESSION_LIMIT");
}

#[tokio::test]
async fn an_expiry_is_recorded_only_for_a_session_that_ended_and_it_stays_ended() {
    use gatehouse::context::SessionRecord;
    use gatehouse::services::expiry;

    let clock = Clock::manual(t0());
    let database = TestDatabase::create().await;
    let on = spawn_app_with_clock(database.clone(), clock.clone(), |_| {}).await;
    let (email, token, id) = on.signed_in_user().await;
    // A node whose read predates the slide that kept the session alive.
    let row = on.session_row(&id).await;
    let mut stale = SessionRecord::from(&row);
    stale.last_activity_at = t0() - TimeDelta::hours(1);
    let policies = on.settings.session_policies();
    clock.set(t0() + TimeDelta::minutes(1));
    expiry::record(&on.db, &policies, row.user_id, &stale, clock.now()).await;
    assert!(!on.session_row(&id).await.end_recorded);
    on.me(&token).await.data("me");
    assert!(
        !history(&on, &token)
            .await
            .iter()
            .any(|(kind, _)| kind == "SESSION_EXPIRED")
    );

    // A remembered session that timed out under remember-me turned off
    // stays ended when it is turned on again.
    let remembered = login(&on, &email, true, "laptop").await;
    let remembered = remembered["token"].as_str().unwrap();
    let off =
        spawn_app_with_clock(database, clock.clone(), |s| s.sessions.remember_me = false).await;
    clock.set(t0() + TimeDelta::minutes(40));
    off.me(remembered)
        .await
        .assert_unauthenticated("IDLE_TIMEOUT");
    on.me(remembered)
        .await
        .assert_unauthenticated("IDLE_TIMEOUT");
}

#[tokio::test]
async fn a_forged_cursor_is_bad_input() {
    use base64::Engine as _;
    let app = crate::helpers::spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    for raw in [
        "-220000000000000000|00000000-0000-0000-0000-000000000000",
        "999999999999999999|00000000-0000-0000-0000-000000000000",
        "1|not-a-uuid",
    ] {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let reply = send(
            &app,
            "query($c: String) { me { securityEvents(after: $c) { edges { cursor } } } }",
            json!({ "c": cursor }),
            Some(&token),
            &[],
        )
        .await;
        assert_eq!(reply.code(), "BAD_USER_INPUT", "{raw}");
    }
}

#[tokio::test]
async fn sessions_of_one_account_revoking_each_other_at_once_never_fail_the_server() {
    let database = TestDatabase::create().await;
    let a = spawn_app_on(database.clone(), |_| {}).await;
    let b = spawn_app_on(database, |_| {}).await;
    for _ in 0..8 {
        let (email, first, _) = a.signed_in_user().await;
        let second = b.login(&email, PASSWORD).await;
        let second = second.data("login")["token"].as_str().unwrap().to_owned();
        let (x, y) = tokio::join!(revoke_others(&a, &first), revoke_others(&b, &second));
        let statuses = [x.status, y.status];
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
            "{} / {}",
            x.body,
            y.body
        );
        assert!(statuses.contains(&StatusCode::OK));
    }
}
