//! Registration, login and password change through the public API, and what
//! they leave at rest.

use entity::{session, user};
use reqwest::StatusCode;
use sea_orm::EntityTrait;

use crate::helpers::{PASSWORD, TestDatabase, spawn_app, spawn_app_on};

#[tokio::test]
async fn register_signs_in_at_once() {
    let app = spawn_app().await;
    let reply = app.register("ada@example.com", PASSWORD).await;
    let payload = reply.data("register");
    assert!(payload["token"].as_str().unwrap().starts_with("gth_"));
    assert_eq!(payload["user"]["email"], "ada@example.com");
    assert_eq!(payload["session"]["current"], true);
    let me = app.me(payload["token"].as_str().unwrap()).await;
    assert_eq!(me.data("me")["user"]["id"], payload["user"]["id"]);
}

#[tokio::test]
async fn email_is_trimmed_and_lowercased_so_login_ignores_case() {
    let app = spawn_app().await;
    let reply = app.register("  Ada.Lovelace@Example.COM ", PASSWORD).await;
    assert_eq!(
        reply.data("register")["user"]["email"],
        "ada.lovelace@example.com"
    );
    app.login("ADA.LOVELACE@example.com", PASSWORD)
        .await
        .data("login");
}

#[tokio::test]
async fn taken_email_is_refused_in_any_case() {
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD)
        .await
        .data("register");
    let again = app.register("ADA@example.com", "another password").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.code(), "EMAIL_TAKEN");
    let users = user::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(users.len(), 1, "no second account was written");
}

#[tokio::test]
async fn invalid_registration_input_is_bad_user_input() {
    let app = spawn_app().await;
    let too_long = "p".repeat(1025);
    let long_email = format!("{}@example.com", "a".repeat(250));
    for (email, password) in [
        ("not-an-email", PASSWORD),
        ("ada@example.com", "short"),
        ("ada@example.com", too_long.as_str()),
        (long_email.as_str(), PASSWORD),
        ("ada@example.com", "password\0with nul"),
    ] {
        let reply = app.register(email, password).await;
        assert_eq!(reply.code(), "BAD_USER_INPUT", "{email:?}: {}", reply.body);
    }
    let users = user::Entity::find().all(&app.db).await.unwrap();
    assert!(users.is_empty(), "nothing half-written");
}

/// The length rule alone: with the quality check off (no password of 8
/// characters scores 3), 8 and 1024 characters are accepted. Under the
/// default, 8 passes the length rule and meets the quality one.
#[tokio::test]
async fn password_limits_are_inclusive() {
    let lenient = spawn_app_on(TestDatabase::create().await, |s| {
        s.quality.password_min_score = 0;
    })
    .await;
    lenient
        .register("min@example.com", &"p".repeat(8))
        .await
        .data("register");
    lenient
        .register("max@example.com", &"p".repeat(1024))
        .await
        .data("register");
    let app = spawn_app().await;
    let eight = app.register("min@example.com", "Xk9#mQ2v").await;
    assert_eq!(eight.code(), "PASSWORD_TOO_WEAK", "{}", eight.body);
    let longest = format!("{PASSWORD:.<1024}");
    app.register("max@example.com", &longest)
        .await
        .data("register");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    let wrong = app.login(&email, "not the password").await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.code(), "INVALID_CREDENTIALS");
        assert_eq!(reply.body["data"], serde_json::Value::Null);
    }
    assert_eq!(wrong.message(), unknown.message());
}

#[tokio::test]
async fn every_login_makes_a_new_session_and_token() {
    let app = spawn_app().await;
    let (email, first_token, _) = app.signed_in_user().await;
    let a = app.login(&email, PASSWORD).await;
    let b = app.login(&email, PASSWORD).await;
    let (a, b) = (a.data("login"), b.data("login"));
    assert_ne!(a["token"], b["token"]);
    assert_ne!(a["session"]["id"], b["session"]["id"]);
    assert_ne!(a["token"].as_str(), Some(first_token.as_str()));
    assert_eq!(a["session"]["userAgent"], "gatehouse-tests");
    let me = app.me(b["token"].as_str().unwrap()).await;
    assert_eq!(me.data("me")["sessions"].as_array().unwrap().len(), 3);
}

/// A session records where it came from: the peer address and the
/// `User-Agent`, cut to 512 characters, or none if it is not text.
#[tokio::test]
async fn a_session_records_a_bounded_user_agent_and_the_peer() {
    let app = spawn_app().await;
    let (email, _, _) = app.signed_in_user().await;
    let query =
        "mutation($i: LoginInput!) { login(input: $i) { session { userAgent ipAddress } } }";
    let variables = serde_json::json!({ "i": { "email": email, "password": PASSWORD } });
    let long = "é".repeat(2_000);
    let opaque = reqwest::header::HeaderValue::from_bytes(b"agent \xff\xfe").unwrap();
    for (agent, expected) in [
        (
            reqwest::header::HeaderValue::from_str(&long).unwrap(),
            Some("é".repeat(512)),
        ),
        (opaque, None),
    ] {
        let body: serde_json::Value = app
            .client
            .post(app.url("/graphql"))
            .header(reqwest::header::USER_AGENT, agent)
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = &body["data"]["login"]["session"];
        assert_eq!(session["userAgent"].as_str(), expected.as_deref(), "{body}");
        assert_eq!(session["ipAddress"], "127.0.0.1", "{body}");
    }
}

#[tokio::test]
async fn only_token_hashes_and_argon2id_hashes_are_at_rest() {
    let app = spawn_app().await;
    let (email, token, session_id) = app.signed_in_user().await;
    let row = app.session_row(&session_id).await;
    assert_eq!(row.token_hash.len(), 64);
    let body = &token["gth_".len()..];
    let sessions = session::Entity::find().all(&app.db).await.unwrap();
    let users = user::Entity::find().all(&app.db).await.unwrap();
    let at_rest = format!("{sessions:?}{users:?}");
    assert!(!at_rest.contains(body), "raw token stored");
    assert!(
        !at_rest.contains(crate::helpers::PASSWORD),
        "raw password stored"
    );
    let user = users.iter().find(|u| u.email == email).unwrap();
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
}

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let (email, token, session_id) = app.signed_in_user().await;
    let other = app.login(&email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = app
        .change_password(&token, PASSWORD, "a brand new passphrase")
        .await;
    let payload = reply.data("changePassword");
    assert_eq!(payload["revokedSessions"], 1);
    assert_eq!(payload["session"]["id"], session_id.as_str());

    app.me(&token).await.data("me");
    app.me(&other).await.assert_unauthenticated("REVOKED");
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "INVALID_CREDENTIALS"
    );
    app.login(&email, "a brand new passphrase")
        .await
        .data("login");
}

#[tokio::test]
async fn change_password_requires_the_current_password() {
    let app = spawn_app().await;
    let (email, token, _) = app.signed_in_user().await;
    let reply = app
        .change_password(&token, "wrong current password", "a brand new passphrase")
        .await;
    assert_eq!(reply.code(), "INVALID_CREDENTIALS");
    app.login(&email, PASSWORD).await.data("login");
}

/// Control and invisible characters are refused wherever they are, not
/// trimmed away: the stored address is exactly what was typed.
#[tokio::test]
async fn addresses_with_invisible_characters_are_refused_not_trimmed() {
    let app = spawn_app().await;
    for bad in [
        "x@y.com\r\n",
        "\r\nx@y.com",
        "x@y.com\t",
        "x@y.com\u{a0}",
        "x@y.com\u{85}",
        "x@y.com\u{2028}",
    ] {
        let reply = app.register(bad, PASSWORD).await;
        assert_eq!(reply.code(), "BAD_USER_INPUT", "{bad:?}: {}", reply.body);
    }
    let padded = app.register("  spaced@example.com ", PASSWORD).await;
    assert_eq!(
        padded.data("register")["user"]["email"],
        "spaced@example.com"
    );
}
