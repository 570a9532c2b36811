//! The guard's lookup. A guarded request costs one database round trip
//! when no activity write is due: counted, not timed, by the node's
//! statement counter on both databases, and on PostgreSQL by a proxy that
//! reads the wire, where a connection-pool ping would show as a round trip
//! with no statement. And requests in flight together each get their own
//! answer.

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{PASSWORD, Server, TestDatabase, serve_with, spawn_app};
use crate::operating::{scrape, value};
use crate::wire_counter::{Exchange, WireCounter};

const ME: &str = "{ me { user { id email } session { expiresAt } } }";
const REQUESTS: usize = 20;

async fn signed_in(server: &Server) -> String {
    let (_, body) = server
        .post(
            json!({
                "query": "mutation($i: RegisterInput!) { register(input: $i) { token } }",
                "variables": { "i": { "email": "trips@example.com", "password": PASSWORD } },
            }),
            None,
        )
        .await;
    body["data"]["register"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("register failed: {body}"))
        .to_owned()
}

async fn me(server: &Server, token: &str) {
    let (status, body) = server.post(json!({ "query": ME }), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"]["user"]["email"], "trips@example.com");
}

/// Statements that requests made, from `/metrics`.
async fn request_statements(server: &Server) -> f64 {
    let scrape = scrape(&format!("http://{}/metrics", server.addr)).await;
    value(
        &scrape,
        "gatehouse_db_query_duration_seconds",
        &[("caller", "request")],
    )
}

#[tokio::test]
async fn a_guarded_request_runs_one_statement() {
    let database = TestDatabase::create().await;
    let server = serve_with(&database.url, "info", &[]);
    let token = signed_in(&server).await;
    me(&server, &token).await;

    let before = request_statements(&server).await;
    for _ in 0..REQUESTS {
        me(&server, &token).await;
    }
    let after = request_statements(&server).await;
    assert_eq!(
        after - before,
        REQUESTS as f64,
        "statements for {REQUESTS} me"
    );

    // The counter sees writes too: refreshSession is the lookup and its UPDATE.
    let (_, body) = server
        .post(
            json!({ "query": "mutation { refreshSession { expiresAt } }" }),
            Some(&token),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let refreshed = request_statements(&server).await;
    assert_eq!(refreshed - after, 2.0, "statements for refreshSession");
    assert!(server.terminate().0);
}

// Multi-threaded: the proxy's tasks must run while `serve_with` blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_guarded_request_is_one_round_trip_with_no_ping() {
    let database = TestDatabase::create().await;
    if !database.postgres_or_skip("on_postgres_a_guarded_request_is_one_round_trip_with_no_ping") {
        return;
    }
    let wire = WireCounter::start(&database.url).await;
    let server = serve_with(&wire.url, "info", &[]);
    let token = signed_in(&server).await;
    // The first lookup on each guard connection connects and prepares.
    for _ in 0..8 {
        me(&server, &token).await;
    }

    let seen = wire.exchanges().len();
    for _ in 0..REQUESTS {
        me(&server, &token).await;
    }
    let window: Vec<_> = wire.exchanges().split_off(seen);
    let is_lookup = |e: &Exchange| {
        e.statements.len() == 1 && e.statements[0].contains("\"token_hash\" = ANY($1)")
    };
    let guard: HashSet<usize> = window
        .iter()
        .filter(|e| is_lookup(e))
        .map(|e| e.connection)
        .collect();
    let lookups = window.iter().filter(|e| is_lookup(e)).count();
    assert_eq!(lookups, REQUESTS, "one lookup per request: {window:#?}");
    // Nothing else on the guard's connections: no ping before or after.
    let extra: Vec<_> = window
        .iter()
        .filter(|e| guard.contains(&e.connection) && !is_lookup(e))
        .collect();
    assert!(extra.is_empty(), "more than the lookup: {extra:#?}");
    // Elsewhere only the node's own work (the courier's poll, the
    // live-session gauge, and the pool's pings after them) may fall in
    // the window.
    let other: Vec<_> = window
        .iter()
        .filter(|e| !guard.contains(&e.connection) && !e.is_ping())
        .filter(|e| {
            !e.statements
                .iter()
                .all(|s| s.contains("\"outbox\"") || s.to_lowercase().contains("count("))
        })
        .collect();
    assert!(other.is_empty(), "other round trips: {other:#?}");
    assert!(server.terminate().0);
}

/// Lookups that share a statement (PostgreSQL) or arrive together (SQLite)
/// each get their own session, and a logout is seen by every request sent
/// after it was answered, while the other users carry on.
#[tokio::test]
async fn concurrent_requests_each_get_their_own_session() {
    let app = spawn_app().await;
    let mut users = Vec::new();
    for _ in 0..6 {
        users.push(app.signed_in_user().await);
    }
    let (app, users) = (&app, &users);
    let round = |requests: usize| {
        join_all((0..requests).map(move |i| async move {
            let user = i % users.len();
            (user, app.me(&users[user].1).await)
        }))
    };
    for (user, reply) in round(120).await {
        assert_eq!(reply.data("me")["user"]["email"], users[user].0.as_str());
    }

    app.logout(&users[0].1).await.data("logout");
    for (user, reply) in round(120).await {
        if user == 0 {
            reply.assert_unauthenticated("REVOKED");
        } else {
            assert_eq!(reply.data("me")["user"]["email"], users[user].0.as_str());
        }
    }
}

/// An SPA's parallel requests on one session when its slide falls due:
/// one of them writes it, and the others use what they read, instead of
/// every one queueing an `UPDATE` on the row (issue 27).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_of_one_session_write_its_slide_once() {
    const PARALLEL: usize = 32;
    let database = TestDatabase::create().await;
    // A 1 s slide granularity (a tenth of the idle timeout).
    let server = serve_with(&database.url, "info", &[("GATEHOUSE_IDLE_TIMEOUT", "10s")]);
    let token = signed_in(&server).await;
    me(&server, &token).await;
    let mut updates = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let before = request_statements(&server).await;
        join_all((0..PARALLEL).map(|_| me(&server, &token))).await;
        let after = request_statements(&server).await;
        updates.push(after - before - PARALLEL as f64);
    }
    // One write (and, if a slide from another node got there first, one
    // read of the row); without coalescing, PostgreSQL saw dozens.
    assert!(
        updates.iter().all(|&u| (1.0..=2.0).contains(&u)),
        "activity writes per {PARALLEL} parallel requests: {updates:?}"
    );
    assert!(server.terminate().0);
}
