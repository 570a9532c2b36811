//! Proof by passkey: signing in without an address (a discoverable
//! credential the browser picks), answering a sign-in challenge as the
//! second factor, and proving it again on a session (step-up).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::{passkey, user};
use sea_orm::{ConnectionTrait, TransactionTrait};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PublicKeyCredential, WebauthnError,
};

use super::Opening;
use crate::context::CurrentSession;
use crate::domain::client::ClientInfo;
use crate::domain::passkey::Purpose;
use crate::domain::second_factor::{Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::token::{ChallengeToken, TokenHash};
use crate::error::AppError;
use crate::repo::passkey_ceremonies::Owner;
use crate::repo::security_events::{self, NewEvent};
use crate::repo::{passkeys, sessions, sign_in_challenges, users};
use crate::services::auth::passkeys::{Bound, Ceremony, MAX_CREDENTIAL_ID, owner, state_of};
use crate::services::auth::sign_in::second_factor::CHALLENGE_MAX_FAILURES;
use crate::services::auth::{AuthService, SignedIn};

/// The browser's answer to an assertion ceremony.
pub struct PasskeyAssertion {
    pub ceremony: String,
    pub credential: serde_json::Value,
}

/// What the server expects of an assertion: any of the account's
/// passkeys the browser finds, or one of those it listed.
enum Expected {
    Discoverable(DiscoverableAuthentication),
    Listed(PasskeyAuthentication),
}

impl AuthService {
    /// Starts a passkey sign-in with no address typed: the browser offers
    /// the passkeys it holds for this site. The options ask for
    /// conditional mediation (autofill); a button drops it.
    pub async fn begin_passkey_sign_in(
        &self,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Ceremony, AppError> {
        let rp = self.relying_party.webauthn()?;
        self.throttle.reserve_ceremony(client.ip, now).await?;
        let (options, state) = rp
            .start_discoverable_authentication()
            .map_err(|e| AppError::internal(anyhow::anyhow!("webauthn: {e}")))?;
        self.store_ceremony(Purpose::SignIn, Bound::default(), &state, &options, now)
            .await
    }

    /// Signs in with the passkey the browser chose: a session with method
    /// `PASSKEY` at AAL2, which a second factor's rule is satisfied by.
    /// Failures count against the account and the address, as codes do.
    pub async fn sign_in_with_passkey(
        &self,
        assertion: PasskeyAssertion,
        remember_me: bool,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let rp = self.relying_party.webauthn()?;
        let ceremony = self
            .take_ceremony(
                &self.db,
                &assertion.ceremony,
                Purpose::SignIn,
                Owner::default(),
                now,
            )
            .await?;
        let state: DiscoverableAuthentication = state_of(&ceremony)?;
        let credential = parse(assertion.credential)?;
        let (handle, _) = rp
            .identify_discoverable_authentication(&credential)
            .map_err(|_| AppError::InvalidPasskey)?;
        let row = self.registered(&credential).await?;
        if row.user_id != handle {
            return Err(AppError::InvalidPasskey);
        }
        let user = self.signing_in(row.user_id).await?;
        let reservation = self.throttle.reserve_code(user.id, client.ip, None, now);
        let reservation = reservation.await?;
        let expected = Expected::Discoverable(state);
        self.check_assertion(&self.db, &credential, expected, &row, client, now)
            .await?;
        self.throttle.assertion_succeeded(reservation).await?;
        self.throttle.reserve_signin(user.id, now).await?;
        let opening = Opening {
            user: &user,
            credential_version: user.credential_version,
            by: "LOGIN",
            methods: Methods::of(&[Method::Passkey]),
            remember_me: self.rules.policies.remembers(remember_me),
            client,
        };
        let txn = self.db.begin().await?;
        self.open_session(txn, opening, now).await
    }

    /// Starts a passkey as the second factor, for a challenge that a
    /// right password got: the browser is offered the account's passkeys.
    pub async fn begin_passkey_second_factor(
        &self,
        challenge: &str,
        now: DateTime<Utc>,
    ) -> Result<Ceremony, AppError> {
        let rp = self.relying_party.webauthn()?;
        let token = ChallengeToken::parse(challenge).ok_or(AppError::InvalidChallenge)?;
        let hash = token.hash();
        let open = sign_in_challenges::find_open(&self.db, &hash, CHALLENGE_MAX_FAILURES, now);
        let open = open.await?.ok_or(AppError::InvalidChallenge)?;
        let state = self.listed(rp, open.user_id).await?;
        let bound = Bound {
            user_id: Some(open.user_id),
            challenge: Some(&hash),
            ..Bound::default()
        };
        self.store_ceremony(Purpose::SecondFactor, bound, &state.1, &state.0, now)
            .await
    }

    /// Starts proving a passkey again on the caller's session.
    pub async fn begin_passkey_reauthentication(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<Ceremony, AppError> {
        let rp = self.relying_party.webauthn()?;
        let (options, state) = self.listed(rp, current.account.id).await?;
        let bound = Bound {
            user_id: Some(current.account.id),
            session_id: Some(current.session.id),
            ..Bound::default()
        };
        self.store_ceremony(Purpose::Reauthenticate, bound, &state, &options, now)
            .await
    }

    /// Proves a passkey again on the caller's session: it is then fresh,
    /// at AAL2, with method `PASSKEY`. Counted like a code.
    pub async fn reauthenticate_with_passkey(
        &self,
        current: &CurrentSession,
        assertion: PasskeyAssertion,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<CurrentSession, AppError> {
        self.relying_party.webauthn()?;
        let ceremony = self
            .take_ceremony(
                &self.db,
                &assertion.ceremony,
                Purpose::Reauthenticate,
                owner(current),
                now,
            )
            .await?;
        let state: PasskeyAuthentication = state_of(&ceremony)?;
        let credential = parse(assertion.credential)?;
        let row = self.registered(&credential).await?;
        let user = current.account.id;
        if row.user_id != user {
            return Err(AppError::InvalidPasskey);
        }
        let on = Some(current.session.id);
        let reservation = self.throttle.reserve_code(user, client.ip, on, now).await?;
        let expected = Expected::Listed(state);
        self.check_assertion(&self.db, &credential, expected, &row, client, now)
            .await?;
        let (txn, at) = self.claim(current, now).await?;
        let methods = Methods::of(&[Method::Passkey]);
        let id = current.session.id;
        sessions::set_authenticated(&txn, id, &self.rules.policies, at).await?;
        sessions::set_methods(&txn, id, &methods).await?;
        let event = NewEvent::of(EventKind::Reauthenticated, user, id, at)
            .client(client)
            .methods(&methods);
        security_events::insert(&txn, vec![event]).await?;
        txn.commit().await?;
        self.throttle.assertion_succeeded(reservation).await?;
        tracing::info!(user_id = %user, session_id = %id, "reauthenticated with a passkey");
        let mut session = current.session.clone();
        session.authenticated_at = at;
        session.level = methods.level();
        session.methods = methods;
        Ok(self.current(current.account.clone(), session))
    }

    /// Checks a passkey given as the second factor inside `txn`, for the
    /// challenge it was begun for; true if it proves the account's.
    pub(in crate::services::auth) async fn prove_passkey(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        user: &user::Model,
        challenge: &TokenHash,
        assertion: &PasskeyAssertion,
        now: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        self.relying_party.webauthn()?;
        let owner = Owner {
            user_id: Some(user.id),
            challenge: Some(challenge),
            ..Owner::default()
        };
        let ceremony = self
            .take_ceremony(txn, &assertion.ceremony, Purpose::SecondFactor, owner, now)
            .await?;
        let state: PasskeyAuthentication = state_of(&ceremony)?;
        let credential = parse(assertion.credential.clone())?;
        let row = self.registered(&credential).await?;
        if row.user_id != user.id {
            return Ok(false);
        }
        let client = ClientInfo::default();
        let expected = Expected::Listed(state);
        match self
            .check_assertion(txn, &credential, expected, &row, &client, now)
            .await
        {
            Ok(()) => Ok(true),
            Err(AppError::InvalidPasskey) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Options offering the account's passkeys, and the state to check
    /// the answer against.
    async fn listed(
        &self,
        rp: &webauthn_rs::Webauthn,
        user: uuid::Uuid,
    ) -> Result<
        (
            webauthn_rs::prelude::RequestChallengeResponse,
            PasskeyAuthentication,
        ),
        AppError,
    > {
        let rows = passkeys::list(&self.db, user).await?;
        let keys: Vec<Passkey> = rows
            .iter()
            .map(|row| serde_json::from_str(&row.credential))
            .collect::<Result<_, _>>()
            .map_err(AppError::internal)?;
        if keys.is_empty() {
            return Err(AppError::NoPasskey);
        }
        rp.start_passkey_authentication(&keys)
            .map_err(|e| AppError::internal(anyhow::anyhow!("webauthn: {e}")))
    }

    /// The stored passkey the assertion names.
    async fn registered(
        &self,
        credential: &PublicKeyCredential,
    ) -> Result<passkey::Model, AppError> {
        let id = credential.get_credential_id();
        if !(1..=MAX_CREDENTIAL_ID).contains(&id.len()) {
            return Err(AppError::InvalidPasskey);
        }
        let id = URL_SAFE_NO_PAD.encode(id);
        passkeys::find_by_credential(&self.db, &id)
            .await?
            .ok_or(AppError::InvalidPasskey)
    }

    /// The account signing in, unless an operator disabled it.
    async fn signing_in(&self, id: uuid::Uuid) -> Result<user::Model, AppError> {
        let user = users::find_by_id(&self.db, id)
            .await?
            .ok_or(AppError::InvalidPasskey)?;
        if user.disabled_at.is_some() {
            return Err(AppError::AccountDisabled);
        }
        Ok(user)
    }

    /// Checks an assertion for `row` (origin, RP ID, challenge, user
    /// presence and verification, signature, counter, as webauthn-rs
    /// does) and records the use. A counter that went backwards, here or
    /// against a use that landed first, is recorded and refused.
    async fn check_assertion(
        &self,
        db: &impl ConnectionTrait,
        credential: &PublicKeyCredential,
        expected: Expected,
        row: &passkey::Model,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let rp = self.relying_party.webauthn()?;
        let mut key: Passkey = serde_json::from_str(&row.credential).map_err(AppError::internal)?;
        let result = match expected {
            Expected::Discoverable(state) => {
                rp.finish_discoverable_authentication_v2(credential, state, &key)
            }
            Expected::Listed(state) => rp.finish_passkey_authentication(credential, &state),
        };
        let result = match result {
            Ok(result) if result.cred_id() == key.cred_id() => result,
            Ok(_) => return Err(AppError::InvalidPasskey),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Err(self.regressed(db, row, client, now).await);
            }
            Err(err) => {
                tracing::info!(user_id = %row.user_id, error = %err, "passkey assertion refused");
                return Err(AppError::InvalidPasskey);
            }
        };
        key.update_credential(&result);
        let stored = serde_json::to_string(&key).map_err(AppError::internal)?;
        let (counter, backed_up) = (result.counter(), result.backup_state());
        if !passkeys::record_use(db, row.id, counter, stored, backed_up, now).await? {
            return Err(self.regressed(db, row, client, now).await);
        }
        Ok(())
    }

    /// Records a signature counter that went backwards, and refuses.
    async fn regressed(
        &self,
        db: &impl ConnectionTrait,
        row: &passkey::Model,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> AppError {
        tracing::warn!(user_id = %row.user_id, passkey_id = %row.id, "passkey counter went backwards: it may be cloned");
        let event = NewEvent::of_account(EventKind::PasskeyCounterRegressed, row.user_id, now)
            .detail(&row.name)
            .client(client);
        match security_events::insert(db, vec![event]).await {
            Ok(()) => AppError::InvalidPasskey,
            Err(err) => err.into(),
        }
    }
}

/// The browser's assertion, as webauthn-rs reads it.
fn parse(credential: serde_json::Value) -> Result<PublicKeyCredential, AppError> {
    serde_json::from_value(credential).map_err(|e| {
        AppError::BadUserInput(format!("credential is not an assertion response: {e}"))
    })
}
