//! What an operator relies on: `/metrics` as Prometheus text, moving with
//! the operations that should move it; a request id on every log line; one
//! JSON line per request with no secret in it. The real binary, so that its
//! metrics are its own.

use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

use crate::helpers::{Server, serve_with, sqlite_url};

/// Scrapes `url` and parses it as Prometheus does.
pub async fn scrape(url: &str) -> Scrape {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

/// The value of `name` with exactly these labels (0 if absent); a
/// histogram's count.
pub fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => 0.0,
        })
        .sum()
}

async fn graphql(server: &Server, query: &str, variables: Value, token: Option<&str>) -> Value {
    server
        .post(json!({ "query": query, "variables": variables }), token)
        .await
        .1
}

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }";
const REGISTER: &str =
    "mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p}) { token } }";

#[tokio::test]
async fn every_metric_moves_with_what_should_move_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(
        &sqlite_url(&dir),
        "info",
        &[("GATEHOUSE_LOGIN_MAX_FAILURES", "2")],
    );
    let metrics = format!("http://{}/metrics", server.addr);
    let before = scrape(&metrics).await;
    assert_eq!(value(&before, "gatehouse_build_info", &[]), 1.0);

    let registered = graphql(
        &server,
        REGISTER,
        json!({ "e": "ops@example.com", "p": "correct horse" }),
        None,
    )
    .await;
    let token = registered["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    graphql(&server, "{ me { user { id } } }", json!({}), Some(&token)).await;
    graphql(
        &server,
        "{ me { user { id } } }",
        json!({}),
        Some("gth_forged"),
    )
    .await;
    graphql(
        &server,
        LOGIN,
        json!({ "e": "ops@example.com", "p": "correct horse" }),
        None,
    )
    .await;
    for _ in 0..3 {
        graphql(
            &server,
            LOGIN,
            json!({ "e": "victim@example.com", "p": "a wrong guess" }),
            None,
        )
        .await;
    }

    let after = scrape(&metrics).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let verdicts = "gatehouse_guard_verdicts_total";
    assert_eq!(delta(verdicts, &[("outcome", "accepted")]), 1.0);
    assert_eq!(
        delta(
            verdicts,
            &[("outcome", "refused"), ("reason", "INVALID_TOKEN")]
        ),
        1.0
    );
    assert!(delta(verdicts, &[("outcome", "anonymous")]) >= 5.0);
    let sign_ins = "gatehouse_sign_ins_total";
    assert_eq!(delta(sign_ins, &[("outcome", "success")]), 1.0);
    assert_eq!(delta(sign_ins, &[("outcome", "invalid_credentials")]), 2.0);
    assert_eq!(delta(sign_ins, &[("outcome", "rate_limited")]), 1.0);
    assert_eq!(delta("gatehouse_locks_total", &[("key", "account")]), 1.0);
    assert!(delta("gatehouse_hash_wait_seconds", &[]) >= 3.0);
    assert!(delta("gatehouse_db_query_duration_seconds", &[("outcome", "ok")]) >= 5.0);
    let requests = "gatehouse_request_duration_seconds";
    assert_eq!(
        delta(requests, &[("operation", "me"), ("outcome", "OK")]),
        1.0
    );
    assert_eq!(
        delta(
            requests,
            &[("operation", "login"), ("outcome", "RATE_LIMITED")]
        ),
        1.0
    );
    assert_eq!(
        delta(requests, &[("operation", "register"), ("outcome", "OK")]),
        1.0
    );

    // Labels are bounded: no address, id or token anywhere in the output.
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    for secret in ["ops@example.com", "victim@example.com", &token[4..]] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }

    // The live-session gauge is refreshed every 30 s, never per scrape.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while value(&scrape(&metrics).await, "gatehouse_live_sessions", &[]) != 2.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gatehouse_live_sessions never reached 2"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.terminate().0);
}

#[tokio::test]
async fn metrics_can_live_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(
        &sqlite_url(&dir),
        "info",
        &[("GATEHOUSE_METRICS_LISTEN", "127.0.0.1:0")],
    );
    let log = server.log();
    let addr = log
        .split("metrics listening addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in {log}"))
        .to_owned();
    let public = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let private = scrape(&format!("http://{addr}/metrics")).await;
    assert_eq!(value(&private, "gatehouse_build_info", &[]), 1.0);
    assert!(server.terminate().0);
}

#[tokio::test]
async fn json_log_lines_carry_the_request_id_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(
        &sqlite_url(&dir),
        "info",
        &[("GATEHOUSE_LOG_FORMAT", "json")],
    );
    let client = reqwest::Client::new();
    let url = format!("http://{}/graphql", server.addr);
    let password = "a secret passphrase";
    let send = |id: &'static str, body: Value| {
        let request = client.post(&url).json(&body).header("x-request-id", id);
        async move { request.send().await.unwrap() }
    };
    let registered = send(
        "signup-1",
        json!({ "query": REGISTER, "variables": { "e": "json@example.com", "p": password } }),
    )
    .await;
    assert_eq!(registered.headers()["x-request-id"], "signup-1");
    let token = registered.json::<Value>().await.unwrap()["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // An id that could forge a log line is replaced by a fresh one.
    let forged = send(
        "evil\" level=ERROR msg=forged",
        json!({ "query": "{ __typename }" }),
    )
    .await;
    let fresh = forged.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
    send(
        "wrong-1",
        json!({ "query": LOGIN, "variables": { "e": "json@example.com", "p": "not the password" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (exited, log) = server.terminate();
    assert!(exited);

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let wrong = of("wrong-1");
    // Every line made while serving it has the id: the service's own, and
    // the request's summary.
    assert!(
        wrong
            .iter()
            .any(|l| l["fields"]["message"] == "login failed"),
        "{wrong:?}"
    );
    let summary = wrong
        .iter()
        .find(|l| l["fields"]["message"] == "request")
        .expect("one line per request");
    assert_eq!(summary["fields"]["operation"], "login");
    assert_eq!(summary["fields"]["outcome"], "INVALID_CREDENTIALS");
    assert!(summary["fields"]["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        of("signup-1")
            .iter()
            .filter(|l| l["fields"]["message"] == "request")
            .count(),
        1
    );
    assert_eq!(of(&fresh).len(), 1);
    for secret in [password, "not the password", &token, &token[4..]] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}
