//! Sign-up, sign-in and everything done with a session.

use chrono::Utc;
use entity::{session, user};
use sea_orm::{DatabaseConnection, SqlErr, TransactionTrait};
use uuid::Uuid;

use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::session_policy::{SessionPolicy, SessionTimes, Verdict};
use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::repo::session_reader::SessionReader;
use crate::repo::sessions::{self, ClientInfo};
use crate::repo::users;
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
}

/// A new session and the token that is its only key, returned once.
pub struct SignedIn {
    pub token: SessionToken,
    pub user: user::Model,
    pub session: session::Model,
}

/// The caller's verified, live session, as the guard hands it to resolvers.
#[derive(Clone, Debug)]
pub struct CurrentSession {
    pub user: user::Model,
    pub session: session::Model,
}

/// What `changePassword` did besides changing the password.
pub struct PasswordChanged {
    pub revoked_sessions: u64,
}

impl AuthService {
    /// Wires the service to its database and policy.
    pub fn new(
        db: DatabaseConnection,
        reader: SessionReader,
        policy: SessionPolicy,
        passwords: Passwords,
        throttle: LoginThrottle,
    ) -> Self {
        Self {
            db,
            reader,
            policy,
            passwords,
            throttle,
        }
    }

    /// The timeout policy in force.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Creates an account and signs it in, in one transaction. Sign-ups are
    /// counted per address before any hashing.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<SignedIn, AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_new(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        self.throttle
            .reserve_registration(client.ip, Utc::now())
            .await?;
        // Checked before hashing so a taken address costs no argon2 slot; the
        // unique index still decides a race.
        if users::find_by_email(&self.db, &email).await?.is_some() {
            return Err(AppError::EmailTaken);
        }
        let hash = self.passwords.hash(password).await?;
        let token = SessionToken::generate().map_err(AppError::internal)?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let user = users::insert(&txn, &email, hash, now)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => AppError::EmailTaken,
                _ => e.into(),
            })?;
        let session = sessions::insert(
            &txn,
            user.id,
            user.credential_version,
            &token.hash(),
            client,
            now,
        )
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("new account vanished")))?;
        txn.commit().await?;
        tracing::info!(user_id = %user.id, session_id = %session.id, "registered");
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }

    /// Checks a password and opens a new session. An unknown e-mail and a
    /// wrong password fail alike, in message and in time, and both count
    /// towards the brute-force limits, before any hashing.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: &ClientInfo,
    ) -> Result<SignedIn, AppError> {
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_attempt(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let reservation = self.throttle.reserve(&email, client.ip, Utc::now()).await?;
        let user = users::find_by_email(&self.db, &email).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(password, stored).await?;
        let Some(mut user) = user.filter(|_| verified.matched) else {
            tracing::info!("login failed");
            return Err(AppError::InvalidCredentials);
        };
        self.throttle.succeeded(reservation).await?;
        if let Some(hash) = verified.rehash {
            users::rehash_password(&self.db, user.id, hash.clone(), Utc::now()).await?;
            user.password_hash = hash;
            tracing::info!(user_id = %user.id, "password rehashed with current parameters");
        }
        let token = SessionToken::generate().map_err(AppError::internal)?;
        let now = Utc::now();
        let Some(session) = sessions::insert(
            &self.db,
            user.id,
            user.credential_version,
            &token.hash(),
            client,
            now,
        )
        .await?
        else {
            // The password was changed while this one was being checked.
            tracing::info!(user_id = %user.id, "login lost a race with a password change");
            return Err(AppError::InvalidCredentials);
        };
        tracing::info!(user_id = %user.id, session_id = %session.id, "logged in");
        Ok(SignedIn {
            token,
            user,
            session,
        })
    }

    /// The guard's check: finds the token's session, applies the policy at
    /// this instant, and records the activity.
    pub async fn authenticate(&self, token: &SessionToken) -> Result<CurrentSession, AppError> {
        let (mut session, user) = self
            .reader
            .find_with_user(&token.hash())
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let now = Utc::now();
        match self.policy.evaluate(now, &times(&session)) {
            Verdict::Active(_) => {}
            Verdict::IdleExpired => {
                return Err(AppError::Unauthenticated(AuthFailure::IdleTimeout));
            }
            Verdict::AbsoluteExpired => {
                return Err(AppError::Unauthenticated(AuthFailure::AbsoluteTimeout));
            }
            Verdict::Revoked => return Err(AppError::Unauthenticated(AuthFailure::Revoked)),
        }
        if self.policy.needs_slide(now, session.last_activity_at) {
            self.slide(&mut session).await?;
        }
        Ok(CurrentSession { user, session })
    }

    /// Records activity now, whatever the granularity: the SPA's keep-alive.
    pub async fn refresh(&self, current: &CurrentSession) -> Result<session::Model, AppError> {
        let mut session = current.session.clone();
        self.slide(&mut session).await?;
        Ok(session)
    }

    /// Revokes one of the caller's sessions. Anyone else's is `NOT_FOUND`,
    /// exactly like an id that does not exist.
    pub async fn revoke(
        &self,
        current: &CurrentSession,
        id: Uuid,
    ) -> Result<session::Model, AppError> {
        let now = Utc::now();
        sessions::revoke(&self.db, id, current.user.id, now).await?;
        let session = sessions::find_owned(&self.db, id, current.user.id)
            .await?
            .ok_or(AppError::NotFound)?;
        tracing::info!(user_id = %current.user.id, session_id = %id, "session revoked");
        Ok(session)
    }

    /// Revokes every other live session of the caller; returns how many.
    pub async fn revoke_others(&self, current: &CurrentSession) -> Result<u64, AppError> {
        let count = sessions::revoke_others(
            &self.db,
            current.user.id,
            current.session.id,
            &self.policy,
            Utc::now(),
        )
        .await?;
        tracing::info!(user_id = %current.user.id, count, "other sessions revoked");
        Ok(count)
    }

    /// The caller's live sessions, newest first.
    pub async fn live_sessions(
        &self,
        current: &CurrentSession,
    ) -> Result<Vec<session::Model>, AppError> {
        Ok(sessions::list_live(&self.db, current.user.id, &self.policy, Utc::now()).await?)
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
    ) -> Result<PasswordChanged, AppError> {
        let new_password = Password::parse_new(new_password).map_err(AppError::BadUserInput)?;
        let current_password =
            Password::parse_attempt(current_password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let email = Email::parse(&current.user.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        let reservation = self.throttle.reserve(&email, client.ip, Utc::now()).await?;
        // Re-read so a password changed by another session is the one checked.
        let user = users::find_by_id(&self.db, current.user.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        if !self
            .passwords
            .verify(current_password, Some(user.password_hash))
            .await?
            .matched
        {
            return Err(AppError::InvalidCredentials);
        }
        self.throttle.succeeded(reservation).await?;
        let hash = self.passwords.hash(new_password).await?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        users::change_password(&txn, user.id, hash, now).await?;
        let revoked_sessions =
            sessions::revoke_others(&txn, user.id, current.session.id, &self.policy, now).await?;
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

    /// Writes `last_activity_at = now` unless the session was revoked
    /// meanwhile, in which case the caller is refused.
    async fn slide(&self, session: &mut session::Model) -> Result<(), AppError> {
        let now = Utc::now();
        if !sessions::touch(&self.db, session.id, now).await? {
            return Err(AppError::Unauthenticated(AuthFailure::Revoked));
        }
        session.last_activity_at = now;
        Ok(())
    }
}

/// The timestamps the policy judges.
pub fn times(session: &session::Model) -> SessionTimes {
    SessionTimes {
        created_at: session.created_at,
        last_activity_at: session.last_activity_at,
        revoked_at: session.revoked_at,
    }
}
