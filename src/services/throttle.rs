//! Brute-force protection. Every password attempt is counted against its
//! account and its client address *before* the password is checked, in the
//! database, so the limits hold for attempts in flight together, across
//! nodes and restarts. A success then clears its account's count and gives
//! its address back the attempt. Sign-ups are counted per address the same
//! way, and never given back.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnAcquireErr, DatabaseConnection, DbErr, TransactionTrait};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::domain::email::Email;
use crate::domain::throttle_policy::{
    Admission, ThrottlePolicies, ThrottlePolicy, ThrottleState, retry_after,
};
use crate::domain::token::TokenHash;
use crate::error::AppError;
use crate::measure;
use crate::repo::throttles;

/// Rounds of compare-and-set before giving up. Each round one contender
/// per key wins, and a key that locks refuses the rest without writing.
const MAX_ROUNDS: usize = 64;

/// The per-account, per-address and sign-up limits.
#[derive(Clone)]
pub struct LoginThrottle {
    db: DatabaseConnection,
    policies: ThrottlePolicies,
    /// Counts in progress at once: a flood of sign-ins contending for one
    /// counter must leave the rest of the pool to everyone else, such as
    /// the guard's activity writes.
    permits: Arc<Semaphore>,
    /// How long a count waits for its turn before SERVICE_UNAVAILABLE.
    wait: Duration,
}

/// Who makes a password attempt, when it is not a stranger.
#[derive(Clone, Copy, Debug)]
pub enum Known<'a> {
    /// A client that signed in to the account before.
    Device(&'a TokenHash),
    /// A session of the account, proving its password again.
    Session(Uuid),
}

/// Attempts counted for one password check, to settle when it is done.
#[must_use = "a reservation is settled by `succeeded`, or stays counted"]
pub struct Reservation {
    account: String,
    address: Option<String>,
}

impl LoginThrottle {
    /// Wires the limits to the database, using at most `connections` of
    /// its pool at once.
    pub fn new(
        db: DatabaseConnection,
        policies: ThrottlePolicies,
        connections: usize,
        wait: Duration,
    ) -> Self {
        Self {
            db,
            policies,
            permits: Arc::new(Semaphore::new(connections.max(1))),
            wait,
        }
    }

    /// Runs `work` once a place is free, within `wait`.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        let waited = tokio::time::timeout(self.wait, self.permits.acquire()).await;
        let Ok(Ok(_permit)) = waited else {
            return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout).into());
        };
        work.await
    }

    /// Counts a password attempt for `email` from `ip`, or refuses it with
    /// `RATE_LIMITED` while either is locked. From a device known to the
    /// account, or on a session of it, the attempt counts against that
    /// device or session alone: strangers' guesses cannot lock its owner
    /// out, nor its own lock anyone else. Nothing is hashed before this.
    pub async fn reserve(
        &self,
        email: &Email,
        ip: Option<IpAddr>,
        known: Option<Known<'_>>,
        now: DateTime<Utc>,
    ) -> Result<Reservation, AppError> {
        let (account, address) = match known {
            Some(Known::Device(hash)) => (format!("device:{}", hash.as_str()), None),
            Some(Known::Session(id)) => (format!("session:{id}"), None),
            None => {
                let address = ip.filter(|_| self.policies.address.is_some());
                (account_key(email), address.map(|ip| address_key("ip", ip)))
            }
        };
        let mut keys = vec![(account.clone(), self.policies.account)];
        keys.extend(address.clone().zip(self.policies.address));
        self.bounded(self.count(&keys, now)).await?;
        Ok(Reservation { account, address })
    }

    /// The password was right: forget the account's count, and give the
    /// address back its attempt (one good password must not wash away
    /// guesses at other accounts).
    pub async fn succeeded(&self, reservation: Reservation) -> Result<(), AppError> {
        self.bounded(async {
            throttles::clear(&self.db, &reservation.account).await?;
            if let Some(address) = &reservation.address {
                throttles::give_back(&self.db, address).await?;
            }
            Ok(())
        })
        .await
    }

    /// Counts a second-factor code for `user` from `ip`, before it is
    /// checked, or refuses it with `RATE_LIMITED` while either is locked.
    /// A code given on a session (step-up, enrolment) counts against that
    /// session alone, as its passwords do: a stolen session cannot lock its
    /// owner's sign-in. See [`LoginThrottle::code_succeeded`].
    pub async fn reserve_code(
        &self,
        user: Uuid,
        ip: Option<IpAddr>,
        on_session: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Reservation, AppError> {
        let account = match on_session {
            Some(id) => format!("{SESSION_CODE}{id}"),
            None => format!("code:{user}"),
        };
        let address = ip
            .zip(self.policies.code_address)
            .filter(|_| on_session.is_none())
            .map(|(ip, policy)| (address_key("code-ip", ip), policy));
        let mut keys = vec![(account.clone(), self.policies.code_account)];
        keys.extend(address.clone());
        self.bounded(self.count(&keys, now)).await?;
        Ok(Reservation {
            account,
            address: address.map(|(key, _)| key),
        })
    }

    /// The code was right: the address gets its attempt back, and a
    /// session's own count is forgotten. The account's count stays, so the
    /// owner's right codes never wash away a guesser's wrong ones; it fades
    /// after a window without attempts, or at a password reset.
    pub async fn code_succeeded(&self, reservation: Reservation) -> Result<(), AppError> {
        self.bounded(async {
            if reservation.account.starts_with(SESSION_CODE) {
                throttles::clear(&self.db, &reservation.account).await?;
            }
            if let Some(address) = &reservation.address {
                throttles::give_back(&self.db, address).await?;
            }
            Ok(())
        })
        .await
    }

    /// A passkey assertion was right: it gives every attempt back, since
    /// unlike a code it cannot be a lucky guess among wrong ones, and a
    /// user signing in with it day after day must never lock herself out.
    pub async fn assertion_succeeded(&self, reservation: Reservation) -> Result<(), AppError> {
        self.bounded(async {
            throttles::give_back(&self.db, &reservation.account).await?;
            if let Some(address) = &reservation.address {
                throttles::give_back(&self.db, address).await?;
            }
            Ok(())
        })
        .await
    }

    /// Counts a successful sign-in of `user`, or refuses it with
    /// `RATE_LIMITED` past the account's hourly number. Only a right
    /// password reaches this, so strangers cannot spend it.
    pub async fn reserve_signin(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), AppError> {
        let key = signin_key(user);
        self.bounded(self.count(&[(key, self.policies.signin)], now))
            .await
            .map(drop)
    }

    /// Counts a passkey sign-in begun from `ip` (each stores a ceremony),
    /// or refuses it past the address's hourly number.
    pub async fn reserve_ceremony(
        &self,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (Some(ip), Some(policy)) = (ip, self.policies.ceremony_address) else {
            return Ok(());
        };
        let key = address_key("ceremony", ip);
        self.bounded(self.count(&[(key, policy)], now))
            .await
            .map(drop)
    }

    /// Counts a sign-up from `ip`, or refuses it while the address is locked.
    pub async fn reserve_registration(
        &self,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let (Some(ip), Some(policy)) = (ip, self.policies.registration) else {
            return Ok(());
        };
        let key = address_key("register", ip);
        self.bounded(self.count(&[(key, policy)], now))
            .await
            .map(drop)
    }

    /// Counts a message to `email` (a link, a notice), asked for from `ip`
    /// if a client asked for it, or refuses it while either is locked.
    /// Counted whether or not an account has the address, so the answer
    /// tells nothing about it.
    pub async fn reserve_mail(
        &self,
        email: &Email,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let mut keys = vec![(mail_key(email.as_str()), self.policies.mail_address)];
        let client = ip.zip(self.policies.mail_client);
        keys.extend(client.map(|(ip, policy)| (address_key("mail-ip", ip), policy)));
        self.bounded(self.count(&keys, now)).await.map(drop)
    }

    /// Counts a link that would move another account to `email`
    /// (`changeEmail`), asked for from `ip`: against a budget of its own at
    /// that address, as large as its main one, so that other accounts can
    /// neither flood it nor spend its owner's reset links.
    pub async fn reserve_mail_invitation(
        &self,
        email: &Email,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let key = format!("mail-move:{}", digest(email));
        let mut keys = vec![(key, self.policies.mail_address)];
        let client = ip.zip(self.policies.mail_client);
        keys.extend(client.map(|(ip, policy)| (address_key("mail-ip", ip), policy)));
        self.bounded(self.count(&keys, now)).await.map(drop)
    }

    /// Forgets the account's failed sign-ins, and its successful ones this
    /// hour: its owner just proved control of the address with a reset
    /// link, and whoever spent them with the old password must not keep
    /// the owner out with the new one.
    pub async fn forgive(&self, email: &Email, user: Uuid) -> Result<(), AppError> {
        self.bounded(async {
            throttles::clear(&self.db, &account_key(email)).await?;
            // Whoever guessed codes with the old password is shut out now.
            throttles::clear(&self.db, &format!("code:{user}")).await?;
            Ok(throttles::clear(&self.db, &signin_key(user)).await?)
        })
        .await
    }

    /// Forgets the account's successful sign-ins this hour: its password
    /// changed, so those who spent them with the old one are shut out.
    pub async fn forget_sign_ins(&self, user: Uuid) -> Result<(), AppError> {
        self.bounded(async { Ok(throttles::clear(&self.db, &signin_key(user)).await?) })
            .await
    }

    /// Deletes counters that have gone quiet and are not locked.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64, AppError> {
        let p = &self.policies;
        let quiet_since = [
            Some(p.account),
            p.address,
            p.registration,
            Some(p.signin),
            Some(p.mail_address),
            p.mail_client,
        ]
        .iter()
        .flatten()
        .map(|policy| policy.window_start(now))
        .min()
        .unwrap_or(now);
        Ok(throttles::purge(&self.db, quiet_since).await?)
    }

    /// Counts one attempt on every key, all or none: read, decide, then
    /// compare-and-set each key in one transaction; a lost race reads again.
    /// Returns each key's new state, in order.
    async fn count(
        &self,
        keys: &[(String, ThrottlePolicy)],
        now: DateTime<Utc>,
    ) -> Result<Vec<ThrottleState>, AppError> {
        let names: Vec<String> = keys.iter().map(|(key, _)| key.clone()).collect();
        for _ in 0..MAX_ROUNDS {
            let rows = throttles::find(&self.db, &names).await?;
            let mut writes = Vec::with_capacity(keys.len());
            for (key, policy) in keys {
                let row = rows.iter().find(|row| &row.key == key);
                match policy.admit(now, row.map(throttles::state)) {
                    Admission::Refused(until) => {
                        tracing::info!(kind = key_kind(key), "attempt refused: locked");
                        return Err(AppError::RateLimited {
                            retry_after: retry_after(now, until).unwrap_or(1),
                        });
                    }
                    Admission::Admitted(state) => writes.push((key, row.map(|r| r.version), state)),
                }
            }
            let txn = self.db.begin().await?;
            let mut won = true;
            for (key, version, state) in &writes {
                if !throttles::compare_and_set(&txn, key, *version, state).await? {
                    won = false;
                    break;
                }
            }
            if won {
                txn.commit().await?;
                for (key, _, state) in &writes {
                    if state.locked_until.is_some_and(|until| until > now) {
                        tracing::warn!(kind = key_kind(key), attempts = state.attempts, "locked");
                        measure::lock_placed(key_kind(key));
                    }
                }
                return Ok(writes.into_iter().map(|(_, _, state)| state).collect());
            }
            txn.rollback().await?;
        }
        Err(AppError::Overloaded)
    }
}

/// Accounts are keyed by a hash of the address, so the table holds no
/// e-mail addresses, not even of accounts that do not exist.
fn account_key(email: &Email) -> String {
    format!("account:{}", digest(email))
}

/// The key of the messages sent to an address (as stored, normalised).
pub fn mail_key(email: &str) -> String {
    format!("mail:{}", hex::encode(Sha256::digest(email.as_bytes())))
}

fn signin_key(user: Uuid) -> String {
    format!("signin:{user}")
}

fn digest(email: &Email) -> String {
    hex::encode(Sha256::digest(email.as_str().as_bytes()))
}

/// An IPv4 address, or the /64 of an IPv6 one: one allocation usually holds
/// a whole /64, and rotating within it must not reset the count.
fn address_key(kind: &str, ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{kind}:{v4}"),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{kind}:{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// The prefix of a session's own count of second-factor codes.
const SESSION_CODE: &str = "code-session:";

fn key_kind(key: &str) -> &str {
    key.split(':').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key("ip", a), "ip:2001:db8:1:2::/64");
        assert_eq!(address_key("ip", a), address_key("ip", b));
        assert_ne!(address_key("ip", a), address_key("ip", other));
    }

    #[test]
    fn ipv4_clients_are_keyed_by_their_address_however_written() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key("ip", v4), "ip:192.0.2.7");
        assert_eq!(address_key("ip", mapped), "ip:192.0.2.7");
        assert_eq!(address_key("register", v4), "register:192.0.2.7");
    }
}
