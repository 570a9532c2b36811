//! `sessionStatus`: the caller's session, pushed over graphql-ws. It sends
//! the state at once, a warning before the session would end, the new
//! state when another tab or device moves the expiry, and the end with the
//! guard's reason, after which the stream closes.
//!
//! Each subscription keeps one timer for the next instant that matters and
//! re-reads its session when it fires; revocations arrive as notices. It
//! never slides the session.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, Enum, Result, SimpleObject, Subscription as SubscriptionRoot};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::context::CurrentSession;
use crate::domain::session_policy::Expiry;
use crate::error::{AppError, AuthFailure};
use crate::graphql::auth_service;
use crate::services::auth::{AuthService, SessionState};
use crate::session_notifier::Notice;

/// Where a subscription records that its connection's session has ended,
/// with the reason, so the connection closes with the server's verdict
/// whatever the client selected.
#[derive(Clone, Debug, Default)]
pub struct ConnectionEnd(pub Arc<OnceLock<&'static str>>);

/// How long before the end a warning is sent.
#[derive(Clone, Copy, Debug)]
pub struct ExpiryWarning(pub TimeDelta);

/// The root of every subscription.
pub struct Subscription;

/// Everything pushed live: the caller's session status.
#[SubscriptionRoot]
impl Subscription {
    /// The session of the connection's token, live: `CURRENT` at once and
    /// whenever its expiry moves, `WARNING` `GATEHOUSE_EXPIRY_WARNING` before
    /// it would end, and `ENDED` with the reason, after which the stream
    /// closes. It never keeps the session alive. The token comes in the
    /// graphql-ws `connection_init` payload (`{"authorization": "Bearer …"}`)
    /// or in the session cookie.
    async fn session_status(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = SessionStatus>> {
        let current = ctx
            .data_opt::<CurrentSession>()
            .ok_or(AppError::Unauthenticated(AuthFailure::MissingToken))?;
        let warning = ctx
            .data::<ExpiryWarning>()
            .map_err(|e| AppError::internal(anyhow::anyhow!("{}", e.message)))?;
        let auth = auth_service(ctx)?.clone();
        let watch = Watch {
            end: ctx.data_opt::<ConnectionEnd>().cloned(),
            notices: auth.notifier().subscribe(),
            auth,
            session: current.session.id,
            account: current.account.id,
            warning: warning.0,
            shown: None,
            warned_for: None,
            done: false,
        };
        Ok(stream::unfold(watch, Watch::next))
    }
}

/// One message of `sessionStatus`.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// What this message says.
    pub kind: SessionStatusKind,
    /// When the session ends if left alone (not on `ENDED`).
    pub expires_at: Option<DateTime<Utc>>,
    /// When the idle timeout ends it, unless it is used again.
    pub idle_expires_at: Option<DateTime<Utc>>,
    /// When the absolute timeout ends it, whatever happens.
    pub absolute_expires_at: Option<DateTime<Utc>>,
    /// On `WARNING`: whole seconds left until `expiresAt`.
    pub seconds_left: Option<i64>,
    /// On `ENDED`: the guard's reason (`IDLE_TIMEOUT`, `ABSOLUTE_TIMEOUT`,
    /// `REVOKED`, `SESSION_LIMIT`, `INVALID_TOKEN`, …).
    pub reason: Option<String>,
}

/// The kinds of `sessionStatus` message.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatusKind {
    /// The session's state: sent first, and whenever its expiry moves.
    Current,
    /// The session will end soon unless it is used (`refreshSession`).
    Warning,
    /// The session has ended; the stream closes after this.
    Ended,
}

impl SessionStatus {
    fn of(kind: SessionStatusKind, expiry: &Expiry, seconds_left: Option<i64>) -> Self {
        Self {
            kind,
            expires_at: Some(expiry.expires_at()),
            idle_expires_at: Some(expiry.idle_expires_at),
            absolute_expires_at: Some(expiry.absolute_expires_at),
            seconds_left,
            reason: None,
        }
    }

    fn ended(failure: AuthFailure) -> Self {
        Self {
            kind: SessionStatusKind::Ended,
            expires_at: None,
            idle_expires_at: None,
            absolute_expires_at: None,
            seconds_left: None,
            reason: Some(failure.reason().to_owned()),
        }
    }
}

/// One subscription's state between messages.
struct Watch {
    auth: Arc<AuthService>,
    end: Option<ConnectionEnd>,
    notices: broadcast::Receiver<Notice>,
    session: Uuid,
    account: Uuid,
    warning: TimeDelta,
    /// The expiry last sent.
    shown: Option<Expiry>,
    /// The end a warning was last sent for.
    warned_for: Option<DateTime<Utc>>,
    done: bool,
}

/// How long to wait before re-reading after the database failed.
const RETRY: Duration = Duration::from_secs(1);

impl Watch {
    async fn next(mut self) -> Option<(SessionStatus, Self)> {
        if self.done {
            return None;
        }
        loop {
            let now = self.auth.clock().now();
            // Boxed: the read's future is held only while it runs, not by
            // every subscription while it sleeps.
            let read = Box::pin(self.auth.session_state(self.session, now));
            let expiry = match read.await {
                Err(_) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Ok(SessionState::Ended(failure)) => {
                    self.done = true;
                    if let Some(end) = &self.end {
                        let _ = end.0.set(failure.reason());
                    }
                    return Some((SessionStatus::ended(failure), self));
                }
                Ok(SessionState::Live(expiry)) => expiry,
            };
            if self.shown != Some(expiry) {
                self.shown = Some(expiry);
                return Some((
                    SessionStatus::of(SessionStatusKind::Current, &expiry, None),
                    self,
                ));
            }
            let ends = expiry.expires_at();
            let warn_at = ends - self.warning;
            if now >= warn_at && self.warned_for != Some(ends) {
                self.warned_for = Some(ends);
                // Rounded up: "1 second left" until it is gone.
                let left = (ends - now + TimeDelta::milliseconds(999)).num_seconds();
                let status = SessionStatus::of(SessionStatusKind::Warning, &expiry, Some(left));
                return Some((status, self));
            }
            let next = if now < warn_at { warn_at } else { ends };
            // A little past the instant, so the re-read judges it passed.
            let wait = (next - now).to_std().unwrap_or_default() + Duration::from_millis(1);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.notice() => {}
            }
        }
    }

    /// Waits for a notice about this session (or a backlog too long to
    /// trust), then returns so the session is read again.
    async fn notice(&mut self) {
        loop {
            match self.notices.recv().await {
                Ok(Notice::Session(id)) if id == self.session => return,
                Ok(Notice::Account(id)) if id == self.account => return,
                Ok(Notice::Resync) => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}
