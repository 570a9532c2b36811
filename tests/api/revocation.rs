//! Revocation in all its forms, and the "where you're signed in" list.

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn someone_elses_session_is_not_found_like_a_missing_one() {
    let app = spawn_app().await;
    let (_, alice, _) = app.signed_in_user().await;
    let (_, bob, bob_session) = app.signed_in_user().await;

    let theirs = app.revoke_session(&alice, &bob_session).await;
    let missing = app
        .revoke_session(&alice, &Uuid::new_v4().to_string())
        .await;
    for reply in [&theirs, &missing] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.code(), "NOT_FOUND");
    }
    assert_eq!(theirs.message(), missing.message());
    app.me(&bob).await.data("me");
}

#[tokio::test]
async fn malformed_session_id_is_bad_user_input() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    let reply = app.revoke_session(&token, "not-a-uuid").await;
    assert_eq!(reply.code(), "BAD_USER_INPUT");
}

#[tokio::test]
async fn revoking_another_own_session_ends_only_that_one() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let other = app.login(&email, PASSWORD).await;
    let other = other.data("login");
    let reply = app
        .revoke_session(&token, other["session"]["id"].as_str().unwrap())
        .await;
    let revoked = &reply.data("revokeSession")["session"];
    assert_eq!(revoked["current"], false);
    assert!(revoked["revokedAt"].is_string());
    app.me(other["token"].as_str().unwrap())
        .await
        .assert_unauthenticated("REVOKED");
    app.me(&token).await.data("me");
}

#[tokio::test]
async fn logout_revokes_the_current_session() {
    let app = spawn_app().await;
    let (_, token, _) = app.signed_in_user().await;
    assert_eq!(app.logout(&token).await.data("logout"), true);
    app.me(&token).await.assert_unauthenticated("REVOKED");
    app.logout(&token).await.assert_unauthenticated("REVOKED");
}

#[tokio::test]
async fn revoke_other_sessions_counts_only_live_ones() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let mut others = Vec::new();
    for _ in 0..3 {
        let reply = app.login(&email, PASSWORD).await;
        let login = reply.data("login");
        others.push((
            login["token"].as_str().unwrap().to_owned(),
            login["session"]["id"].as_str().unwrap().to_owned(),
        ));
    }
    // One of them has already idled out: it is not counted as signed out now.
    app.backdate_session(&others[0].1, None, Some(Utc::now() - TimeDelta::hours(1)))
        .await;

    assert_eq!(
        app.revoke_other_sessions(&token)
            .await
            .data("revokeOtherSessions"),
        2
    );
    for (other, _) in &others[1..] {
        app.me(other).await.assert_unauthenticated("REVOKED");
    }
    app.me(&others[0].0)
        .await
        .assert_unauthenticated("IDLE_TIMEOUT");
    let me = app.me(&token).await;
    assert_eq!(me.data("me")["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sessions_lists_live_sessions_only() {
    let app = spawn_app().await;
    let (email, token, current_id) = app.signed_in_user().await;
    let live = app.login(&email, PASSWORD).await.data("login")["session"]["id"].clone();
    let revoked = app.login(&email, PASSWORD).await.data("login")["session"]["id"].clone();
    let expired = app.login(&email, PASSWORD).await.data("login")["session"]["id"].clone();
    app.revoke_session(&token, revoked.as_str().unwrap())
        .await
        .data("revokeSession");
    app.backdate_session(
        expired.as_str().unwrap(),
        Some(Utc::now() - TimeDelta::days(1)),
        None,
    )
    .await;
    let (_, stranger, _) = app.signed_in_user().await;

    let me = app.me(&token).await;
    let sessions = me.data("me")["sessions"].as_array().unwrap();
    let ids: Vec<_> = sessions.iter().map(|s| s["id"].clone()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&live));
    assert!(ids.contains(&serde_json::Value::from(current_id.as_str())));
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], current_id.as_str());
    assert_eq!(
        app.me(&stranger).await.data("me")["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn operations_on_a_session_need_a_token() {
    let app = spawn_app().await;
    for query in [
        "{ me { user { id } } }",
        "mutation { refreshSession { expiresAt } }",
        "mutation { logout }",
        "mutation { revokeOtherSessions }",
    ] {
        let reply = app.graphql(query, serde_json::json!({}), None).await;
        reply.assert_unauthenticated("MISSING_TOKEN");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
}
