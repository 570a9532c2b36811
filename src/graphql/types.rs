//! The API's output and input types, built from entities but separate from
//! them, so storage can change and no secret can leak through a derive.

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{external_identity, passkey, security_event};
use uuid::Uuid;

use crate::context::{Account, CurrentSession, SessionRecord};
use crate::domain::device;
use crate::domain::passkey::authenticator_name;
use crate::domain::second_factor::{Level, Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::session_policy::Expiry;
use crate::error::AppError;
use crate::graphql::{auth_service, request, verified};
use crate::services::auth::{PasskeyAssertion, SignedIn};
use crate::services::known_devices;
use crate::session_cookie::SessionCookie;

/// An account.
#[derive(SimpleObject)]
pub struct User {
    /// Stable identifier of the account.
    pub id: ID,
    /// The sign-in address, trimmed and lower-cased.
    pub email: String,
    /// Whether `email` was proven to reach the account's owner, by a link
    /// from `register`, `resendVerificationEmail`, `changeEmail` or
    /// `requestPasswordReset`.
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<&Account> for User {
    fn from(account: &Account) -> Self {
        Self {
            id: ID(account.id.to_string()),
            email: account.email.clone(),
            email_verified: account.email_verified,
            created_at: account.created_at,
        }
    }
}

/// A signed-in session on one device or browser.
#[derive(SimpleObject)]
#[graphql(complex)]
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
    /// When a password was last proven on this session: at sign-in, by
    /// `reauthenticate` or by `changePassword`. Sensitive operations need it
    /// within `GATEHOUSE_FRESH_AGE`.
    pub authenticated_at: DateTime<Utc>,
    /// Whether the session lives under the remember-me timeouts. It keeps its
    /// policy for life.
    pub remember_me: bool,
    /// What proved the identity at sign-in, or at the last step-up.
    pub methods: Vec<AuthMethod>,
    /// The authenticator assurance level those give (NIST 800-63B).
    pub assurance_level: AssuranceLevel,
}

#[ComplexObject]
impl Session {
    /// The browser, operating system and kind of device, read from `userAgent`.
    // Parsed only when asked for: it runs regular expressions, and most
    // queries of a session never ask.
    async fn device(&self) -> Device {
        device::Device::from_user_agent(self.user_agent.as_deref()).into()
    }
}

/// A device, as far as its `User-Agent` tells.
#[derive(SimpleObject)]
pub struct Device {
    /// The browser and its major version, e.g. `Chrome 120`.
    pub browser: Option<String>,
    /// The operating system and its version, e.g. `Windows 10`.
    pub os: Option<String>,
    /// Desktop, mobile and so on.
    pub kind: DeviceKind,
}

/// What kind of device a session is on.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A desktop or laptop computer.
    Desktop,
    /// A phone or tablet.
    Mobile,
    /// A games console, TV or other appliance.
    Appliance,
    /// A crawler or other automated client.
    Bot,
    /// The `User-Agent` was missing or unrecognised.
    Unknown,
}

impl From<device::Device> for Device {
    fn from(device: device::Device) -> Self {
        Self {
            browser: device.browser,
            os: device.os,
            kind: match device.kind {
                device::DeviceKind::Desktop => DeviceKind::Desktop,
                device::DeviceKind::Mobile => DeviceKind::Mobile,
                device::DeviceKind::Appliance => DeviceKind::Appliance,
                device::DeviceKind::Bot => DeviceKind::Bot,
                device::DeviceKind::Unknown => DeviceKind::Unknown,
            },
        }
    }
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
            authenticated_at: session.authenticated_at,
            remember_me: session.remember_me,
            methods: session.methods.list().iter().map(|&m| m.into()).collect(),
            assurance_level: session.level.into(),
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

    /// The account's second factor: whether it is on, recovery codes left,
    /// and the browsers that skip it for now.
    async fn second_factor(&self, ctx: &Context<'_>) -> Result<SecondFactorStatus> {
        second_factor_status(ctx, &self.current).await
    }

    /// Whether the account has a password: one made with a passkey has
    /// none, and proves itself again with a passkey.
    async fn has_password(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(auth_service(ctx)?
            .has_password(self.current.account.id)
            .await?)
    }

    /// The account's passkeys, oldest first.
    async fn passkeys(&self, ctx: &Context<'_>) -> Result<Vec<Passkey>> {
        let rows = auth_service(ctx)?.passkeys(self.current.account.id).await?;
        Ok(rows.iter().map(Passkey::from).collect())
    }

    /// The accounts at other providers linked to this one, oldest first.
    async fn external_identities(&self, ctx: &Context<'_>) -> Result<Vec<ExternalIdentity>> {
        let service = auth_service(ctx)?;
        let rows = service.external_identities(self.current.account.id).await?;
        Ok(rows.iter().map(ExternalIdentity::from).collect())
    }

    /// The account's security history, newest first: sign-ins, sign-outs,
    /// revocations, expiries, password changes. Kept for
    /// `GATEHOUSE_EVENT_RETENTION`.
    async fn security_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many events to return: 1 to 100.", default = 20)] first: i32,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<SecurityEventConnection> {
        verified(ctx)?;
        let first = u64::try_from(first)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| AppError::BadUserInput("first must be between 1 and 100".into()))?;
        let before = after.as_deref().map(EventCursor::decode).transpose()?;
        let mut events = auth_service(ctx)?
            .security_events(&self.current, before.map(|c| (c.at, c.id)), first + 1)
            .await?;
        let has_next_page = events.len() as u64 > first;
        events.truncate(first as usize);
        let edges: Vec<SecurityEventEdge> = events
            .iter()
            .map(|event| SecurityEventEdge {
                cursor: EventCursor {
                    at: event.occurred_at,
                    id: event.id,
                }
                .encode(),
                node: SecurityEvent::from(event),
            })
            .collect();
        Ok(SecurityEventConnection {
            page_info: PageInfo {
                has_next_page,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// Every live session of the account, newest first: for a "where you're
    /// signed in" page.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        verified(ctx)?;
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
    /// This client's known-device token for the account. Keep it (it is
    /// not a session) and send it as `knownDevice` with later sign-ins:
    /// password guesses by strangers then cannot lock this client out.
    /// With the session cookie on, it is also set as an HttpOnly cookie.
    pub known_device: Option<String>,
}

impl AuthPayload {
    /// Hands out a new session's token, once.
    pub fn new(signed_in: SignedIn) -> Self {
        let session = &signed_in.session;
        Self {
            known_device: signed_in.device.as_ref().map(|d| d.expose().to_owned()),
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
    /// 8 to 1024 characters, and not too easy to guess: a common password,
    /// or one built from the address, is `PASSWORD_TOO_WEAK`.
    pub password: String,
}

/// Credentials for signing in.
#[derive(InputObject)]
pub struct LoginInput {
    /// The sign-in address, in any case.
    pub email: String,
    /// The account's password.
    pub password: String,
    /// Open the session under the remember-me timeouts (7 days idle, 30 days
    /// absolute by default), if the server allows it.
    #[graphql(default)]
    pub remember_me: bool,
    /// The `knownDevice` token a previous sign-in to this account gave this
    /// client, if it has one. An unknown or foreign one is ignored.
    pub known_device: Option<String>,
}

/// A password (with a code, where the account has a second factor), or a
/// passkey, to prove again.
#[derive(InputObject)]
pub struct ReauthenticateInput {
    /// The account's password.
    pub password: Option<String>,
    /// A passkey instead of the password, from
    /// `beginPasskeyReauthentication`; needs no code.
    pub passkey: Option<PasskeyAssertionInput>,
    /// A code from the authenticator app; needed, or `recoveryCode`, when
    /// the account has a second factor.
    pub totp_code: Option<String>,
    /// One of the account's recovery codes, instead of `totpCode`.
    pub recovery_code: Option<String>,
}

/// The confirmation of an account's deletion.
#[derive(InputObject)]
pub struct DeleteAccountInput {
    /// The account's password.
    pub password: String,
}

/// The result of `reauthenticate`.
#[derive(SimpleObject)]
pub struct ReauthenticatePayload {
    /// The caller's session, with its new `authenticatedAt`.
    pub session: Session,
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
    /// The new password: 8 to 1024 characters, and not too easy to guess
    /// (else `PASSWORD_TOO_WEAK`).
    pub new_password: String,
}

/// Who forgot their password.
#[derive(InputObject)]
pub struct RequestPasswordResetInput {
    /// The account's e-mail address.
    pub email: String,
}

/// A new password, with the token from a reset e-mail.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The `ghr_…` token from the link in the reset e-mail.
    pub token: String,
    /// The new password: 8 to 1024 characters, and not too easy to guess
    /// (else `PASSWORD_TOO_WEAK`).
    pub new_password: String,
}

/// What `resetPassword` did.
#[derive(SimpleObject)]
pub struct ResetPasswordPayload {
    /// The account's address: sign in with it and the new password.
    pub email: String,
    /// How many sessions of the account were signed out (all of them).
    pub revoked_sessions: i32,
}

/// The token from a verification e-mail.
#[derive(InputObject)]
pub struct VerifyEmailInput {
    /// The `ghv_…` token from the link in the verification e-mail.
    pub token: String,
}

/// What `verifyEmail` proved.
#[derive(SimpleObject)]
pub struct VerifyEmailPayload {
    /// The address now verified: the account's own, or the new one it
    /// moved to.
    pub email: String,
}

/// A move to a new e-mail address.
#[derive(InputObject)]
pub struct ChangeEmailInput {
    /// The account's password.
    pub password: String,
    /// The address to move to. The account moves when its verification
    /// link is used.
    pub new_email: String,
}

/// A page of the account's security events, newest first (a Relay connection).
#[derive(SimpleObject)]
pub struct SecurityEventConnection {
    /// The events on this page, each with its cursor.
    pub edges: Vec<SecurityEventEdge>,
    /// Where this page ends, and whether more follow.
    pub page_info: PageInfo,
}

/// One security event and where it sits in the history.
#[derive(SimpleObject)]
pub struct SecurityEventEdge {
    /// Pass as `after` to read the events older than this one.
    pub cursor: String,
    /// The event.
    pub node: SecurityEvent,
}

/// Where a page sits in a connection.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether older events follow this page.
    pub has_next_page: bool,
    /// Whether this page came after another (an `after` cursor was given).
    pub has_previous_page: bool,
    /// The cursor of the page's first edge.
    pub start_cursor: Option<String>,
    /// The cursor of the page's last edge: the next page's `after`.
    pub end_cursor: Option<String>,
}

/// One entry of the account's security history.
#[derive(SimpleObject)]
pub struct SecurityEvent {
    /// Stable identifier of the event.
    pub id: ID,
    /// What happened.
    pub kind: SecurityEventKind,
    /// When it happened. For an expiry, when the timeout ended the session.
    pub occurred_at: DateTime<Utc>,
    /// The session it happened to.
    pub session_id: Option<ID>,
    /// For `SESSION_REVOKED`: who revoked the session.
    pub revoked_by: Option<RevokedBy>,
    /// For `SESSION_EXPIRED`: which timeout ended it.
    pub timeout: Option<Timeout>,
    /// For `SIGNED_IN` and `SESSION_EXPIRED`: whether the session is a
    /// remember-me one.
    pub remember_me: Option<bool>,
    /// The client recorded with the event: the one that signed in, signed
    /// out, proved or changed the password, or deleted the account; for an
    /// expiry, the session's own. Revocations record none (`UNKNOWN`); see
    /// the event of the session that revoked.
    pub device: Device,
    /// That client's address.
    pub ip_address: Option<String>,
    /// For the passkey events: the passkey's name.
    pub passkey_name: Option<String>,
    /// For `PROVIDER_LINKED` and `PROVIDER_UNLINKED`: the provider's id.
    pub provider: Option<String>,
    /// For `SIGNED_IN`, `REAUTHENTICATED` and `SECOND_FACTOR_ENABLED`: what
    /// proved the identity.
    pub methods: Option<Vec<AuthMethod>>,
    /// The assurance level those methods give.
    pub assurance_level: Option<AssuranceLevel>,
}

/// What a security event records.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEventKind {
    /// `register` or `login` opened a session.
    SignedIn,
    /// `reauthenticate` proved the password again.
    Reauthenticated,
    /// `logout` ended a session.
    SignedOut,
    /// A session was revoked; `revokedBy` says by whom.
    SessionRevoked,
    /// A session reached a timeout; `timeout` says which.
    SessionExpired,
    /// `changePassword` replaced the password.
    PasswordChanged,
    /// `resetPassword` replaced the password, with a link sent by e-mail.
    PasswordReset,
    /// `verifyEmail` proved the account's address.
    EmailVerified,
    /// `verifyEmail` moved the account to the new address it proved.
    EmailChanged,
    /// An operator disabled the account.
    AccountDisabled,
    /// An operator enabled the account again.
    AccountEnabled,
    /// `deleteAccount` deleted the account.
    AccountDeleted,
    /// `confirmTotpEnrolment` turned the second factor on.
    SecondFactorEnabled,
    /// The second factor was turned off: `removeSecondFactor`, or support
    /// (`gatehouse user reset-second-factor`).
    SecondFactorRemoved,
    /// `regenerateRecoveryCodes` replaced the recovery codes.
    RecoveryCodesRegenerated,
    /// A passkey was registered; `passkeyName` says which.
    PasskeyAdded,
    /// A passkey was deleted; `passkeyName` says which.
    PasskeyRemoved,
    /// A passkey's signature counter went backwards, so it may have been
    /// cloned; the sign-in with it was refused.
    PasskeyCounterRegressed,
    /// An account at another provider was linked; `provider` says which.
    ProviderLinked,
    /// It was unlinked; `provider` says which.
    ProviderUnlinked,
}

/// A way an identity was proven.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    /// A code from an authenticator app.
    Totp,
    RecoveryCode,
    /// A browser remembered after a second-factor sign-in on it.
    RememberedDevice,
    /// A passkey, with user verification: `AAL2` on its own.
    Passkey,
    /// An account at another identity provider (OpenID Connect).
    Provider,
    /// A code sent to the account's e-mail address.
    EmailCode,
}

impl From<Method> for AuthMethod {
    fn from(method: Method) -> Self {
        match method {
            Method::Password => Self::Password,
            Method::Totp => Self::Totp,
            Method::RecoveryCode => Self::RecoveryCode,
            Method::RememberedDevice => Self::RememberedDevice,
            Method::Passkey => Self::Passkey,
            Method::Provider => Self::Provider,
            Method::EmailCode => Self::EmailCode,
        }
    }
}

/// Authenticator assurance level (NIST 800-63B): `AAL2` needs a second
/// factor besides the password, or a passkey.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "UPPERCASE")]
pub enum AssuranceLevel {
    Aal1,
    Aal2,
}

impl From<Level> for AssuranceLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Aal1 => Self::Aal1,
            Level::Aal2 => Self::Aal2,
        }
    }
}

/// Who revoked a session.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    /// The session itself, with `revokeSession`.
    CurrentSession,
    /// Another session of the account, with `revokeSession` or
    /// `revokeOtherSessions`.
    OtherSession,
    /// `changePassword` from another session.
    PasswordChange,
    /// A newer sign-in went past `GATEHOUSE_MAX_SESSIONS_PER_USER`.
    SessionLimit,
    /// `resetPassword` signed every session out.
    PasswordReset,
    /// A sign-in by e-mail code proved the account's address for the
    /// first time, and took back every way in set up before it.
    AddressClaimed,
    /// An operator disabled the account.
    AccountDisabled,
    /// An operator, with the admin CLI.
    Operator,
}

/// Which timeout ended a session.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// No request for longer than the idle timeout.
    Idle,
    /// The hard cap after sign-in.
    Absolute,
}

impl From<&security_event::Model> for SecurityEvent {
    fn from(event: &security_event::Model) -> Self {
        let kind = match EventKind::parse(&event.kind) {
            Some(EventKind::SignedIn) | None => SecurityEventKind::SignedIn,
            Some(EventKind::Reauthenticated) => SecurityEventKind::Reauthenticated,
            Some(EventKind::SignedOut) => SecurityEventKind::SignedOut,
            Some(EventKind::SessionRevoked) => SecurityEventKind::SessionRevoked,
            Some(EventKind::SessionExpired) => SecurityEventKind::SessionExpired,
            Some(EventKind::PasswordChanged) => SecurityEventKind::PasswordChanged,
            Some(EventKind::PasswordReset) => SecurityEventKind::PasswordReset,
            Some(EventKind::EmailVerified) => SecurityEventKind::EmailVerified,
            Some(EventKind::EmailChanged) => SecurityEventKind::EmailChanged,
            Some(EventKind::AccountDisabled) => SecurityEventKind::AccountDisabled,
            Some(EventKind::AccountEnabled) => SecurityEventKind::AccountEnabled,
            Some(EventKind::AccountDeleted) => SecurityEventKind::AccountDeleted,
            Some(EventKind::SecondFactorEnabled) => SecurityEventKind::SecondFactorEnabled,
            Some(EventKind::SecondFactorRemoved) => SecurityEventKind::SecondFactorRemoved,
            Some(EventKind::RecoveryCodesRegenerated) => {
                SecurityEventKind::RecoveryCodesRegenerated
            }
            Some(EventKind::PasskeyAdded) => SecurityEventKind::PasskeyAdded,
            Some(EventKind::PasskeyRemoved) => SecurityEventKind::PasskeyRemoved,
            Some(EventKind::PasskeyCounterRegressed) => SecurityEventKind::PasskeyCounterRegressed,
            Some(EventKind::ProviderLinked) => SecurityEventKind::ProviderLinked,
            Some(EventKind::ProviderUnlinked) => SecurityEventKind::ProviderUnlinked,
        };
        let provider = matches!(
            kind,
            SecurityEventKind::ProviderLinked | SecurityEventKind::ProviderUnlinked
        )
        .then(|| event.detail.clone())
        .flatten();
        let passkey_name = matches!(
            kind,
            SecurityEventKind::PasskeyAdded
                | SecurityEventKind::PasskeyRemoved
                | SecurityEventKind::PasskeyCounterRegressed
        )
        .then(|| event.detail.clone())
        .flatten();
        let methods = event.methods.as_deref().map(Methods::parse);
        let detail = event.detail.as_deref();
        Self {
            id: ID(event.id.to_string()),
            kind,
            occurred_at: event.occurred_at,
            session_id: event.session_id.map(|id| ID(id.to_string())),
            revoked_by: match detail {
                Some("CURRENT_SESSION") => Some(RevokedBy::CurrentSession),
                Some("OTHER_SESSION") => Some(RevokedBy::OtherSession),
                Some("PASSWORD_CHANGE") => Some(RevokedBy::PasswordChange),
                Some("SESSION_LIMIT") => Some(RevokedBy::SessionLimit),
                Some("PASSWORD_RESET") => Some(RevokedBy::PasswordReset),
                Some("ADDRESS_CLAIMED") => Some(RevokedBy::AddressClaimed),
                Some("ACCOUNT_DISABLED") => Some(RevokedBy::AccountDisabled),
                Some("OPERATOR") => Some(RevokedBy::Operator),
                _ => None,
            },
            timeout: match detail {
                Some("IDLE_TIMEOUT") => Some(Timeout::Idle),
                Some("ABSOLUTE_TIMEOUT") => Some(Timeout::Absolute),
                _ => None,
            },
            remember_me: event.remember_me,
            device: device::Device::from_user_agent(event.user_agent.as_deref()).into(),
            ip_address: event.ip_address.clone(),
            passkey_name,
            provider,
            assurance_level: methods.as_ref().map(|m| m.level().into()),
            methods: methods.map(|m| m.list().iter().map(|&m| m.into()).collect()),
        }
    }
}

/// Where a page of events ends: the last event's instant and id, opaque to
/// clients.
struct EventCursor {
    at: DateTime<Utc>,
    id: Uuid,
}

impl EventCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.timestamp_micros(), self.id))
    }

    fn decode(cursor: &str) -> Result<Self, AppError> {
        let invalid = || AppError::BadUserInput("after is not a cursor from this API".into());
        let text = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(text).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
        // Events are dated by this server's clock: anything outside years
        // 1970 to 9999 is forged, and not every database can compare it.
        let at = micros
            .parse::<i64>()
            .ok()
            .filter(|m| (0..=253_402_300_799_999_999).contains(m))
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self { at, id })
    }
}

/// The account's second factor.
#[derive(SimpleObject)]
pub struct SecondFactorStatus {
    /// Whether a TOTP factor is on.
    pub enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u64,
    /// Browsers that may skip the second factor for now.
    pub remembered_devices: Vec<RememberedDevice>,
}

/// A browser that skips the second factor until `rememberedUntil`.
#[derive(SimpleObject)]
pub struct RememberedDevice {
    /// Pass it to `forgetRememberedDevice`.
    pub id: String,
    /// The browser, as its `User-Agent` told when it was remembered.
    pub device: Device,
    /// When the browser first signed in to the account.
    pub created_at: DateTime<Utc>,
    /// Its last sign-in.
    pub last_used_at: DateTime<Utc>,
    /// When it will be asked for the second factor again.
    pub remembered_until: DateTime<Utc>,
}

/// The second factor of the viewer's account.
pub async fn second_factor_status(
    ctx: &Context<'_>,
    current: &CurrentSession,
) -> Result<SecondFactorStatus> {
    let auth = auth_service(ctx)?;
    let now = request(ctx)?.now;
    let devices = auth.remembered_devices(current, now).await?;
    Ok(SecondFactorStatus {
        enabled: current.account.second_factor,
        recovery_codes_left: auth.recovery_codes_left(current).await?,
        remembered_devices: devices
            .into_iter()
            .map(|d| RememberedDevice {
                id: d.id,
                device: device::Device::from_user_agent(d.user_agent.as_deref()).into(),
                created_at: d.created_at,
                last_used_at: d.last_used_at,
                remembered_until: d.until,
            })
            .collect(),
    })
}

/// How long a browser keeps its known-device cookie: as long as the device
/// is remembered unused.
const DEVICE_MAX_AGE: i64 = known_devices::LIFETIME.num_seconds();

/// The payload of a new session; with cookies on, also sets the session
/// cookie for as long as the session can live, and the known-device cookie.
pub fn signed_in_payload(
    ctx: &Context<'_>,
    signed_in: SignedIn,
    now: DateTime<Utc>,
) -> AuthPayload {
    let mut payload = AuthPayload::new(signed_in);
    if let Some(cookie) = ctx.data_opt::<SessionCookie>() {
        let max_age = (payload.session.absolute_expires_at - now).num_seconds();
        if let Some(value) = cookie.set(&payload.token, max_age) {
            ctx.append_http_header(axum::http::header::SET_COOKIE, value);
        }
        // The device token lives in its HttpOnly cookie only, out of
        // scripts' reach: a remembered browser is bound to it.
        let device = payload.known_device.take();
        if let Some(value) = device.and_then(|d| cookie.set_device(&d, DEVICE_MAX_AGE)) {
            ctx.append_http_header(axum::http::header::SET_COOKIE, value);
        }
    }
    payload
}

/// A passkey on the caller's account.
#[derive(SimpleObject)]
pub struct Passkey {
    /// Stable identifier, for `renamePasskey` and `deletePasskey`.
    pub id: ID,
    /// What its owner called it.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Its last sign-in or step-up.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Synced by its provider to the user's other devices (backed up).
    pub backed_up: bool,
    /// The authenticator's name, where its AAGUID is a known one.
    pub authenticator: Option<String>,
}

impl From<&passkey::Model> for Passkey {
    fn from(row: &passkey::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name.clone(),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            backed_up: row.backed_up,
            authenticator: row.aaguid.and_then(authenticator_name).map(str::to_owned),
        }
    }
}

/// An account at another identity provider, linked to the caller's.
#[derive(SimpleObject)]
pub struct ExternalIdentity {
    /// Stable identifier, for `unlinkProvider`.
    pub id: ID,
    /// The provider's id, as in `signInOptions.providers`.
    pub provider: String,
    /// The provider's last word on its address, for display only: the
    /// link is by the provider's subject, whatever its address becomes.
    pub email: Option<String>,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
    /// Its last sign-in.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&external_identity::Model> for ExternalIdentity {
    fn from(row: &external_identity::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            provider: row.provider.clone(),
            email: row.email.clone(),
            linked_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// The browser's answer to a ceremony that uses a passkey.
#[derive(InputObject)]
pub struct PasskeyAssertionInput {
    /// `PasskeyCeremony.ceremony`.
    pub ceremony: String,
    /// The `PublicKeyCredential`'s `toJSON()`.
    pub credential: Json<serde_json::Value>,
}

impl PasskeyAssertionInput {
    pub fn assertion(self) -> PasskeyAssertion {
        PasskeyAssertion {
            ceremony: self.ceremony,
            credential: self.credential.0,
        }
    }
}
