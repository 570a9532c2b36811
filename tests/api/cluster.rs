//! Several stateless nodes on one database: sessions, timeouts and
//! revocations agree across nodes at once, and the slide never loses a race
//! with revocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio::time::Instant;

use crate::helpers::{PASSWORD, TestDatabase, spawn_app_on};

/// Nodes started together migrate one at a time under PostgreSQL's advisory
/// lock, and all come up. (SQLite is one node's file, so this is PostgreSQL's.)
#[tokio::test]
async fn nodes_starting_together_all_migrate_and_serve() {
    let database = TestDatabase::create().await;
    if !database.postgres_or_skip("nodes_starting_together_all_migrate_and_serve") {
        return;
    }
    let nodes =
        futures_util::future::join_all((0..4).map(|_| spawn_app_on(database.clone(), |_| {})))
            .await;
    let (_, token, _) = nodes[0].signed_in_user().await;
    for node in &nodes {
        node.me(&token).await.data("me");
    }
}

#[tokio::test]
async fn two_nodes_agree_on_logins_timeouts_and_revocations() {
    let database = TestDatabase::create().await;
    let a = spawn_app_on(database.clone(), |_| {}).await;
    let b = spawn_app_on(database, |_| {}).await;

    // Log in on A, use it on B.
    let (email, token, session_id) = a.signed_in_user().await;
    let on_b = b.me(&token).await;
    assert_eq!(on_b.data("me")["session"]["id"], session_id.as_str());

    // Revoke on B, refused on A at the very next request.
    let second = a.login(&email, PASSWORD).await;
    let second = second.data("login");
    let second_token = second["token"].as_str().unwrap();
    b.revoke_session(&token, second["session"]["id"].as_str().unwrap())
        .await
        .data("revokeSession");
    a.me(second_token).await.assert_unauthenticated("REVOKED");
    b.me(second_token).await.assert_unauthenticated("REVOKED");

    // Idle, by back-dating: refused on both with the right reason.
    let idle = a.login(&email, PASSWORD).await;
    let idle = idle.data("login");
    a.backdate_session(
        idle["session"]["id"].as_str().unwrap(),
        None,
        Some(Utc::now() - TimeDelta::hours(1)),
    )
    .await;
    for node in [&a, &b] {
        node.me(idle["token"].as_str().unwrap())
            .await
            .assert_unauthenticated("IDLE_TIMEOUT");
    }

    // Past the absolute cap: refused on both.
    a.backdate_session(
        &session_id,
        Some(Utc::now() - TimeDelta::days(1)),
        Some(Utc::now()),
    )
    .await;
    for node in [&a, &b] {
        node.me(&token)
            .await
            .assert_unauthenticated("ABSOLUTE_TIMEOUT");
    }
}

#[tokio::test]
async fn logout_on_one_node_is_seen_by_the_other_at_once() {
    let database = TestDatabase::create().await;
    let a = spawn_app_on(database.clone(), |_| {}).await;
    let b = spawn_app_on(database, |_| {}).await;
    let (_, token, _) = a.signed_in_user().await;
    b.me(&token).await.data("me");
    a.logout(&token).await.data("logout");
    b.me(&token).await.assert_unauthenticated("REVOKED");
}

/// Many concurrent `me` calls on two nodes, interleaved with one
/// `revokeSession`: once revocation has returned, no call sent after it
/// succeeds. A fine slide granularity makes the guard slide (write) often, so
/// the slide's conditional UPDATE is what is raced.
#[tokio::test]
async fn no_call_succeeds_after_revocation_returns() {
    let database = TestDatabase::create().await;
    let configure = |s: &mut gatehouse::config::Settings| {
        // Not a short idle timeout: on a loaded CI machine a commit can
        // stall for a second, and the session then rightly timed out
        // before the revocation could end it.
        s.idle_timeout = Duration::from_secs(10);
        s.slide_granularity = gatehouse::config::Granularity(Some(Duration::from_millis(100)));
        s.absolute_timeout = Duration::from_secs(3600);
    };
    let a = Arc::new(spawn_app_on(database.clone(), configure).await);
    let b = Arc::new(spawn_app_on(database, configure).await);
    let (_, token, session_id) = a.signed_in_user().await;
    let token = Arc::new(token);

    // The calls go on until 500 ms after the revocation returns, however
    // long it takes on a loaded machine.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..16 {
        let node = if worker % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        let token = token.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let reply = node.me(&token).await;
                calls.push((sent, reply.status.is_success(), reply.body.to_string()));
            }
            calls
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    b.revoke_session(&token, &session_id)
        .await
        .data("revokeSession");
    let revoked = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut before_ok = 0;
    let mut after = 0;
    for worker in workers {
        for (sent, ok, body) in worker.await.unwrap() {
            if sent > revoked {
                after += 1;
                assert!(
                    !ok,
                    "a call sent {:?} after revocation succeeded: {body}",
                    sent - revoked
                );
                assert!(body.contains("REVOKED"), "{body}");
            } else if ok {
                before_ok += 1;
            }
        }
    }
    assert!(
        before_ok > 0 && after > 0,
        "no contention: {before_ok} before, {after} after"
    );
}
