//! Passkeys on an account: registering one from a fresh session, creating
//! an account with one and no password, naming and removing them. Every
//! ceremony's state is stored here, single-use, so any node finishes it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use entity::{passkey, passkey_ceremony, user};
use sea_orm::TransactionTrait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Credential, CredentialID, Passkey, PasskeyRegistration,
    RegisterPublicKeyCredential, Webauthn,
};

use webauthn_rs_proto::ResidentKeyRequirement;

use crate::context::CurrentSession;
use crate::domain::client::ClientInfo;
use crate::domain::email::Email;
use crate::domain::passkey::{Purpose, aaguid_of, parse_name};
use crate::domain::second_factor::{Method, Methods};
use crate::domain::security_event::EventKind;
use crate::domain::token::{CeremonyToken, Purpose as LinkPurpose, TokenHash};
use crate::error::AppError;
use crate::mail::templates::SecondFactorNotice;
use crate::repo::passkey_ceremonies::{self, Owner};
use crate::repo::security_events::{self, NewEvent};
use crate::repo::{passkeys, users};
use crate::services::auth::sign_in::Opening;
use crate::services::auth::ways_in::ways_in;
use crate::services::auth::{AuthService, SignedIn, email_taken};
use crate::services::relying_party::CEREMONY_LIFETIME;

/// The longest credential ID WebAuthn allows, in bytes.
pub(in crate::services::auth) const MAX_CREDENTIAL_ID: usize = 1023;

/// A ceremony begun: the token that names it and the options for the
/// browser, as JSON.
pub struct Ceremony {
    pub token: CeremonyToken,
    pub options: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// Who and what a ceremony is for, beside its state.
#[derive(Default)]
pub(in crate::services::auth) struct Bound<'a> {
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub challenge: Option<&'a TokenHash>,
    pub email: Option<&'a str>,
}

/// A passkey the browser just made, checked and ready to store.
struct Made {
    passkey: Passkey,
    aaguid: Option<Uuid>,
}

/// What a registration's finish brings: the ceremony, the browser's
/// response, and the name to give the passkey.
pub struct NewPasskey<'a> {
    pub ceremony: &'a str,
    pub credential: serde_json::Value,
    pub name: Option<&'a str>,
}

impl AuthService {
    /// Starts adding a passkey to the caller's account; needs a fresh
    /// session. Its authenticators already registered are excluded.
    pub async fn begin_passkey_registration(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<Ceremony, AppError> {
        self.require_fresh_for_passkeys(current, now)?;
        let rp = self.relying_party.webauthn()?;
        let account = &current.account;
        let existing = passkeys::list(&self.db, account.id).await?;
        let exclude = existing
            .iter()
            .filter_map(|row| URL_SAFE_NO_PAD.decode(&row.credential_id).ok())
            .collect();
        let (options, state) = start_registration(rp, account.id, &account.email, exclude)?;
        let bound = Bound {
            user_id: Some(account.id),
            session_id: Some(current.session.id),
            ..Bound::default()
        };
        self.store_ceremony(Purpose::Register, bound, &state, &options, now)
            .await
    }

    /// Finishes adding a passkey from the browser's response; the
    /// ceremony must be this session's. The account's address is told.
    pub async fn finish_passkey_registration(
        &self,
        current: &CurrentSession,
        new: NewPasskey<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<passkey::Model, AppError> {
        let name = parse_name(new.name, "Passkey").map_err(AppError::BadUserInput)?;
        let rp = self.relying_party.webauthn()?;
        let row = self
            .take_ceremony(
                &self.db,
                new.ceremony,
                Purpose::Register,
                owner(current),
                now,
            )
            .await?;
        let state: PasskeyRegistration = state_of(&row)?;
        let made = finish_registration(rp, new.credential, &state)?;
        let (txn, at) = self.claim(current, now).await?;
        let user = current.account.id;
        let stored = passkey_row(user, made, name, at)?;
        if !passkeys::insert(&txn, stored.clone()).await? {
            txn.rollback().await?;
            return Err(AppError::PasskeyAlreadyRegistered);
        }
        let event = NewEvent::of(EventKind::PasskeyAdded, user, current.session.id, at)
            .detail(&stored.name)
            .client(client);
        security_events::insert(&txn, vec![event]).await?;
        let (email, notice) = (&current.account.email, SecondFactorNotice::PasskeyAdded);
        self.outbox
            .queue_second_factor_notice(&txn, email, notice, at)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user, passkey_id = %stored.id, "passkey added");
        Ok(stored)
    }

    /// Whether the account has a password.
    pub async fn has_password(&self, user_id: Uuid) -> Result<bool, AppError> {
        let user = users::find_by_id(&self.db, user_id).await?;
        Ok(user.is_some_and(|u| u.password_hash != user::NO_PASSWORD))
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, user_id: Uuid) -> Result<Vec<passkey::Model>, AppError> {
        Ok(passkeys::list(&self.db, user_id).await?)
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename_passkey(
        &self,
        current: &CurrentSession,
        id: Uuid,
        name: &str,
    ) -> Result<passkey::Model, AppError> {
        let name = parse_name(Some(name), "").map_err(AppError::BadUserInput)?;
        let user = current.account.id;
        if !passkeys::rename(&self.db, user, id, &name).await? {
            return Err(AppError::NotFound);
        }
        passkeys::find_owned(&self.db, user, id)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Deletes one of the caller's passkeys; needs a fresh session, and
    /// refuses to leave the account with no way to sign in. The account's
    /// address is told.
    pub async fn delete_passkey(
        &self,
        current: &CurrentSession,
        id: Uuid,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        self.require_fresh_for_passkeys(current, now)?;
        let user = current.account.id;
        // The account is locked by the claim: two deletes at once are
        // judged one after the other, so both cannot leave nothing.
        let (txn, at) = self.claim(current, now).await?;
        let Some(row) = passkeys::find_owned(&txn, user, id).await? else {
            txn.rollback().await?;
            return Err(AppError::NotFound);
        };
        let account = users::find_by_id(&txn, user)
            .await?
            .ok_or(AppError::NotFound)?;
        if ways_in(&txn, &account).await? <= 1 {
            txn.rollback().await?;
            return Err(AppError::LastSignInMethod);
        }
        passkeys::delete(&txn, user, id).await?;
        let event = NewEvent::of(EventKind::PasskeyRemoved, user, current.session.id, at)
            .detail(&row.name)
            .client(client);
        security_events::insert(&txn, vec![event]).await?;
        let notice = SecondFactorNotice::PasskeyRemoved;
        self.outbox
            .queue_second_factor_notice(&txn, &account.email, notice, at)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(user_id = %user, passkey_id = %id, "passkey removed");
        Ok(())
    }

    /// Starts creating an account with a passkey and no password. The
    /// address is checked at the finish, where the unique index decides.
    pub async fn begin_passkey_sign_up(
        &self,
        email: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Ceremony, AppError> {
        if !self.registration_open {
            return Err(AppError::RegistrationClosed);
        }
        let email = Email::parse(email).map_err(AppError::BadUserInput)?;
        let rp = self.relying_party.webauthn()?;
        self.throttle.reserve_registration(client.ip, now).await?;
        // As `register` does; the unique index still decides a race.
        if users::find_by_email(&self.db, &email).await?.is_some() {
            return Err(AppError::EmailTaken);
        }
        // The account's id, and the user handle its passkey will hold.
        let id = Uuid::new_v4();
        let (options, state) = start_registration(rp, id, email.as_str(), Vec::new())?;
        let bound = Bound {
            user_id: Some(id),
            email: Some(email.as_str()),
            ..Bound::default()
        };
        self.store_ceremony(Purpose::SignUp, bound, &state, &options, now)
            .await
    }

    /// Creates the account from the browser's response and opens its
    /// first session, signed in with the passkey (AAL2). The address is
    /// sent a link to prove it, as with `register`.
    pub async fn sign_up_with_passkey(
        &self,
        new: NewPasskey<'_>,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, AppError> {
        let name = parse_name(new.name, "Passkey").map_err(AppError::BadUserInput)?;
        let (id, email, made) = self.made_for_sign_up(new, now).await?;
        let mail = self.may_mail(&email, now).await?;
        let txn = self.db.begin().await?;
        let user = users::insert_passwordless(&txn, id, &email, now)
            .await
            .map_err(email_taken)?;
        let stored = passkey::Model {
            // It signs in at once.
            last_used_at: Some(now),
            ..passkey_row(user.id, made, name, now)?
        };
        if !passkeys::insert(&txn, stored.clone()).await? {
            txn.rollback().await?;
            return Err(AppError::PasskeyAlreadyRegistered);
        }
        let event = NewEvent::of_account(EventKind::PasskeyAdded, user.id, now)
            .detail(&stored.name)
            .client(client);
        security_events::insert(&txn, vec![event]).await?;
        if mail {
            self.outbox
                .queue_link(&txn, LinkPurpose::Verify, user.id, &user.email, now)
                .await?;
        }
        let opening = Opening {
            user: &user,
            credential_version: user.credential_version,
            by: "REGISTER",
            methods: Methods::of(&[Method::Passkey]),
            remember_me: false,
            client,
        };
        let signed_in = self.open_session(txn, opening, now).await?;
        self.outbox.wake();
        Ok(signed_in)
    }

    /// The sign-up ceremony `new` finishes: the account's id and address
    /// it was begun for, and the passkey the browser made for it.
    async fn made_for_sign_up(
        &self,
        new: NewPasskey<'_>,
        now: DateTime<Utc>,
    ) -> Result<(Uuid, Email, Made), AppError> {
        let rp = self.relying_party.webauthn()?;
        let (purpose, owner) = (Purpose::SignUp, Owner::default());
        let row = self
            .take_ceremony(&self.db, new.ceremony, purpose, owner, now)
            .await?;
        let (Some(id), Some(email)) = (row.user_id, row.email.as_deref()) else {
            return Err(AppError::InvalidCeremony);
        };
        let email = Email::parse(email).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
        let state: PasskeyRegistration = state_of(&row)?;
        let made = finish_registration(rp, new.credential, &state)?;
        Ok((id, email, made))
    }

    /// Adding or removing a passkey needs a fresh session, and on an
    /// account with a second factor, one that proved it (not merely a
    /// remembered browser): else a password and a remembered browser would
    /// make a passkey, which is AAL2 anywhere.
    fn require_fresh_for_passkeys(
        &self,
        current: &CurrentSession,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        if current.account.second_factor {
            self.require_fresh_code(current, now)
        } else {
            self.require_fresh(current, now)
        }
    }

    /// Stores a ceremony's state and returns the token naming it.
    pub(in crate::services::auth) async fn store_ceremony(
        &self,
        purpose: Purpose,
        bound: Bound<'_>,
        state: &impl Serialize,
        options: &impl Serialize,
        now: DateTime<Utc>,
    ) -> Result<Ceremony, AppError> {
        let token = CeremonyToken::generate().map_err(AppError::internal)?;
        let lifetime = TimeDelta::from_std(CEREMONY_LIFETIME).map_err(AppError::internal)?;
        let expires_at = now + lifetime;
        let row = passkey_ceremony::Model {
            token_hash: token.hash().as_str().to_owned(),
            purpose: purpose.as_str().to_owned(),
            user_id: bound.user_id,
            session_id: bound.session_id,
            challenge_hash: bound.challenge.map(|h| h.as_str().to_owned()),
            email: bound.email.map(str::to_owned),
            state: serde_json::to_string(state).map_err(AppError::internal)?,
            created_at: now,
            expires_at,
            used_at: None,
        };
        passkey_ceremonies::insert(&self.db, row).await?;
        Ok(Ceremony {
            token,
            options: serde_json::to_value(options).map_err(AppError::internal)?,
            expires_at,
        })
    }

    /// Uses up the ceremony `raw` names, if it is open and was begun for
    /// `purpose`; a failed finish cannot be retried.
    pub(in crate::services::auth) async fn take_ceremony(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        raw: &str,
        purpose: Purpose,
        owner: Owner<'_>,
        now: DateTime<Utc>,
    ) -> Result<passkey_ceremony::Model, AppError> {
        let token = CeremonyToken::parse(raw).ok_or(AppError::InvalidCeremony)?;
        passkey_ceremonies::take(db, &token.hash(), purpose.as_str(), owner, now)
            .await?
            .ok_or(AppError::InvalidCeremony)
    }
}

/// A ceremony the caller's session began.
pub(in crate::services::auth) fn owner(current: &CurrentSession) -> Owner<'static> {
    Owner {
        session_id: Some(current.session.id),
        ..Owner::default()
    }
}

/// A registration's options and state: a discoverable passkey (so that it
/// can sign in without an address), with user verification, as webauthn-rs
/// makes passkeys.
fn start_registration(
    rp: &Webauthn,
    user_id: Uuid,
    email: &str,
    exclude: Vec<CredentialID>,
) -> Result<(CreationChallengeResponse, PasskeyRegistration), AppError> {
    let exclude = (!exclude.is_empty()).then_some(exclude);
    let (mut options, state) = rp
        .start_passkey_registration(user_id, email, email, exclude)
        .map_err(|e| AppError::internal(anyhow::anyhow!("webauthn: {e}")))?;
    // webauthn-rs asks for a discoverable key only as a hint ("discouraged");
    // the browser must make one, or passkey sign-in cannot find it. The
    // server's checks are the same either way.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    Ok((options, state))
}

/// Checks the browser's response to a registration: origin, RP ID,
/// challenge, flags and attestation, as webauthn-rs does.
fn finish_registration(
    rp: &Webauthn,
    credential: serde_json::Value,
    state: &PasskeyRegistration,
) -> Result<Made, AppError> {
    let response: RegisterPublicKeyCredential =
        serde_json::from_value(credential).map_err(|e| {
            AppError::BadUserInput(format!("credential is not a registration response: {e}"))
        })?;
    let passkey = rp
        .finish_passkey_registration(&response, state)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            AppError::InvalidPasskey
        })?;
    if !(1..=MAX_CREDENTIAL_ID).contains(&passkey.cred_id().len()) {
        return Err(AppError::InvalidPasskey);
    }
    let aaguid = auth_data(&response.response.attestation_object).and_then(|d| aaguid_of(&d));
    Ok(Made { passkey, aaguid })
}

/// The authenticator data inside an attestation object (CBOR).
fn auth_data(attestation_object: &[u8]) -> Option<Vec<u8>> {
    use serde_cbor_2::Value;
    let Value::Map(map) = serde_cbor_2::from_slice(attestation_object).ok()? else {
        return None;
    };
    match map.get(&Value::Text("authData".into()))? {
        Value::Bytes(bytes) => Some(bytes.clone()),
        _ => None,
    }
}

fn passkey_row(
    user_id: Uuid,
    made: Made,
    name: String,
    now: DateTime<Utc>,
) -> Result<passkey::Model, AppError> {
    let credential = Credential::from(made.passkey.clone());
    Ok(passkey::Model {
        id: Uuid::new_v4(),
        user_id,
        credential_id: URL_SAFE_NO_PAD.encode(made.passkey.cred_id()),
        credential: serde_json::to_string(&made.passkey).map_err(AppError::internal)?,
        name,
        aaguid: made.aaguid,
        backed_up: credential.backup_state,
        sign_count: i64::from(credential.counter),
        created_at: now,
        last_used_at: None,
    })
}

/// A ceremony's stored state.
pub(in crate::services::auth) fn state_of<T: DeserializeOwned>(
    row: &passkey_ceremony::Model,
) -> Result<T, AppError> {
    serde_json::from_str(&row.state).map_err(AppError::internal)
}
