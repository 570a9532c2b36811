//! Signing in with other identity providers over GraphQL: a `begin…` that
//! returns where to send the browser and the secret it keeps, and a finish
//! that takes what the provider sent back.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::AppError;
use crate::graphql::types::{AuthPayload, ExternalIdentity, signed_in_payload};
use crate::graphql::{auth_service, request, signed_in};
use crate::measure;
use crate::services::auth::{ProviderAuthorization, ProviderReturn};

/// A provider flow begun: send the browser to `authorizationUrl`, and keep
/// `flow` (in `sessionStorage`) until it comes back.
#[derive(SimpleObject)]
pub struct ProviderFlow {
    /// The provider's page, with `state`, `nonce` and the PKCE challenge.
    pub authorization_url: String,
    /// The secret that only this browser holds: without it, a `code` and
    /// `state` brought back sign no one in. Single use; dies after 10 minutes.
    pub flow: String,
    /// When it can no longer be finished.
    pub expires_at: DateTime<Utc>,
}

impl From<ProviderAuthorization> for ProviderFlow {
    fn from(authorization: ProviderAuthorization) -> Self {
        Self {
            authorization_url: authorization.url,
            flow: authorization.flow.expose().to_owned(),
            expires_at: authorization.expires_at,
        }
    }
}

/// Which provider, and where it sends the browser back.
#[derive(InputObject)]
pub struct BeginProviderInput {
    /// `SignInProvider.id`.
    pub provider: String,
    /// One of `GATEHOUSE_OIDC_REDIRECT_URIS`, exactly.
    pub redirect_uri: String,
}

/// What the browser brought back from the provider.
#[derive(InputObject)]
pub struct ProviderReturnInput {
    /// `ProviderFlow.flow`, as this browser kept it.
    pub flow: String,
    /// The `code` query parameter of the redirect.
    pub code: String,
    /// The `state` query parameter of the redirect.
    pub state: String,
    /// The `iss` query parameter of the redirect, if the provider sent
    /// one (RFC 9207): a code from another issuer is refused.
    pub iss: Option<String>,
    /// As `login`'s `rememberMe` (sign-in only).
    pub remember_me: Option<bool>,
}

impl ProviderReturnInput {
    fn split(self) -> (ProviderReturn, bool) {
        let back = ProviderReturn {
            flow: self.flow,
            code: self.code,
            state: self.state,
            iss: self.iss,
        };
        (back, self.remember_me.unwrap_or(false))
    }
}

/// Other providers' writes.
#[derive(Default)]
pub struct ProviderMutation;

#[Object]
impl ProviderMutation {
    /// Starts a sign-in (or sign-up) at another provider.
    async fn begin_provider_sign_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider and the redirect URI.")] input: BeginProviderInput,
    ) -> Result<ProviderFlow> {
        let request = request(ctx)?;
        let client = request.client.info();
        let flow = auth_service(ctx)?
            .begin_provider_sign_in(&input.provider, &input.redirect_uri, &client, request.now)
            .await?;
        Ok(flow.into())
    }

    /// Finishes a provider sign-in: a session with method `PROVIDER`
    /// (`AAL1`), or `SECOND_FACTOR_REQUIRED` where the account has a
    /// factor. A first sign-in makes an account, or joins the one with
    /// the same address only if the provider and the account both proved
    /// it and the provider is trusted for linking; else `LINK_REQUIRED`.
    async fn sign_in_with_provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The flow, and the redirect's code and state.")]
        input: ProviderReturnInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let client = request.client.info();
        let (back, remember_me) = input.split();
        let signed_in = auth_service(ctx)?
            .sign_in_with_provider(back, remember_me, &client, request.now)
            .await;
        measure::sign_in(&signed_in);
        Ok(signed_in_payload(ctx, signed_in?, request.now))
    }

    /// Starts linking an account at another provider to the caller's.
    /// Needs a session proven within `GATEHOUSE_FRESH_AGE`.
    async fn begin_provider_link(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider and the redirect URI.")] input: BeginProviderInput,
    ) -> Result<ProviderFlow> {
        let (request, current) = signed_in(ctx)?;
        let flow = auth_service(ctx)?
            .begin_provider_link(current, &input.provider, &input.redirect_uri, request.now)
            .await?;
        Ok(flow.into())
    }

    /// Finishes linking, on the session that began it. The account's
    /// address is told.
    async fn link_provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The flow, and the redirect's code and state.")]
        input: ProviderReturnInput,
    ) -> Result<ExternalIdentity> {
        let (request, current) = signed_in(ctx)?;
        let (back, _) = input.split();
        let client = request.client.info();
        let row = auth_service(ctx)?
            .link_provider(current, back, &client, request.now)
            .await?;
        Ok(ExternalIdentity::from(&row))
    }

    /// Unlinks one of the caller's providers. Needs a fresh session;
    /// `LAST_SIGN_IN_METHOD` if the account would have no way to sign in.
    async fn unlink_provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`ExternalIdentity.id`.")] id: ID,
    ) -> Result<bool> {
        let (request, current) = signed_in(ctx)?;
        let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
        let client = request.client.info();
        auth_service(ctx)?
            .unlink_provider(current, id, &client, request.now)
            .await?;
        Ok(true)
    }
}
