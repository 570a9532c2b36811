//! Brute-force protection: failed sign-ins are counted per account and per
//! client address in the database, so the limits hold across nodes and
//! restarts. Successes never count; a success clears its account's counter.

use chrono::Utc;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use crate::domain::email::Email;
use crate::domain::throttle_policy::{ThrottlePolicy, retry_after};
use crate::error::AppError;
use crate::repo::throttles;

/// The per-account and per-address limits on failed sign-ins.
#[derive(Clone)]
pub struct LoginThrottle {
    db: DatabaseConnection,
    account: ThrottlePolicy,
    address: ThrottlePolicy,
}

impl LoginThrottle {
    /// Wires the limits to the database.
    pub fn new(db: DatabaseConnection, account: ThrottlePolicy, address: ThrottlePolicy) -> Self {
        Self {
            db,
            account,
            address,
        }
    }

    /// Refuses the attempt with `RATE_LIMITED` while the account or the
    /// address is locked. Runs before any hashing, so a locked key costs
    /// nothing; it refuses even the right password, or locking would not
    /// slow guessing at all.
    pub async fn check(&self, email: &Email, ip: Option<&str>) -> Result<(), AppError> {
        let keys: Vec<String> = self.keys(email, ip).map(|(key, _)| key).collect();
        let now = Utc::now();
        match throttles::locked_until(&self.db, &keys, now).await? {
            Some(until) => Err(AppError::RateLimited {
                retry_after: retry_after(now, until).unwrap_or(1),
            }),
            None => Ok(()),
        }
    }

    /// Counts a failure against the account and the address, locking either
    /// that reaches its limit.
    pub async fn record_failure(&self, email: &Email, ip: Option<&str>) -> Result<(), AppError> {
        let now = Utc::now();
        for (key, policy) in self.keys(email, ip) {
            let failures =
                throttles::record_failure(&self.db, &key, now, policy.window_start(now)).await?;
            if let Some(lockout) = policy.lockout_after(failures) {
                throttles::lock(&self.db, &key, now + lockout).await?;
                tracing::warn!(kind = key.split(':').next(), failures, "sign-in locked");
            }
        }
        Ok(())
    }

    /// A successful sign-in clears its account's counter (not the address's:
    /// one good password must not wash away guesses at other accounts).
    pub async fn record_success(&self, email: &Email) -> Result<(), AppError> {
        Ok(throttles::clear(&self.db, &account_key(email)).await?)
    }

    /// Deletes counters that have gone quiet and are not locked.
    pub async fn purge(&self) -> Result<u64, AppError> {
        let now = Utc::now();
        let quiet_since = self
            .account
            .window_start(now)
            .min(self.address.window_start(now));
        Ok(throttles::purge(&self.db, quiet_since, now).await?)
    }

    fn keys<'a>(
        &self,
        email: &Email,
        ip: Option<&'a str>,
    ) -> impl Iterator<Item = (String, ThrottlePolicy)> + 'a {
        let account = (account_key(email), self.account);
        let address = ip.map(|ip| (format!("ip:{ip}"), self.address));
        std::iter::once(account).chain(address)
    }
}

/// Accounts are keyed by a hash of the address, so the table holds no
/// e-mail addresses, not even of accounts that do not exist.
fn account_key(email: &Email) -> String {
    format!(
        "account:{}",
        hex::encode(Sha256::digest(email.as_str().as_bytes()))
    )
}
