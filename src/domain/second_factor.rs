//! What proved a session's identity, the assurance level that gives (NIST
//! 800-63B), and which sessions the second-factor rule restricts.

use std::fmt;

/// A way an identity was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    Password,
    Totp,
    RecoveryCode,
    /// A browser remembered after a second-factor sign-in on it.
    RememberedDevice,
    /// A WebAuthn passkey, always with user verification.
    Passkey,
    /// An account at another identity provider, linked by its subject.
    Provider,
    /// A code sent to the account's address.
    EmailCode,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Password,
        Method::Totp,
        Method::RecoveryCode,
        Method::RememberedDevice,
        Method::Passkey,
        Method::Provider,
        Method::EmailCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "PASSWORD",
            Self::Totp => "TOTP",
            Self::RecoveryCode => "RECOVERY_CODE",
            Self::RememberedDevice => "REMEMBERED_DEVICE",
            Self::Passkey => "PASSKEY",
            Self::Provider => "PROVIDER",
            Self::EmailCode => "EMAIL_CODE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// A first step of a sign-in: what a second factor is asked after.
    pub fn is_first_step(self) -> bool {
        matches!(self, Self::Password | Self::Provider | Self::EmailCode)
    }

    /// Something the user has, beside the first step.
    pub fn is_second_factor(self) -> bool {
        !self.is_first_step()
    }
}

/// The methods a session was opened (or last re-proven) with, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Methods(Vec<Method>);

impl Methods {
    pub fn of(methods: &[Method]) -> Self {
        let mut list = methods.to_vec();
        list.sort();
        list.dedup();
        Self(list)
    }

    /// As stored: `PASSWORD,TOTP`. Unknown names are skipped, so a row
    /// written by a newer node never counts for more here.
    pub fn parse(stored: &str) -> Self {
        let list: Vec<Method> = stored.split(',').filter_map(Method::parse).collect();
        Self::of(&list)
    }

    pub fn list(&self) -> &[Method] {
        &self.0
    }

    pub fn contains(&self, method: Method) -> bool {
        self.0.contains(&method)
    }

    /// AAL2 needs two factors: a first step (a password, another
    /// provider, an e-mail code) and something held, or a passkey, which
    /// webauthn-rs accepts only with user verification: a multi-factor
    /// cryptographic authenticator (NIST 800-63B §5.1.9). Any other second
    /// factor alone is not a sign-in here. Another provider counts as one
    /// factor whatever it says it checked: its `amr` is not ours to trust.
    pub fn level(&self) -> Level {
        let held = self.0.iter().any(|m| m.is_second_factor());
        let first = self.0.iter().any(|m| m.is_first_step());
        if self.contains(Method::Passkey) || held && first {
            Level::Aal2
        } else {
            Level::Aal1
        }
    }

    /// A code was entered (not merely a remembered browser): what removing
    /// the factor or replacing its recovery codes needs.
    pub fn proved_code(&self) -> bool {
        self.contains(Method::Totp)
            || self.contains(Method::RecoveryCode)
            || self.contains(Method::Passkey)
    }
}

impl fmt::Display for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|m| m.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// Authenticator assurance level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Aal1 = 1,
    Aal2 = 2,
}

impl Level {
    pub fn from_stored(value: i16) -> Self {
        if value >= 2 { Self::Aal2 } else { Self::Aal1 }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aal1 => "AAL1",
            Self::Aal2 => "AAL2",
        }
    }
}

/// `GATEHOUSE_REQUIRE_SECOND_FACTOR`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing is required; a factor is never asked for.
    Off,
    /// An account that has a factor must use it.
    #[default]
    Enrolled,
    /// Every account must have one and use it.
    All,
}

impl Requirement {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "off" => Ok(Self::Off),
            "enrolled" => Ok(Self::Enrolled),
            "all" => Ok(Self::All),
            other => Err(format!("expected off, enrolled or all, not {other:?}")),
        }
    }

    /// Whether a sign-in to an account with (or without) a factor must
    /// prove it before a session opens.
    pub fn asks_at_sign_in(self, has_factor: bool) -> bool {
        has_factor && self != Self::Off
    }

    /// What a session at `level` on an account with (or without) a factor
    /// may not do yet, if anything.
    pub fn restriction(self, has_factor: bool, level: Level) -> Option<Restriction> {
        match (self, has_factor, level) {
            (Self::Off, _, _) | (Self::Enrolled, false, _) => None,
            // No factor to have proven, whatever the session proved before.
            (Self::All, false, _) => Some(Restriction::Enrol),
            (_, true, Level::Aal1) => Some(Restriction::ProveFactor),
            (_, true, Level::Aal2) => None,
        }
    }
}

/// Why a session may only read `me`, sign out, and do what lifts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// The account has a factor this session has not proven: step up.
    ProveFactor,
    /// Every account needs a factor and this one has none: enrol.
    Enrol,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_alone_is_aal1_and_with_something_held_aal2() {
        use Method::*;
        assert_eq!(Methods::of(&[Password]).level(), Level::Aal1);
        assert_eq!(Methods::of(&[Password, Totp]).level(), Level::Aal2);
        assert_eq!(Methods::of(&[RecoveryCode, Password]).level(), Level::Aal2);
        assert_eq!(
            Methods::of(&[Password, RememberedDevice]).level(),
            Level::Aal2
        );
        assert_eq!(Methods::of(&[Totp]).level(), Level::Aal1);
        assert_eq!(Methods::of(&[Provider]).level(), Level::Aal1);
        assert_eq!(Methods::of(&[EmailCode]).level(), Level::Aal1);
        assert_eq!(Methods::of(&[Provider, EmailCode]).level(), Level::Aal1);
        assert_eq!(Methods::of(&[Provider, Totp]).level(), Level::Aal2);
        assert_eq!(Methods::of(&[EmailCode, RecoveryCode]).level(), Level::Aal2);
        assert!(!Methods::of(&[Password, RememberedDevice]).proved_code());
        assert!(Methods::of(&[Password, RecoveryCode]).proved_code());
    }

    #[test]
    fn methods_round_trip_and_ignore_unknown_names() {
        let methods = Methods::of(&[Method::Totp, Method::Password]);
        assert_eq!(methods.to_string(), "PASSWORD,TOTP");
        assert_eq!(Methods::parse("PASSWORD,TOTP"), methods);
        assert_eq!(Methods::parse("PASSWORD,FUTURE_THING").level(), Level::Aal1);
        assert_eq!(Methods::parse(""), Methods::default());
    }

    #[test]
    fn each_mode_restricts_what_it_says() {
        use Level::*;
        use Requirement::*;
        assert_eq!(Off.restriction(true, Aal1), None);
        assert_eq!(Enrolled.restriction(false, Aal1), None);
        assert_eq!(
            Enrolled.restriction(true, Aal1),
            Some(Restriction::ProveFactor)
        );
        assert_eq!(Enrolled.restriction(true, Aal2), None);
        assert_eq!(All.restriction(false, Aal1), Some(Restriction::Enrol));
        assert_eq!(All.restriction(false, Aal2), Some(Restriction::Enrol));
        assert_eq!(All.restriction(true, Aal1), Some(Restriction::ProveFactor));
        assert_eq!(All.restriction(true, Aal2), None);
        assert!(!Off.asks_at_sign_in(true));
        assert!(Enrolled.asks_at_sign_in(true) && All.asks_at_sign_in(true));
        assert!(!All.asks_at_sign_in(false));
    }
}
