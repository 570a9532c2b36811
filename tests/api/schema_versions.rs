//! Only `migrate` and `serve` change the schema. The admin commands refuse
//! a database whose schema is behind or ahead of them, and `serve` and
//! `migrate` refuse one newer than they know, so an old node started after
//! a newer one cannot corrupt it.

use std::process::Command;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::Value;

use crate::helpers::{BIN, SECRET_KEY, TestDatabase};

fn gatehouse(url: &str, args: &[&str]) -> (i32, Value, String) {
    let mail = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(args)
        .env("GATEHOUSE_DATABASE_URL", url)
        .env("GATEHOUSE_MAIL_DIR", mail.path())
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_SECRET_KEY", SECRET_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("gatehouse runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = stderr
        .lines()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json, stderr)
}

async fn applied(db: &DatabaseConnection) -> usize {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT version FROM seaql_migrations",
    ))
    .await
    .unwrap()
    .len()
}

/// A database made by an older binary: all but the newest migration.
async fn older_database() -> (std::sync::Arc<TestDatabase>, DatabaseConnection, usize) {
    let database = TestDatabase::create().await;
    let db = Database::connect(&database.url).await.unwrap();
    let all = Migrator::migrations().len();
    Migrator::up(&db, Some((all - 1) as u32)).await.unwrap();
    (database, db, all)
}

#[tokio::test]
async fn the_cli_refuses_a_schema_behind_it_and_migrates_nothing() {
    let (database, db, all) = older_database().await;
    let (code, json, _) = gatehouse(&database.url, &["user", "list", "--json"]);
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["code"], "SCHEMA_MISMATCH");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("gatehouse migrate")
    );
    assert_eq!(applied(&db).await, all - 1, "the CLI migrated");
    // `migrate` does, and then the CLI works.
    let (code, _, stderr) = gatehouse(&database.url, &["migrate"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(applied(&db).await, all);
    let (code, _, stderr) = gatehouse(&database.url, &["user", "list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn every_command_refuses_a_schema_newer_than_it_knows() {
    let database = TestDatabase::create().await;
    let db = Database::connect(&database.url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) \
         VALUES ('m29991231_000001_from_a_newer_gatehouse', 0)",
    )
    .await
    .unwrap();

    let (code, json, _) = gatehouse(&database.url, &["user", "list", "--json"]);
    assert_eq!((code, json["code"].as_str()), (3, Some("SCHEMA_MISMATCH")));
    for command in ["serve", "migrate"] {
        let (code, _, stderr) = gatehouse(&database.url, &[command]);
        assert_ne!(code, 0, "{command} started on a newer schema");
        assert!(
            stderr.contains("newer than this gatehouse"),
            "{command}: {stderr}"
        );
    }
}
