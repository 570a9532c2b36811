//! Account recovery and e-mail, through the messages a user receives: the
//! reset and verification flows, a change of address, the outbox's
//! delivery guarantees, and no account enumeration.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use entity::{email_token, outbox};
use gatehouse::clock::Clock;
use gatehouse::domain::token::Purpose;
use sea_orm::{EntityTrait, PaginatorTrait, TransactionTrait};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{PASSWORD, TestApp, TestDatabase, spawn_app_on, spawn_app_with_clock};
use crate::mailbox::{Inbox, Mail, SmtpServer};

const NEW_PASSWORD: &str = "a brand new passphrase";

const REQUEST_RESET: &str =
    "mutation($email: String!) { requestPasswordReset(input: {email: $email}) }";
const RESET: &str = "mutation($token: String!, $password: String!) {
    resetPassword(input: {token: $token, newPassword: $password}) { email revokedSessions } }";
const VERIFY: &str = "mutation($token: String!) { verifyEmail(input: {token: $token}) { email } }";
const RESEND: &str = "mutation { resendVerificationEmail }";
const CHANGE_EMAIL: &str = "mutation($password: String!, $email: String!) {
    changeEmail(input: {password: $password, newEmail: $email}) }";
const ME: &str = "{ me { user { email emailVerified } } }";

impl TestApp {
    async fn request_reset(&self, email: &str) -> crate::helpers::Reply {
        self.graphql(REQUEST_RESET, json!({ "email": email }), None)
            .await
    }

    async fn reset_password(&self, token: &str, password: &str) -> crate::helpers::Reply {
        self.graphql(RESET, json!({ "token": token, "password": password }), None)
            .await
    }

    async fn verify_email(&self, token: &str) -> crate::helpers::Reply {
        self.graphql(VERIFY, json!({ "token": token }), None).await
    }

    async fn user_of(&self, token: &str) -> Value {
        self.graphql(ME, json!({}), Some(token)).await.data("me")["user"].clone()
    }

    async fn outbox_len(&self) -> u64 {
        outbox::Entity::find().count(&self.db).await.unwrap()
    }

    /// The courier deletes a row once the server has taken its message, so
    /// a test that has just received the mail waits for the delete.
    async fn outbox_drains(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.outbox_len().await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the outbox still holds a delivered message"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn smtp_python(test: &str) -> Option<std::path::PathBuf> {
    SmtpServer::python(test)
}

#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_email_and_every_session_ends() {
    let Some(python) = smtp_python("a_forgotten_password_is_reset_through_the_email") else {
        return;
    };
    let smtp = SmtpServer::start(&python, SmtpServer::free_port()).await;
    let url = smtp.url();
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.mail.smtp_url = Some(url.parse().unwrap());
        s.mail.reset_url = "https://app.example.com/reset?token={token}".into();
    })
    .await;
    let (email, first, _) = app.signed_in_user().await;
    let second = app.login(&email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        app.request_reset(&email).await.data("requestPasswordReset"),
        true
    );
    // The first message is the verification sent on sign-up.
    let mail: Mail = smtp.nth_to(&email, 2).await;
    assert_eq!(mail.subject, "Reset your Gatehouse password");
    let token = mail.token("ghr_");
    assert!(
        mail.text
            .contains(&format!("https://app.example.com/reset?token={token}"))
    );

    // At rest: only the hash, and the delivered message is gone.
    let stored = email_token::Entity::find().all(&app.db).await.unwrap();
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    assert!(stored.iter().any(|t| t.token_hash == hash));
    assert!(stored.iter().all(|t| !t.token_hash.contains(&token[4..])));
    app.outbox_drains().await;

    let reset = app.reset_password(&token, NEW_PASSWORD).await;
    let reset = reset.data("resetPassword");
    assert_eq!(reset["email"], email.as_str());
    assert_eq!(reset["revokedSessions"], 2);
    for token in [&first, &second] {
        app.me(token).await.assert_unauthenticated("PASSWORD_RESET");
    }
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    let fresh = app.login(&email, NEW_PASSWORD).await;
    let fresh = fresh.data("login")["token"].as_str().unwrap().to_owned();
    // The link reached the address: that proves it.
    assert_eq!(app.user_of(&fresh).await["emailVerified"], true);

    // Single use.
    let again = app.reset_password(&token, "yet another passphrase").await;
    assert_eq!(again.code(), "INVALID_RESET_TOKEN");
    let events = app
        .graphql(
            "{ me { securityEvents(first: 10) { edges { node { kind revokedBy } } } } }",
            json!({}),
            Some(&fresh),
        )
        .await;
    let kinds: Vec<String> = events.data("me")["securityEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"PASSWORD_RESET".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn an_address_is_verified_through_the_email() {
    let Some(python) = smtp_python("an_address_is_verified_through_the_email") else {
        return;
    };
    let smtp = SmtpServer::start(&python, SmtpServer::free_port()).await;
    let url = smtp.url();
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.mail.smtp_url = Some(url.parse().unwrap());
        s.mail.product_name = "Acme ID".into();
    })
    .await;
    let (email, token, _) = app.signed_in_user().await;
    assert_eq!(app.user_of(&token).await["emailVerified"], false);

    let mail = smtp.nth_to(&email, 1).await;
    assert_eq!(mail.subject, "Verify your Acme ID e-mail address");
    let link = mail.token("ghv_");
    assert_eq!(
        app.verify_email(&link).await.data("verifyEmail")["email"],
        email.as_str()
    );
    assert_eq!(app.user_of(&token).await["emailVerified"], true);

    assert_eq!(
        app.verify_email(&link).await.code(),
        "INVALID_VERIFICATION_TOKEN"
    );
    // A verification token is not a reset token.
    assert_eq!(
        app.reset_password(&link, NEW_PASSWORD).await.code(),
        "INVALID_RESET_TOKEN"
    );
    // Nothing left to verify.
    let resend = app.graphql(RESEND, json!({}), Some(&token)).await;
    assert_eq!(resend.data("resendVerificationEmail"), false);
}

#[tokio::test]
async fn with_verification_required_an_unverified_account_may_only_verify() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.mail.require_verified_email = true;
    })
    .await;
    let (email, token, _) = app.signed_in_user().await;
    assert_eq!(app.user_of(&token).await["emailVerified"], false);
    let sessions = app
        .graphql("{ me { sessions { id } } }", json!({}), Some(&token))
        .await;
    assert_eq!(sessions.code(), "EMAIL_NOT_VERIFIED");
    let change = app
        .graphql(
            "mutation($p: String!) { changePassword(input: {currentPassword: $p, newPassword: $p}) { revokedSessions } }",
            json!({ "p": PASSWORD }),
            Some(&token),
        )
        .await;
    assert_eq!(change.code(), "EMAIL_NOT_VERIFIED");

    // A new link replaces the first.
    let first = app.mail.nth_to(&email, 1).await.token("ghv_");
    let resend = app.graphql(RESEND, json!({}), Some(&token)).await;
    assert_eq!(resend.data("resendVerificationEmail"), true);
    let second = app.mail.nth_to(&email, 2).await.token("ghv_");
    assert_eq!(
        app.verify_email(&first).await.code(),
        "INVALID_VERIFICATION_TOKEN"
    );
    app.verify_email(&second).await.data("verifyEmail");

    // The same session may now do everything.
    let sessions = app
        .graphql("{ me { sessions { id } } }", json!({}), Some(&token))
        .await;
    assert_eq!(sessions.data("me")["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_new_address_takes_effect_only_when_its_link_is_used() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let (old, token, _) = app.signed_in_user().await;
    let new = format!("moved-{}", &old);
    let (taken, _, _) = app.signed_in_user().await;

    let wrong = app
        .graphql(
            CHANGE_EMAIL,
            json!({ "password": "not it at all", "email": new }),
            Some(&token),
        )
        .await;
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS");
    // A reset link sent to the old address stops working once it moves.
    app.request_reset(&old).await.data("requestPasswordReset");
    let reset_link = app.mail.nth_to(&old, 2).await.token("ghr_");

    let change = app
        .graphql(
            CHANGE_EMAIL,
            json!({ "password": PASSWORD, "email": new }),
            Some(&token),
        )
        .await;
    assert_eq!(change.data("changeEmail"), true);
    let link = app.mail.nth_to(&new, 1).await.token("ghv_");
    // The current address hears of it at once, while it can still act.
    let requested = app.mail.nth_to(&old, 3).await;
    assert!(
        requested.subject.contains("change"),
        "{}",
        requested.subject
    );
    assert!(requested.text.contains(&new));
    assert_eq!(app.user_of(&token).await["email"], old.as_str());
    assert_eq!(
        app.login(&new, PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );

    assert_eq!(
        app.verify_email(&link).await.data("verifyEmail")["email"],
        new.as_str()
    );
    let user = app.user_of(&token).await;
    assert_eq!(user["email"], new.as_str());
    assert_eq!(user["emailVerified"], true);
    app.login(&new, PASSWORD).await.data("login");
    assert_eq!(
        app.login(&old, PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    let notice = app.mail.nth_to(&old, 4).await;
    assert!(notice.text.contains(&new), "{}", notice.text);
    assert_eq!(
        app.reset_password(&reset_link, NEW_PASSWORD).await.code(),
        "INVALID_RESET_TOKEN"
    );

    // An address another account holds is refused when the link is used,
    // and nothing changes.
    let change = app
        .graphql(
            CHANGE_EMAIL,
            json!({ "password": PASSWORD, "email": taken }),
            Some(&token),
        )
        .await;
    change.data("changeEmail");
    let link = app.mail.nth_to(&taken, 2).await.token("ghv_");
    assert_eq!(app.verify_email(&link).await.code(), "EMAIL_TAKEN");
    assert_eq!(app.user_of(&token).await["email"], new.as_str());
}

#[tokio::test]
async fn reset_requests_answer_alike_for_unknown_addresses_and_are_limited() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.login_limits.mail_max_per_address = 3;
    })
    .await;
    let (known, _, _) = app.signed_in_user().await;
    let unknown = format!("nobody-{known}");
    let (a, b) = (
        app.request_reset(&known).await,
        app.request_reset(&unknown).await,
    );
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    app.mail.nth_to(&known, 2).await;
    // The sign-up's verification counted too: one more for the known
    // address, two for the unknown, then both are limited alike.
    app.request_reset(&known).await.data("requestPasswordReset");
    for _ in 0..2 {
        app.request_reset(&unknown)
            .await
            .data("requestPasswordReset");
    }
    let (a, b) = (
        app.request_reset(&known).await,
        app.request_reset(&unknown).await,
    );
    assert_eq!(a.code(), "RATE_LIMITED");
    assert_eq!((a.status, a.code()), (b.status, b.code()));
    app.mail.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.mail.to(&unknown).is_empty());
    assert_eq!(app.mail.to(&known).len(), 3, "1 verification + 2 resets");
}

#[tokio::test]
async fn replaced_and_expired_reset_links_are_refused_alike() {
    let clock = Clock::manual(Utc::now());
    let app = spawn_app_with_clock(TestDatabase::create().await, clock.clone(), |_| {}).await;
    let (email, _, _) = app.signed_in_user().await;
    app.request_reset(&email).await.data("requestPasswordReset");
    let first = app.mail.nth_to(&email, 2).await.token("ghr_");
    app.request_reset(&email).await.data("requestPasswordReset");
    let second = app.mail.nth_to(&email, 3).await.token("ghr_");
    let replaced = app.reset_password(&first, NEW_PASSWORD).await;
    assert_eq!(replaced.code(), "INVALID_RESET_TOKEN");

    clock.set(clock.now() + TimeDelta::minutes(31));
    let expired = app.reset_password(&second, NEW_PASSWORD).await;
    assert_eq!(expired.code(), "INVALID_RESET_TOKEN");
    assert_eq!(expired.message(), replaced.message());
    for junk in ["", "ghr_", "gth_not-a-reset-token", &second[..20]] {
        assert_eq!(
            app.reset_password(junk, NEW_PASSWORD).await.code(),
            "INVALID_RESET_TOKEN"
        );
    }
    // Nothing changed.
    app.login(&email, PASSWORD).await.data("login");
}

#[tokio::test]
async fn a_reset_on_one_node_ends_the_sessions_on_another_at_once() {
    let database = TestDatabase::create().await;
    let a = spawn_app_on(database.clone(), |_| {}).await;
    let b = spawn_app_on(database, |_| {}).await;
    let (email, token, _) = b.signed_in_user().await;
    b.me(&token).await.data("me");
    a.request_reset(&email).await.data("requestPasswordReset");
    let link = a.mail.nth_to(&email, 1).await.token("ghr_");
    a.reset_password(&link, NEW_PASSWORD)
        .await
        .data("resetPassword");
    b.me(&token).await.assert_unauthenticated("PASSWORD_RESET");
}

#[tokio::test]
async fn concurrent_uses_of_one_reset_link_succeed_once() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let (email, _, _) = app.signed_in_user().await;
    app.request_reset(&email).await.data("requestPasswordReset");
    let link = app.mail.nth_to(&email, 2).await.token("ghr_");
    let attempts = (0..6).map(|i| {
        let (app, link) = (&app, &link);
        async move {
            app.reset_password(link, &format!("{NEW_PASSWORD} {i}"))
                .await
        }
    });
    let replies = futures_util::future::join_all(attempts).await;
    let won: Vec<_> = replies
        .iter()
        .filter(|r| r.body["errors"].is_null())
        .collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| !r.body["errors"].is_null()) {
        assert_eq!(reply.code(), "INVALID_RESET_TOKEN");
    }
}

#[tokio::test]
async fn a_rolled_back_change_queues_no_mail() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let (email, _, _) = app.signed_in_user().await;
    app.mail.nth_to(&email, 1).await;
    let before = app.mail.messages().len();
    // The same queueing the API uses, in a transaction that then fails.
    let outbox = gatehouse::services::outbox::Outbox::new(
        app.settings.mail.letters(),
        gatehouse::services::outbox::TokenLifetimes {
            reset: Duration::from_secs(60),
            verify: Duration::from_secs(60),
        },
    );
    let user = entity::user::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let txn = app.db.begin().await.unwrap();
    outbox
        .queue_link(&txn, Purpose::Reset, user.id, &email, Utc::now())
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    // Two polls of the courier.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(app.outbox_len().await, 0);
    assert_eq!(app.mail.messages().len(), before);
}

#[tokio::test]
async fn mail_queued_while_the_smtp_server_is_down_arrives_once_it_is_back() {
    let Some(python) = smtp_python("mail_queued_while_the_smtp_server_is_down") else {
        return;
    };
    let port = SmtpServer::free_port();
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    let (email, _, _) = app.signed_in_user().await;
    app.request_reset(&email).await.data("requestPasswordReset");
    // Both messages fail at least twice, and stay queued.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let queued = outbox::Entity::find().all(&app.db).await.unwrap();
        if queued.len() == 2
            && queued
                .iter()
                .all(|m| m.attempts >= 2 && m.last_error.is_some())
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queued:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let smtp = SmtpServer::start(&python, port).await;
    let mail = smtp.wait_for(2).await;
    // Long enough for any duplicate to have been sent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mail_after = smtp.messages();
    assert_eq!(mail_after.len(), 2, "{mail_after:?}");
    assert_ne!(mail[0].message_id, mail[1].message_id);
    assert_eq!(app.outbox_len().await, 0);
}

#[tokio::test]
async fn two_nodes_deliver_each_message_exactly_once() {
    let Some(python) = smtp_python("two_nodes_deliver_each_message_exactly_once") else {
        return;
    };
    let smtp = SmtpServer::start(&python, SmtpServer::free_port()).await;
    let database = TestDatabase::create().await;
    let url = smtp.url();
    let configure = |s: &mut gatehouse::config::Settings| {
        s.mail.smtp_url = Some(url.parse().unwrap());
    };
    let a = spawn_app_on(database.clone(), configure).await;
    let b = spawn_app_on(database, configure).await;
    let mut emails = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { &a } else { &b };
        emails.push(node.signed_in_user().await.0);
    }
    // Each reset is asked on the node that did not send the sign-up mail.
    for (i, email) in emails.iter().enumerate() {
        let node = if i % 2 == 0 { &b } else { &a };
        node.request_reset(email).await.data("requestPasswordReset");
    }
    smtp.wait_for(16).await;
    // Both couriers poll every 2 s: give a duplicate time to show.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mail = smtp.messages();
    let mut ids: Vec<&str> = mail.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((mail.len(), ids.len()), (16, 16));
    for email in &emails {
        assert_eq!(smtp.to(email).len(), 2, "{email}");
    }
}

/// Whoever knew the old password cannot finish a move of address once the
/// owner has reset or changed it.
#[tokio::test]
async fn a_new_password_cancels_a_pending_change_of_address() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let steal = |token: String, to: &'static str| {
        let app = &app;
        async move {
            let change = app
                .graphql(
                    CHANGE_EMAIL,
                    json!({ "password": PASSWORD, "email": to }),
                    Some(&token),
                )
                .await;
            change.data("changeEmail");
            app.mail.nth_to(to, 1).await.token("ghv_")
        }
    };

    // The owner resets the password.
    let (email, token, _) = app.signed_in_user().await;
    let stolen = steal(token, "thief-one@evil.example").await;
    app.request_reset(&email).await.data("requestPasswordReset");
    let link = app.mail.nth_to(&email, 3).await.token("ghr_");
    app.reset_password(&link, NEW_PASSWORD)
        .await
        .data("resetPassword");
    assert_eq!(
        app.verify_email(&stolen).await.code(),
        "INVALID_VERIFICATION_TOKEN"
    );

    // The owner changes the password.
    let (other, token, _) = app.signed_in_user().await;
    let stolen = steal(token.clone(), "thief-two@evil.example").await;
    let changed = app
        .graphql(
            "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { revokedSessions } }",
            json!({ "c": PASSWORD, "n": NEW_PASSWORD }),
            Some(&token),
        )
        .await;
    changed.data("changePassword");
    assert_eq!(
        app.verify_email(&stolen).await.code(),
        "INVALID_VERIFICATION_TOKEN"
    );
    assert_eq!(app.user_of(&token).await["email"], other.as_str());
    app.login(&email, NEW_PASSWORD).await.data("login");
}

/// A mail server that accepts connections and never answers must not hold
/// the courier: each attempt gives up, and is retried.
#[tokio::test]
async fn a_mail_server_that_never_answers_does_not_stall_delivery() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            connections.push(socket);
        }
    });
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    app.signed_in_user().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
    loop {
        let queued = outbox::Entity::find().all(&app.db).await.unwrap();
        if queued.iter().any(|m| {
            m.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no answer"))
        }) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queued:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    held.abort();
}
