//! Guessing is limited by attempts, counted before any hash runs: however
//! many guesses are in flight together, on however many nodes, at most the
//! limit's number of passwords is ever checked.

use std::collections::HashMap;

use entity::login_throttle;
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, TestApp, TestDatabase, spawn_app, spawn_app_on};

const WRONG: &str = "not the password";

/// How many replies carried each code (`OK` for a success).
fn tally(replies: &[Reply]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for reply in replies {
        let code = match reply.body.get("errors") {
            Some(_) => reply.code().to_owned(),
            None => "OK".to_owned(),
        };
        *counts.entry(code).or_default() += 1;
    }
    counts
}

async fn parallel_logins(apps: &[&TestApp], emails: &[String], password: &str) -> Vec<Reply> {
    join_all(
        emails
            .iter()
            .enumerate()
            .map(|(i, email)| apps[i % apps.len()].login(email, password)),
    )
    .await
}

#[tokio::test]
async fn parallel_wrong_passwords_are_checked_at_most_the_limit() {
    let app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    let replies = parallel_logins(&[&app], &vec![email.clone(); 60], WRONG).await;
    let counts = tally(&replies);
    assert_eq!(counts.get("INVALID_CREDENTIALS"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("RATE_LIMITED"), Some(&55), "{counts:?}");
    // The right password is refused too while the lock stands.
    assert_eq!(app.login(&email, PASSWORD).await.code(), "RATE_LIMITED");
}

#[tokio::test]
async fn parallel_guesses_on_two_nodes_share_one_limit() {
    let database = TestDatabase::create().await;
    let a = spawn_app_on(database.clone(), |_| {}).await;
    let b = spawn_app_on(database, |_| {}).await;
    let (email, _, _) = a.signed_in_user().await;
    let replies = parallel_logins(&[&a, &b], &vec![email; 60], WRONG).await;
    let counts = tally(&replies);
    assert_eq!(counts.get("INVALID_CREDENTIALS"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("RATE_LIMITED"), Some(&55), "{counts:?}");
}

#[tokio::test]
async fn parallel_guesses_across_accounts_are_limited_per_address() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.login_max_failures_per_ip = 20;
    })
    .await;
    let emails: Vec<String> = (0..60).map(|i| format!("spray{i}@example.com")).collect();
    let counts = tally(&parallel_logins(&[&app], &emails, WRONG).await);
    assert_eq!(counts.get("INVALID_CREDENTIALS"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("RATE_LIMITED"), Some(&40), "{counts:?}");
}

#[tokio::test]
async fn successes_give_back_their_attempt_to_the_address() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.login_max_failures_per_ip = 3;
    })
    .await;
    let (email, _, _) = app.signed_in_user().await;
    for _ in 0..10 {
        app.login(&email, PASSWORD).await.data("login");
    }
    for i in 0..2 {
        let reply = app.login(&format!("guess{i}@example.com"), WRONG).await;
        assert_eq!(reply.code(), "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn password_operations_cannot_be_batched_into_one_request() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let login = format!(r#"login(input: {{email: "{email}", password: "{WRONG}"}}) {{ token }}"#);
    let change = format!(
        r#"changePassword(input: {{currentPassword: "{WRONG}", newPassword: "{WRONG}"}}) {{ revokedSessions }}"#
    );
    for (query, token) in [
        (format!("mutation {{ a: {login} b: {login} }}"), None),
        (
            format!("mutation {{ ... on Mutation {{ a: {login} }} b: {login} }}"),
            None,
        ),
        (
            format!("mutation {{ ...L ...L }} fragment L on Mutation {{ {login} }}"),
            None,
        ),
        (
            format!("mutation {{ a: {change} b: {change} }}"),
            Some(token.as_str()),
        ),
    ] {
        let reply = app.graphql(&query, json!({}), token).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.code(), "TOO_MANY_PASSWORD_CHECKS", "{}", reply.body);
    }
    // Refused before anything was counted or hashed.
    let counters = login_throttle::Entity::find()
        .filter(login_throttle::Column::Key.not_like("register:%"))
        // The sign-up's verification e-mail counts against its address.
        .filter(login_throttle::Column::Key.not_like("mail:%"))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(counters, 0);
}

#[tokio::test]
async fn change_password_is_throttled_like_login_on_its_session() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let guesses =
        join_all((0..20).map(|_| app.change_password(&token, WRONG, "a new passphrase"))).await;
    let counts = tally(&guesses);
    assert_eq!(counts.get("INVALID_CREDENTIALS"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("RATE_LIMITED"), Some(&15), "{counts:?}");
    // The session's count: its right current password is locked too, but
    // another session of the account, and sign-in, are not.
    let reply = app
        .change_password(&token, PASSWORD, "a new passphrase")
        .await;
    assert_eq!(reply.code(), "RATE_LIMITED");
    let other = app.login(&email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.change_password(&other, PASSWORD, "a new passphrase")
        .await
        .data("changePassword");
}

/// Strangers who lock the account for sign-ins do not block its owner's
/// step-up or password change on a session they already have.
#[tokio::test]
async fn strangers_guesses_do_not_block_a_sessions_password_checks() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    for _ in 0..6 {
        app.login(&email, WRONG).await;
    }
    assert_eq!(app.login(&email, PASSWORD).await.code(), "RATE_LIMITED");
    app.change_password(&token, PASSWORD, "a new passphrase")
        .await
        .data("changePassword");
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.register_max_per_ip = 3;
    })
    .await;
    app.register("one@example.com", PASSWORD)
        .await
        .data("register");
    // Asking whether an address is taken counts too.
    let taken = app.register("one@example.com", PASSWORD).await;
    assert_eq!(taken.code(), "EMAIL_TAKEN");
    app.register("two@example.com", PASSWORD)
        .await
        .data("register");
    let refused = app.register("three@example.com", PASSWORD).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.code(), "RATE_LIMITED");
    assert!(refused.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn logins_with_the_old_password_open_nothing_after_a_change() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        // Many right passwords for one account at once: not a guess.
        s.login_limits.login_max_failures = 1000;
        s.login_limits.login_max_failures_per_ip = 1000;
    })
    .await;
    let (email, token, _) = app.signed_in_user().await;
    let change = app.change_password(&token, PASSWORD, "a new passphrase");
    // Logins with the old password before, during and after the change,
    // many of them waiting for a hashing thread.
    let logins = join_all((0..24).map(|i| {
        let (app, email) = (&app, &email);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * i)).await;
            app.login(email, PASSWORD).await
        }
    }));
    let (changed, logins) = tokio::join!(change, logins);
    changed.data("changePassword");
    let mut opened = 0;
    for login in &logins {
        let Some(token) = login.body["data"]["login"]["token"].as_str() else {
            assert_eq!(login.code(), "INVALID_CREDENTIALS", "{}", login.body);
            continue;
        };
        opened += 1;
        let me = app.me(token).await;
        assert_eq!(
            me.status, 401,
            "a login with the old password survived: {}",
            me.body
        );
    }
    eprintln!(
        "{opened} of {} old-password logins got a token, all dead",
        logins.len()
    );
    app.login(&email, "a new passphrase").await.data("login");
}
