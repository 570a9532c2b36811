//! A session's life after sign-in: the guard's check on every request,
//! the live status, keep-alive, sign-out and revocation, and the lists an
//! account page shows.

use chrono::{DateTime, Utc};
use entity::security_event;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::{AuthService, refuse_unless_active, times};
use crate::context::{CurrentSession, SessionRecord};
use crate::domain::client::ClientInfo;
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::Expiry;
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::repo::security_events::{self, NewEvent};
use crate::repo::session_reader::GuardRow;
use crate::repo::sessions::{self, Revocation};
use crate::services::expiry;
use crate::session_notifier::Notice;

/// A session as a live subscription sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Live(Expiry),
    Ended(AuthFailure),
}

impl AuthService {
    /// The guard's check: finds the token's session, judges it at `now`,
    /// records the activity unless the request is passive, and reports the
    /// expiry the database then holds.
    pub async fn authenticate(
        &self,
        token: &SessionToken,
        now: DateTime<Utc>,
        passive: bool,
    ) -> Result<CurrentSession, AppError> {
        let GuardRow {
            session: mut record,
            account,
            disabled,
        } = self
            .reader
            .find(&token.hash())
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        if disabled {
            return Err(AppError::Unauthenticated(AuthFailure::AccountDisabled));
        }
        if let Err(refused) = self.judge(&record, now) {
            // The reader's row may predate a slide that kept the session
            // alive: read it again from the primary before refusing.
            let Some(fresh) = sessions::find(&self.db, record.id).await? else {
                return Err(refused);
            };
            record = SessionRecord::from(&fresh);
            if let Err(refused) = self.judge(&record, now) {
                if !record.end_recorded && record.revoked_at.is_none() {
                    expiry::record(&self.db, &self.rules.policies, account.id, &record, now).await;
                }
                return Err(refused);
            }
        }
        let policy = self.policy(&record);
        let due = !passive && policy.needs_slide(now, record.last_activity_at);
        // One slide per session in flight on this node, and none again soon
        // after it landed; the others use the value they read, already
        // judged live at `now`.
        let granularity = policy.slide_granularity();
        let claim = due
            .then(|| self.slides.claim(record.id, now, granularity))
            .flatten();
        let record = match claim {
            Some(claim) => {
                let record = self.slide(record, now).await?;
                claim.landed(record.last_activity_at);
                record
            }
            None => record,
        };
        Ok(self.current(account, record))
    }

    /// A session's state at `now`, read from the primary, for a live
    /// subscription. It slides nothing: holding a tab open is not activity.
    pub async fn session_state(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<SessionState, AppError> {
        let _permit = self
            .live_reads
            .acquire()
            .await
            .map_err(AppError::internal)?;
        let Some(session) = sessions::find(&self.db, id).await? else {
            return Ok(SessionState::Ended(AuthFailure::InvalidToken));
        };
        let session = SessionRecord::from(&session);
        match self.judge(&session, now) {
            Ok(()) => Ok(SessionState::Live(self.expiry(&session))),
            Err(AppError::Unauthenticated(failure)) => Ok(SessionState::Ended(failure)),
            Err(err) => Err(err),
        }
    }

    /// Records activity at `now`, whatever the granularity: the SPA's
    /// keep-alive. It can never revive a session that has ended.
    pub async fn refresh(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        let at = self.write_instant(now);
        let session = self.slide(current.session.clone(), at).await?;
        Ok(self.current(current.account.clone(), session))
    }

    /// Revokes one of the caller's sessions. Anyone else's is `NOT_FOUND`,
    /// exactly like an id that does not exist. Another of the caller's
    /// sessions needs a fresh password.
    pub async fn revoke(
        &self,
        current: &CurrentSession,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(SessionRecord, Expiry), AppError> {
        let own = id == current.session.id;
        if !own {
            self.require_fresh(current, now)?;
        }
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        let revoked = sessions::revoke(&txn, id, user, &self.rules.policies, at).await?;
        if revoked {
            let by = if own {
                "CURRENT_SESSION"
            } else {
                "OTHER_SESSION"
            };
            let event = NewEvent::of(EventKind::SessionRevoked, user, id, at)
                .detail(by)
                .actor(current.session.id);
            security_events::insert(&txn, vec![event]).await?;
        }
        let session = sessions::find_owned(&txn, id, user)
            .await?
            .ok_or(AppError::NotFound)?;
        let ended = revoked.then_some(Notice::Session(id));
        let notices = self.notifier.announce(&txn, ended).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, session_id = %id, "session revoked");
        let session = SessionRecord::from(&session);
        let expiry = self.expiry(&session);
        Ok((session, expiry))
    }

    /// Signs out the caller's own session, if it is still live.
    pub async fn logout(
        &self,
        current: &CurrentSession,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (id, user, at) = (
            current.session.id,
            current.account.id,
            self.write_instant(now),
        );
        let txn = self.db.begin().await?;
        let policies = &self.rules.policies;
        if !sessions::revoke_live(&txn, id, policies, Revocation::Logout, at).await? {
            txn.rollback().await?;
            return Err(self.ended(id, at).await);
        }
        let event = NewEvent::of(EventKind::SignedOut, user, id, at).client(client);
        security_events::insert(&txn, vec![event]).await?;
        let notices = self.notifier.announce(&txn, [Notice::Session(id)]).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, session_id = %id, "logged out");
        Ok(())
    }

    /// Revokes every other live session of the caller; returns how many.
    /// Needs a fresh password.
    pub async fn revoke_others(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<u64, AppError> {
        self.require_fresh(current, now)?;
        let (txn, at) = self.claim(current, now).await?;
        let (user, keep) = (current.account.id, current.session.id);
        let policies = &self.rules.policies;
        let revoked =
            sessions::revoke_others(&txn, user, keep, policies, Revocation::Session, at).await?;
        let events = revoked
            .iter()
            .map(|&id| {
                NewEvent::of(EventKind::SessionRevoked, user, id, at)
                    .detail("OTHER_SESSION")
                    .actor(keep)
            })
            .collect();
        security_events::insert(&txn, events).await?;
        let ended = revoked.iter().copied().map(Notice::Session);
        let notices = self.notifier.announce(&txn, ended).await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user, count = revoked.len(), "other sessions revoked");
        Ok(revoked.len() as u64)
    }

    /// The caller's live sessions at `now`, newest first, each with its expiry.
    pub async fn live_sessions(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<Vec<(SessionRecord, Expiry)>, AppError> {
        let policies = &self.rules.policies;
        let sessions = sessions::list_live(&self.db, current.account.id, policies, now).await?;
        Ok(sessions
            .iter()
            .map(SessionRecord::from)
            .map(|s| {
                let expiry = self.expiry(&s);
                (s, expiry)
            })
            .collect())
    }

    /// The caller's security events, newest first, before a cursor.
    pub async fn security_events(
        &self,
        current: &CurrentSession,
        before: Option<(DateTime<Utc>, Uuid)>,
        limit: u64,
    ) -> Result<Vec<security_event::Model>, AppError> {
        Ok(security_events::page(&self.db, current.account.id, before, limit).await?)
    }

    /// Moves `last_activity_at` forward to `now` while the session is live,
    /// and returns the session as the database then holds it. A slide that
    /// lost to a later one keeps the later value; one that finds the session
    /// ended refuses with the reason.
    async fn slide(
        &self,
        mut session: SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord, AppError> {
        if sessions::slide(&self.db, session.id, &self.rules.policies, now).await? {
            session.last_activity_at = now;
            return Ok(session);
        }
        let stored = sessions::find(&self.db, session.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let stored = SessionRecord::from(&stored);
        refuse_unless_active(self.policy(&stored).evaluate(now, &times(&stored)), &stored)?;
        Ok(stored)
    }
}
