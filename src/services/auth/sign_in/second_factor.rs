//! The second step of a sign-in: a right password on an account with a
//! second factor gets a short-lived challenge instead of a session, and a
//! TOTP or recovery code with that challenge opens the session.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{sign_in_challenge, user};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use super::Opening;
use super::passkey::PasskeyAssertion;
use super::totp::Stage;
use crate::context::PresentedDevice;
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::recovery_code::RecoveryCode;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::token::{ChallengeToken, DeviceToken};
use crate::error::{AppError, SecondFactorChallenge};
use crate::mail::templates::SecondFactorNotice;
use crate::repo::{
    known_devices as device_rows, passkeys, recovery_codes, sign_in_challenges, users,
};
use crate::services::auth::{AuthService, SignedIn};
use crate::services::known_devices;

/// How long a challenge can be answered.
pub const CHALLENGE_LIFETIME: TimeDelta = TimeDelta::minutes(5);
/// Wrong codes a challenge survives; then its password must be given again.
pub const CHALLENGE_MAX_FAILURES: i32 = 3;

/// A second factor, as the user typed it.
pub enum SecondProof {
    /// A 6-digit code from an authenticator app.
    Totp(String),
    /// One of the account's recovery codes.
    RecoveryCode(String),
    /// A passkey, from `beginPasskeySecondFactor` (sign-in only).
    Passkey(PasskeyAssertion),
}

/// What a client sends to finish a sign-in.
pub struct ChallengeAnswer<'a> {
    pub challenge: &'a str,
    pub proof: SecondProof,
    /// Skip the second factor on this browser for `GATEHOUSE_REMEMBER_DEVICE`.
    pub remember_device: bool,
    /// Whether the browser keeps its device token in the cookie (cookie
    /// mode): then only the cookie may skip the factor, else only the token
    /// sent in the request.
    pub remember_in_cookie: bool,
    /// The known-device token the client holds, if any.
    pub device: Option<PresentedDevice<'a>>,
}

impl AuthService {
    /// The refusal a right password gets on an account whose factor must be
    /// proven: `SECOND_FACTOR_REQUIRED`, carrying a new challenge.
    pub(in crate::services::auth) async fn challenge(
        &self,
        user: &user::Model,
        first: Method,
        remember_me: bool,
        now: DateTime<Utc>,
    ) -> Result<AppError, AppError> {
        let token = ChallengeToken::generate().map_err(AppError::internal)?;
        let expires_at = now + CHALLENGE_LIFETIME;
        let row = sign_in_challenge::Model {
            token_hash: token.hash().as_str().to_owned(),
            user_id: user.id,
            credential_version: user.credential_version,
            remember_me,
            first_method: first.as_str().to_owned(),
            created_at: now,
            expires_at,
            failures: 0,
            used_at: None,
        };
        sign_in_challenges::insert(&self.db, row).await?;
        let mut methods = vec![Method::Totp.as_str()];
        if recovery_codes::count_unused(&self.db, user.id).await? > 0 {
            methods.push(Method::RecoveryCode.as_str());
        }
        if passkeys::count(&self.db, user.id).await? > 0 {
            methods.push(Method::Passkey.as_str());
        }
        tracing::info!(user_id = %user.id, first = first.as_str(), "first step proven; second factor asked for");
        Ok(AppError::SecondFactorRequired(Box::new(
            SecondFactorChallenge {
                token: token.expose().to_owned(),
                methods,
                expires_at,
            },
        )))
    }

    /// Answers a challenge with a code and opens the session. Codes are
    /// counted per account and per address before they are checked; a
    /// wrong one also counts against the challenge, which dies after
    /// [`CHALLENGE_MAX_FAILURES`] or [`CHALLENGE_LIFETIME`].
    pub async fn complete_sign_in(
        &self,
        answer: ChallengeAnswer<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let token = ChallengeToken::parse(answer.challenge).ok_or(AppError::InvalidChallenge)?;
        let hash = token.hash();
        let challenge = sign_in_challenges::find_open(&self.db, &hash, CHALLENGE_MAX_FAILURES, now)
            .await?
            .ok_or(AppError::InvalidChallenge)?;
        let user = users::find_by_id(&self.db, challenge.user_id)
            .await?
            .ok_or(AppError::InvalidChallenge)?;
        if user.disabled_at.is_some() {
            return Err(AppError::AccountDisabled);
        }
        let reservation = self
            .throttle
            .reserve_code(user.id, client.ip, None, now)
            .await?;
        let txn = self.db.begin().await?;
        // Used up in the transaction that opens the session: of two right
        // answers at once, one opens it; a wrong one gives it back.
        if !sign_in_challenges::consume(&txn, &hash, CHALLENGE_MAX_FAILURES, now).await? {
            txn.rollback().await?;
            return Err(AppError::InvalidChallenge);
        }
        let proved = match &answer.proof {
            SecondProof::Passkey(assertion) => self
                .prove_passkey(&txn, &user, &hash, assertion, now)
                .await?
                .then_some(Method::Passkey),
            proof => self.prove_second(&txn, &user, proof, now).await?,
        };
        let Some(method) = proved else {
            // Counted in the transaction that held the challenge, so wrong
            // codes sent at once cannot each see it unspent.
            sign_in_challenges::fail(&txn, &hash).await?;
            txn.commit().await?;
            tracing::info!(user_id = %user.id, "wrong second-factor code at sign-in");
            return Err(AppError::InvalidSecondFactor);
        };
        let opening = Opening {
            user: &user,
            credential_version: challenge.credential_version,
            by: "LOGIN",
            methods: Methods::of(&[first_step(&challenge), method]),
            remember_me: challenge.remember_me,
            client,
        };
        let mut signed_in = self.open_session(txn, opening, now).await?;
        self.throttle.code_succeeded(reservation).await?;
        self.outbox.wake();
        signed_in.device = Some(self.remember_browser(&user, &answer, client, now).await?);
        Ok(signed_in)
    }

    /// The browser's known-device token after a second factor on it, made
    /// to skip the factor for a while if the user asked for that.
    async fn remember_browser(
        &self,
        user: &user::Model,
        answer: &ChallengeAnswer<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<DeviceToken, AppError> {
        let email =
            Email::parse(&user.email).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        let raw = answer.device.map(|d| d.token);
        let known = known_devices::recognise(&self.db, &email, raw, now).await?;
        let device = known_devices::remember(&self.db, user.id, known, now).await?;
        if let (true, Some(lifetime)) = (answer.remember_device, self.second_factor.remember_device)
        {
            let (hash, until) = (device.hash(), now + lifetime);
            let (in_cookie, agent) = (answer.remember_in_cookie, client.user_agent.as_deref());
            device_rows::remember_second_factor(&self.db, &hash, user.id, until, in_cookie, agent)
                .await?;
        }
        Ok(device)
    }

    /// Checks a second factor of `user` inside `txn`, using it up if it is
    /// right: the method it proved, or `None`. A recovery code used is
    /// told to the account's address, in the same transaction.
    pub(in crate::services::auth) async fn prove_second(
        &self,
        txn: &DatabaseTransaction,
        user: &user::Model,
        proof: &SecondProof,
        now: DateTime<Utc>,
    ) -> Result<Option<Method>, AppError> {
        match proof {
            SecondProof::Totp(code) => {
                let right = self.accept_totp(txn, user.id, code, Stage::Confirmed, now);
                Ok(right.await?.then_some(Method::Totp))
            }
            SecondProof::RecoveryCode(typed) => {
                let Some(code) = RecoveryCode::parse(typed) else {
                    return Ok(None);
                };
                if !recovery_codes::use_code(txn, user.id, &code.hash(user.id), now).await? {
                    return Ok(None);
                }
                self.tell_recovery_code_used(txn, user.id, &user.email, now)
                    .await?;
                Ok(Some(Method::RecoveryCode))
            }
            SecondProof::Passkey(_) => Err(AppError::BadUserInput(
                "a passkey proves itself: reauthenticate with passkey alone".into(),
            )),
        }
    }

    async fn tell_recovery_code_used(
        &self,
        txn: &DatabaseTransaction,
        user_id: Uuid,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let remaining = recovery_codes::count_unused(txn, user_id).await?;
        let notice = SecondFactorNotice::RecoveryCodeUsed { remaining };
        tracing::info!(user_id = %user_id, remaining, "recovery code used");
        self.outbox
            .queue_second_factor_notice(txn, email, notice, now)
            .await
    }
}

/// What proved the challenge's first step; a row from before it was
/// recorded was a password.
fn first_step(challenge: &sign_in_challenge::Model) -> Method {
    Method::parse(&challenge.first_method)
        .filter(|m| m.is_first_step())
        .unwrap_or(Method::Password)
}
