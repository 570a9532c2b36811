//! E-mail addresses as accounts know them: trimmed and lower-cased, so sign-in
//! is case-insensitive.

use std::fmt;

/// The longest address that can be delivered (RFC 5321's path limit).
pub const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

/// A normalised e-mail address.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises and checks an address. The error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.chars().count() > MAX_LEN {
            return Err(format!("email must be at most {MAX_LEN} characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("email must not contain spaces or control characters".into());
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("email must look like name@example.com".into());
        };
        if local.is_empty()
            || local.len() > MAX_LOCAL_LEN
            || domain.is_empty()
            || domain.contains('@')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err("email must look like name@example.com".into());
        }
        Ok(Self(email))
    }

    /// The normalised address, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let email = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@.com",
            "ada@example.",
            "a da@example.com",
            "ada\0@example.com",
            long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn accepts_the_longest_deliverable_address() {
        let local = "a".repeat(64);
        let domain = format!("{}.com", "b".repeat(MAX_LEN - 64 - 1 - 4));
        let email = format!("{local}@{domain}");
        assert_eq!(email.len(), MAX_LEN);
        assert!(Email::parse(&email).is_ok());
    }
}
