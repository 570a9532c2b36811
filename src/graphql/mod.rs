//! The GraphQL API: its schema, resolvers and output types.

pub mod document_cache;
pub mod limits;
pub mod mutation;
pub mod query;
pub mod schema;
pub mod types;

use async_graphql::Context;

use crate::error::{AppError, AuthFailure};
use crate::repo::sessions::ClientInfo;
use crate::services::auth::{AuthService, CurrentSession};

/// What the guard learned about a request, handed to every resolver.
#[derive(Clone, Debug, Default)]
pub struct RequestAuth {
    /// The verified session, when a valid token came with the request.
    pub current: Option<CurrentSession>,
    /// Where the request came from, recorded on new sessions.
    pub client: ClientInfo,
}

/// The caller's session, or `UNAUTHENTICATED`/`MISSING_TOKEN`. (The guard has
/// already refused any token that was sent but not valid.)
fn current<'a>(ctx: &Context<'a>) -> Result<&'a CurrentSession, AppError> {
    request_auth(ctx)?
        .current
        .as_ref()
        .ok_or(AppError::Unauthenticated(AuthFailure::MissingToken))
}

fn request_auth<'a>(ctx: &Context<'a>) -> Result<&'a RequestAuth, AppError> {
    ctx.data::<RequestAuth>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("request auth missing: {}", e.message)))
}

fn auth_service<'a>(ctx: &Context<'a>) -> Result<&'a AuthService, AppError> {
    ctx.data::<AuthService>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("auth service missing: {}", e.message)))
}
