//! Signing in with a code sent by e-mail, over GraphQL.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::types::{AuthPayload, signed_in_payload};
use crate::graphql::{auth_service, request};
use crate::measure;
use crate::services::auth::EmailCodeAttempt;

/// What the browser keeps after asking for a code: the same whether or
/// not an account has the address.
#[derive(SimpleObject)]
pub struct EmailCodeChallenge {
    /// Send it back with the code: the code counts only with it.
    pub challenge: String,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// A code and the challenge it was sent for.
#[derive(InputObject)]
pub struct SignInWithEmailCodeInput {
    /// `EmailCodeChallenge.challenge`.
    pub challenge: String,
    /// The 8 digits from the e-mail.
    pub code: String,
    /// As `login`'s `rememberMe`.
    pub remember_me: Option<bool>,
}

/// Sign-in codes' writes.
#[derive(Default)]
pub struct EmailCodeMutation;

#[Object]
impl EmailCodeMutation {
    /// Sends an 8-digit sign-in code to the address if an account has it,
    /// valid for 10 minutes. Answers alike, in content and in time, for
    /// every address. `EMAIL_SIGN_IN_DISABLED` unless
    /// `GATEHOUSE_EMAIL_SIGN_IN=on`.
    async fn request_email_sign_in_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's address.")] email: String,
    ) -> Result<EmailCodeChallenge> {
        let request = request(ctx)?;
        let client = request.client.info();
        let asked = auth_service(ctx)?
            .request_email_code(&email, &client, request.now)
            .await?;
        Ok(EmailCodeChallenge {
            challenge: asked.challenge.expose().to_owned(),
            expires_at: asked.expires_at,
        })
    }

    /// Signs in with the code: a session with method `EMAIL_CODE`
    /// (`AAL1`), or `SECOND_FACTOR_REQUIRED` where the account has a
    /// factor. It proves the address; on an account whose address no one
    /// had proven, every way in set up before is taken back.
    async fn sign_in_with_email_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The challenge and its code.")] input: SignInWithEmailCodeInput,
    ) -> Result<AuthPayload> {
        let request = request(ctx)?;
        let client = request.client.info();
        let attempt = EmailCodeAttempt {
            challenge: &input.challenge,
            code: &input.code,
            remember_me: input.remember_me.unwrap_or(false),
        };
        let signed_in = auth_service(ctx)?
            .sign_in_with_email_code(attempt, &client, request.now)
            .await;
        measure::sign_in(&signed_in);
        Ok(signed_in_payload(ctx, signed_in?, request.now))
    }
}
