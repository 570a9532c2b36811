//! Password hashing: parameters that change take effect on the next
//! sign-in, and hashing work is bounded.

use std::sync::Arc;

use entity::user;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{PASSWORD, TestApp, TestDatabase, spawn_app, spawn_app_on};

async fn stored_hash(app: &TestApp, email: &str) -> String {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.db)
        .await
        .unwrap()
        .expect("user exists")
        .password_hash
}

#[tokio::test]
async fn a_sign_in_rehashes_with_changed_parameters() {
    let mut app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    assert!(stored_hash(&app, &email).await.contains("m=19456,t=2,p=1"));

    app.restart_with(|s| s.hashing.argon2_memory_kib = 8192)
        .await;
    // A failed attempt changes nothing.
    app.login(&email, "not the password").await;
    assert!(stored_hash(&app, &email).await.contains("m=19456,t=2,p=1"));

    app.login(&email, PASSWORD).await.data("login");
    let rehashed = stored_hash(&app, &email).await;
    assert!(
        rehashed.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"),
        "{rehashed}"
    );
    app.login(&email, PASSWORD).await.data("login");
    assert_eq!(
        stored_hash(&app, &email).await,
        rehashed,
        "rehashed once only"
    );
}

#[tokio::test]
async fn hashing_past_the_queue_is_refused_at_once_with_503() {
    let database = TestDatabase::create().await;
    let app = Arc::new(
        spawn_app_on(database, |s| {
            s.hashing.hash_queue = 0;
            s.login_limits.login_max_failures = 1000;
            s.login_limits.login_max_failures_per_ip = 1000;
        })
        .await,
    );
    let (email, _, _) = app.signed_in_user().await;
    let logins = (0..24).map(|i| {
        let app = app.clone();
        let email = email.clone();
        tokio::spawn(async move {
            let password = if i % 2 == 0 {
                PASSWORD
            } else {
                "wrong password"
            };
            app.login(&email, password).await
        })
    });
    let mut refused = 0;
    let mut answered = 0;
    for login in futures_util::future::join_all(logins).await {
        let reply = login.unwrap();
        match reply.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.code(), "SERVICE_UNAVAILABLE");
                refused += 1;
            }
            StatusCode::OK => answered += 1,
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(refused > 0, "nothing was refused");
    assert!(answered > 0, "nothing was served");
    // Once the burst is over, sign-in works again.
    app.login(&email, PASSWORD).await.data("login");
}
