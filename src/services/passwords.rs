//! argon2id hashing and verification, off the async workers and bounded to
//! one hash per core, since each takes 19 MiB and tens of milliseconds.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{Error as HashError, PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::password::Password;
use crate::error::AppError;

/// OWASP's argon2id parameters: m=19456 KiB, t=2, p=1.
pub fn owasp_params() -> Params {
    // Constant, valid parameters: `Params::new` only fails out of range.
    Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid")
}

/// Hashes and verifies passwords on the blocking pool.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    slots: Arc<Semaphore>,
    /// Verified against when the account is unknown, so both cases cost the same.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Prepares the hasher, computing the dummy hash once.
    pub async fn new(params: Params) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut passwords = Self {
            params,
            slots: Arc::new(Semaphore::new(cores)),
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

    /// Whether `password` matches `stored`. With no stored hash (an unknown
    /// account) it verifies against the dummy and answers `false`, taking the
    /// same time as a wrong password.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let argon = self.argon();
        let matched = self
            .run(move || {
                let parsed = PasswordHash::new(&phc)
                    .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash: {e}")))?;
                match argon.verify_password(password.expose(), &parsed) {
                    Ok(()) => Ok(true),
                    Err(HashError::PasswordInvalid) => Ok(false),
                    Err(e) => Err(AppError::internal(anyhow::anyhow!("argon2 verify: {e}"))),
                }
            })
            .await?;
        Ok(known && matched)
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let _slot = self.slots.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(AppError::internal)?
    }
}
