//! What an operator does with `gatehouse user …` and `gatehouse session …`:
//! the same rules, transactions and notices as the API, with no session.

use chrono::{DateTime, Utc};
use entity::{security_event, session, user};
use sea_orm::{DatabaseConnection, SqlErr, TransactionTrait};
use uuid::Uuid;

use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::SessionPolicies;
use crate::domain::token::Purpose;
use crate::error::AppError;
use crate::mail::templates::SecondFactorNotice;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::sessions::{self, Revocation};
use crate::repo::{known_devices, users};
use crate::services::auth::end_factor;
use crate::services::outbox::Outbox;
use crate::services::passwords::Passwords;
use crate::session_notifier::{Notice, SessionNotifier};

/// Events shown by `gatehouse user show`.
const RECENT_EVENTS: u64 = 20;

/// The operator's use cases.
pub struct Admin {
    pub db: DatabaseConnection,
    pub passwords: Passwords,
    pub notifier: SessionNotifier,
    pub policies: SessionPolicies,
    pub outbox: Outbox,
}

/// An account as `gatehouse user show` tells it.
pub struct AccountReport {
    pub user: user::Model,
    pub sessions: Vec<session::Model>,
    pub events: Vec<security_event::Model>,
}

impl Admin {
    /// Creates an account, whatever `GATEHOUSE_REGISTRATION` says, and
    /// sends its verification link.
    pub async fn create(
        &self,
        email: &str,
        password: String,
        now: DateTime<Utc>,
    ) -> Result<user::Model, AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_new(password).map_err(AppError::BadUserInput)?;
        self.passwords
            .require_quality(&password, email.as_str())
            .await?;
        let hash = self.passwords.hash(password).await?;
        let txn = self.db.begin().await?;
        let user = users::insert(&txn, &email, hash, now)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken,
                _ => e.into(),
            })?;
        self.outbox
            .queue_link(&txn, Purpose::Verify, user.id, &user.email, now)
            .await?;
        txn.commit().await?;
        tracing::info!(user_id = %user.id, "account created by an operator");
        Ok(user)
    }

    /// Accounts by address, a page at a time.
    pub async fn list(
        &self,
        after: Option<&str>,
        filter: Option<&str>,
        limit: u64,
    ) -> Result<Vec<user::Model>, AppError> {
        Ok(users::list(&self.db, after, filter, limit).await?)
    }

    /// The account, its live sessions and its recent events.
    pub async fn show(&self, email: &str, now: DateTime<Utc>) -> Result<AccountReport, AppError> {
        let user = self.find(email).await?;
        let sessions = sessions::list_live(&self.db, user.id, &self.policies, now).await?;
        let events = security_events::page(&self.db, user.id, None, RECENT_EVENTS).await?;
        Ok(AccountReport {
            user,
            sessions,
            events,
        })
    }

    /// Disables the account and ends every session of it, on every node;
    /// returns how many were live. Their holders get `ACCOUNT_DISABLED`.
    pub async fn disable(&self, email: &str, now: DateTime<Utc>) -> Result<usize, AppError> {
        let user = self.find(email).await?;
        let txn = self.db.begin().await?;
        users::lock(&txn, user.id).await?;
        users::set_disabled(&txn, user.id, Some(now), now).await?;
        known_devices::forget_all(&txn, user.id).await?;
        let revoked = sessions::revoke_all(
            &txn,
            user.id,
            &self.policies,
            Revocation::AccountDisabled,
            now,
        )
        .await?;
        let mut events = vec![NewEvent::of_account(
            EventKind::AccountDisabled,
            user.id,
            now,
        )];
        events.extend(revoked.iter().map(|&id| {
            NewEvent::of(EventKind::SessionRevoked, user.id, id, now).detail("ACCOUNT_DISABLED")
        }));
        security_events::insert(&txn, events).await?;
        let notices = self
            .notifier
            .announce(&txn, [Notice::Account(user.id)])
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user.id, revoked_sessions = revoked.len(), "account disabled");
        Ok(revoked.len())
    }

    /// Lets the account sign in again. Sessions ended by the disable stay ended.
    pub async fn enable(&self, email: &str, now: DateTime<Utc>) -> Result<(), AppError> {
        let user = self.find(email).await?;
        let txn = self.db.begin().await?;
        users::set_disabled(&txn, user.id, None, now).await?;
        let event = NewEvent::of_account(EventKind::AccountEnabled, user.id, now);
        security_events::insert(&txn, vec![event]).await?;
        txn.commit().await?;
        tracing::info!(user_id = %user.id, "account enabled");
        Ok(())
    }

    /// Ends every live session of the account; returns how many.
    pub async fn revoke_sessions(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, AppError> {
        let user = self.find(email).await?;
        let txn = self.db.begin().await?;
        users::lock(&txn, user.id).await?;
        let revoked =
            sessions::revoke_all(&txn, user.id, &self.policies, Revocation::Operator, now).await?;
        let events = revoked
            .iter()
            .map(|&id| NewEvent::of(EventKind::SessionRevoked, user.id, id, now).detail("OPERATOR"))
            .collect();
        security_events::insert(&txn, events).await?;
        let notices = self
            .notifier
            .announce(&txn, revoked.iter().copied().map(Notice::Session))
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user.id, revoked_sessions = revoked.len(), "sessions revoked by an operator");
        Ok(revoked.len())
    }

    /// Turns the account's second factor off for its owner who lost it:
    /// its recovery codes and remembered browsers end, every session is
    /// signed out, and the address is told. Returns how many sessions ended.
    pub async fn reset_second_factor(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, AppError> {
        let user = self.find(email).await?;
        if user.second_factor_at.is_none() {
            return Err(AppError::SecondFactorNotEnabled);
        }
        let txn = self.db.begin().await?;
        users::lock(&txn, user.id).await?;
        let notice = SecondFactorNotice::ResetBySupport;
        end_factor(&txn, &self.outbox, user.id, &user.email, notice, now).await?;
        let revoked =
            sessions::revoke_all(&txn, user.id, &self.policies, Revocation::Operator, now).await?;
        let mut events = vec![
            NewEvent::of_account(EventKind::SecondFactorRemoved, user.id, now).detail("SUPPORT"),
        ];
        events.extend(revoked.iter().map(|&id| {
            NewEvent::of(EventKind::SessionRevoked, user.id, id, now).detail("OPERATOR")
        }));
        security_events::insert(&txn, events).await?;
        let notices = self
            .notifier
            .announce(&txn, revoked.iter().copied().map(Notice::Session))
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        self.outbox.wake();
        tracing::info!(user_id = %user.id, revoked_sessions = revoked.len(), "second factor reset by an operator");
        Ok(revoked.len())
    }

    /// Deletes the account and everything of it but its history.
    pub async fn delete(&self, email: &str, now: DateTime<Utc>) -> Result<(), AppError> {
        let user = self.find(email).await?;
        let txn = self.db.begin().await?;
        users::lock(&txn, user.id).await?;
        let event =
            NewEvent::of_account(EventKind::AccountDeleted, user.id, now).detail("OPERATOR");
        security_events::insert(&txn, vec![event]).await?;
        users::delete(&txn, user.id).await?;
        let notices = self
            .notifier
            .announce(&txn, [Notice::Account(user.id)])
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(user_id = %user.id, "account deleted by an operator");
        Ok(())
    }

    /// Ends one session if it is live; `NOT_FOUND` for an unknown id.
    /// Returns whether it was live.
    pub async fn revoke_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, AppError> {
        let session = sessions::find(&self.db, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let txn = self.db.begin().await?;
        users::lock(&txn, session.user_id).await?;
        let revoked =
            sessions::revoke_live(&txn, id, &self.policies, Revocation::Operator, now).await?;
        if revoked {
            let event = NewEvent::of(EventKind::SessionRevoked, session.user_id, id, now)
                .detail("OPERATOR");
            security_events::insert(&txn, vec![event]).await?;
        }
        let notices = self
            .notifier
            .announce(&txn, revoked.then_some(Notice::Session(id)))
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(session_id = %id, revoked, "session revoked by an operator");
        Ok(revoked)
    }

    async fn find(&self, email: &str) -> Result<user::Model, AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        users::find_by_email(&self.db, &email)
            .await?
            .ok_or(AppError::NotFound)
    }
}
