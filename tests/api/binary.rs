//! The `gatehouse` binary as a user runs it: subcommands, settings, and a
//! black-box session over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

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

/// Runs `gatehouse serve` on port 0 and returns it with its address.
fn serve(url: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("gatehouse serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("gatehouse listening addr=").nth(1) {
            break rest.trim().to_owned();
        }
    };
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

#[tokio::test]
async fn serve_runs_the_whole_path_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("gatehouse.db").display()
    );
    let client = reqwest::Client::new();
    let post = |addr: String, body: Value, token: Option<String>| {
        let client = client.clone();
        async move {
            let mut request = client.post(format!("http://{addr}/graphql")).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };

    let (mut first, addr) = serve(&url);
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (_, registered) = post(
        addr.clone(),
        json!({ "query": "mutation { register(input: {email: \"bin@example.com\", password: \"correct horse\"}) { token } }" }),
        None,
    )
    .await;
    let token = registered["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = json!({ "query": "{ me { user { email } } }" });
    let (status, body) = post(addr.clone(), me.clone(), Some(token.clone())).await;
    assert_eq!(
        (status, &body["data"]["me"]["user"]["email"]),
        (200, &json!("bin@example.com"))
    );

    signal_term(&first);
    assert!(first.wait().unwrap().success(), "SIGTERM exits 0");

    let (mut second, addr) = serve(&url);
    let (status, _) = post(addr.clone(), me.clone(), Some(token.clone())).await;
    assert_eq!(status, 200, "the session survived the restart");
    let (_, out) = post(
        addr.clone(),
        json!({ "query": "mutation { logout }" }),
        Some(token.clone()),
    )
    .await;
    assert_eq!(out["data"]["logout"], true);
    let (status, body) = post(addr, me, Some(token)).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["reason"], "REVOKED");
    signal_term(&second);
    assert!(second.wait().unwrap().success());
}

fn signal_term(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
