//! Tells live subscriptions that a session ended by revocation, the moment
//! it commits, on every node. On PostgreSQL the notice is a `NOTIFY` in the
//! change's own transaction, so it is delivered on commit, to every node,
//! and never for a change that rolled back; each node LISTENs and passes it
//! on. On SQLite (one node) it is broadcast in process after the commit.
//!
//! Timeouts need no notice: each subscription keeps a timer for the next
//! instant that matters.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPool};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::sync::broadcast;
use uuid::Uuid;

/// How many notices a slow subscriber may fall behind before it re-reads
/// its session instead.
const BACKLOG: usize = 1024;
const CHANNEL: &str = "gatehouse_sessions";

/// What ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Session(Uuid),
    /// Every session of an account (deleted).
    Account(Uuid),
    /// Notices may have been lost (the listener reconnected): every
    /// subscription reads its session again.
    Resync,
}

impl Notice {
    fn payload(self) -> String {
        match self {
            Self::Session(id) => format!("s:{id}"),
            Self::Account(id) => format!("a:{id}"),
            Self::Resync => "r".into(),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':') {
            Some(("s", id)) => Uuid::parse_str(id).ok().map(Self::Session),
            Some(("a", id)) => Uuid::parse_str(id).ok().map(Self::Account),
            _ => None,
        }
    }
}

/// Notices of one change, to deliver once it commits.
#[must_use = "deliver the notices after the commit"]
pub struct Pending(Vec<Notice>);

/// The hub of revocation notices.
#[derive(Clone)]
pub struct SessionNotifier(broadcast::Sender<Notice>);

impl Default for SessionNotifier {
    fn default() -> Self {
        Self(broadcast::channel(BACKLOG).0)
    }
}

impl SessionNotifier {
    /// Writes `notices` into the change's transaction `txn`.
    pub async fn announce(
        &self,
        txn: &impl ConnectionTrait,
        notices: impl IntoIterator<Item = Notice>,
    ) -> Result<Pending, DbErr> {
        let notices: Vec<Notice> = notices.into_iter().collect();
        if txn.get_database_backend() != DbBackend::Postgres {
            return Ok(Pending(notices));
        }
        if notices.is_empty() {
            return Ok(Pending(Vec::new()));
        }
        // One statement however many sessions ended: payloads hold no comma.
        let payloads: Vec<String> = notices.iter().map(|n| n.payload()).collect();
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, p) FROM unnest(string_to_array($2, ',')) AS p",
            [CHANNEL.into(), payloads.join(",").into()],
        ))
        .await?;
        Ok(Pending(Vec::new()))
    }

    /// Delivers what [`announce`](Self::announce) kept, after the commit.
    pub fn deliver(&self, pending: Pending) {
        for notice in pending.0 {
            self.send(notice);
        }
    }

    fn send(&self, notice: Notice) {
        // No subscriber is not an error.
        let _ = self.0.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.0.subscribe()
    }

    /// Passes every node's notices to this node's subscriptions, for as
    /// long as the process runs. After any gap in listening, every
    /// subscription reads its session again.
    pub async fn listen(self, pool: PgPool) {
        loop {
            match self.listen_once(&pool).await {
                Ok(()) => tracing::warn!("session notices: connection lost; reconnecting"),
                Err(err) => {
                    tracing::warn!(error = %err, "session notices: cannot listen; retrying")
                }
            }
            self.send(Notice::Resync);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Listens until the connection is lost.
    async fn listen_once(&self, pool: &PgPool) -> Result<(), sea_orm::sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        // Anything sent before this point was missed.
        self.send(Notice::Resync);
        while let Some(notification) = listener.try_recv().await? {
            if let Some(notice) = Notice::parse(notification.payload()) {
                self.send(notice);
            }
        }
        Ok(())
    }
}
