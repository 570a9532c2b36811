//! The database: connecting, migrating, and checking that its schema is the
//! one this binary was built for. Only `serve` and `migrate` migrate; the
//! admin commands refuse a schema they do not match instead.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
    TransactionTrait,
};

use crate::config::DatabaseSettings;
use crate::measure;

/// Any fixed 64-bit number, unique to Gatehouse's migrations.
const MIGRATION_LOCK_KEY: i64 = 0x6761_7465_686f_7573; // "gatehous"

/// How a database's schema stands against this binary's migrations.
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaState {
    Current,
    /// This many migrations are not applied yet.
    Behind(usize),
    /// Migrations applied by a newer binary, which this one does not know.
    Ahead(Vec<String>),
}

/// The schema is not the one this binary was built for; the message says
/// what to do.
#[derive(Debug)]
pub struct SchemaMismatch(String);

impl std::fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaMismatch {}

impl SchemaState {
    /// Refuses anything but `Current`, saying what to do.
    pub fn require_current(self) -> Result<(), SchemaMismatch> {
        match self {
            Self::Current => Ok(()),
            Self::Behind(pending) => Err(SchemaMismatch(format!(
                "the database's schema is behind this gatehouse ({pending} migration(s) \
                 pending): run `gatehouse migrate` (or a newer `serve`) first"
            ))),
            Self::Ahead(unknown) => Err(ahead(&unknown)),
        }
    }
}

fn ahead(unknown: &[String]) -> SchemaMismatch {
    SchemaMismatch(format!(
        "the database's schema is newer than this gatehouse (it has migration(s) {} \
         that this binary does not know): run the newer gatehouse",
        unknown.join(", ")
    ))
}

/// Connects to the configured database and applies pending migrations;
/// refuses a schema newer than this binary, which an old node would corrupt.
pub async fn connect_and_migrate(
    settings: &DatabaseSettings,
) -> anyhow::Result<DatabaseConnection> {
    let db = connect(settings).await?;
    if let SchemaState::Ahead(unknown) = schema_state(&db).await? {
        return Err(ahead(&unknown).into());
    }
    migrate(&db).await.context("database migration failed")?;
    Ok(db)
}

/// Connects to the configured database, migrating nothing.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<DatabaseConnection> {
    let url = &settings.database_url;
    let mut options = ConnectOptions::new(url.expose());
    options
        .max_connections(settings.db_max_connections)
        .connect_timeout(settings.db_acquire_timeout)
        .acquire_timeout(settings.db_acquire_timeout)
        .sqlx_logging(false)
        // WAL lets readers run beside the one writer; NORMAL is durable
        // across process crashes in WAL mode and much faster than FULL.
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    if url.expose().starts_with("sqlite:") {
        // A SQLite "connection" is a file handle: nothing to test, and the
        // test would cost a round trip to its worker thread per query.
        options.test_before_acquire(false);
    } else {
        // A round trip before every checkout buys nothing for a connection
        // in use a moment ago: sqlx already pings each one it takes back.
        // One idle long enough for a restart or a proxy to have dropped it
        // is still tested.
        options.test_before_acquire_if_idle_for(Duration::from_secs(30));
    }
    let mut db = Database::connect(options).await.with_context(|| {
        format!(
            "cannot connect to GATEHOUSE_DATABASE_URL {}",
            url.redacted()
        )
    })?;
    db.set_metric_callback(|info| measure::query(info.elapsed, info.failed));
    Ok(db)
}

/// Where the schema stands: applied migrations compared by name with the
/// ones this binary carries.
pub async fn schema_state(db: &DatabaseConnection) -> anyhow::Result<SchemaState> {
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let applied = applied(db)
        .await
        .context("cannot read the database's migrations")?;
    let known_set: HashSet<&str> = known.iter().map(String::as_str).collect();
    let unknown: Vec<String> = applied
        .iter()
        .filter(|name| !known_set.contains(name.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Ok(SchemaState::Ahead(unknown));
    }
    let applied: HashSet<&str> = applied.iter().map(String::as_str).collect();
    let pending = known
        .iter()
        .filter(|n| !applied.contains(n.as_str()))
        .count();
    Ok(if pending == 0 {
        SchemaState::Current
    } else {
        SchemaState::Behind(pending)
    })
}

/// The names of the applied migrations; none on a database never migrated.
async fn applied(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let exists = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
    };
    if db
        .query_one_raw(Statement::from_string(backend, exists))
        .await?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM seaql_migrations",
        ))
        .await?;
    rows.iter().map(|row| row.try_get("", "version")).collect()
}

/// Applies pending migrations. On PostgreSQL, nodes starting together take
/// turns under an advisory lock held by the migration's own transaction, so
/// none races another and the lock cannot outlive a crash.
async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        }
        _ => Migrator::up(db, None).await,
    }
}
