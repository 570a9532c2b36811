//! The periodic purge of ended sessions and quiet sign-in counters, run by
//! every node.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::domain::session_policy::SessionPolicy;
use crate::error::AppError;
use crate::repo::sessions;
use crate::services::throttle::LoginThrottle;

/// Deletes sessions that ended more than `retention` before `now`; returns
/// how many.
pub async fn purge_once(
    db: &DatabaseConnection,
    policy: &SessionPolicy,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let retention = TimeDelta::from_std(retention).map_err(AppError::internal)?;
    let ended_before = now - retention;
    Ok(sessions::purge_ended(db, policy, ended_before).await?)
}

/// Purges every `interval`, starting at a random point within the first one
/// so that nodes started together do not purge in step.
pub async fn run(
    db: DatabaseConnection,
    throttle: LoginThrottle,
    policy: SessionPolicy,
    retention: Duration,
    interval: Duration,
    clock: Clock,
) {
    let mut seed = [0u8; 8];
    let jitter = match getrandom::fill(&mut seed) {
        Ok(()) => interval.mul_f64(u64::from_le_bytes(seed) as f64 / u64::MAX as f64),
        Err(_) => interval / 2,
    };
    tokio::time::sleep(jitter).await;
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let now = clock.now();
        match purge_once(&db, &policy, retention, now).await {
            Ok(0) => tracing::debug!("purge: nothing to delete"),
            Ok(deleted) => tracing::info!(deleted, "purged ended sessions"),
            Err(err) => tracing::warn!(error = ?err, "purge failed; will retry"),
        }
        if let Err(err) = throttle.purge(now).await {
            tracing::warn!(error = ?err, "purging sign-in counters failed; will retry");
        }
    }
}
