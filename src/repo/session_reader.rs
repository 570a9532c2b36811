//! The guard's lookup: a session and its user by token hash, once per
//! guarded request.
//!
//! On SQLite it runs on read connections of its own. Through the pool it
//! costs two round trips to the connection's worker thread, because sqlx
//! pings every connection it takes back; here it costs one. Each read is
//! its own autocommit statement, so it sees every committed revocation.
//! On PostgreSQL it uses the pool, whose connections can drop and reconnect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use entity::{session, user};
use sea_orm::sqlx::sqlite::SqliteConnection;
use sea_orm::sqlx::{self, ConnectOptions as _};
use sea_orm::{
    DatabaseConnection, DbBackend, DbErr, QueryResult, QueryTrait, RuntimeErr, SelectTwoModel,
    SelectorTrait,
};
use tokio::sync::Mutex;

use crate::domain::token::TokenHash;
use crate::repo::sessions;

/// Dedicated SQLite read connections; in WAL mode they read beside the
/// writer. On 2 cores one reader gave me 0.29x the ceiling, and 2, 4 and 8
/// gave 0.45-0.50x alike; 4 leaves room for larger machines.
const SQLITE_READERS: usize = 4;

/// Finds sessions for the guard.
#[derive(Clone)]
pub enum SessionReader {
    Pool(DatabaseConnection),
    Sqlite(Arc<SqliteReaders>),
}

pub struct SqliteReaders {
    connections: Vec<Mutex<SqliteConnection>>,
    next: AtomicUsize,
    /// [`sessions::find_with_user_query`], built once by sea-orm.
    sql: String,
}

impl SessionReader {
    /// Opens the dedicated readers on SQLite, with the pool's options.
    pub async fn connect(db: &DatabaseConnection) -> Result<Self, DbErr> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(Self::Pool(db.clone()));
        }
        let options = db.get_sqlite_connection_pool().connect_options();
        let mut connections = Vec::with_capacity(SQLITE_READERS);
        for _ in 0..SQLITE_READERS {
            let connection = options.connect().await.map_err(to_conn_err)?;
            connections.push(Mutex::new(connection));
        }
        Ok(Self::Sqlite(Arc::new(SqliteReaders {
            connections,
            next: AtomicUsize::new(0),
            sql: lookup_sql(),
        })))
    }

    /// The session with this token hash and its user.
    pub async fn find_with_user(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<(session::Model, user::Model)>, DbErr> {
        match self {
            Self::Pool(db) => sessions::find_with_user(db, token_hash).await,
            Self::Sqlite(readers) => readers.find_with_user(token_hash).await,
        }
    }
}

impl SqliteReaders {
    async fn find_with_user(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<(session::Model, user::Model)>, DbErr> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut connection = self.connections[turn].lock().await;
        let row = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()))
            .bind(token_hash.as_str())
            .fetch_optional(&mut *connection)
            .await
            .map_err(to_query_err)?;
        drop(connection);
        let Some(row) = row else { return Ok(None) };
        let (session, user) = SelectTwoModel::<session::Model, user::Model>::from_raw_query_result(
            QueryResult::from(row),
        )?;
        Ok(user.map(|user| (session, user)))
    }
}

fn lookup_sql() -> String {
    sessions::find_with_user_query("")
        .build(DbBackend::Sqlite)
        .sql
}

fn to_query_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

fn to_conn_err(err: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)))
}
