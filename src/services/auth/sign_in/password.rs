//! Proof by password: sign-in, and proving it again on a session
//! (step-up and the operations that need it).

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::TransactionTrait;

use crate::context::{CurrentSession, PresentedDevice};
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::password::Password;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::token::DeviceToken;
use crate::error::{AppError, AuthFailure};
use crate::repo::security_events::{self, NewEvent};
use crate::repo::{known_devices as device_rows, sessions, users};
use crate::services::auth::{AuthService, SignedIn};
use crate::services::known_devices;
use crate::services::throttle::Known;

use super::Opening;
use super::second_factor::SecondProof;

/// What a client offers to sign in with a password.
pub struct LoginAttempt<'a> {
    pub email: &'a str,
    pub password: String,
    pub remember_me: bool,
    /// The known-device token the client holds, if any.
    pub device: Option<PresentedDevice<'a>>,
}

impl AuthService {
    /// Checks a password and opens a new session. An unknown e-mail and a
    /// wrong password fail alike, in message and in time, and both count
    /// towards the brute-force limits, before any hashing. `device` is the
    /// client's known-device token, if it has one.
    pub async fn login(
        &self,
        attempt: LoginAttempt<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let email = Email::parse(attempt.email).map_err(AppError::BadUserInput)?;
        let password = Password::parse_attempt(attempt.password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let raw = attempt.device.map(|d| d.token);
        let known = known_devices::recognise(&self.db, &email, raw, now).await?;
        let device = known.as_ref().map(DeviceToken::hash);
        let reservation = self
            .throttle
            .reserve(&email, client.ip, device.as_ref().map(Known::Device), now)
            .await?;
        let user = self.check_password(&email, password, now).await?;
        self.throttle.succeeded(reservation).await?;
        self.throttle.reserve_signin(user.id, now).await?;
        let remember_me = self.rules.policies.remembers(attempt.remember_me);
        let mut methods = vec![Method::Password];
        let requirement = self.second_factor.requirement;
        if requirement.asks_at_sign_in(user.second_factor_at.is_some()) {
            let remembered = match (&known, attempt.device) {
                (Some(token), Some(presented)) => {
                    let (hash, in_cookie) = (token.hash(), presented.in_cookie);
                    device_rows::skips_second_factor(&self.db, &hash, user.id, in_cookie, now)
                        .await?
                }
                _ => false,
            };
            if !remembered {
                return Err(self
                    .challenge(&user, Method::Password, remember_me, now)
                    .await?);
            }
            methods.push(Method::RememberedDevice);
        }
        let device = known_devices::remember(&self.db, user.id, known, now).await?;
        let opening = Opening {
            user: &user,
            credential_version: user.credential_version,
            by: "LOGIN",
            methods: Methods::of(&methods),
            remember_me,
            client,
        };
        let txn = self.db.begin().await?;
        let mut signed_in = self.open_session(txn, opening, now).await?;
        signed_in.device = Some(device);
        Ok(signed_in)
    }

    /// Proves the password again on the caller's session (step-up), and
    /// the second factor with it where the account has one: only then is
    /// the session fresh, at AAL2. Throttled and counted like `login`;
    /// slides nothing else.
    pub async fn reauthenticate(
        &self,
        current: &CurrentSession,
        password: String,
        second: Option<SecondProof>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        let user = self.prove_password(current, password, client, now).await?;
        let has_factor = user.second_factor_at.is_some();
        let asked = self.second_factor.requirement.asks_at_sign_in(has_factor);
        let reservation = match (&second, asked) {
            (None, true) => return Err(AppError::Aal2Required),
            (Some(_), _) if !has_factor => return Err(AppError::SecondFactorNotEnabled),
            (Some(_), _) => {
                let on = Some(current.session.id);
                Some(
                    self.throttle
                        .reserve_code(user.id, client.ip, on, now)
                        .await?,
                )
            }
            (None, false) => None,
        };
        let (txn, at) = self.claim(current, now).await?;
        let mut methods = vec![Method::Password];
        if let Some(proof) = &second {
            let Some(method) = self.prove_second(&txn, &user, proof, at).await? else {
                txn.rollback().await?;
                return Err(AppError::InvalidSecondFactor);
            };
            methods.push(method);
        }
        let methods = Methods::of(&methods);
        let id = current.session.id;
        sessions::set_authenticated(&txn, id, &self.rules.policies, at).await?;
        sessions::set_methods(&txn, id, &methods).await?;
        let event = NewEvent::of(EventKind::Reauthenticated, user.id, id, at)
            .client(client)
            .methods(&methods);
        security_events::insert(&txn, vec![event]).await?;
        txn.commit().await?;
        if let Some(reservation) = reservation {
            self.throttle.code_succeeded(reservation).await?;
            self.outbox.wake();
        }
        tracing::info!(user_id = %user.id, session_id = %id, %methods, "reauthenticated");
        let mut session = current.session.clone();
        session.authenticated_at = at;
        session.level = methods.level();
        session.methods = methods;
        let mut account = current.account.clone();
        account.second_factor = has_factor;
        Ok(self.current(account, session))
    }

    /// The account at `email` if `password` is its password and it may
    /// sign in; its hash is redone under the current parameters if needed.
    async fn check_password(
        &self,
        email: &Email,
        password: Password,
        now: DateTime<Utc>,
    ) -> Result<user::Model, AppError> {
        let user = users::find_by_email(&self.db, email).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(password, stored).await?;
        let Some(user) = user.filter(|_| verified.matched) else {
            tracing::info!("login failed");
            return Err(AppError::InvalidCredentials);
        };
        if user.disabled_at.is_some() {
            tracing::info!(user_id = %user.id, "login refused: account disabled");
            return Err(AppError::AccountDisabled);
        }
        if let Some(hash) = verified.rehash {
            users::rehash_password(&self.db, user.id, hash, now).await?;
            tracing::info!(user_id = %user.id, "password rehashed with current parameters");
        }
        Ok(user)
    }

    /// Checks the caller's password, throttled like a login but counted
    /// against the caller's session.
    pub(in crate::services::auth) async fn prove_password(
        &self,
        current: &CurrentSession,
        password: String,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<user::Model, AppError> {
        let password = Password::parse_attempt(password).map_err(AppError::BadUserInput)?;
        self.refuse_if_saturated()?;
        let email = Email::parse(&current.account.email)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored e-mail: {e}")))?;
        // Counted against the session: a thief holding one gets its own
        // small budget, and strangers' guesses cannot block its owner.
        let on = Some(Known::Session(current.session.id));
        let reservation = self.throttle.reserve(&email, client.ip, on, now).await?;
        // Re-read so a password changed by another session is the one checked.
        let user = users::find_by_id(&self.db, current.account.id)
            .await?
            .ok_or(AppError::Unauthenticated(AuthFailure::InvalidToken))?;
        let verified = self
            .passwords
            .verify(password, Some(user.password_hash.clone()));
        if !verified.await?.matched {
            return Err(AppError::InvalidCredentials);
        }
        self.throttle.succeeded(reservation).await?;
        Ok(user)
    }
}
