//! Secret tokens: 32 bytes from the OS CSPRNG, base64url, behind a prefix
//! that says what each is for, so secret scanners can spot a leaked one.
//! Only the SHA-256 is ever stored.
//!
//! - `gth_`: a session token;
//! - `ghr_`: a password-reset token, sent by e-mail;
//! - `ghv_`: an address-verification token, sent by e-mail;
//! - `ghd_`: a known-device token, kept by a client that signed in before.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const PREFIX: &str = "gth_";
const RANDOM_BYTES: usize = 32;
/// 32 bytes in unpadded base64url.
const ENCODED_LEN: usize = 43;

/// A raw bearer token. It never prints: `Debug` is redacted.
pub struct SessionToken(String);

/// The lower-case hex SHA-256 of a token: the only form that is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(String);

/// What an e-mailed token proves, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Lets its holder set a new password.
    Reset,
    /// Proves that an address reaches the account's owner.
    Verify,
}

/// A raw single-use token for an e-mail link. It never prints.
pub struct EmailToken {
    purpose: Purpose,
    raw: String,
}

impl SessionToken {
    /// A new token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        generate(PREFIX).map(Self)
    }

    /// Accepts only the exact shape we issue, so junk never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        well_formed(PREFIX, raw).then(|| Self(raw.to_owned()))
    }

    /// The raw token, to hand to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest to store and look up by.
    pub fn hash(&self) -> TokenHash {
        digest(&self.0)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl Purpose {
    fn prefix(self) -> &'static str {
        match self {
            Self::Reset => "ghr_",
            Self::Verify => "ghv_",
        }
    }

    /// As stored in `email_tokens.purpose`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "RESET",
            Self::Verify => "VERIFY",
        }
    }
}

impl EmailToken {
    /// A new token for `purpose` from the operating system's CSPRNG.
    pub fn generate(purpose: Purpose) -> Result<Self, getrandom::Error> {
        generate(purpose.prefix()).map(|raw| Self { purpose, raw })
    }

    /// Accepts only the exact shape issued for `purpose`.
    pub fn parse(purpose: Purpose, raw: &str) -> Option<Self> {
        well_formed(purpose.prefix(), raw).then(|| Self {
            purpose,
            raw: raw.to_owned(),
        })
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The raw token, to put in the one e-mail that carries it.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The digest to store and look up by.
    pub fn hash(&self) -> TokenHash {
        digest(&self.raw)
    }
}

impl fmt::Debug for EmailToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailToken({:?}, <redacted>)", self.purpose)
    }
}

/// A token of its own kind, told apart by its prefix: proof of something
/// short of a session. It never prints.
macro_rules! prefixed_token {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        pub struct $name(String);

        impl $name {
            const PREFIX: &str = $prefix;

            /// A new token from the operating system's CSPRNG.
            pub fn generate() -> Result<Self, getrandom::Error> {
                generate(Self::PREFIX).map(Self)
            }

            /// Accepts only the exact shape we issue.
            pub fn parse(raw: &str) -> Option<Self> {
                well_formed(Self::PREFIX, raw).then(|| Self(raw.to_owned()))
            }

            /// The raw token, to hand to its client.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The digest to store and look up by.
            pub fn hash(&self) -> TokenHash {
                digest(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

prefixed_token!(
    /// A raw known-device token: proof that a client signed in to an
    /// account before.
    DeviceToken,
    "ghd_"
);

prefixed_token!(
    /// A raw sign-in challenge: a password proven, waiting for the second
    /// factor. Short-lived and single-use.
    ChallengeToken,
    "ghc_"
);

prefixed_token!(
    /// A raw passkey ceremony token: names a WebAuthn ceremony whose state
    /// stays on the server. Short-lived and single-use.
    CeremonyToken,
    "ghw_"
);

prefixed_token!(
    /// A raw provider flow secret: the browser that began a sign-in at
    /// another provider keeps it, and it is the flow's PKCE verifier, so
    /// only that browser can finish the flow. Short-lived and single-use.
    FlowToken,
    "ghp_"
);

prefixed_token!(
    /// A raw e-mail code challenge: the browser that asked for a sign-in
    /// code keeps it, and the code counts only with it.
    EmailCodeChallenge,
    "ghm_"
);

impl TokenHash {
    /// The SHA-256 of a secret with enough entropy of its own (a recovery
    /// code), as tokens are hashed.
    pub fn of(secret: &str) -> Self {
        digest(secret)
    }

    /// The hex digest, as stored in `sessions.token_hash` and
    /// `email_tokens.token_hash`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn generate(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn well_formed(prefix: &str, raw: &str) -> bool {
    raw.strip_prefix(prefix).is_some_and(|body| {
        body.len() == ENCODED_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(body).is_ok()
    })
}

fn digest(raw: &str) -> TokenHash {
    TokenHash(hex::encode(Sha256::digest(raw.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_prefix_and_parse_back() {
        let token = SessionToken::generate().unwrap();
        assert!(token.expose().starts_with("gth_"));
        assert_eq!(token.expose().len(), PREFIX.len() + ENCODED_LEN);
        let parsed = SessionToken::parse(token.expose()).expect("own tokens parse");
        assert_eq!(parsed.hash(), token.hash());
    }

    #[test]
    fn tokens_are_unique() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn hash_is_hex_sha256_and_not_the_token() {
        let token = SessionToken::generate().unwrap();
        let hash = token.hash();
        assert_eq!(hash.as_str().len(), 64);
        assert!(hash.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!hash.as_str().contains(&token.expose()[4..]));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = SessionToken::generate().unwrap();
        assert!(!format!("{token:?}").contains(&token.expose()[4..]));
    }

    #[test]
    fn email_tokens_are_bound_to_their_purpose() {
        let reset = EmailToken::generate(Purpose::Reset).unwrap();
        assert!(reset.expose().starts_with("ghr_"));
        assert!(EmailToken::parse(Purpose::Reset, reset.expose()).is_some());
        assert!(EmailToken::parse(Purpose::Verify, reset.expose()).is_none());
        assert!(SessionToken::parse(reset.expose()).is_none());
        let verify = EmailToken::generate(Purpose::Verify).unwrap();
        assert!(verify.expose().starts_with("ghv_"));
        assert!(!format!("{verify:?}").contains(&verify.expose()[4..]));
        assert_ne!(reset.hash(), verify.hash());
    }

    #[test]
    fn device_tokens_are_their_own_kind() {
        let device = DeviceToken::generate().unwrap();
        assert!(device.expose().starts_with("ghd_"));
        assert!(DeviceToken::parse(device.expose()).is_some());
        assert!(SessionToken::parse(device.expose()).is_none());
        let session = SessionToken::generate().unwrap();
        assert!(DeviceToken::parse(session.expose()).is_none());
        assert!(!format!("{device:?}").contains(&device.expose()[4..]));
        let challenge = ChallengeToken::generate().unwrap();
        assert!(challenge.expose().starts_with("ghc_"));
        assert!(DeviceToken::parse(challenge.expose()).is_none());
        assert!(ChallengeToken::parse(device.expose()).is_none());
        assert_eq!(format!("{challenge:?}"), "ChallengeToken(<redacted>)");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = SessionToken::generate().unwrap();
        let body = &good.expose()[4..];
        for bad in [
            "",
            "gth_",
            body,
            &format!("xyz_{body}"),
            &format!("gth_{body}A"),
            &format!("gth_{}", &body[1..]),
            &format!("gth_{}+", &body[1..]),
            &format!("gth_{}\0", &body[1..]),
            &format!("gth_{}é", &body[2..]),
        ] {
            assert!(SessionToken::parse(bad).is_none(), "accepted {bad:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Parsing any input is total, and accepts only our exact shape.
        #[test]
        fn parse_accepts_only_the_issued_shape(raw in ".{0,80}") {
            if let Some(token) = SessionToken::parse(&raw) {
                prop_assert!(raw.starts_with(PREFIX));
                prop_assert_eq!(raw.len(), PREFIX.len() + ENCODED_LEN);
                prop_assert_eq!(token.expose(), raw.as_str());
            }
        }

        /// Tokens in the issued alphabet parse exactly when canonical.
        #[test]
        fn well_shaped_bodies_parse_when_canonical(body in "[A-Za-z0-9_-]{43}") {
            let raw = format!("{PREFIX}{body}");
            let canonical = URL_SAFE_NO_PAD.decode(&body).is_ok();
            prop_assert_eq!(SessionToken::parse(&raw).is_some(), canonical);
        }
    }
}
