//! Read operations.

use async_graphql::{Context, Object, Result, SimpleObject};

use crate::graphql::types::Viewer;
use crate::graphql::{any_level, auth_service};

/// The ways to sign in this server offers, for a sign-in page to show.
#[derive(SimpleObject)]
pub struct SignInOptions {
    /// The OpenID Connect providers of `GATEHOUSE_OIDC_PROVIDERS`.
    pub providers: Vec<SignInProvider>,
    /// Whether `requestEmailSignInCode` is on (`GATEHOUSE_EMAIL_SIGN_IN`).
    pub email_code: bool,
}

/// A provider to sign in with.
#[derive(SimpleObject)]
pub struct SignInProvider {
    /// For `beginProviderSignIn`.
    pub id: String,
    /// What to call it on a button.
    pub name: String,
}

/// The root of every read.
pub struct Query;

/// Every read.
#[Object]
impl Query {
    /// The signed-in user, their current session and all their live sessions.
    /// Needs a session token.
    async fn me(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let (_, current) = any_level(ctx)?;
        Ok(Viewer::new(current.clone()))
    }

    /// The ways to sign in this server offers. Needs no session.
    async fn sign_in_options(&self, ctx: &Context<'_>) -> Result<SignInOptions> {
        let service = auth_service(ctx)?;
        let providers = service.providers().into_iter();
        Ok(SignInOptions {
            providers: providers
                .map(|(id, name)| SignInProvider { id, name })
                .collect(),
            email_code: service.email_sign_in,
        })
    }
}
