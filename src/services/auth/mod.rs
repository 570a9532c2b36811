//! Proving who someone is and what a session may do, one capability per
//! module: [`sign_in`] (one module per proof, and the one path that opens
//! every session), [`sessions`] (the guard's check, refresh, revocation),
//! and [`account`] (sign-up, password and address changes, deletion).
//! Every use case is judged at the request's one instant, `now`, taken by
//! the guard.

mod account;
mod factors;
mod passkeys;
mod sessions;
mod sign_in;
mod ways_in;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, SqlErr, TransactionTrait};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::clock::Clock;
use crate::context::{Account, CurrentSession, SessionRecord};
use crate::domain::email::Email;
use crate::domain::second_factor::Requirement;
use crate::domain::session_policy::{Expiry, SessionPolicy, SessionRules, SessionTimes, Verdict};
use crate::error::{AppError, AuthFailure};
use crate::repo::session_reader::SessionReader;
use crate::repo::sessions::{self as session_rows, Revocation};
use crate::repo::users;
use crate::services::in_flight::InFlightSlides;
use crate::services::outbox::Outbox;
use crate::services::passwords::Passwords;
use crate::services::providers::Providers;
use crate::services::relying_party::RelyingParty;
use crate::services::secret_box::SecretBox;
use crate::services::throttle::LoginThrottle;
use crate::session_notifier::SessionNotifier;

pub use account::PasswordChanged;
pub use factors::{ENROLMENT_LIFETIME, RememberedDevice, TotpEnrolment, end_factor};
pub use passkeys::{Ceremony, NewPasskey};
pub use sessions::SessionState;
pub use sign_in::SignedIn;
pub use sign_in::email_code::{EmailCodeAttempt, EmailCodeRequest};
pub use sign_in::passkey::PasskeyAssertion;
pub use sign_in::password::LoginAttempt;
pub use sign_in::provider::{ProviderAuthorization, ProviderReturn};
pub use sign_in::second_factor::{ChallengeAnswer, SecondProof};

/// The authentication use cases, shared by the guard and the resolvers.
#[derive(Clone)]
pub struct AuthService {
    pub db: DatabaseConnection,
    pub reader: SessionReader,
    pub rules: SessionRules,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    pub clock: Clock,
    /// Where revocations are announced, for live subscriptions.
    pub notifier: SessionNotifier,
    /// Where e-mails are queued, in the transaction that causes them.
    pub outbox: Outbox,
    /// `GATEHOUSE_REGISTRATION=open`: anyone may sign up.
    pub registration_open: bool,
    /// The second-factor rule and what it needs.
    pub second_factor: SecondFactor,
    /// The site passkeys are made for.
    pub relying_party: RelyingParty,
    /// Other identity providers (OpenID Connect).
    pub providers: Providers,
    /// `GATEHOUSE_EMAIL_SIGN_IN=on`.
    pub email_sign_in: bool,
    /// Mail requests being looked up after their answer (shared with
    /// password resets); past it, SERVICE_UNAVAILABLE for every address.
    pub pending_mail: Arc<Semaphore>,
    /// The sessions whose activity this node is writing now.
    pub slides: InFlightSlides,
    /// Live subscriptions' reads at once: at most half the pool, so that
    /// many timers firing together never starve the requests.
    pub live_reads: Arc<Semaphore>,
}

/// The second-factor rule, TOTP's issuer name, how long a browser may be
/// remembered, and the keys that seal TOTP secrets.
#[derive(Clone, Debug)]
pub struct SecondFactor {
    pub requirement: Requirement,
    pub totp_issuer: String,
    /// `None`: browsers are never remembered.
    pub remember_device: Option<TimeDelta>,
    pub secrets: SecretBox,
}

impl AuthService {
    /// Where revocations are announced, for live subscriptions.
    pub fn notifier(&self) -> &SessionNotifier {
        &self.notifier
    }

    /// The rules sessions live by.
    pub fn rules(&self) -> &SessionRules {
        &self.rules
    }

    /// The clock the guard reads once per request.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Counts a message to `email`; false if its budget is spent, so the
    /// caller goes on without sending it.
    async fn may_mail(&self, email: &Email, now: DateTime<Utc>) -> Result<bool, AppError> {
        match self.throttle.reserve_mail(email, None, now).await {
            Ok(()) => Ok(true),
            Err(AppError::RateLimited { .. }) => {
                tracing::info!("message not sent: the address's hourly budget is spent");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Under a sign-in storm, refuses before any database work, so refused
    /// requests cost almost nothing.
    fn refuse_if_saturated(&self) -> Result<(), AppError> {
        if self.passwords.is_saturated() {
            return Err(AppError::Overloaded);
        }
        Ok(())
    }

    /// Opens a transaction in which the caller's session is live at the
    /// write's instant and cannot be revoked until it ends; refuses with the
    /// reason if it ended after the guard ran. Returns that instant.
    async fn claim(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<(DatabaseTransaction, DateTime<Utc>), AppError> {
        let id = current.session.id;
        let txn = self.db.begin().await?;
        let at = self.write_instant(now);
        // The account first, then its sessions, in every transaction that
        // writes more than one row of it: no two can wait on each other.
        users::lock(&txn, current.account.id).await?;
        if !session_rows::claim_live(&txn, id, &self.rules.policies, at).await? {
            txn.rollback().await?;
            return Err(self.ended(id, at).await);
        }
        Ok((txn, at))
    }

    /// The instant a write to a session is judged at: the request's, or
    /// later when the request has waited since (for a hashing slot, for a
    /// connection), so that the session must still be live when the write
    /// lands, and a revocation is stamped when it happens.
    fn write_instant(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.clock.now().max(now)
    }

    /// Why a session that was live when the guard ran is not live at `now`.
    async fn ended(&self, id: Uuid, now: DateTime<Utc>) -> AppError {
        match session_rows::find(&self.db, id).await {
            Ok(Some(session)) => {
                let session = SessionRecord::from(&session);
                refuse_unless_active(
                    self.policy(&session).evaluate(now, &times(&session)),
                    &session,
                )
                .err()
                // A slide that began earlier can land after the failed write and
                // make the row look live again; the write was refused all the same.
                .unwrap_or(AppError::Unauthenticated(AuthFailure::Revoked))
            }
            Ok(None) => AppError::Unauthenticated(AuthFailure::InvalidToken),
            Err(err) => err.into(),
        }
    }

    /// The verdict on a session at `now`, as a refusal with its reason.
    fn judge(&self, session: &SessionRecord, now: DateTime<Utc>) -> Result<(), AppError> {
        refuse_unless_active(self.policy(session).evaluate(now, &times(session)), session)
    }

    fn policy(&self, session: &SessionRecord) -> &SessionPolicy {
        self.rules.policies.of(session.remember_me)
    }

    fn expiry(&self, session: &SessionRecord) -> Expiry {
        self.policy(session)
            .expiry(session.created_at, session.last_activity_at)
    }

    /// Refuses a sensitive operation unless a password was proven on the
    /// session within the fresh age, saying how to prove it.
    fn require_fresh(&self, current: &CurrentSession, now: DateTime<Utc>) -> Result<(), AppError> {
        let authenticated_at = current.session.authenticated_at;
        if now - authenticated_at < self.rules.fresh_age {
            return Ok(());
        }
        Err(AppError::ReauthenticationRequired {
            authenticated_at,
            fresh_age: self.rules.fresh_age.num_seconds(),
        })
    }

    fn current(&self, account: Account, session: SessionRecord) -> CurrentSession {
        let restriction = self
            .second_factor
            .requirement
            .restriction(account.second_factor, session.level);
        CurrentSession {
            account,
            expiry: self.expiry(&session),
            session,
            restriction,
        }
    }

    /// Refuses a change to the second factor unless a code (not merely a
    /// remembered browser) was proven on the session within the fresh age.
    fn require_fresh_code(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        self.require_fresh(current, now)?;
        if current.session.methods.proved_code() {
            return Ok(());
        }
        Err(AppError::Aal2Required)
    }
}

/// A new account's insert refused by the unique index on `email`: another
/// sign-up took the address meanwhile.
fn email_taken(err: DbErr) -> AppError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken,
        _ => err.into(),
    }
}

/// `UNAUTHENTICATED` with the verdict's reason, unless the session is live.
/// A recorded timeout stands, even if the settings have loosened since.
fn refuse_unless_active(verdict: Verdict, session: &SessionRecord) -> Result<(), AppError> {
    let recorded_timeout = || match session.revoked_reason.as_deref() {
        Some("ABSOLUTE_TIMEOUT") => AuthFailure::AbsoluteTimeout,
        _ => AuthFailure::IdleTimeout,
    };
    let failure = match verdict {
        Verdict::Active(_) if session.end_recorded && session.revoked_at.is_none() => {
            recorded_timeout()
        }
        Verdict::Active(_) => return Ok(()),
        Verdict::IdleExpired => AuthFailure::IdleTimeout,
        Verdict::AbsoluteExpired => AuthFailure::AbsoluteTimeout,
        Verdict::Revoked
            if session.revoked_reason.as_deref() == Some(Revocation::SessionLimit.as_str()) =>
        {
            AuthFailure::SessionLimit
        }
        Verdict::Revoked
            if session.revoked_reason.as_deref() == Some(Revocation::PasswordReset.as_str()) =>
        {
            AuthFailure::PasswordReset
        }
        Verdict::Revoked
            if session.revoked_reason.as_deref() == Some(Revocation::AccountDisabled.as_str()) =>
        {
            AuthFailure::AccountDisabled
        }
        Verdict::Revoked => AuthFailure::Revoked,
    };
    Err(AppError::Unauthenticated(failure))
}

/// The timestamps the policy judges.
fn times(session: &SessionRecord) -> SessionTimes {
    SessionTimes {
        created_at: session.created_at,
        last_activity_at: session.last_activity_at,
        revoked_at: session.revoked_at,
    }
}
