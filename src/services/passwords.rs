//! argon2id hashing and verification, off the async workers and bounded to
//! one hash per core, since each takes 19 MiB and tens of milliseconds.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{Error as HashError, PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::password::Password;
use crate::error::AppError;
use crate::services::hash_pool::HashPool;

/// The outcome of a password check.
#[derive(Debug, Default)]
pub struct Verified {
    pub matched: bool,
    /// A new hash with today's parameters, when the stored one is stale.
    pub rehash: Option<String>,
}

/// Hashes and verifies passwords on the blocking pool.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// One thread per core, with a bounded queue.
    pool: Arc<HashPool>,
    /// Verified against when the account is unknown, so both cases cost the same.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Prepares the hasher, computing the dummy hash once. At most one hash
    /// per core runs at once, and at most `queue` more wait.
    pub async fn new(params: Params, queue: usize) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut passwords = Self {
            params,
            pool: Arc::new(HashPool::new(cores, queue)?),
            dummy_hash: Arc::from(""),
        };
        let dummy = Password::parse_attempt("gatehouse-dummy-password".into())
            .map_err(anyhow::Error::msg)?;
        passwords.dummy_hash = passwords
            .hash(dummy)
            .await
            .map_err(|e| anyhow::anyhow!("cannot compute the dummy hash: {e:?}"))?
            .into();
        Ok(passwords)
    }

    /// A new argon2id PHC string with a fresh random salt.
    pub async fn hash(&self, password: Password) -> Result<String, AppError> {
        let argon = self.argon();
        self.run(move || {
            argon
                .hash_password(password.expose())
                .map(|h| h.to_string())
                .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash: {e}")))
        })
        .await
    }

    /// Checks `password` against `stored`. With no stored hash (an unknown
    /// account) it checks the dummy and fails, taking the same time as a
    /// wrong password. A match on a hash made with other parameters also
    /// yields a new hash to store, computed in the same slot.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verified, AppError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let stale = known && self.needs_rehash(&phc);
        let argon = self.argon();
        self.run(move || {
            let parsed = PasswordHash::new(&phc)
                .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash: {e}")))?;
            match argon.verify_password(password.expose(), &parsed) {
                Ok(()) if known => {
                    let rehash = stale
                        .then(|| {
                            argon
                                .hash_password(password.expose())
                                .map(|h| h.to_string())
                        })
                        .transpose()
                        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 rehash: {e}")))?;
                    Ok(Verified {
                        matched: true,
                        rehash,
                    })
                }
                Ok(()) | Err(HashError::PasswordInvalid) => Ok(Verified::default()),
                Err(e) => Err(AppError::internal(anyhow::anyhow!("argon2 verify: {e}"))),
            }
        })
        .await
    }

    /// Whether a stored hash was made with other parameters than today's, so a
    /// successful sign-in should store a new one.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        parsed.algorithm != Algorithm::Argon2id.ident()
            || parsed.version != Some(Version::V0x13.into())
            || params.m_cost() != self.params.m_cost()
            || params.t_cost() != self.params.t_cost()
            || params.p_cost() != self.params.p_cost()
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Whether hashing is saturated, so a sign-in would be refused anyway.
    pub fn is_saturated(&self) -> bool {
        self.pool.is_full()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        self.pool.run(work).await
    }
}
