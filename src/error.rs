//! Everything that can go wrong, and the one place that maps it to a GraphQL
//! `extensions.code` and an HTTP status.

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;
use sea_orm::{DbErr, RuntimeErr};

use crate::domain::password_quality::Weakness;
use crate::domain::query_limits::QueryLimit;

/// Why a request carries no valid session. Sent as `extensions.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    MissingToken,
    InvalidToken,
    IdleTimeout,
    AbsoluteTimeout,
    Revoked,
    /// Revoked because a newer sign-in went past the session limit.
    SessionLimit,
    /// Revoked because the password was reset by e-mail.
    PasswordReset,
    /// The account was disabled by an operator.
    AccountDisabled,
}

impl AuthFailure {
    /// The stable `reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "MISSING_TOKEN",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::AbsoluteTimeout => "ABSOLUTE_TIMEOUT",
            Self::Revoked => "REVOKED",
            Self::SessionLimit => "SESSION_LIMIT",
            Self::PasswordReset => "PASSWORD_RESET",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "Sign-in required",
            Self::InvalidToken => "The session token is not valid",
            Self::IdleTimeout => "The session ended after a period of inactivity",
            Self::AbsoluteTimeout => "The session reached its maximum lifetime",
            Self::Revoked => "The session was signed out",
            Self::SessionLimit => "The session was signed out to make room for a newer sign-in",
            Self::PasswordReset => "The session was signed out because the password was reset",
            Self::AccountDisabled => "The account is disabled",
        }
    }
}

/// What a client needs to finish a sign-in with the second factor. The
/// token is the client's to send back, like a session token.
pub struct SecondFactorChallenge {
    pub token: String,
    /// The methods it may be answered with (`TOTP`, `RECOVERY_CODE`).
    pub methods: Vec<&'static str>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for SecondFactorChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactorChallenge")
            .field("methods", &self.methods)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One error type for the whole service.
///
/// Deliberately not `Display`: async-graphql converts any `Display` type into
/// an error without extensions, so a stray `?` would lose the code. Without
/// it, `?` in a resolver goes through the one `From` below.
#[derive(Debug)]
pub enum AppError {
    Unauthenticated(AuthFailure),
    InvalidCredentials,
    /// A sensitive operation on a session whose password was last proven
    /// longer ago than `GATEHOUSE_FRESH_AGE`.
    ReauthenticationRequired {
        authenticated_at: chrono::DateTime<chrono::Utc>,
        fresh_age: i64,
    },
    BadUserInput(String),
    /// A new password that zxcvbn scores under `GATEHOUSE_PASSWORD_MIN_SCORE`.
    PasswordTooWeak(Box<Weakness>),
    EmailTaken,
    /// A reset token that is unknown, used, expired or replaced.
    InvalidResetToken,
    /// A verification token that is unknown, used, expired or replaced.
    InvalidVerificationToken,
    /// `GATEHOUSE_REQUIRE_VERIFIED_EMAIL` is on and the address is not proven.
    EmailNotVerified,
    /// `GATEHOUSE_REGISTRATION=closed`: accounts come from the CLI only.
    RegistrationClosed,
    /// The right password, for an account an operator disabled.
    AccountDisabled,
    NotFound,
    /// The password was right; the account's second factor must follow,
    /// with `completeSignIn` and this challenge.
    SecondFactorRequired(Box<SecondFactorChallenge>),
    /// A second-factor code that is wrong, used, or not the account's.
    InvalidSecondFactor,
    /// A sign-in challenge that is unknown, used, expired, or spent on
    /// wrong codes: sign in again.
    InvalidChallenge,
    /// The session has not proven the account's second factor: step up
    /// with `reauthenticate` and a code.
    Aal2Required,
    /// `GATEHOUSE_REQUIRE_SECOND_FACTOR=all` and the account has none yet.
    EnrolmentRequired,
    /// Enrolment asked for while a factor is already on.
    SecondFactorAlreadyEnabled,
    /// The account has no second factor for this.
    SecondFactorNotEnabled,
    /// No enrolment is waiting for its first code, or it expired.
    EnrolmentExpired,
    /// A passkey ceremony that is unknown, used, expired, or not this
    /// caller's: begin again.
    InvalidCeremony,
    /// The browser's passkey response failed verification, or names no
    /// passkey of the account.
    InvalidPasskey,
    /// This authenticator already holds a passkey of the account.
    PasskeyAlreadyRegistered,
    /// Removing it would leave the account no way to sign in.
    LastSignInMethod,
    /// A passkey ceremony for an account that has none.
    NoPasskey,
    /// No `GATEHOUSE_WEBAUTHN_RP_ID` is set and the page is not on localhost.
    PasskeysNotConfigured,
    /// No provider of `GATEHOUSE_OIDC_PROVIDERS` has this id.
    UnknownProvider,
    /// The provider could not be reached, or answered with an error.
    ProviderUnavailable,
    /// The provider's answer failed a check: its code, or its ID token's
    /// signature, issuer, audience, expiry or nonce.
    InvalidProviderResponse,
    /// A provider flow that is unknown, used, expired, not this browser's
    /// or not this session's: begin again.
    InvalidProviderFlow,
    /// The provider's address belongs to an account it may not be linked
    /// to by itself: sign in to that account, then link from it.
    LinkRequired,
    /// The provider gave no e-mail address for a new account.
    ProviderEmailMissing,
    /// That account at the provider is linked to another account here.
    IdentityAlreadyLinked,
    /// A redirect URI not in `GATEHOUSE_OIDC_REDIRECT_URIS`.
    RedirectUriNotAllowed,
    /// `GATEHOUSE_EMAIL_SIGN_IN` is off.
    EmailSignInDisabled,
    /// An e-mail sign-in code that is wrong, used, expired, spent on wrong
    /// guesses, or not this challenge's.
    InvalidEmailCode,
    /// Too many password attempts for this account or address, or sign-ups
    /// from this address.
    RateLimited {
        retry_after: u64,
    },
    /// The document is too costly to run.
    QueryRejected(QueryLimit),
    /// The HTTP request itself is unusable (not JSON, not a GraphQL body).
    BadRequest(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A variable that does not coerce to its declared type.
    InvalidVariables(String),
    /// A mutation sent with GET.
    MethodNotAllowed,
    /// The session cookie came on a request a cross-site page could send
    /// without a CORS preflight.
    PreflightRequired,
    /// An automatic persisted query's hash that is not (or no longer) known.
    PersistedQueryNotFound,
    /// In trusted-documents mode, a document outside the manifest.
    DocumentNotTrusted,
    /// The database cannot be reached; nothing was decided.
    Unavailable(DbErr),
    /// Too many password hashes are running or queued; retry shortly.
    Overloaded,
    /// The request ran past `GATEHOUSE_REQUEST_TIMEOUT`; nothing was committed.
    Timeout,
    Internal(anyhow::Error),
}

impl AppError {
    /// The stable `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::ReauthenticationRequired { .. } => "REAUTHENTICATION_REQUIRED",
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::PasswordTooWeak(_) => "PASSWORD_TOO_WEAK",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::InvalidResetToken => "INVALID_RESET_TOKEN",
            Self::InvalidVerificationToken => "INVALID_VERIFICATION_TOKEN",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::RegistrationClosed => "REGISTRATION_CLOSED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::NotFound => "NOT_FOUND",
            Self::SecondFactorRequired(_) => "SECOND_FACTOR_REQUIRED",
            Self::InvalidSecondFactor => "INVALID_SECOND_FACTOR",
            Self::InvalidChallenge => "INVALID_CHALLENGE",
            Self::Aal2Required => "AAL2_REQUIRED",
            Self::EnrolmentRequired => "SECOND_FACTOR_ENROLMENT_REQUIRED",
            Self::SecondFactorAlreadyEnabled => "SECOND_FACTOR_ALREADY_ENABLED",
            Self::SecondFactorNotEnabled => "SECOND_FACTOR_NOT_ENABLED",
            Self::EnrolmentExpired => "ENROLMENT_EXPIRED",
            Self::InvalidCeremony => "INVALID_CEREMONY",
            Self::InvalidPasskey => "INVALID_PASSKEY",
            Self::PasskeyAlreadyRegistered => "PASSKEY_ALREADY_REGISTERED",
            Self::LastSignInMethod => "LAST_SIGN_IN_METHOD",
            Self::NoPasskey => "NO_PASSKEY",
            Self::PasskeysNotConfigured => "PASSKEYS_NOT_CONFIGURED",
            Self::UnknownProvider => "UNKNOWN_PROVIDER",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::InvalidProviderResponse => "INVALID_PROVIDER_RESPONSE",
            Self::InvalidProviderFlow => "INVALID_PROVIDER_FLOW",
            Self::LinkRequired => "LINK_REQUIRED",
            Self::ProviderEmailMissing => "PROVIDER_EMAIL_MISSING",
            Self::IdentityAlreadyLinked => "IDENTITY_ALREADY_LINKED",
            Self::RedirectUriNotAllowed => "REDIRECT_URI_NOT_ALLOWED",
            Self::EmailSignInDisabled => "EMAIL_SIGN_IN_DISABLED",
            Self::InvalidEmailCode => "INVALID_EMAIL_CODE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::QueryRejected(limit) => limit.code(),
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::InvalidVariables(_) => "GRAPHQL_VALIDATION_FAILED",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::PreflightRequired => "PREFLIGHT_REQUIRED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::DocumentNotTrusted => "DOCUMENT_NOT_TRUSTED",
            Self::Unavailable(_) | Self::Overloaded => "SERVICE_UNAVAILABLE",
            Self::Timeout => "TIMEOUT",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// What the caller is told. Internal details never appear here.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(failure) => failure.message().into(),
            Self::InvalidCredentials => "Invalid email or password".into(),
            Self::ReauthenticationRequired { fresh_age, .. } => format!(
                "Confirm your password first: this needs a password proven within \
                 {fresh_age} seconds; call reauthenticate, then retry"
            ),
            Self::BadUserInput(message)
            | Self::BadRequest(message)
            | Self::InvalidVariables(message) => message.clone(),
            Self::PasswordTooWeak(weak) => match &weak.warning {
                Some(warning) => format!("This password is too easy to guess. {warning}"),
                None => "This password is too easy to guess.".into(),
            },
            Self::EmailTaken => "An account with this email already exists".into(),
            Self::InvalidResetToken => {
                "This reset link is not valid: it was used, replaced by a newer one, or has \
                 expired. Ask for a new one"
                    .into()
            }
            Self::InvalidVerificationToken => {
                "This verification link is not valid: it was used, replaced by a newer one, \
                 or has expired. Ask for a new one"
                    .into()
            }
            Self::RegistrationClosed => {
                "Sign-up is closed; ask an administrator for an account".into()
            }
            Self::AccountDisabled => "This account is disabled".into(),
            Self::EmailNotVerified => {
                "Verify your e-mail address first: open the link we sent, or call \
                 resendVerificationEmail"
                    .into()
            }
            Self::NotFound => "Not found".into(),
            Self::SecondFactorRequired(_) => {
                "Enter a code from your authenticator app, or a recovery code: call \
                 completeSignIn with extensions.challenge"
                    .into()
            }
            Self::InvalidSecondFactor => "That code is not right, or was already used".into(),
            Self::InvalidChallenge => {
                "This sign-in has expired or was used; sign in with your password again".into()
            }
            Self::Aal2Required => {
                "Confirm your second factor first: call reauthenticate with your password \
                 and a code"
                    .into()
            }
            Self::EnrolmentRequired => {
                "Set up a second factor first: call beginTotpEnrolment, then \
                 confirmTotpEnrolment"
                    .into()
            }
            Self::SecondFactorAlreadyEnabled => {
                "A second factor is already on; remove it first to enrol a new one".into()
            }
            Self::SecondFactorNotEnabled => "This account has no second factor".into(),
            Self::EnrolmentExpired => {
                "No enrolment is waiting for a code, or it expired; call beginTotpEnrolment again"
                    .into()
            }
            Self::InvalidCeremony => {
                "This passkey request is unknown, used or expired; begin again".into()
            }
            Self::InvalidPasskey => "The passkey could not be verified".into(),
            Self::PasskeyAlreadyRegistered => {
                "This authenticator already holds a passkey for this account".into()
            }
            Self::LastSignInMethod => {
                "This is the account's last way to sign in; add another first".into()
            }
            Self::NoPasskey => "This account has no passkey".into(),
            Self::PasskeysNotConfigured => {
                "Passkeys are not set up on this server for this site: set \
                 GATEHOUSE_WEBAUTHN_RP_ID (the site's domain) and GATEHOUSE_WEBAUTHN_ORIGINS"
                    .into()
            }
            Self::UnknownProvider => "No sign-in provider has this id".into(),
            Self::ProviderUnavailable => {
                "The sign-in provider could not be reached; try again later".into()
            }
            Self::InvalidProviderResponse => {
                "The sign-in provider's answer could not be verified; begin again".into()
            }
            Self::InvalidProviderFlow => {
                "This provider sign-in is unknown, used, expired or was begun elsewhere; \
                 begin again"
                    .into()
            }
            Self::LinkRequired => {
                "An account already has this e-mail address: sign in to it, then link \
                 this provider from a fresh session"
                    .into()
            }
            Self::ProviderEmailMissing => {
                "The provider gave no usable e-mail address; allow the e-mail scope".into()
            }
            Self::IdentityAlreadyLinked => {
                "This account at the provider is linked to another account".into()
            }
            Self::RedirectUriNotAllowed => {
                "This redirect URI is not in GATEHOUSE_OIDC_REDIRECT_URIS".into()
            }
            Self::EmailSignInDisabled => "Sign-in by e-mail code is off on this server".into(),
            Self::InvalidEmailCode => {
                "The code is wrong, used or expired; ask for a new one if needed".into()
            }
            Self::RateLimited { retry_after } => {
                format!("Too many attempts; try again in {retry_after} seconds")
            }
            Self::QueryRejected(limit) => limit.message(),
            Self::PayloadTooLarge => "The request body is too large".into(),
            Self::UnsupportedMediaType => {
                "Send the request as content-type: application/json".into()
            }
            Self::MethodNotAllowed => {
                "Only queries may be sent with GET; send mutations with POST".into()
            }
            Self::PreflightRequired => "A request that carries the session cookie must be a \
                 POST with content-type: application/json, or send the header \
                 gatehouse-preflight"
                .into(),
            // Apollo Client and urql recognise a miss by this exact message.
            Self::PersistedQueryNotFound => "PersistedQueryNotFound".into(),
            Self::DocumentNotTrusted => {
                "This server runs only its trusted documents; this one is not among them".into()
            }
            Self::Unavailable(_) | Self::Overloaded => {
                "The service is temporarily unavailable; try again shortly".into()
            }
            Self::Timeout => "The request took too long and was cancelled; try again".into(),
            Self::Internal(_) => "Internal error".into(),
        }
    }

    /// Wraps any unexpected failure; its details go to the log, never the caller.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// Logs what the caller will not see.
    fn log(&self) {
        match self {
            Self::Internal(err) => tracing::error!(error = ?err, "internal error"),
            Self::Unavailable(err) => tracing::warn!(error = %err, "database unavailable"),
            Self::Overloaded => tracing::warn!("password hashing queue full"),
            Self::Timeout => tracing::warn!("request timed out"),
            _ => {}
        }
    }
}

impl AppError {
    /// The HTTP status of a response carrying this error, as sent with
    /// `application/graphql-response+json`: the one table of it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // Refused before execution, as GraphQL over HTTP asks.
            Self::QueryRejected(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PersistedQueryNotFound | Self::DocumentNotTrusted | Self::InvalidVariables(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PreflightRequired
            | Self::ReauthenticationRequired { .. }
            | Self::EmailNotVerified
            | Self::Aal2Required
            | Self::EnrolmentRequired
            | Self::RegistrationClosed
            | Self::AccountDisabled => StatusCode::FORBIDDEN,
            Self::Unavailable(_) | Self::Overloaded | Self::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // Operation-level failures are ordinary GraphQL errors.
            Self::InvalidCredentials
            | Self::BadUserInput(_)
            | Self::PasswordTooWeak(_)
            | Self::EmailTaken
            | Self::InvalidResetToken
            | Self::InvalidVerificationToken
            | Self::SecondFactorRequired(_)
            | Self::InvalidSecondFactor
            | Self::InvalidChallenge
            | Self::SecondFactorAlreadyEnabled
            | Self::SecondFactorNotEnabled
            | Self::EnrolmentExpired
            | Self::InvalidCeremony
            | Self::InvalidPasskey
            | Self::PasskeyAlreadyRegistered
            | Self::LastSignInMethod
            | Self::NoPasskey
            | Self::PasskeysNotConfigured
            | Self::UnknownProvider
            | Self::ProviderUnavailable
            | Self::InvalidProviderResponse
            | Self::InvalidProviderFlow
            | Self::LinkRequired
            | Self::ProviderEmailMissing
            | Self::IdentityAlreadyLinked
            | Self::RedirectUriNotAllowed
            | Self::EmailSignInDisabled
            | Self::InvalidEmailCode
            | Self::NotFound => StatusCode::OK,
        }
    }

    /// Whether the error refuses the document itself, before it could run.
    /// Sent as `application/json`, such a refusal is a 200, as GraphQL over
    /// HTTP asks for clients that read only the body.
    pub fn refuses_document(&self) -> bool {
        matches!(
            self,
            Self::QueryRejected(_)
                | Self::PersistedQueryNotFound
                | Self::DocumentNotTrusted
                | Self::InvalidVariables(_)
        )
    }

    /// This error as async-graphql reports it outside any resolver, keeping
    /// its status.
    pub fn into_server_error(self) -> async_graphql::ServerError {
        let error = async_graphql::Error::from(self);
        let mut server_error = async_graphql::ServerError::new(error.message, None);
        server_error.source = error.source;
        server_error.extensions = error.extensions;
        server_error
    }
}

/// How an error sets the HTTP status; it travels as the error's `source`,
/// so the status is read from the enum, not looked up from the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorStatus {
    pub status: StatusCode,
    /// See [`AppError::refuses_document`].
    pub refuses_document: bool,
}

impl ErrorStatus {
    /// The status of `error`. One async-graphql raised itself carries no
    /// [`AppError`]: a document that does not parse or validate, or whose
    /// variables cannot be coerced, is refused before execution; an
    /// argument that cannot be coerced fails its field.
    pub fn of(error: &async_graphql::ServerError) -> Self {
        if let Some(status) = error.source::<Self>() {
            return *status;
        }
        match error_code(error) {
            Some("GRAPHQL_VALIDATION_FAILED") => Self {
                status: StatusCode::BAD_REQUEST,
                refuses_document: true,
            },
            _ => Self {
                status: StatusCode::OK,
                refuses_document: false,
            },
        }
    }
}

/// Gives every error a code. Those async-graphql raises itself carry none: a
/// document that does not parse or validate has no path, while an argument
/// that cannot be coerced fails at its field.
pub fn ensure_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        if error_code(error).is_none() {
            let code = if error.path.is_empty() {
                "GRAPHQL_VALIDATION_FAILED"
            } else {
                "BAD_USER_INPUT"
            };
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
}

pub fn error_code(error: &async_graphql::ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(err)
        } else {
            Self::internal(err)
        }
    }
}

/// Whether a database error means "cannot reach or use the database now"
/// (worth a retry) rather than a bug.
fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match &**e {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                // PostgreSQL: connection exceptions (08), a transaction
                // rolled back by a deadlock or serialization failure (40),
                // operator intervention (57, e.g. shutdown); SQLite: busy or
                // locked. Nothing was committed, and a retry may succeed.
                Sqlx::Database(db) => db.code().is_some_and(|code| {
                    ["08", "40", "57"]
                        .iter()
                        .any(|class| code.starts_with(class))
                        // SQLite's extended codes: BUSY (5) and LOCKED (6)
                        // in the low byte, e.g. 517, BUSY_SNAPSHOT.
                        || (code.len() < 5
                            && code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)))
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.log();
        let code = err.code();
        let mut error = async_graphql::Error::new(err.message());
        error.source = Some(std::sync::Arc::new(ErrorStatus {
            status: err.status(),
            refuses_document: err.refuses_document(),
        }));
        error.extend_with(|_, ext| {
            ext.set("code", code);
            match &err {
                AppError::Unauthenticated(failure) => ext.set("reason", failure.reason()),
                AppError::RateLimited { retry_after } => ext.set("retryAfter", *retry_after),
                AppError::ReauthenticationRequired {
                    authenticated_at,
                    fresh_age,
                } => {
                    ext.set("authenticatedAt", authenticated_at.to_rfc3339());
                    ext.set("freshAge", *fresh_age);
                    ext.set("retryAfterMutation", "reauthenticate");
                }
                AppError::SecondFactorRequired(challenge) => {
                    ext.set("challenge", challenge.token.clone());
                    let methods: Vec<async_graphql::Value> = challenge
                        .methods
                        .iter()
                        .map(|m| async_graphql::Value::Enum(async_graphql::Name::new(*m)))
                        .collect();
                    ext.set("methods", async_graphql::Value::List(methods));
                    ext.set("expiresAt", challenge.expires_at.to_rfc3339());
                }
                AppError::PasswordTooWeak(weak) => {
                    ext.set("warning", weak.warning.clone());
                    ext.set("suggestions", weak.suggestions.clone());
                    ext.set("score", weak.score);
                    ext.set("minScore", weak.min_score);
                }
                _ => {}
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One row of the README's error table.
    pub(crate) struct Row {
        pub status: u16,
        pub code: String,
        pub reason: String,
        /// `request`, `field` or `both`.
        pub kind: String,
    }

    /// The rows of the README's error table.
    pub(crate) fn documented() -> Vec<Row> {
        include_str!("../README.md")
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let status = cells.next()?.parse().ok()?;
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let reason = cells.next()?.trim_matches('`');
                let kind = cells.next()?;
                Some(Row {
                    status,
                    code: code.to_owned(),
                    reason: reason.to_owned(),
                    kind: kind.to_owned(),
                })
            })
            .collect()
    }

    /// The rows that document `error`: its code, and its reason if the row names one.
    pub(crate) fn rows_of<'a>(table: &'a [Row], error: &AppError) -> Vec<&'a Row> {
        let reason = match error {
            AppError::Unauthenticated(failure) => failure.reason(),
            _ => "",
        };
        table
            .iter()
            .filter(|row| {
                row.code == error.code() && (row.reason.is_empty() || row.reason == reason)
            })
            .collect()
    }

    /// One error of each kind the table documents.
    pub(crate) fn samples() -> Vec<AppError> {
        vec![
            AppError::Unauthenticated(AuthFailure::IdleTimeout),
            AppError::Unauthenticated(AuthFailure::MissingToken),
            AppError::InvalidCredentials,
            AppError::ReauthenticationRequired {
                authenticated_at: chrono::DateTime::UNIX_EPOCH,
                fresh_age: 600,
            },
            AppError::BadUserInput(String::new()),
            AppError::PasswordTooWeak(Box::new(Weakness {
                score: 0,
                min_score: 3,
                warning: None,
                suggestions: vec![],
            })),
            AppError::EmailTaken,
            AppError::InvalidResetToken,
            AppError::InvalidVerificationToken,
            AppError::EmailNotVerified,
            AppError::RegistrationClosed,
            AppError::AccountDisabled,
            AppError::NotFound,
            AppError::SecondFactorRequired(Box::new(SecondFactorChallenge {
                token: String::new(),
                methods: vec!["TOTP"],
                expires_at: chrono::DateTime::UNIX_EPOCH,
            })),
            AppError::InvalidSecondFactor,
            AppError::InvalidChallenge,
            AppError::Aal2Required,
            AppError::EnrolmentRequired,
            AppError::SecondFactorAlreadyEnabled,
            AppError::SecondFactorNotEnabled,
            AppError::EnrolmentExpired,
            AppError::InvalidCeremony,
            AppError::InvalidPasskey,
            AppError::PasskeyAlreadyRegistered,
            AppError::LastSignInMethod,
            AppError::NoPasskey,
            AppError::PasskeysNotConfigured,
            AppError::UnknownProvider,
            AppError::ProviderUnavailable,
            AppError::InvalidProviderResponse,
            AppError::InvalidProviderFlow,
            AppError::LinkRequired,
            AppError::ProviderEmailMissing,
            AppError::IdentityAlreadyLinked,
            AppError::RedirectUriNotAllowed,
            AppError::EmailSignInDisabled,
            AppError::InvalidEmailCode,
            AppError::RateLimited { retry_after: 1 },
            AppError::QueryRejected(QueryLimit::Depth),
            AppError::QueryRejected(QueryLimit::Complexity),
            AppError::QueryRejected(QueryLimit::Aliases),
            AppError::QueryRejected(QueryLimit::RootFields),
            AppError::QueryRejected(QueryLimit::PasswordChecks),
            AppError::QueryRejected(QueryLimit::FragmentCycle("F".into())),
            AppError::BadRequest(String::new()),
            AppError::PayloadTooLarge,
            AppError::UnsupportedMediaType,
            AppError::InvalidVariables(String::new()),
            AppError::MethodNotAllowed,
            AppError::PreflightRequired,
            AppError::PersistedQueryNotFound,
            AppError::DocumentNotTrusted,
            AppError::Overloaded,
            AppError::Timeout,
            AppError::internal(anyhow::anyhow!("bug")),
        ]
    }

    #[test]
    fn every_error_has_the_status_the_readme_documents() {
        let errors = samples();
        let table = documented();
        assert!(table.len() >= 20, "README error table not found");
        for error in &errors {
            let rows = rows_of(&table, error);
            assert!(!rows.is_empty(), "{} is not documented", error.code());
            for row in rows {
                assert_eq!(row.status, error.status().as_u16(), "{}", error.code());
                // A refused document never ran, so no field could fail.
                if error.refuses_document() {
                    assert_eq!(row.kind, "request", "{}", error.code());
                }
            }
        }
        for row in &table {
            assert!(
                ["request", "field", "both"].contains(&row.kind.as_str()),
                "{}: kind {:?}",
                row.code,
                row.kind
            );
            assert!(
                errors.iter().any(|e| e.code() == row.code),
                "{} is documented but no error has it",
                row.code
            );
        }
    }
}
