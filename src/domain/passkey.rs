//! Passkeys: what each ceremony is for, their names, and the
//! authenticators we can name from their AAGUID.

use uuid::Uuid;

/// What a ceremony was begun for; one finishes only as what it began as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Adding a passkey to a signed-in account.
    Register,
    /// Creating an account with a passkey and no password.
    SignUp,
    /// Signing in with a passkey the browser picks (discoverable).
    SignIn,
    /// Answering a sign-in challenge after a password.
    SecondFactor,
    /// Proving it again on a session (step-up).
    Reauthenticate,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "REGISTER",
            Self::SignUp => "SIGN_UP",
            Self::SignIn => "SIGN_IN",
            Self::SecondFactor => "SECOND_FACTOR",
            Self::Reauthenticate => "REAUTHENTICATE",
        }
    }
}

/// Longest name a passkey may have, in characters.
pub const MAX_NAME: usize = 64;

/// A passkey's name as given: trimmed, 1 to [`MAX_NAME`] characters, no
/// control characters; `None` gives `default`.
pub fn parse_name(given: Option<&str>, default: &str) -> Result<String, String> {
    let name = given.map(str::trim).unwrap_or(default);
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("name must be at most {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// Names of well-known passkey providers by AAGUID (from the providers'
/// own published values); others are shown without one.
const KNOWN: [(&str, &str); 9] = [
    (
        "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",
        "Google Password Manager",
    ),
    ("adce0002-35bc-c60a-648b-0b25f1f05503", "Chrome on Mac"),
    ("fbfc3007-154e-4ecc-8c0b-6e020557d7bd", "iCloud Keychain"),
    (
        "dd4ec289-e01d-41c9-bb89-70fa845d4bf2",
        "iCloud Keychain (Managed)",
    ),
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", "Windows Hello"),
    ("9ddd1817-af5a-4672-a2b9-3e3dd95000a9", "Windows Hello"),
    ("6028b017-b1d4-4c02-b4b3-afcdafc96bb2", "Windows Hello"),
    ("bada5566-a7aa-401f-bd96-45619a55120d", "1Password"),
    ("d548826e-79b4-db40-a3d8-11116f7e8349", "Bitwarden"),
];

/// The provider's name for this AAGUID, when we know it.
pub fn authenticator_name(aaguid: Uuid) -> Option<&'static str> {
    let text = aaguid.to_string();
    KNOWN
        .iter()
        .find(|(id, _)| *id == text)
        .map(|(_, name)| *name)
}

/// The AAGUID in a registration's authenticator data: after the RP ID
/// hash (32 bytes), the flags (1) and the counter (4), when the flags say
/// credential data is attached. All zeros (attestation `none` on some
/// clients) is no answer.
pub fn aaguid_of(auth_data: &[u8]) -> Option<Uuid> {
    const ATTESTED: u8 = 0x40;
    let flags = *auth_data.get(32)?;
    if flags & ATTESTED == 0 {
        return None;
    }
    let bytes: [u8; 16] = auth_data.get(37..53)?.try_into().ok()?;
    Some(Uuid::from_bytes(bytes)).filter(|id| !id.is_nil())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(parse_name(Some("  Laptop "), "Passkey").unwrap(), "Laptop");
        assert_eq!(parse_name(None, "Passkey").unwrap(), "Passkey");
        assert!(parse_name(Some("   "), "Passkey").is_err());
        assert!(parse_name(Some(&"x".repeat(MAX_NAME + 1)), "Passkey").is_err());
        assert!(parse_name(Some("a\u{7}b"), "Passkey").is_err());
    }

    #[test]
    fn the_aaguid_is_read_only_when_credential_data_is_attached() {
        let aaguid = Uuid::parse_str("fbfc3007-154e-4ecc-8c0b-6e020557d7bd").unwrap();
        let mut data = vec![0u8; 32];
        data.push(0x45); // UP, UV, AT
        data.extend([0, 0, 0, 1]);
        data.extend(aaguid.as_bytes());
        assert_eq!(aaguid_of(&data), Some(aaguid));
        assert_eq!(authenticator_name(aaguid), Some("iCloud Keychain"));
        data[32] = 0x05;
        assert_eq!(aaguid_of(&data), None);
        assert_eq!(aaguid_of(&data[..40]), None);
    }
}
