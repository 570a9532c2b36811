//! E-mail addresses as accounts know them: ASCII spaces trimmed and
//! lower-cased, so sign-in is case-insensitive. Nothing else is trimmed: a
//! control or invisible character anywhere is refused, not silently dropped.

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
        let email = raw.trim_matches(' ');
        // Checked before lower-casing: Unicode lower-cases some letters to
        // ASCII (the Kelvin sign to k), which would make two addresses one.
        if !email.is_ascii() {
            return Err(
                "email must be in ASCII letters, digits and . _ % + - (a domain in its xn-- form)"
                    .into(),
            );
        }
        let email = email.to_ascii_lowercase();
        if email.chars().count() > MAX_LEN {
            return Err(format!("email must be at most {MAX_LEN} characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("email must not contain spaces or control characters".into());
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("email must look like name@example.com".into());
        };
        if local.len() > MAX_LOCAL_LEN || !dot_atom(local, is_atom_char) || !domain_name(domain) {
            return Err(
                "email must look like name@example.com, in ASCII letters, digits and \
                        . _ % + - (a domain in its xn-- form)"
                    .into(),
            );
        }
        Ok(Self(email))
    }

    /// The normalised address, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 5322's dot-atom: atoms of `atom` characters joined by single dots.
/// No quoted local parts, comments or display names: what is stored is
/// exactly the mailbox, and nothing a mail header could read otherwise.
fn dot_atom(text: &str, atom: fn(u8) -> bool) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(atom))
}

fn is_atom_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Letters, digits and inner hyphens, in dot-separated labels of at most
/// 63 bytes. Internationalised domains come as their `xn--` form.
fn domain_name(domain: &str) -> bool {
    dot_atom(domain, |b| b.is_ascii_alphanumeric() || b == b'-')
        && domain
            .split('.')
            .all(|label| label.len() <= 63 && !label.starts_with('-') && !label.ends_with('-'))
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
    fn letters_that_lower_case_to_ascii_are_refused() {
        // The Kelvin sign lower-cases to `k`.
        assert!(Email::parse("\u{212A}ate@example.com").is_err());
        assert_eq!(
            Email::parse(" Kate@Example.COM ").unwrap().as_str(),
            "kate@example.com"
        );
    }

    #[test]
    fn trims_and_lowercases() {
        let email = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
    }

    #[test]
    fn refuses_control_and_invisible_characters_even_at_the_ends() {
        for bad in [
            "x@y.com\r\n",
            "\r\nx@y.com",
            "x@y.com\t",
            "x@y.com\u{a0}",
            "x@y.com\u{85}",
            "x@y.com\u{2028}",
            "\u{200b}x@y.com",
            "x@y.com\u{feff}",
            "x@y\u{0}.com",
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(Email::parse("  x@y.com  ").unwrap().as_str(), "x@y.com");
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
            "\"x@corp.example\"<attacker@evil.test>",
            "a@x,b@y.com",
            "a@x>b@y.com",
            "<script>@example.com",
            "a\u{200b}da@example.com",
            "ada..lovelace@example.com",
            ".ada@example.com",
            "ada@-example.com",
            "ada@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn accepts_ordinary_addresses() {
        for good in [
            "ada@example.com",
            "ada.lovelace+tag@mail.example.co.uk",
            "o'brien@example.com",
            "user_1%x@xn--bcher-kva.example",
            "root@localhost",
        ] {
            assert!(Email::parse(good).is_ok(), "refused {good:?}");
        }
    }

    #[test]
    fn accepts_the_longest_deliverable_address() {
        let local = "a".repeat(64);
        // Labels are at most 63 bytes: 63 + 1 + 63 + 1 + 57 + 4 = 189.
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let email = format!("{local}@{domain}");
        assert_eq!(email.len(), MAX_LEN);
        assert!(Email::parse(&email).is_ok());
    }
}
