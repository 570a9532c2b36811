//! Known devices (OWASP's device cookies): a client that signed in to an
//! account before keeps a token, and its password attempts for that
//! account are counted apart from strangers'. Guessing by strangers then
//! locks only strangers out, never the owner on a device they used.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::domain::email::Email;
use crate::domain::token::DeviceToken;
use crate::error::AppError;
use crate::repo::known_devices;

/// A device not used for this long is a stranger again.
pub const LIFETIME: TimeDelta = TimeDelta::days(90);

/// Devices kept per account; signing in on one more forgets the least
/// recently used.
const PER_ACCOUNT: u64 = 20;

/// The token `raw`, if it is a live device of the account at `email`.
/// Anything else (malformed, unknown, stale, another account's) is no
/// device at all: the attempt is a stranger's.
pub async fn recognise(
    db: &impl ConnectionTrait,
    email: &Email,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DeviceToken>, AppError> {
    let Some(token) = raw.and_then(DeviceToken::parse) else {
        return Ok(None);
    };
    let owner = known_devices::owner(db, &token.hash(), now - LIFETIME).await?;
    Ok(owner
        .filter(|(_, address)| address == email.as_str())
        .map(|_| token))
}

/// After a successful sign-in: the device it came from, now known to the
/// account (`known` if it already was, else a new one).
pub async fn remember(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    known: Option<DeviceToken>,
    now: DateTime<Utc>,
) -> Result<DeviceToken, AppError> {
    if let Some(token) = known {
        known_devices::touch(db, &token.hash(), now).await?;
        return Ok(token);
    }
    let token = DeviceToken::generate().map_err(AppError::internal)?;
    known_devices::insert(db, user_id, &token.hash(), PER_ACCOUNT, now).await?;
    Ok(token)
}
