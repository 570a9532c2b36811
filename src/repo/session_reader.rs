//! The guard's lookup ([`sessions::find_with_user_query`]), once per
//! guarded request, in one round trip on connections of its own.
//!
//! Through the pool it would cost more: sqlx pings every connection it
//! takes back, and on PostgreSQL may test one before handing it out; on
//! SQLite every statement is also two hand-offs to the connection's worker
//! thread. Each read is its own autocommit statement, so it sees every
//! revocation committed before it.
//!
//! - SQLite: read-only connections queried in place on the calling thread.
//!   An indexed read of a WAL database takes microseconds and never waits
//!   for the writer.
//! - PostgreSQL: lookups that arrive while every connection is busy wait
//!   and go together in the next statement (`token_hash = ANY($1)`), so
//!   under load one round trip serves many requests. A lookup only ever
//!   joins a statement that starts after it arrived, so it still sees every
//!   revocation committed before its request. Statements run in tasks of
//!   their own: a request that gives up cancels nothing shared. A
//!   connection that fails is replaced and the statement tried once more
//!   on the new one (it may have died idle, in a restart); if that fails
//!   too, its requests get the error (503).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::OpenFlags;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sea_orm::sqlx::{self, ConnectOptions as _, Row as _};
use sea_orm::{DatabaseConnection, DbBackend, DbErr, QueryTrait, RuntimeErr};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

use crate::context::{Account, SessionRecord};
use crate::domain::second_factor::{Level, Methods};
use crate::domain::token::TokenHash;
use crate::measure;
use crate::repo::sessions;

/// What the guard reads: the session, its account, and whether the account
/// is disabled.
#[derive(Clone)]
pub struct GuardRow {
    pub session: SessionRecord,
    pub account: Account,
    pub disabled: bool,
}

/// Finds sessions for the guard on connections of its own.
#[derive(Clone)]
pub enum SessionReader {
    Sqlite(Arc<SqliteReaders>),
    Postgres(Arc<PgReaders>),
}

pub struct SqliteReaders {
    connections: Vec<Mutex<Option<rusqlite::Connection>>>,
    path: PathBuf,
    sql: String,
}

pub struct PgReaders {
    /// One per connection, open or not.
    permits: Arc<Semaphore>,
    /// Open connections not in use, the most recently used last.
    idle: Mutex<Vec<PgConnection>>,
    /// Lookups waiting for a statement.
    waiting: Mutex<Vec<Waiting>>,
    options: PgConnectOptions,
    sql: String,
    /// For a whole lookup, waiting and reconnecting included.
    timeout: Duration,
}

type Answer = Result<Option<GuardRow>, Arc<sqlx::Error>>;

struct Waiting {
    token_hash: String,
    answer: oneshot::Sender<Answer>,
}

/// Most lookups in one statement.
const MAX_BATCH: usize = 128;

/// How long a SQLite read may wait on a lock: in WAL mode only recovery
/// after a crash holds readers, and a read holds its worker thread.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

impl SessionReader {
    /// Readers with the pool's connection settings, connecting on first use:
    /// on PostgreSQL at most `connections`, on SQLite one per core.
    pub fn new(
        db: &DatabaseConnection,
        connections: usize,
        timeout: Duration,
    ) -> Result<Self, DbErr> {
        let backend = db.get_database_backend();
        match backend {
            DbBackend::Sqlite => {
                // A read never waits inside, so one per thread that can run one.
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let options = db.get_sqlite_connection_pool().connect_options();
                Ok(Self::Sqlite(Arc::new(SqliteReaders {
                    connections: (0..threads).map(|_| Mutex::new(None)).collect(),
                    path: options.get_filename().to_owned(),
                    sql: sessions::find_with_user_query("").build(backend).sql,
                })))
            }
            DbBackend::Postgres => {
                let options = db.get_postgres_connection_pool().connect_options();
                Ok(Self::Postgres(Arc::new(PgReaders {
                    permits: Arc::new(Semaphore::new(connections.max(1))),
                    idle: Mutex::new(Vec::new()),
                    waiting: Mutex::new(Vec::new()),
                    // A plan cached while `sessions` was small scanned it
                    // once it was large, until PostgreSQL happened to
                    // analyze it. These connections run only the lookup,
                    // which must always search the index.
                    options: (*options).clone().options([("enable_seqscan", "off")]),
                    sql: sessions::find_many_with_user_sql(),
                    timeout,
                })))
            }
            other => Err(DbErr::Custom(format!("{other:?} is not supported"))),
        }
    }

    /// The session with this token hash and its account.
    pub async fn find(&self, token_hash: &TokenHash) -> Result<Option<GuardRow>, DbErr> {
        let started = Instant::now();
        let read = match self {
            Self::Sqlite(readers) => readers.read(token_hash.as_str()),
            Self::Postgres(readers) => readers.read(token_hash.as_str()).await,
        };
        measure::query(started.elapsed(), read.is_err());
        read
    }
}

impl SqliteReaders {
    fn read(&self, token_hash: &str) -> Result<Option<GuardRow>, DbErr> {
        // Reads run on the async workers, so a free connection is nearly
        // always there; if not, wait for one (a read takes microseconds).
        let slot = self
            .connections
            .iter()
            .find_map(|slot| match slot.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            });
        let mut slot = match slot {
            Some(slot) => slot,
            None => self.connections[0]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        };
        if slot.is_none() {
            *slot = Some(self.open().map_err(conn_err)?);
        }
        let Some(connection) = slot.as_ref() else {
            return Err(DbErr::Custom("no SQLite reader".into()));
        };
        let read = query_sqlite(connection, &self.sql, token_hash);
        if read.is_err() {
            // Start afresh next time rather than keep a connection in doubt.
            *slot = None;
        }
        read
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let connection = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        Ok(connection)
    }
}

fn query_sqlite(
    connection: &rusqlite::Connection,
    sql: &str,
    token_hash: &str,
) -> Result<Option<GuardRow>, DbErr> {
    let mut statement = connection.prepare_cached(sql).map_err(query_err)?;
    let mut rows = statement.query([token_hash]).map_err(query_err)?;
    let Some(row) = rows.next().map_err(query_err)? else {
        return Ok(None);
    };
    let text = |i: usize| -> Result<Option<String>, DbErr> { row.get(i).map_err(query_err) };
    let time = |i: usize| -> Result<Option<DateTime<Utc>>, DbErr> {
        match row.get_ref(i).map_err(query_err)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            rusqlite::types::ValueRef::Text(t) => parse_sqlite_time(t).map(Some),
            other => Err(decode_err(format!("column {i}: {:?}", other.data_type()))),
        }
    };
    let required = |value: Option<DateTime<Utc>>, i: usize| {
        value.ok_or_else(|| decode_err(format!("column {i} is NULL")))
    };
    let uuid = |i: usize| -> Result<Uuid, DbErr> {
        match row.get_ref(i).map_err(query_err)? {
            rusqlite::types::ValueRef::Blob(b) => {
                Uuid::from_slice(b).map_err(|e| decode_err(e.to_string()))
            }
            rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| Uuid::parse_str(t).ok())
                .ok_or_else(|| decode_err(format!("column {i}: not a UUID"))),
            other => Err(decode_err(format!("column {i}: {:?}", other.data_type()))),
        }
    };
    let flag = |i: usize| -> Result<bool, DbErr> { row.get(i).map_err(query_err) };
    Ok(Some(guard_row(Columns {
        id: uuid(0)?,
        user_id: uuid(1)?,
        created_at: required(time(2)?, 2)?,
        last_activity_at: required(time(3)?, 3)?,
        revoked_at: time(4)?,
        revoked_reason: text(5)?,
        user_agent: text(6)?,
        ip_address: text(7)?,
        authenticated_at: time(8)?,
        remember_me: flag(9)?,
        end_recorded: flag(10)?,
        email: text(11)?.ok_or_else(|| decode_err("email is NULL".into()))?,
        email_verified_at: time(12)?,
        user_created_at: required(time(13)?, 13)?,
        disabled_at: time(14)?,
        second_factor_at: time(15)?,
        methods: text(16)?.unwrap_or_default(),
        aal: row.get(17).map_err(query_err)?,
    })))
}

/// A timestamp as sqlx writes it to SQLite (RFC 3339), or as SQLite's own
/// functions do (`YYYY-MM-DD HH:MM:SS`, UTC).
fn parse_sqlite_time(text: &[u8]) -> Result<DateTime<Utc>, DbErr> {
    let text = std::str::from_utf8(text).map_err(|e| decode_err(e.to_string()))?;
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| decode_err(format!("not a timestamp: {text}")))
}

impl PgReaders {
    async fn read(self: &Arc<Self>, token_hash: &str) -> Result<Option<GuardRow>, DbErr> {
        let (answer, answered) = oneshot::channel();
        self.lock_waiting().push(Waiting {
            token_hash: token_hash.to_owned(),
            answer,
        });
        self.dispatch();
        let unavailable = |err: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)));
        match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(Ok(row))) => Ok(row),
            Ok(Ok(Err(err))) => Err(DbErr::Query(RuntimeErr::SqlxError(err))),
            // The statement's task ended without answering (its own timeout).
            Ok(Err(_)) | Err(_) => Err(unavailable(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Starts a statement for the waiting lookups if a connection is free.
    /// Called after every arrival and after every statement, so no lookup
    /// is left waiting while a connection is free.
    fn dispatch(self: &Arc<Self>) {
        loop {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                return;
            };
            let batch: Vec<Waiting> = {
                let mut waiting = self.lock_waiting();
                let oldest = waiting.len().min(MAX_BATCH);
                waiting.drain(..oldest).collect()
            };
            if batch.is_empty() {
                return;
            }
            let readers = self.clone();
            tokio::spawn(async move {
                readers.answer(batch).await;
                drop(permit);
                readers.dispatch();
            });
        }
    }

    async fn answer(&self, batch: Vec<Waiting>) {
        let mut hashes: Vec<&str> = batch.iter().map(|w| w.token_hash.as_str()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let rows = tokio::time::timeout(self.timeout, self.fetch_once_or_twice(&hashes))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        let found: Result<HashMap<String, GuardRow>, Arc<sqlx::Error>> =
            rows.map_err(Arc::new).and_then(|rows| {
                rows.iter()
                    .map(|row| {
                        let hash: String = row.try_get("token_hash")?;
                        Ok((hash, pg_guard_row(row)?))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Arc::new)
            });
        for waiting in batch {
            let answer = match &found {
                Ok(found) => Ok(found.get(&waiting.token_hash).cloned()),
                Err(err) => Err(err.clone()),
            };
            // The request may have given up; nothing to do then.
            let _ = waiting.answer.send(answer);
        }
    }

    async fn fetch_once_or_twice(&self, hashes: &[&str]) -> Result<Vec<PgRow>, sqlx::Error> {
        if let Some(mut connection) = self.take_idle()
            && let Ok(rows) = self.fetch(&mut connection, hashes).await
        {
            self.put_idle(connection);
            return Ok(rows);
        }
        let mut connection = self.options.connect().await?;
        let rows = self.fetch(&mut connection, hashes).await?;
        self.put_idle(connection);
        Ok(rows)
    }

    /// The lookup as a prepared statement, cached on the connection.
    async fn fetch(
        &self,
        connection: &mut PgConnection,
        hashes: &[&str],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()))
            .bind(hashes)
            .fetch_all(connection)
            .await
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_idle(&self) -> Option<PgConnection> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, connection: PgConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
    }
}

fn pg_guard_row(row: &PgRow) -> Result<GuardRow, sqlx::Error> {
    Ok(guard_row(Columns {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        created_at: row.try_get(2)?,
        last_activity_at: row.try_get(3)?,
        revoked_at: row.try_get(4)?,
        revoked_reason: row.try_get(5)?,
        user_agent: row.try_get(6)?,
        ip_address: row.try_get(7)?,
        authenticated_at: row.try_get(8)?,
        remember_me: row.try_get(9)?,
        end_recorded: row.try_get(10)?,
        email: row.try_get(11)?,
        email_verified_at: row.try_get(12)?,
        user_created_at: row.try_get(13)?,
        disabled_at: row.try_get(14)?,
        second_factor_at: row.try_get(15)?,
        methods: row.try_get(16)?,
        aal: row.try_get(17)?,
    }))
}

/// The lookup's columns, in its order.
struct Columns {
    id: Uuid,
    user_id: Uuid,
    created_at: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    revoked_reason: Option<String>,
    user_agent: Option<String>,
    ip_address: Option<String>,
    authenticated_at: Option<DateTime<Utc>>,
    remember_me: bool,
    end_recorded: bool,
    email: String,
    email_verified_at: Option<DateTime<Utc>>,
    user_created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
    second_factor_at: Option<DateTime<Utc>>,
    methods: String,
    aal: i16,
}

fn guard_row(c: Columns) -> GuardRow {
    GuardRow {
        session: SessionRecord {
            id: c.id,
            created_at: c.created_at,
            last_activity_at: c.last_activity_at,
            revoked_at: c.revoked_at,
            revoked_reason: c.revoked_reason,
            user_agent: c.user_agent,
            ip_address: c.ip_address,
            // As in `SessionRecord::from`: only rows older than step-up
            // lacked it, and those were backfilled with their creation.
            authenticated_at: c.authenticated_at.unwrap_or(c.created_at),
            remember_me: c.remember_me,
            end_recorded: c.end_recorded,
            methods: Methods::parse(&c.methods),
            level: Level::from_stored(c.aal),
        },
        account: Account {
            id: c.user_id,
            email: c.email,
            email_verified: c.email_verified_at.is_some(),
            created_at: c.user_created_at,
            second_factor: c.second_factor_at.is_some(),
        },
        disabled: c.disabled_at.is_some(),
    }
}

/// Busy or locked is "unavailable now" (503), as on the pool.
fn query_err(err: rusqlite::Error) -> DbErr {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => conn_err(err),
        _ => DbErr::Query(RuntimeErr::Internal(format!("SQLite guard read: {err}"))),
    }
}

fn conn_err(err: rusqlite::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!("SQLite guard read: {err}")))
}

fn decode_err(message: String) -> DbErr {
    DbErr::Type(format!("guard read: {message}"))
}
