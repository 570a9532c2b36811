//! Documents whose cost grows faster than their size are refused with a 4xx
//! before any super-linear work: generated fragment chains, cycles, unknown
//! spreads, inline fragments and introspection leaves, sent over HTTP to
//! the real router.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

/// Far above what a linear check costs even unoptimised, far below what
/// expanding any of these documents path by path would cost.
const BUDGET: Duration = Duration::from_millis(750);

/// What a chain's last fragment selects.
#[derive(Clone, Copy, Debug)]
enum Leaf {
    Field,
    UnknownSpread,
    Inline,
    Introspection,
    /// Spreads the first fragment again.
    Cycle,
}

/// `{ ...F0 }`, each `Fi` spreading `F(i+1)` `fan_out` times (some inside
/// inline fragments), the last one selecting `leaf`.
fn chain(fan_out: usize, depth: usize, leaf: Leaf, inline: bool) -> String {
    let mut query = String::from("query { ...F0 } ");
    for i in 0..depth {
        let spread = if inline {
            format!("... on Query {{ ...F{} }} ", i + 1)
        } else {
            format!("...F{} ", i + 1)
        };
        query.push_str(&format!(
            "fragment F{i} on Query {{ {} }} ",
            spread.repeat(fan_out)
        ));
    }
    let leaf = match leaf {
        Leaf::Field => "__typename",
        Leaf::UnknownSpread => "...Missing",
        Leaf::Inline => "... on Query { __typename }",
        Leaf::Introspection => "__schema { types { name } }",
        Leaf::Cycle => "...F0",
    };
    query.push_str(&format!("fragment F{depth} on Query {{ {leaf} }}"));
    query
}

/// Many small fragments, all spread from the root.
fn many_fragments(count: usize, fields: usize) -> String {
    let spreads: String = (0..count).map(|i| format!("...F{i} ")).collect();
    let mut query = format!("{{ {spreads}}}");
    for i in 0..count {
        query.push_str(&format!(
            " fragment F{i} on Query {{ {} }}",
            "__typename ".repeat(fields)
        ));
    }
    query
}

fn hostile_document() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Leaf::Field),
        Just(Leaf::UnknownSpread),
        Just(Leaf::Inline),
        Just(Leaf::Introspection),
        Just(Leaf::Cycle),
    ];
    prop_oneof![
        // Chains that expand past the limits: fan_out^depth well over 250.
        (2usize..=8, 1usize..=40, leaf, any::<bool>())
            .prop_filter("expands past the limits", |(f, d, leaf, _)| {
                matches!(leaf, Leaf::Cycle) || (*f as f64).powi(*d as i32) > 2_000.0
            })
            .prop_map(|(f, d, leaf, inline)| chain(f, d, leaf, inline)),
        (300usize..=600, 1usize..=3).prop_map(|(c, f)| many_fragments(c, f)),
        (60usize..=150, 1usize..=2).prop_map(|(c, f)| many_fragments(c, f * 10)),
    ]
    // Under the body limit, so the document itself is what is judged.
    .prop_filter("fits in a request", |query| query.len() < 60 * 1024)
}

#[test]
fn generated_hostile_documents_are_refused_within_budget() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app());
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let slowest = std::cell::Cell::new(Duration::ZERO);
    runner
        .run(&hostile_document(), |query| {
            let started = Instant::now();
            let reply = runtime.block_on(app.graphql(&query, json!({}), None));
            let took = started.elapsed();
            slowest.set(slowest.get().max(took));
            prop_assert!(
                reply.status.is_client_error(),
                "{} {}",
                reply.status,
                reply.body
            );
            prop_assert!(
                [
                    "QUERY_TOO_COMPLEX",
                    "QUERY_TOO_DEEP",
                    "GRAPHQL_VALIDATION_FAILED"
                ]
                .contains(&reply.code()),
                "{}",
                reply.body
            );
            prop_assert!(
                took < BUDGET,
                "{took:?} for a {}-byte document",
                query.len()
            );
            Ok(())
        })
        .unwrap();
    eprintln!("slowest hostile document: {:?}", slowest.get());
}

#[tokio::test]
async fn the_reported_chain_is_refused_at_once() {
    let app = spawn_app().await;
    let query = chain(3, 18, Leaf::Field, false);
    assert!(query.len() < 1024);
    let started = Instant::now();
    let reply = app.graphql(&query, json!({}), None).await;
    assert!(started.elapsed() < BUDGET, "{:?}", started.elapsed());
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "QUERY_TOO_COMPLEX");
}

#[tokio::test]
async fn root_fields_are_counted_through_fragments() {
    let app = spawn_app().await;
    let roots: String = (0..11).map(|i| format!("t{i}: __typename ")).collect();
    for query in [
        format!("{{ ... on Query {{ {roots} }} }}"),
        format!("{{ ...R }} fragment R on Query {{ {roots} }}"),
    ] {
        let reply = app.graphql(&query, json!({}), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.code(), "TOO_MANY_ROOT_FIELDS", "{}", reply.body);
    }
}

#[tokio::test]
async fn a_fragment_cycle_is_a_validation_error_not_a_crash() {
    let app = spawn_app().await;
    let reply = app
        .graphql(
            "{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "GRAPHQL_VALIDATION_FAILED");
    // The server is still there.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// Found by attacking the first version of the limits: a text scan of
/// brackets read `"""x"` as an unclosed block string and stopped counting,
/// and 400 nested lists after it overflowed a worker's stack.
#[tokio::test]
async fn deep_values_behind_a_false_block_string_are_refused() {
    let app = spawn_app().await;
    let query = format!(
        r#"{{ me(a: ["""x"], b: {}1{}) {{ __typename }} }}"#,
        "[".repeat(400),
        "]".repeat(400)
    );
    let reply = app.graphql(&query, json!({}), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "QUERY_TOO_DEEP");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// Also found by attack: validation checks every operation against every
/// variable its fragments use, so variable uses count per operation.
#[tokio::test]
async fn variable_uses_multiplied_by_operations_are_refused() {
    let app = spawn_app().await;
    let variables: String = (0..2000).map(|i| format!("$v{i}")).collect();
    let operations: String = (0..100)
        .map(|i| format!("query Q{i} {{ ...F }} "))
        .collect();
    let query =
        format!("{operations} fragment F on Query {{ me(a: [{variables}]) {{ __typename }} }}");
    let started = Instant::now();
    let reply = app
        .post_raw_json(&json!({ "query": query, "operationName": "Q0" }))
        .await;
    assert!(started.elapsed() < BUDGET, "{:?}", started.elapsed());
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.code(), "QUERY_TOO_COMPLEX");
}
