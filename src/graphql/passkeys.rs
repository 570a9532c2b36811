//! Passkeys over GraphQL: each ceremony in two steps, a `begin…` that
//! returns the browser's options and a finish that takes its response.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::AppError;
use crate::graphql::types::{AuthPayload, Passkey, signed_in_payload};
use crate::graphql::{any_level, auth_service, request, signed_in};
use crate::measure;
use crate::services::auth::{Ceremony, NewPasskey, PasskeyAssertion};

/// A WebAuthn ceremony begun on the server, where its state stays.
#[derive(SimpleObject)]
pub struct PasskeyCeremony {
    /// Names this ceremony: send it back with the browser's response.
    /// Single use; it dies after 5 minutes.
    pub ceremony: String,
    /// `{ publicKey }` for `navigator.credentials.create()` or `.get()`,
    /// binary fields in base64url: pass `publicKey` through
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` or
    /// `parseRequestOptionsFromJSON`. `beginPasskeySignIn` adds
    /// `mediation: "conditional"` for autofill; drop it for a button.
    pub options: Json<serde_json::Value>,
    /// When it can no longer be finished.
    pub expires_at: DateTime<Utc>,
}

impl From<Ceremony> for PasskeyCeremony {
    fn from(ceremony: Ceremony) -> Self {
        Self {
            ceremony: ceremony.token.expose().to_owned(),
            options: Json(ceremony.options),
            expires_at: ceremony.expires_at,
        }
    }
}

/// The browser's answer to a ceremony that makes a passkey.
#[derive(InputObject)]
pub struct NewPasskeyInput {
    /// `PasskeyCeremony.ceremony`.
    pub ceremony: String,
    /// The `PublicKeyCredential`'s `toJSON()`.
    pub credential: Json<serde_json::Value>,
    /// What to call it, up to 64 characters; default `Passkey`.
    pub name: Option<String>,
}

/// A passkey sign-in's answer.
#[derive(InputObject)]
pub struct SignInWithPasskeyInput {
    /// `PasskeyCeremony.ceremony`, from `beginPasskeySignIn`.
    pub ceremony: String,
    /// The `PublicKeyCredential`'s `toJSON()`.
    pub credential: Json<serde_json::Value>,
    /// As `login`'s `rememberMe`.
    pub remember_me: Option<bool>,
}

fn passkey_id(id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

/// Passkeys' writes.
#[derive(Default)]
pub struct PasskeyMutation;

#[Object]
impl PasskeyMutation {
    /// Starts adding a passkey to the caller's account. Needs a session
    /// proven within `GATEHOUSE_FRESH_AGE`.
    async fn begin_passkey_registration(&self, ctx: &Context<'_>) -> Result<PasskeyCeremony> {
        let (request, current) = signed_in(ctx)?;
        let ceremony = auth_service(ctx)?
            .begin_passkey_registration(current, request.now)
            .await?;
        Ok(ceremony.into())
    }

    /// Finishes adding a passkey with the browser's response. The
    /// account's address is told.
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ceremony, the browser's response, and a name.")]
        input: NewPasskeyInput,
    ) -> Result<Passkey> {
        let (request, current) = signed_in(ctx)?;
        let new = NewPasskey {
            ceremony: &input.ceremony,
            credential: input.credential.0,
            name: input.name.as_deref(),
        };
        let client = request.client.info();
        let row = auth_service(ctx)?
            .finish_passkey_registration(current, new, &client, request.now)
            .await?;
        Ok(Passkey::from(&row))
    }

    /// Renames one of the caller's passkeys.
    async fn rename_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`Passkey.id`.")] id: ID,
        #[graphql(desc = "The new name, up to 64 characters.")] name: String,
    ) -> Result<Passkey> {
        let (_, current) = signed_in(ctx)?;
        let row = auth_service(ctx)?
            .rename_passkey(current, passkey_id(&id)?, &name)
            .await?;
        Ok(Passkey::from(&row))
    }

    /// Deletes one of the caller's passkeys. Needs a fresh session;
    /// `LAST_SIGN_IN_METHOD` if the account would have no way to sign in.
    async fn delete_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`Passkey.id`.")] id: ID,
    ) -> Result<bool> {
        let (request, current) = signed_in(ctx)?;
        let client = request.client.info();
        auth_service(ctx)?
            .delete_passkey(current, passkey_id(&id)?, &client, request.now)
            .await?;
        Ok(true)
    }

    /// Starts a sign-in with a passkey and no address: the browser offers
    /// the passkeys it holds for this site.
    async fn begin_passkey_sign_in(&self, ctx: &Context<'_>) -> Result<PasskeyCeremony> {
        let request = request(ctx)?;
        let ceremony = auth_service(ctx)?
            .begin_passkey_sign_in(&request.client.info(), request.now)
            .await?;
        Ok(ceremony.into())
    }

    /// Signs in with the passkey the browser chose: a session with method
    /// `PASSKEY`, at `AAL2`. Failures count as wrong codes do.
    async fn sign_in_with_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ceremony and the browser's response.")] input: SignInWithPasskeyInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let client = request.client.info();
        let assertion = PasskeyAssertion {
            ceremony: input.ceremony,
            credential: input.credential.0,
        };
        let remember_me = input.remember_me.unwrap_or(false);
        let signed_in = auth_service(ctx)?
            .sign_in_with_passkey(assertion, remember_me, &client, request.now)
            .await;
        measure::sign_in(&signed_in);
        Ok(signed_in_payload(ctx, signed_in?, request.now))
    }

    /// Starts creating an account with a passkey and this address, and
    /// no password (`GATEHOUSE_REGISTRATION=open` only).
    async fn begin_passkey_sign_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account's address.")] email: String,
    ) -> Result<PasskeyCeremony> {
        let request = request(ctx)?;
        let client = request.client.info();
        let ceremony = auth_service(ctx)?
            .begin_passkey_sign_up(&email, &client, request.now)
            .await?;
        Ok(ceremony.into())
    }

    /// Creates the account with the browser's new passkey, signed in with
    /// it. The address is sent a link to verify it, as with `register`.
    async fn sign_up_with_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ceremony, the browser's response, and a name.")]
        input: NewPasskeyInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let new = NewPasskey {
            ceremony: &input.ceremony,
            credential: input.credential.0,
            name: input.name.as_deref(),
        };
        let client = request.client.info();
        let signed_in = auth_service(ctx)?
            .sign_up_with_passkey(new, &client, request.now)
            .await;
        measure::sign_in(&signed_in);
        Ok(signed_in_payload(ctx, signed_in?, request.now))
    }

    /// Starts answering `SECOND_FACTOR_REQUIRED` with a passkey, when its
    /// `extensions.methods` include `PASSKEY`; finish with
    /// `completeSignIn(input: { challenge, passkey })`.
    async fn begin_passkey_second_factor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`extensions.challenge` from `SECOND_FACTOR_REQUIRED`.")]
        challenge: String,
    ) -> Result<PasskeyCeremony> {
        let request = request(ctx)?;
        let ceremony = auth_service(ctx)?
            .begin_passkey_second_factor(&challenge, request.now)
            .await?;
        Ok(ceremony.into())
    }

    /// Starts proving a passkey again on this session; finish with
    /// `reauthenticate(input: { passkey })`.
    async fn begin_passkey_reauthentication(&self, ctx: &Context<'_>) -> Result<PasskeyCeremony> {
        let (request, current) = any_level(ctx)?;
        let ceremony = auth_service(ctx)?
            .begin_passkey_reauthentication(current, request.now)
            .await?;
        Ok(ceremony.into())
    }
}
