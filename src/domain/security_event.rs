//! What a user's security history records: every change to their sessions
//! and credentials, never the activity slides.

/// The kinds of event, as stored and as the API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `register` or `login` (`detail`: `REGISTER` or `LOGIN`).
    SignedIn,
    /// `reauthenticate` proved the password again.
    Reauthenticated,
    /// `logout`.
    SignedOut,
    /// Revoked (`detail`: who: `CURRENT_SESSION`, `OTHER_SESSION`,
    /// `PASSWORD_CHANGE`, `PASSWORD_RESET` or `SESSION_LIMIT`).
    SessionRevoked,
    /// Ended by a timeout (`detail`: `IDLE_TIMEOUT` or `ABSOLUTE_TIMEOUT`),
    /// recorded when a request or the purge first sees it.
    SessionExpired,
    PasswordChanged,
    /// `resetPassword`, with a link sent by e-mail.
    PasswordReset,
    /// `verifyEmail` proved the account's address.
    EmailVerified,
    /// `verifyEmail` moved the account to the new address it proved.
    EmailChanged,
    /// An operator disabled the account (`gatehouse user disable`).
    AccountDisabled,
    /// An operator enabled it again.
    AccountEnabled,
    AccountDeleted,
    /// A TOTP factor was confirmed, with its recovery codes.
    SecondFactorEnabled,
    /// The second factor was removed (`detail`: `USER` or `SUPPORT`).
    SecondFactorRemoved,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// A passkey was registered (`detail`: its name).
    PasskeyAdded,
    /// A passkey was deleted (`detail`: its name).
    PasskeyRemoved,
    /// A passkey's signature counter went backwards: it may be cloned, and
    /// the sign-in was refused (`detail`: its name).
    PasskeyCounterRegressed,
    /// An account at another provider was linked (`detail`: the provider's id).
    ProviderLinked,
    /// It was unlinked (`detail`: the provider's id).
    ProviderUnlinked,
}

impl EventKind {
    pub const ALL: [Self; 20] = [
        Self::SignedIn,
        Self::Reauthenticated,
        Self::SignedOut,
        Self::SessionRevoked,
        Self::SessionExpired,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::EmailVerified,
        Self::EmailChanged,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::AccountDeleted,
        Self::SecondFactorEnabled,
        Self::SecondFactorRemoved,
        Self::RecoveryCodesRegenerated,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::PasskeyCounterRegressed,
        Self::ProviderLinked,
        Self::ProviderUnlinked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedIn => "SIGNED_IN",
            Self::Reauthenticated => "REAUTHENTICATED",
            Self::SignedOut => "SIGNED_OUT",
            Self::SessionRevoked => "SESSION_REVOKED",
            Self::SessionExpired => "SESSION_EXPIRED",
            Self::PasswordChanged => "PASSWORD_CHANGED",
            Self::PasswordReset => "PASSWORD_RESET",
            Self::EmailVerified => "EMAIL_VERIFIED",
            Self::EmailChanged => "EMAIL_CHANGED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::AccountEnabled => "ACCOUNT_ENABLED",
            Self::AccountDeleted => "ACCOUNT_DELETED",
            Self::SecondFactorEnabled => "SECOND_FACTOR_ENABLED",
            Self::SecondFactorRemoved => "SECOND_FACTOR_REMOVED",
            Self::RecoveryCodesRegenerated => "RECOVERY_CODES_REGENERATED",
            Self::PasskeyAdded => "PASSKEY_ADDED",
            Self::PasskeyRemoved => "PASSKEY_REMOVED",
            Self::PasskeyCounterRegressed => "PASSKEY_COUNTER_REGRESSED",
            Self::ProviderLinked => "PROVIDER_LINKED",
            Self::ProviderUnlinked => "PROVIDER_UNLINKED",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("LOGGED_IN"), None);
    }
}
