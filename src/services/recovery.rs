//! Account recovery and address verification by e-mail: a reset link for a
//! forgotten password, and a link that proves an address.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, SqlErr, TransactionTrait};
use tokio::sync::Semaphore;
use tracing::Instrument;
use uuid::Uuid;

use entity::user;

use crate::context::CurrentSession;
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::SessionPolicies;
use crate::domain::token::{EmailToken, Purpose};
use crate::error::AppError;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::sessions::{self, Revocation};
use crate::repo::{email_tokens, external_identities, known_devices, passkeys, users};
use crate::services::outbox::Outbox;
use crate::services::passwords::Passwords;
use crate::services::throttle::LoginThrottle;
use crate::session_notifier::{Notice, SessionNotifier};

/// Reset requests being looked up at once; past it, SERVICE_UNAVAILABLE
/// for every address alike.
const PENDING_RESET_REQUESTS: usize = 256;

/// The longest wait before a mail request (a reset, a sign-in code) is looked up.
const MAX_JITTER_MS: u64 = 2_000;

pub(crate) fn jitter() -> std::time::Duration {
    let mut bytes = [0u8; 8];
    let random = getrandom::fill(&mut bytes).map_or(0, |()| u64::from_le_bytes(bytes));
    std::time::Duration::from_millis(random % MAX_JITTER_MS)
}

/// The recovery use cases.
#[derive(Clone)]
pub struct Recovery {
    pub db: DatabaseConnection,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    pub outbox: Outbox,
    pub notifier: SessionNotifier,
    pub policies: SessionPolicies,
    pub pending: Arc<Semaphore>,
}

/// What `resetPassword` did.
pub struct PasswordReset {
    pub email: String,
    pub revoked_sessions: usize,
}

impl Recovery {
    /// The limit on reset requests looked up at once.
    pub fn pending_limit() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(PENDING_RESET_REQUESTS))
    }

    /// Sends a reset link if an account has this address. The answer, and
    /// the time it takes, are the same either way: the address is counted
    /// (whether or not it exists), and the lookup runs after the answer.
    pub async fn request_reset(
        &self,
        email: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        self.throttle.reserve_mail(&email, client.ip, now).await?;
        let permit = self
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Overloaded)?;
        let recovery = self.clone();
        let lookup = async move {
            // At a random moment, so the work a real account causes does
            // not line up with the caller's next request.
            tokio::time::sleep(jitter()).await;
            if let Err(err) = recovery.queue_reset(&email, now).await {
                tracing::warn!(error = ?err, "password reset request not queued");
            }
            drop(permit);
        };
        // Its log lines keep the request's id.
        tokio::spawn(lookup.instrument(tracing::Span::current()));
        Ok(())
    }

    async fn queue_reset(&self, email: &Email, now: DateTime<Utc>) -> Result<(), AppError> {
        let Some(user) = users::find_by_email(&self.db, email).await? else {
            tracing::info!("password reset requested for no account");
            return Ok(());
        };
        if user.disabled_at.is_some() {
            tracing::info!(user_id = %user.id, "password reset refused: account disabled");
            return Ok(());
        }
        let txn = self.db.begin().await?;
        self.outbox
            .queue_link(&txn, Purpose::Reset, user.id, &user.email, now)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user.id, "password reset requested");
        Ok(())
    }

    /// Sets a new password with a reset token, in one transaction: uses up
    /// every reset token of the account, signs out every session of it on
    /// every node, proves the address, and records the event.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<PasswordReset, AppError> {
        let token = EmailToken::parse(Purpose::Reset, token).ok_or(AppError::InvalidResetToken)?;
        let new_password = Password::parse_new(new_password).map_err(AppError::BadUserInput)?;
        // Checked before hashing, so a bad token costs no argon2 slot.
        let stored = email_tokens::find_usable(&self.db, &token, now)
            .await?
            .ok_or(AppError::InvalidResetToken)?;
        // Judged against the address the link was sent to; the token stays usable.
        self.passwords
            .require_quality(&new_password, &stored.email)
            .await?;
        if self.passwords.is_saturated() {
            return Err(AppError::Overloaded);
        }
        let hash = self.passwords.hash(new_password).await?;
        let txn = self.db.begin().await?;
        // The account's lock first (a write, so SQLite never upgrades a
        // read); then the token is used up only if no one else did.
        users::lock(&txn, stored.user_id).await?;
        if !email_tokens::consume(&txn, stored.id, now).await? {
            txn.rollback().await?;
            return Err(AppError::InvalidResetToken);
        }
        let user_id = stored.user_id;
        let user = users::find_by_id(&txn, user_id)
            .await?
            .ok_or(AppError::InvalidResetToken)?;
        if user.disabled_at.is_some() {
            txn.rollback().await?;
            return Err(AppError::AccountDisabled);
        }
        users::change_password(&txn, user_id, hash, now).await?;
        // The link reached the account's own address: that proves it.
        if stored.email == user.email {
            users::mark_verified(&txn, user_id, now).await?;
        }
        let revoked = self.take_back(&txn, &user, client, now).await?;
        let notices = self
            .notifier
            .announce(&txn, revoked.iter().copied().map(Notice::Session))
            .await?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        self.forgive_failures(&user).await;
        tracing::info!(user_id = %user_id, revoked_sessions = revoked.len(), "password reset");
        Ok(PasswordReset {
            email: user.email,
            revoked_sessions: revoked.len(),
        })
    }

    /// Clears the account's sign-in failures, best effort: after a reset
    /// the owner may sign in at once, even if a thief had locked it.
    async fn forgive_failures(&self, user: &user::Model) {
        let Ok(email) = Email::parse(&user.email) else {
            return;
        };
        if let Err(err) = self.throttle.forgive(&email, user.id).await {
            tracing::warn!(error = ?err, "could not clear sign-in failures after a reset");
        }
    }

    /// What a reset takes back, in its transaction, with the events that
    /// say so: every other way in, every pending link and every session
    /// (returned), so whoever caused the reset can be signed out for good:
    /// a thief's passkey or provider link, or a stranger's who signed the
    /// address up first. The second factor stays: a reset never skips it.
    async fn take_back(
        &self,
        txn: &DatabaseTransaction,
        user: &user::Model,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, AppError> {
        let user_id = user.id;
        let passkeys = passkeys::delete_all(txn, user_id).await?;
        let providers = external_identities::delete_all(txn, user_id).await?;
        // Whoever knew the old password may have signed in: no client is
        // known to the new one.
        known_devices::forget_all(txn, user_id).await?;
        email_tokens::consume_all(txn, user_id, Purpose::Reset, now).await?;
        email_tokens::consume_changes(txn, user_id, &user.email, now).await?;
        let revoked =
            sessions::revoke_all(txn, user_id, &self.policies, Revocation::PasswordReset, now)
                .await?;
        let mut events =
            vec![NewEvent::of_account(EventKind::PasswordReset, user_id, now).client(client)];
        events.extend(revoked.iter().map(|&id| {
            NewEvent::of(EventKind::SessionRevoked, user_id, id, now).detail("PASSWORD_RESET")
        }));
        events.extend(passkeys.iter().map(|name| {
            NewEvent::of_account(EventKind::PasskeyRemoved, user_id, now).detail(name)
        }));
        events.extend(providers.iter().map(|provider| {
            NewEvent::of_account(EventKind::ProviderUnlinked, user_id, now).detail(provider)
        }));
        security_events::insert(txn, events).await?;
        Ok(revoked)
    }

    /// Sends a new verification link for the caller's address, replacing
    /// older ones; false if the address is already verified.
    pub async fn resend_verification(
        &self,
        current: &CurrentSession,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let account = &current.account;
        if account.email_verified {
            return Ok(false);
        }
        let email = Email::parse(&account.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        self.throttle.reserve_mail(&email, client.ip, now).await?;
        let txn = self.db.begin().await?;
        self.outbox
            .queue_link(&txn, Purpose::Verify, account.id, &account.email, now)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %account.id, "verification e-mail requested");
        Ok(true)
    }

    /// Proves the address a verification token was sent to. For the
    /// account's own address, marks it verified; for a new address asked
    /// for by `changeEmail`, moves the account to it, uses up reset links
    /// sent to the old one, and tells the old one. Returns the address.
    pub async fn verify_email(
        &self,
        token: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<String, AppError> {
        let token =
            EmailToken::parse(Purpose::Verify, token).ok_or(AppError::InvalidVerificationToken)?;
        let stored = email_tokens::find_usable(&self.db, &token, now)
            .await?
            .ok_or(AppError::InvalidVerificationToken)?;
        let user_id = stored.user_id;
        let txn = self.db.begin().await?;
        users::lock(&txn, user_id).await?;
        if !email_tokens::consume(&txn, stored.id, now).await? {
            txn.rollback().await?;
            return Err(AppError::InvalidVerificationToken);
        }
        let user = users::find_by_id(&txn, user_id)
            .await?
            .ok_or(AppError::InvalidVerificationToken)?;
        if user.disabled_at.is_some() {
            txn.rollback().await?;
            return Err(AppError::AccountDisabled);
        }
        let kind = if stored.email == user.email {
            users::mark_verified(&txn, user_id, now).await?;
            EventKind::EmailVerified
        } else {
            let moved = users::change_email(&txn, user_id, &stored.email, now).await;
            if let Err(err) = moved {
                txn.rollback().await?;
                return Err(match err.sql_err() {
                    Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken,
                    _ => err.into(),
                });
            }
            email_tokens::consume_all(&txn, user_id, Purpose::Reset, now).await?;
            // Not counted here: the change of address that this completes
            // was counted against the old address when it was asked for.
            self.outbox
                .queue_email_changed(&txn, &user.email, &stored.email, now)
                .await?;
            EventKind::EmailChanged
        };
        let event = NewEvent::of_account(kind, user_id, now).client(client);
        security_events::insert(&txn, vec![event]).await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user_id, event = kind.as_str(), "e-mail address proven");
        Ok(stored.email)
    }
}
