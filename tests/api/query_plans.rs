//! The guard's lookup, made on every guarded request, must be an index
//! search on both databases: a scan grows with every session ever made.

use gatehouse::repo::sessions::{find_many_with_user_sql, find_with_user_query};
use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement, TransactionTrait};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_guard_lookup_searches_the_token_hash_index() {
    let app = spawn_app().await;
    app.signed_in_user().await;
    let backend = app.db.get_database_backend();
    let lookup = find_with_user_query(&"0".repeat(64)).build(backend);

    let txn = app.db.begin().await.unwrap();
    let (explain, detail_column) = match backend {
        DbBackend::Postgres => {
            // With scans priced out, the planner takes the index if it can.
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
            ("EXPLAIN", 0)
        }
        _ => ("EXPLAIN QUERY PLAN", 3),
    };
    // PostgreSQL's guard reads many hashes at once.
    let statement = match backend {
        DbBackend::Postgres => Statement::from_string(
            backend,
            format!(
                "{explain} {}",
                find_many_with_user_sql().replace("$1", &format!("ARRAY['{}']", "0".repeat(64)))
            ),
        ),
        _ => Statement::from_sql_and_values(
            backend,
            format!("{explain} {}", lookup.sql),
            lookup.values.unwrap(),
        ),
    };
    let rows = txn.query_all_raw(statement).await.unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index(detail_column).unwrap())
        .collect();

    let searched = match backend {
        DbBackend::Postgres => plan
            .iter()
            .any(|line| line.contains("Index Scan using sessions_token_hash_key")),
        _ => plan.iter().any(|line| {
            line.starts_with("SEARCH sessions USING INDEX") && line.contains("(token_hash=?)")
        }),
    };
    assert!(
        searched,
        "the lookup does not search the token_hash index: {plan:#?}"
    );
}
