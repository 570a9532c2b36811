//! Passwords: a type that never prints, and the limits we accept.

use std::fmt;

/// NIST SP 800-63B's minimum for user-chosen secrets.
pub const MIN_LEN: usize = 8;
/// Longer input is refused before any hashing, so it cannot buy CPU time.
pub const MAX_LEN: usize = 1024;

/// A plaintext password. `Debug` is redacted; it is dropped after hashing.
pub struct Password(String);

impl Password {
    /// A password being set: 8 to 1024 characters, no NUL.
    pub fn parse_new(raw: String) -> Result<Self, String> {
        let len = raw.chars().count();
        if len < MIN_LEN {
            return Err(format!("password must be at least {MIN_LEN} characters"));
        }
        Self::parse_attempt(raw)
    }

    /// A password offered at sign-in: only the upper bound applies, so a
    /// policy change never locks out an existing account.
    pub fn parse_attempt(raw: String) -> Result<Self, String> {
        if raw.chars().count() > MAX_LEN {
            return Err(format!("password must be at most {MAX_LEN} characters"));
        }
        if raw.contains('\0') {
            return Err("password must not contain NUL characters".into());
        }
        Ok(Self(raw))
    }

    /// The bytes to hash.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The text, for judging its quality.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// A copy of the first `chars` characters: all that is judged of a
    /// long one, so only that much is handed to another thread.
    pub fn prefix(&self, chars: usize) -> Self {
        Self(self.0.chars().take(chars).collect())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits_are_inclusive() {
        assert!(Password::parse_new("a".repeat(MIN_LEN - 1)).is_err());
        assert!(Password::parse_new("a".repeat(MIN_LEN)).is_ok());
        assert!(Password::parse_new("a".repeat(MAX_LEN)).is_ok());
        assert!(Password::parse_new("a".repeat(MAX_LEN + 1)).is_err());
        assert!(Password::parse_attempt("a".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(Password::parse_new("é".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn short_attempts_are_still_checked_not_refused() {
        assert!(Password::parse_attempt("short".into()).is_ok());
    }

    #[test]
    fn nul_is_refused() {
        assert!(Password::parse_new("abcdefgh\0".into()).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Password::parse_new("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
