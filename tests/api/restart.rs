//! Nothing that matters lives in memory: the same path works after a restart.

use chrono::{TimeDelta, Utc};

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn sessions_and_revocations_survive_a_restart() {
    let mut app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let revoked = app.login(&email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let idle = app.login(&email, PASSWORD).await;
    let idle = idle.data("login");
    app.logout(&revoked).await.data("logout");
    let old_addr = app.addr;

    app.restart().await;
    assert_ne!(app.addr, old_addr, "a new server is answering");

    app.me(&token).await.data("me");
    app.me(&revoked).await.assert_unauthenticated("REVOKED");
    app.backdate_session(
        idle["session"]["id"].as_str().unwrap(),
        None,
        Some(Utc::now() - TimeDelta::hours(1)),
    )
    .await;
    app.me(idle["token"].as_str().unwrap())
        .await
        .assert_unauthenticated("IDLE_TIMEOUT");
    app.login(&email, PASSWORD).await.data("login");
}
