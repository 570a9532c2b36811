//! Proof by a code sent to the account's address (`GATEHOUSE_EMAIL_SIGN_IN`).
//!
//! Asking answers alike for every address, in content and in time: a
//! challenge for the browser, with the lookup after the answer. The code
//! counts only with its challenge, and only its hash with the challenge
//! is stored, so neither the table nor the mail alone signs anyone in.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{email_sign_in_code, user};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use tracing::Instrument;

use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::second_factor::Method;
use crate::domain::security_event::EventKind;
use crate::domain::token::{EmailCodeChallenge, Purpose, TokenHash};
use crate::error::AppError;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::sessions::{self, Revocation};
use crate::repo::{
    email_sign_in_codes, email_tokens, external_identities, known_devices, outbox, passkeys, users,
};
use crate::services::auth::{AuthService, SignedIn};
use crate::services::recovery::jitter;
use crate::session_notifier::Notice;

/// How long a code can be used.
pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Wrong codes a challenge survives; then a new code must be asked for.
pub const CODE_MAX_FAILURES: i32 = 5;

/// What the browser keeps after asking for a code.
pub struct EmailCodeRequest {
    pub challenge: EmailCodeChallenge,
    pub expires_at: DateTime<Utc>,
}

/// What a client sends to sign in with a code.
pub struct EmailCodeAttempt<'a> {
    pub challenge: &'a str,
    pub code: &'a str,
    pub remember_me: bool,
}

impl AuthService {
    /// Sends a sign-in code if an account has this address. Counted per
    /// address and per client, whether or not it exists.
    pub async fn request_email_code(
        &self,
        email: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<EmailCodeRequest, AppError> {
        if !self.email_sign_in {
            return Err(AppError::EmailSignInDisabled);
        }
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        self.throttle.reserve_mail(&email, client.ip, now).await?;
        let permit = self
            .pending_mail
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Overloaded)?;
        let challenge = EmailCodeChallenge::generate().map_err(AppError::internal)?;
        let code = eight_digits().map_err(AppError::internal)?;
        let row = email_sign_in_code::Model {
            challenge_hash: challenge.hash().as_str().to_owned(),
            email: email.as_str().to_owned(),
            user_id: None,
            code_hash: code_hash(&challenge, &code).as_str().to_owned(),
            failures: 0,
            created_at: now,
            expires_at: now + CODE_LIFETIME,
            used_at: None,
        };
        let auth = self.clone();
        let lookup = async move {
            // At a random moment, so the work a real account causes does
            // not line up with the caller's next request.
            tokio::time::sleep(jitter()).await;
            if let Err(err) = auth.store_code(row, &email, &code, now).await {
                tracing::warn!(error = ?err, "sign-in code not queued");
            }
            drop(permit);
        };
        tokio::spawn(lookup.instrument(tracing::Span::current()));
        Ok(EmailCodeRequest {
            challenge,
            expires_at: now + CODE_LIFETIME,
        })
    }

    /// Stores the code's row whatever the address (so a guess costs the
    /// same either way), and the mail only for an account that may sign in.
    async fn store_code(
        &self,
        mut row: email_sign_in_code::Model,
        email: &Email,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let user = users::find_by_email(&self.db, email)
            .await?
            .filter(|u| u.disabled_at.is_none());
        row.user_id = user.as_ref().map(|u| u.id);
        let txn = self.db.begin().await?;
        email_sign_in_codes::insert(&txn, row).await?;
        if let Some(user) = &user {
            let ttl = CODE_LIFETIME.to_std().map_err(AppError::internal)?;
            let letter = self.outbox.letters().sign_in_code(&user.email, code, ttl);
            outbox::insert(&txn, letter, now).await?;
        }
        txn.commit().await?;
        match user {
            Some(user) => {
                self.outbox.wake();
                tracing::info!(user_id = %user.id, "sign-in code sent");
            }
            None => tracing::info!("sign-in code asked for no account"),
        }
        Ok(())
    }

    /// Signs in with a code and its challenge: a session with method
    /// `EMAIL_CODE` (AAL1), or the second factor's challenge. Counted
    /// against the address and the client before it is checked, as a
    /// password is; a wrong code also counts against its challenge. It
    /// proves the address: an account whose address no one had proven
    /// loses every way in set up before (see [`Self::claim_address`]).
    pub async fn sign_in_with_email_code(
        &self,
        attempt: EmailCodeAttempt<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        if !self.email_sign_in {
            return Err(AppError::EmailSignInDisabled);
        }
        let challenge =
            EmailCodeChallenge::parse(attempt.challenge).ok_or(AppError::InvalidEmailCode)?;
        let hash = challenge.hash();
        let row = email_sign_in_codes::find_open(&self.db, &hash, CODE_MAX_FAILURES, now)
            .await?
            .ok_or(AppError::InvalidEmailCode)?;
        let email = Email::parse(&row.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        let reservation = self.throttle.reserve(&email, client.ip, None, now).await?;
        let right = code_hash(&challenge, attempt.code.trim()).as_str() == row.code_hash;
        let Some(user_id) = row.user_id.filter(|_| right) else {
            email_sign_in_codes::fail(&self.db, &hash).await?;
            tracing::info!("wrong e-mail sign-in code");
            return Err(AppError::InvalidEmailCode);
        };
        // Given back before the transaction: on SQLite a count made inside
        // it would wait on its own lock.
        self.throttle.succeeded(reservation).await?;
        self.throttle.reserve_signin(user_id, now).await?;
        let txn = self.db.begin().await?;
        users::lock(&txn, user_id).await?;
        if !email_sign_in_codes::consume(&txn, &hash, CODE_MAX_FAILURES, now).await? {
            txn.rollback().await?;
            return Err(AppError::InvalidEmailCode);
        }
        let user = users::find_by_id(&txn, user_id).await?;
        // The account moved to another address since: the code proves nothing.
        let Some(user) = user.filter(|u| u.email == row.email) else {
            txn.rollback().await?;
            return Err(AppError::InvalidEmailCode);
        };
        if user.disabled_at.is_some() {
            txn.rollback().await?;
            return Err(AppError::AccountDisabled);
        }
        let user = match user.email_verified_at {
            Some(_) => {
                txn.commit().await?;
                user
            }
            None => self.claim_address(txn, &user, client, now).await?,
        };
        let txn = self.db.begin().await?;
        let remember_me = self.rules.policies.remembers(attempt.remember_me);
        self.first_step_proven(txn, &user, Method::EmailCode, remember_me, client, now)
            .await
    }

    /// The first proof of an account's address. Whoever signed the address
    /// up may not be its owner, so every way in set up before goes: the
    /// password, passkeys, provider links, remembered browsers, every
    /// session, and every link sent (a change of address among them). The
    /// second factor stays: no path skips it. Commits `txn`; returns the
    /// account as it is now.
    async fn claim_address(
        &self,
        txn: DatabaseTransaction,
        user: &user::Model,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<user::Model, AppError> {
        let id = user.id;
        users::mark_verified(&txn, id, now).await?;
        let had_password = user.password_hash != user::NO_PASSWORD;
        // Moves the credential version on even with no password, so no
        // sign-in proven before this one opens a session.
        users::change_password(&txn, id, user::NO_PASSWORD.to_owned(), now).await?;
        let passkeys = passkeys::delete_all(&txn, id).await?;
        let providers = external_identities::delete_all(&txn, id).await?;
        known_devices::forget_all(&txn, id).await?;
        // Links sent before: a change of address the stranger asked for
        // must not move the claimed account to him afterwards.
        email_tokens::consume_all(&txn, id, Purpose::Reset, now).await?;
        email_tokens::consume_all(&txn, id, Purpose::Verify, now).await?;
        let policies = &self.rules.policies;
        let revoked = sessions::revoke_all(&txn, id, policies, Revocation::AddressClaimed, now);
        let revoked = revoked.await?;
        let mut events =
            vec![NewEvent::of_account(EventKind::EmailVerified, id, now).client(client)];
        if had_password {
            events
                .push(NewEvent::of_account(EventKind::PasswordChanged, id, now).detail("REMOVED"));
        }
        events.extend(revoked.iter().map(|&session| {
            NewEvent::of(EventKind::SessionRevoked, id, session, now).detail("ADDRESS_CLAIMED")
        }));
        events.extend(
            passkeys
                .iter()
                .map(|name| NewEvent::of_account(EventKind::PasskeyRemoved, id, now).detail(name)),
        );
        events.extend(providers.iter().map(|provider| {
            NewEvent::of_account(EventKind::ProviderUnlinked, id, now).detail(provider)
        }));
        security_events::insert(&txn, events).await?;
        let notices = self
            .notifier
            .announce(&txn, revoked.iter().copied().map(Notice::Session))
            .await?;
        let claimed = users::find_by_id(&txn, id)
            .await?
            .ok_or(AppError::InvalidEmailCode)?;
        txn.commit().await?;
        self.notifier.deliver(notices);
        tracing::info!(
            user_id = %id, had_password, passkeys = passkeys.len(), providers = providers.len(),
            revoked_sessions = revoked.len(),
            "address proven by an e-mail code for the first time; earlier ways in taken back"
        );
        Ok(claimed)
    }
}

/// The code's hash, keyed by its challenge: 10^8 codes cannot be found
/// from a stored hash without the challenge, which only the browser holds.
fn code_hash(challenge: &EmailCodeChallenge, code: &str) -> TokenHash {
    TokenHash::of(&format!("{}:{code}", challenge.expose()))
}

/// Eight decimal digits, uniform: values of a u32 past the last whole
/// multiple of 10^8 are drawn again.
fn eight_digits() -> Result<String, getrandom::Error> {
    const RANGE: u32 = 100_000_000;
    const LIMIT: u32 = u32::MAX - u32::MAX % RANGE;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes)?;
        let value = u32::from_le_bytes(bytes);
        if value < LIMIT {
            return Ok(format!("{:08}", value % RANGE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_digits_and_vary() {
        let codes: Vec<String> = (0..50).map(|_| eight_digits().unwrap()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 8 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 45, "{codes:?}");
    }

    #[test]
    fn a_code_counts_only_with_its_challenge() {
        let (a, b) = (
            EmailCodeChallenge::generate().unwrap(),
            EmailCodeChallenge::generate().unwrap(),
        );
        assert_eq!(code_hash(&a, "12345678"), code_hash(&a, "12345678"));
        assert_ne!(code_hash(&a, "12345678"), code_hash(&b, "12345678"));
        assert_ne!(code_hash(&a, "12345678"), TokenHash::of("12345678"));
    }
}
