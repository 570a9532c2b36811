//! No document can freeze the server: while hostile documents keep every
//! core busy, `/healthz` and a guarded `me` keep answering. Timed here,
//! alone in this binary, so the only load is the attack.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{Server, serve, sqlite_url};

const ATTACK: Duration = Duration::from_secs(4);
const HEALTH_BUDGET: Duration = Duration::from_millis(100);

/// The worst documents of each kind, each under the body limit.
fn hostile_documents() -> Vec<String> {
    let chain = |fan_out: usize, depth: usize, leaf: &str| {
        let mut query = String::from("{ ...F0 } ");
        for i in 0..depth {
            let spreads = format!("...F{} ", i + 1).repeat(fan_out);
            query.push_str(&format!("fragment F{i} on Query {{ {spreads}}} "));
        }
        query + &format!("fragment F{depth} on Query {{ {leaf} }}")
    };
    let spreads: String = (0..550).map(|i| format!("...F{i} ")).collect();
    let fragments: String = (0..550)
        .map(|i| format!("fragment F{i} on Query {{ __typename __typename }} "))
        .collect();
    vec![
        chain(3, 18, "__typename"),
        chain(8, 40, "...Missing"),
        chain(2, 30, "...F0"),
        format!("{{ {spreads}}} {fragments}"),
        format!("{}x{}", "{a ".repeat(10_000), "}".repeat(10_000)),
        format!(
            r#"{{ me(a: ["""x"], b: {}1{}) {{ __typename }} }}"#,
            "[".repeat(600),
            "]".repeat(600)
        ),
        format!(
            "{} fragment F on Query {{ me(a: [{}]) {{ __typename }} }}",
            (0..120)
                .map(|i| format!("query Q{i} {{ ...F }} "))
                .collect::<String>(),
            (0..2500).map(|i| format!("$v{i}")).collect::<String>()
        ),
    ]
}

async fn attack(server: &Server, documents: &[String], until: Instant) -> usize {
    let client = crate::helpers::client();
    let mut sent = 0;
    while Instant::now() < until {
        let query = &documents[sent % documents.len()];
        let response = client
            .post(format!("http://{}/graphql", server.addr))
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_me_answer_while_hostile_documents_flood_every_core() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&sqlite_url(&dir), "info");
    let (_, registered) = server
        .post(
            json!({ "query": "mutation { register(input: {email: \"probe@example.com\", password: \"correct horse battery\"}) { token } }" }),
            None,
        )
        .await;
    let token = registered["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let documents = hostile_documents();
    let until = Instant::now() + ATTACK;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let attackers = join_all((0..2 * cores).map(|_| attack(&server, &documents, until)));

    let probe = async {
        let client = reqwest::Client::new();
        let (mut health, mut me) = (Vec::new(), Vec::new());
        tokio::time::sleep(Duration::from_millis(300)).await;
        while Instant::now() < until {
            let started = Instant::now();
            let response = client
                .get(format!("http://{}/healthz", server.addr))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            health.push(started.elapsed());
            let started = Instant::now();
            let (status, body) = server
                .post(json!({ "query": "{ me { user { id } } }" }), Some(&token))
                .await;
            assert_eq!(status, 200, "{body}");
            me.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (health, me)
    };
    let (sent, (health, me)) = tokio::join!(attackers, probe);
    let slowest = |samples: &[Duration]| samples.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} hostile documents refused; {} probes; slowest /healthz {:?}, slowest me {:?}",
        sent.iter().sum::<usize>(),
        health.len(),
        slowest(&health),
        slowest(&me)
    );
    assert!(sent.iter().all(|&n| n > 0));
    assert!(health.len() >= 10);
    assert!(slowest(&health) < HEALTH_BUDGET, "{health:?}");
    assert!(server.terminate().0);
}
