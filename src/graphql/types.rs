//! The API's output and input types, built from entities but separate from
//! them, so storage can change and no secret can leak through a derive.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::context::{Account, CurrentSession, SessionRecord};
use crate::domain::session_policy::Expiry;
use crate::graphql::{auth_service, request};
use crate::services::auth::SignedIn;

/// An account.
#[derive(SimpleObject)]
pub struct User {
    /// Stable identifier of the account.
    pub id: ID,
    /// The sign-in address, trimmed and lower-cased.
    pub email: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<&Account> for User {
    fn from(account: &Account) -> Self {
        Self {
            id: ID(account.id.to_string()),
            email: account.email.clone(),
            created_at: account.created_at,
        }
    }
}

/// A signed-in session on one device or browser.
#[derive(SimpleObject)]
pub struct Session {
    /// Stable identifier of the session; pass it to `revokeSession`.
    pub id: ID,
    /// When the session was opened by `login` or `register`.
    pub created_at: DateTime<Utc>,
    /// The last recorded request (recorded at most every few seconds).
    pub last_activity_at: DateTime<Utc>,
    /// When the session ends if no further request is made.
    pub idle_expires_at: DateTime<Utc>,
    /// When the session ends whatever its activity: the hard cap after sign-in.
    pub absolute_expires_at: DateTime<Utc>,
    /// The earlier of `idleExpiresAt` and `absoluteExpiresAt`: refresh before it.
    pub expires_at: DateTime<Utc>,
    /// When the session was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether this is the session making the request.
    pub current: bool,
    /// The `User-Agent` that opened the session.
    pub user_agent: Option<String>,
    /// The client address that opened the session.
    pub ip_address: Option<String>,
}

impl Session {
    /// Describes a session with the expiry the service computed for it.
    pub fn new(session: &SessionRecord, expiry: &Expiry, current_id: Uuid) -> Self {
        Self {
            id: ID(session.id.to_string()),
            created_at: session.created_at,
            last_activity_at: session.last_activity_at,
            idle_expires_at: expiry.idle_expires_at,
            absolute_expires_at: expiry.absolute_expires_at,
            expires_at: expiry.expires_at(),
            revoked_at: session.revoked_at,
            current: session.id == current_id,
            user_agent: session.user_agent.clone(),
            ip_address: session.ip_address.clone(),
        }
    }

    /// Describes the caller's own session, as the guard verified it.
    pub fn of_current(current: &CurrentSession) -> Self {
        Self::new(&current.session, &current.expiry, current.session.id)
    }
}

/// The signed-in user as seen by themselves.
pub struct Viewer {
    current: CurrentSession,
}

impl Viewer {
    /// Wraps the guard's verified session.
    pub fn new(current: CurrentSession) -> Self {
        Self { current }
    }
}

/// The signed-in user as seen by themselves: account, this session, all sessions.
#[Object]
impl Viewer {
    /// The signed-in account.
    async fn user(&self) -> User {
        User::from(&self.current.account)
    }

    /// The session making this request.
    async fn session(&self) -> Session {
        Session::of_current(&self.current)
    }

    /// Every live session of the account, newest first: for a "where you're
    /// signed in" page.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let now = request(ctx)?.now;
        let current_id = self.current.session.id;
        Ok(auth_service(ctx)?
            .live_sessions(&self.current, now)
            .await?
            .iter()
            .map(|(session, expiry)| Session::new(session, expiry, current_id))
            .collect())
    }
}

/// A new session. Keep `token` secret: send it as `Authorization: Bearer <token>`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// The session's bearer token. It is shown only here, only once.
    pub token: String,
    /// The signed-in account.
    pub user: User,
    /// The new session.
    pub session: Session,
}

impl AuthPayload {
    /// Hands out a new session's token, once.
    pub fn new(signed_in: SignedIn) -> Self {
        let session = &signed_in.session;
        Self {
            token: signed_in.token.expose().to_owned(),
            user: User::from(&signed_in.account),
            session: Session::new(session, &signed_in.expiry, session.id),
        }
    }
}

/// The result of `refreshSession`.
#[derive(SimpleObject)]
pub struct RefreshSessionPayload {
    /// When the session now ends if left alone: `session.expiresAt`.
    pub expires_at: DateTime<Utc>,
    /// The refreshed session.
    pub session: Session,
}

/// The result of `revokeSession`.
#[derive(SimpleObject)]
pub struct RevokeSessionPayload {
    /// The revoked session.
    pub session: Session,
}

/// The result of `changePassword`.
#[derive(SimpleObject)]
pub struct ChangePasswordPayload {
    /// The caller's session, which stays signed in.
    pub session: Session,
    /// How many other sessions were signed out.
    pub revoked_sessions: i32,
}

/// Credentials for a new account.
#[derive(InputObject)]
pub struct RegisterInput {
    /// The sign-in address; it is trimmed and lower-cased.
    pub email: String,
    /// 8 to 1024 characters.
    pub password: String,
}

/// Credentials for signing in.
#[derive(InputObject)]
pub struct LoginInput {
    /// The sign-in address, in any case.
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// Which session to revoke.
#[derive(InputObject)]
pub struct RevokeSessionInput {
    /// The `id` of one of the caller's sessions.
    pub session_id: ID,
}

/// A password change.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// The password in use now.
    pub current_password: String,
    /// The new password: 8 to 1024 characters.
    pub new_password: String,
}
