//! Brute-force limits on failed sign-ins, per account and per address,
//! held in the database across nodes and restarts.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, Reply, TestDatabase, spawn_app, spawn_app_on};

const WRONG: &str = "not the password";

fn assert_rate_limited(reply: &Reply) -> u64 {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    assert_eq!(reply.code(), "RATE_LIMITED");
    let retry_after = reply.body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .expect("retryAfter in seconds");
    assert_eq!(
        reply.headers["retry-after"].to_str().unwrap(),
        retry_after.to_string()
    );
    retry_after
}

#[tokio::test]
async fn an_account_locks_after_five_failures_even_for_the_right_password() {
    let app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    for _ in 0..5 {
        assert_eq!(app.login(&email, WRONG).await.code(), "INVALID_CREDENTIALS");
    }
    let retry_after = assert_rate_limited(&app.login(&email, WRONG).await);
    assert!((25..=30).contains(&retry_after), "{retry_after}");
    assert_rate_limited(&app.login(&email, PASSWORD).await);
    // Another account from the same address is unaffected.
    let (other, _, _) = app.signed_in_user().await;
    app.login(&other, PASSWORD).await.data("login");
}

#[tokio::test]
async fn an_unknown_account_locks_the_same_way() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(
            app.login("nobody@example.com", WRONG).await.code(),
            "INVALID_CREDENTIALS"
        );
    }
    assert_rate_limited(&app.login("NOBODY@example.com", WRONG).await);
}

#[tokio::test]
async fn a_success_resets_the_account_counter_and_never_counts() {
    let app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    for _ in 0..3 {
        for _ in 0..4 {
            assert_eq!(app.login(&email, WRONG).await.code(), "INVALID_CREDENTIALS");
        }
        app.login(&email, PASSWORD).await.data("login");
    }
    for _ in 0..10 {
        app.login(&email, PASSWORD).await.data("login");
    }
}

#[tokio::test]
async fn an_address_locks_across_accounts() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.login_max_failures_per_ip = 3;
    })
    .await;
    for i in 0..3 {
        let reply = app.login(&format!("guess{i}@example.com"), WRONG).await;
        assert_eq!(reply.code(), "INVALID_CREDENTIALS");
    }
    assert_rate_limited(&app.login("guess-next@example.com", WRONG).await);
}

#[tokio::test]
async fn the_lock_grows_with_each_further_failure() {
    let database = TestDatabase::create().await;
    let app = spawn_app_on(database, |s| {
        s.login_limits.login_max_failures = 1;
        s.login_limits.login_lockout = std::time::Duration::from_secs(1);
    })
    .await;
    let (email, _, _) = app.signed_in_user().await;
    app.login(&email, WRONG).await; // 1st failure: locked for 1 s
    let first = assert_rate_limited(&app.login(&email, WRONG).await);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.login(&email, WRONG).await; // 2nd failure: locked for 2 s
    let second = assert_rate_limited(&app.login(&email, WRONG).await);
    assert!(second > first, "{first} then {second}");
}

#[tokio::test]
async fn counters_hold_across_nodes_and_restarts() {
    let database = TestDatabase::create().await;
    let mut a = spawn_app_on(database.clone(), |_| {}).await;
    let b = spawn_app_on(database, |_| {}).await;
    let (email, _, _) = a.signed_in_user().await;
    for node in [&a, &b, &a, &b, &a] {
        assert_eq!(
            node.login(&email, WRONG).await.code(),
            "INVALID_CREDENTIALS"
        );
    }
    assert_rate_limited(&b.login(&email, PASSWORD).await);
    a.restart().await;
    assert_rate_limited(&a.login(&email, PASSWORD).await);
}

/// A thief with the password cannot pile up sessions: successful sign-ins
/// are limited per account per hour, on every node together, and the
/// refusal is the ordinary `RATE_LIMITED`.
#[tokio::test]
async fn successful_sign_ins_are_limited_per_account_across_nodes() {
    let database = TestDatabase::create().await;
    let limit = |s: &mut gatehouse::config::Settings| s.login_limits.signin_max_per_account = 4;
    let a = spawn_app_on(database.clone(), limit).await;
    let b = spawn_app_on(database, limit).await;
    // Sign-up opens a session without signing in.
    let (email, _, _) = a.signed_in_user().await;
    for node in [&a, &b, &a, &b] {
        node.login(&email, PASSWORD).await.data("login");
    }
    let retry_after = assert_rate_limited(&b.login(&email, PASSWORD).await);
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
    assert_rate_limited(&a.login(&email, PASSWORD).await);
    // A wrong password is still just wrong, and another account is unaffected.
    assert_eq!(a.login(&email, WRONG).await.code(), "INVALID_CREDENTIALS");
    let (other, _, _) = a.signed_in_user().await;
    a.login(&other, PASSWORD).await.data("login");
}

/// Whoever spent the account's sign-ins with a known password cannot keep
/// its owner out after a reset with the new one.
#[tokio::test]
async fn a_reset_gives_the_owner_back_the_sign_ins_a_thief_spent() {
    use crate::mailbox::Inbox;
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.login_limits.signin_max_per_account = 2;
    })
    .await;
    let (email, _, _) = app.signed_in_user().await;
    for _ in 0..2 {
        app.login(&email, PASSWORD).await.data("login");
    }
    assert_rate_limited(&app.login(&email, PASSWORD).await);
    let asked = app
        .graphql(
            "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
            serde_json::json!({ "e": email }),
            None,
        )
        .await;
    asked.data("requestPasswordReset");
    let link = app.mail.nth_to(&email, 2).await.token("ghr_");
    let new = "a brand new passphrase";
    app.graphql(
        "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { email } }",
        serde_json::json!({ "t": link, "p": new }),
        None,
    )
    .await
    .data("resetPassword");
    app.login(&email, new).await.data("login");
}
