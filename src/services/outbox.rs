//! The transactional outbox: each message is written in the same
//! transaction as the change it announces (and the token it carries), so a
//! rolled-back change sends nothing and a committed one loses nothing.
//! The [`Courier`](crate::services::courier::Courier) delivers it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseTransaction;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::token::{EmailToken, Purpose};
use crate::error::AppError;
use crate::mail::templates::{Letters, SecondFactorNotice};
use crate::repo::{email_tokens, outbox, throttles, users};
use crate::services::throttle::mail_key;

/// How long each kind of e-mailed token lives.
#[derive(Clone, Copy, Debug)]
pub struct TokenLifetimes {
    pub reset: Duration,
    pub verify: Duration,
}

/// Queues messages in a caller's transaction, and wakes this node's
/// courier once the caller has committed.
#[derive(Clone)]
pub struct Outbox {
    letters: Arc<Letters>,
    lifetimes: TokenLifetimes,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(letters: Letters, lifetimes: TokenLifetimes) -> Self {
        Self {
            letters: Arc::new(letters),
            lifetimes,
            wake: Arc::new(Notify::new()),
        }
    }

    /// A new `purpose` token for the account, sent to `email` (for a
    /// verification, its own address or the one it asked to move to),
    /// replacing any older one of that purpose, and the message with its link.
    ///
    /// While the address may be sent nothing more, the newest link must keep
    /// working: it stays valid until the address's budget comes back. The
    /// account is locked first, so of links queued together the last sees
    /// every count made before it.
    pub async fn queue_link(
        &self,
        txn: &DatabaseTransaction,
        purpose: Purpose,
        user_id: Uuid,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        users::lock(txn, user_id).await?;
        let spent_until = throttles::find(txn, &[mail_key(email)])
            .await?
            .first()
            .and_then(|row| row.locked_until)
            .filter(|until| *until > now);
        let ttl = match purpose {
            Purpose::Reset => self.lifetimes.reset,
            Purpose::Verify => self.lifetimes.verify,
        };
        let token = EmailToken::generate(purpose).map_err(AppError::internal)?;
        let usual = now + TimeDelta::from_std(ttl).map_err(AppError::internal)?;
        let expires_at = spent_until.map_or(usual, |until| until.max(usual));
        let ttl = (expires_at - now).to_std().unwrap_or(ttl);
        email_tokens::replace(txn, user_id, &token, email, now, expires_at).await?;
        let letter = match purpose {
            Purpose::Reset => self.letters.reset(email, &token, ttl),
            Purpose::Verify => self.letters.verify(email, &token, ttl),
        };
        outbox::insert(txn, letter, now).await?;
        Ok(())
    }

    /// Tells the current address that a move to `new` was asked for.
    pub async fn queue_email_change_requested(
        &self,
        txn: &DatabaseTransaction,
        current: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let letter = self.letters.email_change_requested(current, new);
        outbox::insert(txn, letter, now).await?;
        Ok(())
    }

    /// Tells the old address that the account moved.
    pub async fn queue_email_changed(
        &self,
        txn: &DatabaseTransaction,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        outbox::insert(txn, self.letters.email_changed(old, new), now).await?;
        Ok(())
    }

    /// Tells the account's address what happened to its second factor.
    pub async fn queue_second_factor_notice(
        &self,
        txn: &DatabaseTransaction,
        to: &str,
        notice: SecondFactorNotice,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let letter = self.letters.second_factor_notice(to, notice);
        outbox::insert(txn, letter, now).await?;
        Ok(())
    }

    /// The messages' texts and links.
    pub fn letters(&self) -> &Letters {
        &self.letters
    }

    /// Call after committing: this node's courier sends at once instead of
    /// at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the courier waits on.
    pub fn woken(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
