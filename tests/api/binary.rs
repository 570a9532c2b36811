//! The `gatehouse` binary as a user runs it: subcommands, settings, and a
//! black-box session over HTTP.

use std::process::Command;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{BIN, serve, serve_with, signal, sqlite_url};
use crate::mailbox::{Inbox, SmtpServer};

fn gatehouse(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("RUST_LOG");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("gatehouse runs")
}

#[test]
fn schema_graphql_is_what_gatehouse_schema_prints() {
    let output = gatehouse(&["schema"], &[]);
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
            .expect("schema.graphql exists");
    assert!(
        printed == checked_in,
        "schema.graphql is stale: regenerate it with `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn invalid_settings_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("GATEHOUSE_IDLE_TIMEOUT", "5x")], "--idle-timeout"),
        (
            &[
                ("GATEHOUSE_IDLE_TIMEOUT", "13h"),
                ("GATEHOUSE_ABSOLUTE_TIMEOUT", "12h"),
            ],
            "GATEHOUSE_IDLE_TIMEOUT",
        ),
        (
            &[("GATEHOUSE_DATABASE_URL", "mysql://nope")],
            "--database-url",
        ),
        (
            &[(
                "GATEHOUSE_DATABASE_URL",
                "sqlite:///nonexistent-dir/x/y.db?mode=rwc",
            )],
            "GATEHOUSE_DATABASE_URL",
        ),
    ];
    for (envs, named) in cases {
        let mut all = vec![
            ("GATEHOUSE_LISTEN", "127.0.0.1:0"),
            ("GATEHOUSE_DATABASE_URL", url.as_str()),
        ];
        all.extend_from_slice(envs);
        let output = gatehouse(&["serve"], &all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{envs:?} was accepted");
        assert!(stderr.contains(named), "{envs:?}: {stderr}");
    }
}

#[test]
fn migrate_creates_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("migrated.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let output = gatehouse(&["migrate"], &[("GATEHOUSE_DATABASE_URL", &url)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(path.exists());
    // Migrating again is a no-op, not an error.
    assert!(
        gatehouse(&["migrate"], &[("GATEHOUSE_DATABASE_URL", &url)])
            .status
            .success()
    );
}

fn register(email: &str, password: &str) -> Value {
    json!({
        "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
        "variables": { "input": { "email": email, "password": password } }
    })
}

#[tokio::test]
async fn serve_runs_the_whole_path_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);

    let first = serve(&url, "info");
    let health = reqwest::get(format!("http://{}/healthz", first.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (_, registered) = first
        .post(register("bin@example.com", "correct horse"), None)
        .await;
    let token = registered["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = json!({ "query": "{ me { user { email } } }" });
    let (status, body) = first.post(me.clone(), Some(&token)).await;
    assert_eq!(
        (status, &body["data"]["me"]["user"]["email"]),
        (200, &json!("bin@example.com"))
    );
    assert!(first.terminate().0, "SIGTERM exits 0");

    let second = serve(&url, "info");
    let (status, _) = second.post(me.clone(), Some(&token)).await;
    assert_eq!(status, 200, "the session survived the restart");
    let (_, out) = second
        .post(json!({ "query": "mutation { logout }" }), Some(&token))
        .await;
    assert_eq!(out["data"]["logout"], true);
    let (status, body) = second.post(me, Some(&token)).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["reason"], "REVOKED");
    assert!(second.terminate().0);
}

#[test]
fn healthcheck_exits_0_only_when_readyz_answers_200() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&sqlite_url(&dir), "info");
    let port = server.addr.rsplit(':').next().unwrap();
    // As the container image runs it: the server's own GATEHOUSE_LISTEN,
    // on every address, probed on loopback.
    let everywhere = format!("0.0.0.0:{port}");
    let healthy = gatehouse(&["healthcheck"], &[("GATEHOUSE_LISTEN", &everywhere)]);
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    assert!(server.terminate().0);

    // Something that accepts and never answers is not a healthy server.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let unhealthy = gatehouse(
        &[
            "healthcheck",
            "--listen",
            &silent_addr,
            "--timeout",
            "300ms",
        ],
        &[],
    );
    assert_eq!(unhealthy.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unhealthy.stderr);
    assert!(stderr.contains("unhealthy"), "{stderr}");
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let server = serve(&url, "info");
    // Hold the write lock so a registration is still in flight at SIGTERM.
    let db = Database::connect(&url).await.unwrap();
    let lock = db.begin().await.unwrap();
    lock.execute_unprepared(
        "INSERT INTO login_throttles (key, failures, last_failure_at) VALUES ('lock', 0, '2000-01-01')",
    )
    .await
    .unwrap();
    let addr = server.addr.clone();
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .json(&register("inflight@example.com", "correct horse"))
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    signal(&server.child, "-TERM");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the request was cut off");
    lock.rollback().await.unwrap();

    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["register"]["token"].is_string(), "{body}");
    assert!(server.terminate().0, "exit 0 after draining");
}

#[tokio::test]
async fn sigkill_mid_registration_leaves_no_half_made_account() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let mut server = serve(&url, "info");
    let addr = server.addr.clone();
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let request = client
                .post(format!("http://{addr}/graphql"))
                .json(&register(&format!("crash{i}@example.com"), "correct horse"));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let answered = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(status)) if status.is_success()))
        .count();

    let db = Database::connect(&url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap()
        }
    };
    let users = count("SELECT COUNT(*) FROM users").await;
    let orphans =
        count("SELECT COUNT(*) FROM users WHERE id NOT IN (SELECT user_id FROM sessions)").await;
    assert_eq!(orphans, 0, "a user without the session made with it");
    assert!(
        users >= answered as i64,
        "an answered registration was lost"
    );
    let integrity = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(integrity, "ok");
    db.close().await.unwrap();

    // The service starts again on what the crash left.
    let again = serve(&url, "info");
    let (status, _) = again
        .post(register("after@example.com", "correct horse"), None)
        .await;
    assert_eq!(status, 200);
    assert!(again.terminate().0);
}

#[tokio::test]
async fn trace_logs_hold_no_token_password_or_hash() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let server = serve(&url, "trace");
    let (first, wrong, second) = ("first passphrase", "wrong passphrase", "second passphrase");
    let third = "third passphrase";

    let (_, body) = server.post(register("logs@example.com", first), None).await;
    let token = body["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = |password: &str| {
        json!({
            "query": "mutation($input: LoginInput!) { login(input: $input) { token } }",
            "variables": { "input": { "email": "logs@example.com", "password": password } }
        })
    };
    server.post(login(wrong), None).await;
    // A login sent over GET is refused, but its URL holds the password.
    let over_get = reqwest::Client::new()
        .get(format!("http://{}/graphql", server.addr))
        .query(&[(
            "query",
            format!(r#"mutation {{ login(input: {{email: "logs@example.com", password: "{wrong}"}}) {{ token }} }}"#),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(over_get.status(), 405);
    let (_, body) = server.post(login(first), None).await;
    let other = body["data"]["login"]["token"].as_str().unwrap().to_owned();
    server
        .post(
            json!({ "query": "{ me { user { email } sessions { id } } }" }),
            Some(&token),
        )
        .await;
    server
        .post(
            json!({ "query": "mutation { refreshSession { expiresAt } }" }),
            Some(&token),
        )
        .await;
    let change = json!({
        "query": "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { revokedSessions } }",
        "variables": { "input": { "currentPassword": first, "newPassword": second } }
    });
    let (status, _) = server.post(change, Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = server
        .post(json!({ "query": "{ me { user { id } } }" }), Some(&other))
        .await;
    assert_eq!(status, 401);
    let (_, body) = server.post(login(second), None).await;
    let other_live = body["data"]["login"]["token"].as_str().unwrap().to_owned();
    server
        .post(json!({ "query": "mutation { logout }" }), Some(&token))
        .await;
    // A live subscription: its connection_init carries the token.
    let mut request = format!("ws://{}/graphql", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    for message in [
        json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {other_live}") } }),
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { sessionStatus { kind } }" } }),
    ] {
        socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }
    let mut kinds = String::new();
    while !kinds.contains("CURRENT") {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("the subscription did not answer");
        };
        kinds.push_str(&text);
    }
    drop(socket);
    // Recovery: the verification and reset tokens travel only by e-mail.
    let verify = server
        .mail
        .nth_to("logs@example.com", 1)
        .await
        .token("ghv_");
    let (_, body) = server
        .post(
            json!({ "query": "mutation($t: String!) { verifyEmail(input: {token: $t}) { email } }",
                    "variables": { "t": verify } }),
            None,
        )
        .await;
    assert_eq!(body["data"]["verifyEmail"]["email"], "logs@example.com");
    server
        .post(
            json!({ "query": "mutation { requestPasswordReset(input: {email: \"logs@example.com\"}) }" }),
            None,
        )
        .await;
    let reset = server
        .mail
        .nth_to("logs@example.com", 2)
        .await
        .token("ghr_");
    let (_, body) = server
        .post(
            json!({ "query": "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, newPassword: $p}) { email } }",
                    "variables": { "t": reset, "p": third } }),
            None,
        )
        .await;
    assert_eq!(body["data"]["resetPassword"]["email"], "logs@example.com");
    let (exited, log) = server.terminate();
    assert!(exited);
    assert!(
        log.contains("password changed"),
        "the log was not captured: {log}"
    );

    let db = Database::connect(&url).await.unwrap();
    let mut secrets = vec![
        first.to_owned(),
        wrong.to_owned(),
        second.to_owned(),
        third.to_owned(),
    ];
    for token in [&token, &other, &other_live, &verify, &reset] {
        secrets.push(token.clone());
        secrets.push(token["gth_".len()..].to_owned());
    }
    for sql in [
        "SELECT password_hash FROM users",
        "SELECT token_hash FROM sessions",
        "SELECT token_hash FROM email_tokens",
    ] {
        for row in db
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap()
        {
            let value: String = row.try_get_by_index(0).unwrap();
            // The salt and digest parts of a PHC string are what matter.
            secrets.extend(value.rsplit('$').take(2).map(str::to_owned));
        }
    }
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
}

#[tokio::test]
async fn with_no_smtp_server_each_message_is_an_eml_file_with_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(
        &sqlite_url(&dir),
        "info",
        &[(
            "GATEHOUSE_VERIFY_URL",
            "http://localhost:3000/verify#{token}",
        )],
    );
    let (status, _) = server
        .post(register("eml@example.com", "correct horse"), None)
        .await;
    assert_eq!(status, 200);
    let mail = server.mail.nth_to("eml@example.com", 1).await;
    let token = mail.token("ghv_");
    assert!(
        mail.text
            .contains(&format!("http://localhost:3000/verify#{token}"))
    );
    let files: Vec<_> = std::fs::read_dir(server.mail.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    assert!(server.terminate().0);
}

#[tokio::test]
async fn mail_committed_before_a_sigkill_is_delivered_after_the_restart() {
    let Some(python) = SmtpServer::python("mail_committed_before_a_sigkill") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let port = SmtpServer::free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let envs = [("GATEHOUSE_SMTP_URL", smtp_url.as_str())];
    let mut server = serve_with(&url, "info", &envs);
    let (status, _) = server
        .post(register("crash-mail@example.com", "correct horse"), None)
        .await;
    assert_eq!(status, 200);
    // Committed, and not delivered: the mail server is not up yet.
    let db = Database::connect(&url).await.unwrap();
    let attempts = "SELECT attempts FROM outbox WHERE claimed_until IS NULL";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, attempts))
            .await
            .unwrap();
        if row.is_some_and(|r| r.try_get_by_index::<i32>(0).unwrap() >= 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never attempted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();

    let smtp = SmtpServer::start(&python, port).await;
    let again = serve_with(&url, "info", &envs);
    let mail = smtp.nth_to("crash-mail@example.com", 1).await;
    mail.token("ghv_");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(smtp.messages().len(), 1, "delivered exactly once");
    let left = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT COUNT(*) FROM outbox",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(left, 0, "the delivered message, and its token, are gone");
    assert!(again.terminate().0);
}

/// The second factor's secrets (the TOTP seed, codes, recovery codes, the
/// challenge, a remembered browser's token, the sealing key) reach neither
/// the trace log nor `/metrics`, and the embedded default makes its key
/// file private, beside the database.
#[tokio::test]
async fn trace_logs_and_metrics_hold_no_second_factor_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let server = serve(&url, "trace");
    let key_file = dir.path().join("gatehouse.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let email = "factor-logs@example.com";
    let (_, body) = server
        .post(register(email, "a long passphrase"), None)
        .await;
    let token = body["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = server
        .post(
            json!({ "query": "mutation { beginTotpEnrolment { secret } }" }),
            Some(&token),
        )
        .await;
    let secret = body["data"]["beginTotpEnrolment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        0,
        30,
        bytes,
        None,
        String::new(),
    );
    let code = totp.generate_current().unwrap();
    let (_, body) = server
        .post(
            json!({ "query": "mutation($c: String!) { confirmTotpEnrolment(input: {code: $c}) { recoveryCodes } }",
                    "variables": { "c": code } }),
            Some(&token),
        )
        .await;
    let recovery: Vec<String> = body["data"]["confirmTotpEnrolment"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{body}");
    let login = json!({
        "query": "mutation { login(input: {email: \"factor-logs@example.com\", password: \"a long passphrase\"}) { token } }"
    });
    let (_, body) = server.post(login, None).await;
    let challenge = body["errors"][0]["extensions"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = server
        .post(
            json!({ "query": "mutation($ch: String!, $r: String!) { completeSignIn(input: {challenge: $ch, recoveryCode: $r, rememberDevice: true}) { token knownDevice } }",
                    "variables": { "ch": challenge, "r": recovery[0] } }),
            None,
        )
        .await;
    let device = body["data"]["completeSignIn"]["knownDevice"]
        .as_str()
        .unwrap()
        .to_owned();
    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gatehouse_sign_ins_total"), "{metrics}");
    let (exited, log) = server.terminate();
    assert!(exited);
    assert!(
        log.contains("second factor enabled"),
        "the log was not captured: {log}"
    );
    assert!(
        log.contains(&key_file.display().to_string()),
        "the key file's place is logged"
    );

    let db = Database::connect(&url).await.unwrap();
    let sealed = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT secret FROM totp_factors",
        ))
        .await
        .unwrap()
        .unwrap();
    let sealed: String = sealed.try_get_by_index(0).unwrap();
    let key = std::fs::read_to_string(&key_file).unwrap();
    let mut secrets = vec![secret, code, challenge, device, sealed];
    secrets.push(key.trim()["k1:".len()..].to_owned());
    secrets.extend(recovery.iter().cloned());
    secrets.extend(recovery.iter().map(|c| c.replace('-', "")));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret reached /metrics"
        );
    }
}

/// A PostgreSQL node without the shared sealing key refuses to start, and
/// says what to set, before it touches the database.
#[test]
fn a_postgres_node_without_a_sealing_key_refuses_to_start() {
    let out = Command::new(BIN)
        .arg("serve")
        .env(
            "GATEHOUSE_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env_remove("GATEHOUSE_SECRET_KEY")
        .env_remove("GATEHOUSE_SECRET_KEY_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GATEHOUSE_SECRET_KEY"), "{stderr}");
    let bad = Command::new(BIN)
        .arg("serve")
        .env(
            "GATEHOUSE_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env("GATEHOUSE_SECRET_KEY", "k1:short")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("key k1"), "{stderr}");
    assert!(
        !stderr.contains("k1:short"),
        "the key's text is not echoed: {stderr}"
    );
}
