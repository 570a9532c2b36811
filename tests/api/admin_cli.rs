//! The admin CLI, run as a subprocess against live servers and their
//! database: accounts made while sign-up is closed, disabled and enabled,
//! their sessions ended, deleted, on SQLite and on PostgreSQL.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{BIN, PASSWORD, TestApp, TestDatabase, spawn_app_on};

/// Runs `gatehouse ARGS --json` on the app's database, with `stdin`;
/// returns the exit code and the parsed output.
fn gatehouse(app: &TestApp, args: &[&str], stdin: &str) -> (i32, Value) {
    let (code, text) = run(app, &[args, &["--json"]].concat(), stdin, &[]);
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (code, value)
}

/// Runs `gatehouse ARGS` on the app's database, with `stdin` and `envs`;
/// returns the exit code and stdout, or stderr if it failed.
fn run(app: &TestApp, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> (i32, String) {
    let mail = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .env("GATEHOUSE_DATABASE_URL", &app.database.url)
        .env("GATEHOUSE_MAIL_DIR", mail.path())
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gatehouse runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let code = output.status.code().unwrap();
    let text = if code == 0 {
        output.stdout
    } else {
        output.stderr
    };
    (code, String::from_utf8(text).unwrap())
}

#[tokio::test]
async fn an_operator_manages_accounts_while_sign_up_is_closed() {
    let database = TestDatabase::create().await;
    let closed = |s: &mut gatehouse::config::Settings| {
        s.registration = gatehouse::config::Registration::Closed;
    };
    let a = spawn_app_on(database.clone(), closed).await;
    let b = spawn_app_on(database, closed).await;
    let email = "operator-made@example.com";

    let refused = a.register(email, PASSWORD).await;
    assert_eq!(refused.code(), "REGISTRATION_CLOSED");
    assert_eq!(refused.status, 403);
    // The schema still answers.
    a.graphql("{ __typename }", json!({}), None)
        .await
        .data("__typename");

    let (code, created) = gatehouse(&a, &["user", "create", email], &format!("{PASSWORD}\n"));
    assert_eq!(code, 0, "{created}");
    assert_eq!(created["email"], email);
    let (code, taken) = gatehouse(&a, &["user", "create", email], &format!("{PASSWORD}\n"));
    assert_eq!((code, taken["code"].as_str()), (1, Some("EMAIL_TAKEN")));

    let token = a.login(email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    b.me(&token).await.data("me");
    let (_, listed) = gatehouse(&a, &["user", "list", "--filter", "operator-made"], "");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // A filter is literal text, not a LIKE pattern.
    let (_, listed) = gatehouse(&a, &["user", "list", "--filter", "_"], "");
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    let (_, shown) = gatehouse(&a, &["user", "show", email], "");
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);

    // Disabled: the live session fails at once on the other node, with the reason.
    let (code, disabled) = gatehouse(&a, &["user", "disable", email], "");
    assert_eq!((code, &disabled["revokedSessions"]), (0, &json!(1)));
    b.me(&token)
        .await
        .assert_unauthenticated("ACCOUNT_DISABLED");
    assert_eq!(a.login(email, PASSWORD).await.code(), "ACCOUNT_DISABLED");
    assert_eq!(
        a.login(email, "not the password").await.code(),
        "INVALID_CREDENTIALS"
    );

    // Enabled: it signs in again; the old session stays ended.
    assert_eq!(gatehouse(&a, &["user", "enable", email], "").0, 0);
    let again = b.login(email, PASSWORD).await;
    let again = again.data("login");
    let (second, second_id) = (
        again["token"].as_str().unwrap().to_owned(),
        again["session"]["id"].as_str().unwrap().to_owned(),
    );
    b.me(&token)
        .await
        .assert_unauthenticated("ACCOUNT_DISABLED");

    let (code, revoked) = gatehouse(&a, &["session", "revoke", &second_id], "");
    assert_eq!((code, &revoked["revoked"]), (0, &json!(true)));
    a.me(&second).await.assert_unauthenticated("REVOKED");

    let third = a.login(email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, revoked) = gatehouse(&a, &["user", "revoke-sessions", email], "");
    assert_eq!(revoked["revokedSessions"], 1);
    b.me(&third).await.assert_unauthenticated("REVOKED");

    let fourth = a.login(email, PASSWORD).await.data("login")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(gatehouse(&a, &["user", "delete", email], "").0, 0);
    b.me(&fourth).await.assert_unauthenticated("INVALID_TOKEN");
    assert_eq!(a.login(email, PASSWORD).await.code(), "INVALID_CREDENTIALS");
    let (code, missing) = gatehouse(&a, &["user", "show", email], "");
    assert_eq!((code, missing["code"].as_str()), (1, Some("NOT_FOUND")));
}

/// Sign-ins in flight while an account is disabled: none yields a session
/// that works, then or after the account is enabled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sign_in_racing_a_disable_survives_it() {
    let app = spawn_app_on(TestDatabase::create().await, |s| {
        s.login_limits.login_max_failures = 1_000;
    })
    .await;
    let (email, _, _) = app.signed_in_user().await;
    let logins = (0..16).map(|_| {
        let (app, email) = (&app, &email);
        async move { app.login(email, PASSWORD).await }
    });
    let disable = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        tokio::task::block_in_place(|| gatehouse(&app, &["user", "disable", &email], ""))
    };
    let (replies, (code, _)) = tokio::join!(futures_util::future::join_all(logins), disable);
    assert_eq!(code, 0);
    assert_eq!(gatehouse(&app, &["user", "enable", &email], "").0, 0);
    let tokens: Vec<String> = replies
        .iter()
        .filter_map(|r| r.body["data"]["login"]["token"].as_str().map(str::to_owned))
        .collect();
    for reply in replies.iter().filter(|r| r.body["data"]["login"].is_null()) {
        assert_eq!(reply.code(), "ACCOUNT_DISABLED");
    }
    for token in &tokens {
        app.me(token)
            .await
            .assert_unauthenticated("ACCOUNT_DISABLED");
    }
    // The account itself works again.
    app.login(&email, PASSWORD).await.data("login");
}

/// `gatehouse user create` judges the password as `register` does, says
/// why it refused it, in JSON or to a person, exits 1 and creates nothing.
#[tokio::test]
async fn user_create_refuses_a_weak_password_and_says_why() {
    let app = spawn_app_on(TestDatabase::create().await, |_| {}).await;
    let email = "zanzibar.quokka@example.com";
    let derived = "zanzibar.quokka2024\n";
    let (code, refused) = gatehouse(&app, &["user", "create", email], derived);
    assert_eq!(code, 1, "{refused}");
    assert_eq!(refused["code"], "PASSWORD_TOO_WEAK");
    let warning = refused["warning"].as_str().unwrap();
    assert!(warning.contains("e-mail address"), "{refused}");
    let suggestions = refused["suggestions"].as_array().unwrap();
    assert!(!suggestions.is_empty(), "{refused}");
    assert!(refused["score"].as_u64().unwrap() < refused["minScore"].as_u64().unwrap());

    let (code, told) = run(&app, &["user", "create", email], "password1\n", &[]);
    assert_eq!(code, 1, "{told}");
    assert!(told.contains("(PASSWORD_TOO_WEAK)"), "{told}");
    assert!(told.contains("This is a very common password."), "{told}");
    assert!(told.contains("  - Add another word or two."), "{told}");
    assert_eq!(
        app.login(email, "password1").await.code(),
        "INVALID_CREDENTIALS"
    );
    let (_, listed) = gatehouse(&app, &["user", "list"], "");
    assert_eq!(listed, json!([]));

    // The operator's minimum is the server's setting, and can be 0.
    let off = [("GATEHOUSE_PASSWORD_MIN_SCORE", "0")];
    let (code, created) = run(&app, &["user", "create", email, "--json"], derived, &off);
    assert_eq!(code, 0, "{created}");
    app.login(email, "zanzibar.quokka2024").await.data("login");
}

#[test]
fn usage_errors_exit_2_and_passwords_are_never_arguments() {
    let output = Command::new(BIN)
        .args(["user", "create", "a@example.com", "--password", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(BIN)
        .args(["user", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
