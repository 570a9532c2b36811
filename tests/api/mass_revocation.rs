//! An attacker who piled up thousands of sessions can still be signed out:
//! every path that revokes many sessions works for more than 10,000 of
//! them, through the API and the CLI, on SQLite and on PostgreSQL.

use std::process::Command;

use chrono::Utc;
use entity::{security_event, session};
use gatehouse::domain::client::ClientInfo;
use gatehouse::domain::second_factor::{Method, Methods};
use gatehouse::domain::token::SessionToken;
use gatehouse::repo::sessions::{self, NewSession};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{BIN, PASSWORD, TestApp, TestDatabase, spawn_app_on};
use crate::mailbox::Inbox;

/// More than both databases' bound-parameter limits once multiplied by an
/// event's ten columns (SQLite failed at 3,277, PostgreSQL at 6,554).
const PILED_UP: usize = 10_050;

/// An account with one session through the API and `PILED_UP` more made
/// through the repository, as a thief's sign-ins would have made them.
/// Returns the e-mail, the API session's token and one piled-up token.
async fn piled_up(app: &TestApp) -> (String, String, String) {
    let (email, token, _) = app.signed_in_user().await;
    let user: Uuid = app.me(&token).await.data("me")["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let client = ClientInfo {
        user_agent: Some("thief/1.0".into()),
        ip: Some("203.0.113.9".parse().unwrap()),
    };
    let password = Methods::of(&[Method::Password]);
    let txn = app.db.begin().await.unwrap();
    let mut sample = None;
    for _ in 0..PILED_UP {
        let token = SessionToken::generate().unwrap();
        let hash = token.hash();
        let new = NewSession {
            user_id: user,
            credential_version: 0,
            token_hash: &hash,
            remember_me: false,
            client: &client,
            methods: &password,
        };
        let made = sessions::insert(&txn, new, Utc::now());
        assert!(made.await.unwrap().is_some());
        sample.get_or_insert_with(|| token.expose().to_owned());
    }
    txn.commit().await.unwrap();
    assert_eq!(live(app).await, PILED_UP as u64 + 1);
    (email, token, sample.unwrap())
}

async fn live(app: &TestApp) -> u64 {
    session::Entity::find()
        .filter(session::Column::RevokedAt.is_null())
        .count(&app.db)
        .await
        .unwrap()
}

async fn revocation_events(app: &TestApp, detail: &str) -> u64 {
    security_event::Entity::find()
        .filter(security_event::Column::Kind.eq("SESSION_REVOKED"))
        .filter(security_event::Column::Detail.eq(detail))
        .count(&app.db)
        .await
        .unwrap()
}

/// Every piled-up session ended, each with its event, and the thief's
/// token says why.
async fn assert_all_revoked(app: &TestApp, sample: &str, detail: &str, reason: &str, kept: u64) {
    assert_eq!(live(app).await, kept);
    assert_eq!(revocation_events(app, detail).await, PILED_UP as u64);
    app.me(sample).await.assert_unauthenticated(reason);
}

async fn app() -> TestApp {
    spawn_app_on(TestDatabase::create().await, |_| {}).await
}

#[tokio::test]
async fn revoke_other_sessions_ends_ten_thousand() {
    let app = app().await;
    let (_, token, sample) = piled_up(&app).await;
    let reply = app.revoke_other_sessions(&token).await;
    assert_eq!(reply.data("revokeOtherSessions"), PILED_UP as u64);
    assert_all_revoked(&app, &sample, "OTHER_SESSION", "REVOKED", 1).await;
    app.me(&token).await.data("me");
}

#[tokio::test]
async fn change_password_ends_ten_thousand() {
    let app = app().await;
    let (_, token, sample) = piled_up(&app).await;
    let reply = app
        .change_password(&token, PASSWORD, "a new and longer passphrase")
        .await;
    assert_eq!(
        reply.data("changePassword")["revokedSessions"],
        PILED_UP as u64
    );
    assert_all_revoked(&app, &sample, "PASSWORD_CHANGE", "REVOKED", 1).await;
}

#[tokio::test]
async fn reset_password_ends_ten_thousand() {
    let app = app().await;
    let (email, token, sample) = piled_up(&app).await;
    let asked = app
        .graphql(
            "mutation($e: String!) { requestPasswordReset(input: {email: $e}) }",
            json!({ "e": email }),
            None,
        )
        .await;
    assert_eq!(asked.data("requestPasswordReset"), true);
    // The first message is the verification sent on sign-up.
    let link = app.mail.nth_to(&email, 2).await.token("ghr_");
    let reset = app
        .graphql(
            "mutation($t: String!) { resetPassword(input: {token: $t, newPassword: \"a new and longer passphrase\"}) { revokedSessions } }",
            json!({ "t": link }),
            None,
        )
        .await;
    assert_eq!(
        reset.data("resetPassword")["revokedSessions"],
        PILED_UP as u64 + 1
    );
    assert_eq!(live(&app).await, 0);
    app.me(&sample)
        .await
        .assert_unauthenticated("PASSWORD_RESET");
    app.me(&token)
        .await
        .assert_unauthenticated("PASSWORD_RESET");
}

#[tokio::test]
async fn a_lowered_session_limit_ends_ten_thousand_at_the_next_sign_in() {
    let mut app = app().await;
    let (email, _, sample) = piled_up(&app).await;
    app.restart_with(|s| s.sessions.max_sessions_per_user = 5)
        .await;
    app.login(&email, PASSWORD).await.data("login");
    assert_eq!(live(&app).await, 5);
    let limited = revocation_events(&app, "SESSION_LIMIT").await;
    assert_eq!(limited, PILED_UP as u64 + 2 - 5);
    app.me(&sample)
        .await
        .assert_unauthenticated("SESSION_LIMIT");
}

fn cli(app: &TestApp, args: &[&str]) -> serde_json::Value {
    let mail = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(args)
        .arg("--json")
        .env("GATEHOUSE_DATABASE_URL", &app.database.url)
        .env("GATEHOUSE_MAIL_DIR", mail.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("gatehouse runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_disables_an_account_with_ten_thousand_sessions() {
    let app = app().await;
    let (email, token, sample) = piled_up(&app).await;
    cli(&app, &["user", "disable", &email]);
    assert_eq!(live(&app).await, 0);
    assert_eq!(
        revocation_events(&app, "ACCOUNT_DISABLED").await,
        PILED_UP as u64 + 1
    );
    app.me(&sample)
        .await
        .assert_unauthenticated("ACCOUNT_DISABLED");
    app.me(&token)
        .await
        .assert_unauthenticated("ACCOUNT_DISABLED");
}

#[tokio::test]
async fn the_cli_revokes_ten_thousand_sessions() {
    let app = app().await;
    let (email, token, sample) = piled_up(&app).await;
    cli(&app, &["user", "revoke-sessions", &email]);
    assert_eq!(live(&app).await, 0);
    assert_eq!(
        revocation_events(&app, "OPERATOR").await,
        PILED_UP as u64 + 1
    );
    app.me(&sample).await.assert_unauthenticated("REVOKED");
    app.me(&token).await.assert_unauthenticated("REVOKED");
}
