//! The periodic purge, run by every node: it records the end of sessions
//! that timed out unobserved, then deletes ended sessions, old security
//! events, expired e-mail tokens and quiet sign-in counters.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::domain::session_policy::SessionPolicies;
use crate::error::AppError;
use crate::repo::{
    email_sign_in_codes, email_tokens, known_devices, passkey_ceremonies, provider_flows,
    security_events, sessions, sign_in_challenges, totp_factors,
};
use crate::services::auth::ENROLMENT_LIFETIME;
use crate::services::throttle::LoginThrottle;
use crate::services::{expiry, known_devices as devices};

/// Expiries recorded per round, so one round stays short.
const EXPIRIES_PER_ROUND: u64 = 500;

/// How long ended things are kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub sessions: Duration,
    pub events: Duration,
}

/// What the purge needs.
pub struct Purge {
    pub db: DatabaseConnection,
    pub throttle: LoginThrottle,
    pub policies: SessionPolicies,
    pub retention: Retention,
    pub interval: Duration,
    pub clock: Clock,
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub expiries_recorded: usize,
    pub sessions: u64,
    pub events: u64,
    pub email_tokens: u64,
    pub known_devices: u64,
    /// Sign-in challenges and passkey ceremonies past their expiry, and TOTP
    /// enrolments never confirmed.
    pub second_factor_leftovers: u64,
}

/// One round at `now`: records unobserved expiries, then deletes sessions
/// that ended more than the session retention ago and events older than
/// the event retention.
pub async fn purge_once(
    db: &DatabaseConnection,
    policies: &SessionPolicies,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<Purged, AppError> {
    let mut purged = Purged::default();
    loop {
        let recorded = expiry::record_unobserved(db, policies, now, EXPIRIES_PER_ROUND).await?;
        purged.expiries_recorded += recorded;
        if (recorded as u64) < EXPIRIES_PER_ROUND {
            break;
        }
    }
    let before = |retention: Duration| {
        TimeDelta::from_std(retention)
            .map(|r| now - r)
            .map_err(AppError::internal)
    };
    purged.sessions = sessions::purge_ended(db, policies, before(retention.sessions)?).await?;
    purged.events = security_events::purge(db, before(retention.events)?).await?;
    purged.email_tokens = email_tokens::purge(db, now).await?;
    purged.known_devices = known_devices::purge(db, now - devices::LIFETIME).await?;
    purged.second_factor_leftovers = sign_in_challenges::purge(db, now).await?
        + totp_factors::purge_pending(db, now - ENROLMENT_LIFETIME).await?
        + passkey_ceremonies::purge(db, now).await?
        + provider_flows::purge(db, now).await?
        + email_sign_in_codes::purge(db, now).await?;
    Ok(purged)
}

impl Purge {
    /// Purges every `interval`, starting at a random point within the first
    /// one so that nodes started together do not purge in step.
    pub async fn run(self) {
        let mut seed = [0u8; 8];
        let jitter = match getrandom::fill(&mut seed) {
            Ok(()) => self
                .interval
                .mul_f64(u64::from_le_bytes(seed) as f64 / u64::MAX as f64),
            Err(_) => self.interval / 2,
        };
        tokio::time::sleep(jitter).await;
        let mut ticks = tokio::time::interval(self.interval);
        loop {
            ticks.tick().await;
            let now = self.clock.now();
            match purge_once(&self.db, &self.policies, self.retention, now).await {
                Ok(purged) if purged == Purged::default() => {
                    tracing::debug!("purge: nothing to do")
                }
                Ok(purged) => tracing::info!(?purged, "purged"),
                Err(err) => tracing::warn!(error = ?err, "purge failed; will retry"),
            }
            if let Err(err) = self.throttle.purge(now).await {
                tracing::warn!(error = ?err, "purging sign-in counters failed; will retry");
            }
        }
    }
}
