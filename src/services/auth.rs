//! Sign-up, sign-in and everything done with a session. Every use case is
//! judged at the request's one instant, `now`, taken by the guard.

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::{DatabaseConnection, DatabaseTransaction, SqlErr, TransactionTrait};
use uuid::Uuid;

use crate::clock::Clock;
use crate::context::{Account, CurrentSession, SessionRecord};
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::session_policy::{Expiry, SessionPolicy, SessionTimes, Verdict};
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::repo::session_reader::SessionReader;
use crate::repo::{sessions, users};
use crate::services::passwords::Passwords;
use crate::services::throttle::LoginThrottle;

/// The authentication use cases, shared by the guard and the resolvers.
#[derive(Clone)]
pub struct AuthService {
    db: DatabaseConnection,
    reader: SessionReader,
    policy: SessionPolicy,
    passwords: Passwords,
    throttle: LoginThrottle,
    clock: Clock,
}

/// A new session and the token that is its only key, returned once.
pub struct SignedIn {
    pub token: SessionToken,
    pub account: Account,
    pub session: SessionRecord,
    pub expiry: Expiry,
}

/// What `changePassword` did besides changing the password.
pub struct PasswordChanged {
    pub revoked_sessions: u64,
}

impl AuthService {
    /// Wires the service to its database, policy and clock.
    pub fn new(
        db: DatabaseConnection,
        reader: SessionReader,
        policy: SessionPolicy,
        passwords: Passwords,
        throttle: LoginThrottle,
        clock: Clock,
    ) -> Self {
        Self {
            db,
            reader,
            policy,
            passwords,
            throttle,
            clock,
        }
    }

    /// The clock the guard reads once per request.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Creates an account and signs it in, in one transaction. Sign-ups are
    /// counted per address before any hashing.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_new(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        self.throttle.reserve_registration(client.ip, now).await?;
        // Checked before hashing so a taken address costs no argon2 slot; the
        // unique index still decides a race.
        if users::find_by_email(&self.db, &email).await?.is_some() {
            return Err(AppError::EmailTaken);
        }
        let hash = self.passwords.hash(password).await?;
        let token = SessionToken::generate().map_err(AppError::internal)?;
        // The session starts at the request's instant, before the hashing
        // wait: its caps can only come earlier for it.
        let txn = self.db.begin().await?;
        let user = users::insert(&txn, &email, hash, now)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken,
                _ => e.into(),
            })?;
        let session = sessions::insert(&txn, user.id, 0, &token.hash(), client, now)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("new account vanished")))?;
        txn.commit().await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "registered");
        Ok(self.signed_in(token, Account::from(&user), &session))
    }

    /// Checks a password and opens a new session. An unknown e-mail and a
    /// wrong password fail alike, in message and in time, and both count
    /// towards the brute-force limits, before any hashing.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_attempt(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let reservation = self.throttle.reserve(&email, client.ip, now).await?;
        let user = users::find_by_email(&self.db, &email).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(password, stored).await?;
        let Some(user) = user.filter(|_| verified.matched) else {
            tracing::info!("login failed");
            return Err(AppError::InvalidCredentials);
        };
        self.throttle.succeeded(reservation).await?;
        if let Some(hash) = verified.rehash {
            users::rehash_password(&self.db, user.id, hash, now).await?;
            tracing::info!(user_id = %user.id, "password rehashed with current parameters");
        }
        let token = SessionToken::generate().map_err(AppError::internal)?;
        let token_hash = token.hash();
        let version = user.credential_version;
        let insert = sessions::insert(&self.db, user.id, version, &token_hash, client, now);
        let Some(session) = insert.await? else {
            // The password was changed while this one was being checked.
            tracing::info!(user_id = %user.id, "login lost a race with a password change");
            return Err(AppError::InvalidCredentials);
        };
        tracing::info!(user_id = %user.id, session_id = %session.id, "logged in");
        Ok(self.signed_in(token, Account::from(&user), &session))
    }

    /// The guard's check: finds the token's session, judges it at `now`,
    /// records the activity, and reports the expiry the database then holds.
    pub async fn authenticate(
        &self,
        token: &SessionToken,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        let (session, user) = self
            .reader
            .find_with_user(&token.hash())
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let session = SessionRecord::from(&session);
        refuse_unless_active(self.policy.evaluate(now, &times(&session)))?;
        let session = if self.policy.needs_slide(now, session.last_activity_at) {
            self.slide(session, now).await?
        } else {
            session
        };
        Ok(self.current(Account::from(&user), session))
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
    /// exactly like an id that does not exist.
    pub async fn revoke(
        &self,
        current: &CurrentSession,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(SessionRecord, Expiry), AppError> {
        let (txn, at) = self.claim(current, now).await?;
        sessions::revoke(&txn, id, current.account.id, at).await?;
        let session = sessions::find_owned(&txn, id, current.account.id)
            .await?
            .ok_or(AppError::NotFound)?;
        txn.commit().await?;
        tracing::info!(user_id = %current.account.id, session_id = %id, "session revoked");
        let session = SessionRecord::from(&session);
        let expiry = self.expiry(&session);
        Ok((session, expiry))
    }

    /// Signs out the caller's own session, if it is still live.
    pub async fn logout(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (id, at) = (current.session.id, self.write_instant(now));
        if !sessions::revoke_live(&self.db, id, &self.policy, at).await? {
            return Err(self.ended(id, at).await);
        }
        tracing::info!(user_id = %current.account.id, session_id = %id, "logged out");
        Ok(())
    }

    /// Revokes every other live session of the caller; returns how many.
    pub async fn revoke_others(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<u64, AppError> {
        let (txn, at) = self.claim(current, now).await?;
        let (user, keep) = (current.account.id, current.session.id);
        let count = sessions::revoke_others(&txn, user, keep, &self.policy, at).await?;
        txn.commit().await?;
        tracing::info!(user_id = %user, count, "other sessions revoked");
        Ok(count)
    }

    /// The caller's live sessions at `now`, newest first, each with its expiry.
    pub async fn live_sessions(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<Vec<(SessionRecord, Expiry)>, AppError> {
        let sessions = sessions::list_live(&self.db, current.account.id, &self.policy, now).await?;
        Ok(sessions
            .iter()
            .map(SessionRecord::from)
            .map(|s| {
                let expiry = self.expiry(&s);
                (s, expiry)
            })
            .collect())
    }

    /// Replaces the caller's password after checking the current one, and
    /// signs out every other session; the caller's own stays. A wrong current
    /// password counts against the account exactly like a failed login, so a
    /// stolen session is no oracle for it.
    pub async fn change_password(
        &self,
        current: &CurrentSession,
        current_password: String,
        new_password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<PasswordChanged, AppError> {
        let new_password = Password::parse_new(new_password).map_err(AppError::BadUserInput)?;
        let current_password =
            Password::parse_attempt(current_password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let email = Email::parse(&current.account.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        let reservation = self.throttle.reserve(&email, client.ip, now).await?;
        // Re-read so a password changed by another session is the one checked.
        let user = users::find_by_id(&self.db, current.account.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let verified = self
            .passwords
            .verify(current_password, Some(user.password_hash));
        if !verified.await?.matched {
            return Err(AppError::InvalidCredentials);
        }
        self.throttle.succeeded(reservation).await?;
        let hash = self.passwords.hash(new_password).await?;
        let (txn, at) = self.claim(current, now).await?;
        users::change_password(&txn, user.id, hash, at).await?;
        let revoked_sessions =
            sessions::revoke_others(&txn, user.id, current.session.id, &self.policy, at).await?;
        txn.commit().await?;
        tracing::info!(user_id = %user.id, revoked_sessions, "password changed");
        Ok(PasswordChanged { revoked_sessions })
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
        if !sessions::claim_live(&txn, id, &self.policy, at).await? {
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

    /// Moves `last_activity_at` forward to `now` while the session is live,
    /// and returns the session as the database then holds it. A slide that
    /// lost to a later one keeps the later value; one that finds the session
    /// ended refuses with the reason.
    async fn slide(
        &self,
        mut session: SessionRecord,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord, AppError> {
        if sessions::slide(&self.db, session.id, &self.policy, now).await? {
            session.last_activity_at = now;
            return Ok(session);
        }
        let stored = sessions::find(&self.db, session.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let stored = SessionRecord::from(&stored);
        refuse_unless_active(self.policy.evaluate(now, &times(&stored)))?;
        Ok(stored)
    }

    /// Why a session that was live when the guard ran is not live at `now`.
    async fn ended(&self, id: Uuid, now: DateTime<Utc>) -> AppError {
        match sessions::find(&self.db, id).await {
            Ok(Some(session)) => refuse_unless_active(
                self.policy
                    .evaluate(now, &times(&SessionRecord::from(&session))),
            )
            .err()
            // A slide that began earlier can land after the failed write and
            // make the row look live again; the write was refused all the same.
            .unwrap_or(AppError::Unauthenticated(AuthFailure::Revoked)),
            Ok(None) => AppError::Unauthenticated(AuthFailure::InvalidToken),
            Err(err) => err.into(),
        }
    }

    fn expiry(&self, session: &SessionRecord) -> Expiry {
        self.policy
            .expiry(session.created_at, session.last_activity_at)
    }

    fn current(&self, account: Account, session: SessionRecord) -> CurrentSession {
        CurrentSession {
            account,
            expiry: self.expiry(&session),
            session,
        }
    }

    fn signed_in(
        &self,
        token: SessionToken,
        account: Account,
        session: &session::Model,
    ) -> SignedIn {
        let session = SessionRecord::from(session);
        SignedIn {
            token,
            account,
            expiry: self.expiry(&session),
            session,
        }
    }
}

/// `UNAUTHENTICATED` with the verdict's reason, unless the session is live.
fn refuse_unless_active(verdict: Verdict) -> Result<(), AppError> {
    let failure = match verdict {
        Verdict::Active(_) => return Ok(()),
        Verdict::IdleExpired => AuthFailure::IdleTimeout,
        Verdict::AbsoluteExpired => AuthFailure::AbsoluteTimeout,
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
