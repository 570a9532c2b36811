//! argon2id hashing and verification, off the async workers and bounded to
//! one hash per core, since each takes 19 MiB and tens of milliseconds; and
//! the quality check of a new password, on the same threads and bounds.

use std::cell::RefCell;
use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::domain::password::Password;
use crate::domain::password_quality::{self, MinScore, SCORED_CHARS};
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
    /// The lowest zxcvbn score a new password may have.
    min_score: MinScore,
}

impl Passwords {
    /// Prepares the hasher, computing the dummy hash once. At most one hash
    /// per core runs at once, and at most `queue` more wait. New passwords
    /// must score at least `min_score`.
    pub async fn new(params: Params, queue: usize, min_score: MinScore) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut passwords = Self {
            params,
            pool: Arc::new(HashPool::new(cores, queue)?),
            dummy_hash: Arc::from(""),
            min_score,
        };
        let dummy = Password::parse_attempt("gatehouse-dummy-password".into())
            .map_err(anyhow::Error::msg)?;
        passwords.dummy_hash = passwords
            .hash(dummy)
            .await
            .map_err(|e| anyhow::anyhow!("cannot compute the dummy hash: {e:?}"))?
            .into();
        if !min_score.is_off() {
            // zxcvbn builds its dictionaries on first use (15 ms): at
            // start, not in the first sign-up.
            let warm = passwords.run(|| Ok(zxcvbn::zxcvbn("gatehouse", &[]).score()));
            warm.await
                .map_err(|e| anyhow::anyhow!("cannot load zxcvbn: {e:?}"))?;
        }
        Ok(passwords)
    }

    /// A new argon2id PHC string with a fresh random salt.
    pub async fn hash(&self, password: Password) -> Result<String, AppError> {
        let argon = self.argon();
        self.run(move || new_hash(&argon, password.expose())).await
    }

    /// Refuses a new password that is too easy to guess for the account at
    /// `email` (`PASSWORD_TOO_WEAK`, with zxcvbn's feedback). Only its first
    /// [`SCORED_CHARS`] characters are judged, on a hashing thread: up to
    /// tens of milliseconds for a hostile one, so it waits its turn like a
    /// hash. The answer depends on nothing but the two, so it reveals
    /// nothing about other accounts.
    pub async fn require_quality(&self, password: &Password, email: &str) -> Result<(), AppError> {
        if self.min_score.is_off() {
            return Ok(());
        }
        let (scored, email, min) = (
            password.prefix(SCORED_CHARS),
            email.to_owned(),
            self.min_score,
        );
        self.run(move || {
            password_quality::judge(&scored, &email, min)
                .map_err(|weak| AppError::PasswordTooWeak(Box::new(weak)))
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
        // An account without a password is checked like an unknown one:
        // against the dummy hash, in the same time, and never matches.
        let stored = stored.filter(|hash| hash != entity::user::NO_PASSWORD);
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let stale = known && self.needs_rehash(&phc);
        let argon = self.argon();
        self.run(move || {
            let matched = matches(&phc, password.expose())? && known;
            let rehash = (matched && stale)
                .then(|| new_hash(&argon, password.expose()))
                .transpose()?;
            Ok(Verified { matched, rehash })
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

thread_local! {
    /// The hashing thread's argon2 memory, reused by every hash it runs.
    /// A fresh 19 MiB per hash left glibc keeping freed copies in several
    /// arenas: about 200 MiB held after a login flood.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` and `salt` with `argon`'s settings, in this
/// thread's memory.
fn digest(argon: &Argon2<'_>, password: &[u8], salt: &[u8]) -> Result<Output, AppError> {
    let failed = |e: String| AppError::internal(anyhow::anyhow!("argon2: {e}"));
    let params = argon.params();
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out
        .get_mut(..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN))
        .ok_or_else(|| failed("output length".into()))?;
    MEMORY
        .with_borrow_mut(|blocks| {
            blocks.resize(params.block_count(), Block::new());
            argon.hash_password_into_with_memory(password, salt, &mut *out, blocks.as_mut_slice())
        })
        .map_err(|e| failed(e.to_string()))?;
    Output::new(out).map_err(|e| failed(e.to_string()))
}

/// A PHC string for `password` under a fresh random salt.
fn new_hash(argon: &Argon2<'_>, password: &[u8]) -> Result<String, AppError> {
    let failed = |e: String| AppError::internal(anyhow::anyhow!("argon2 hash: {e}"));
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    getrandom::fill(&mut salt).map_err(|e| failed(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| failed(e.to_string()))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(e.to_string()))?),
        hash: Some(digest(argon, password, &salt)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, compared in
/// constant time (`Output`'s equality).
fn matches(stored: &str, password: &[u8]) -> Result<bool, AppError> {
    let failed = |e: String| AppError::internal(anyhow::anyhow!("stored hash: {e}"));
    let parsed = PasswordHash::new(stored).map_err(|e| failed(e.to_string()))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(failed("no salt or hash".into()));
    };
    let algorithm =
        Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| failed(e.to_string()))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| failed(e.to_string()))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| failed(e.to_string()))?;
    let argon = Argon2::new(algorithm, version, params);
    Ok(digest(&argon, password, salt)? == *expected)
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    fn small() -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own() {
        let argon = small();
        let ours = new_hash(&argon, b"correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"wrong horse", &parsed).is_err());

        let theirs = argon.hash_password(b"correct horse").unwrap().to_string();
        assert!(matches(&theirs, b"correct horse").unwrap());
        assert!(!matches(&theirs, b"wrong horse").unwrap());
    }

    #[test]
    fn the_memory_follows_each_hashs_own_parameters() {
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2048, 1, 1, None).unwrap(),
        );
        let small_hash = new_hash(&small(), b"pw").unwrap();
        let big_hash = new_hash(&bigger, b"pw").unwrap();
        for _ in 0..2 {
            assert!(matches(&big_hash, b"pw").unwrap());
            assert!(matches(&small_hash, b"pw").unwrap());
        }
        assert!(matches("$argon2id$v=19$m=1024,t=1,p=1$bm8$", b"pw").is_err());
    }
}
