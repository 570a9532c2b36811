//! The GraphQL API: its schema, resolvers and output types.

pub mod document_cache;
pub mod document_cost;
pub mod limits;
pub mod mutation;
pub mod query;
pub mod schema;
pub mod types;

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::Context;
use axum::http::HeaderValue;

use crate::error::{AppError, AuthFailure};
use crate::repo::sessions::ClientInfo;
use crate::services::auth::{AuthService, CurrentSession};

/// The longest `User-Agent` kept on a session.
const MAX_USER_AGENT: usize = 512;

/// What the guard learned about a request, handed to every resolver.
#[derive(Debug, Default)]
pub struct RequestAuth {
    /// The verified session, when a valid token came with the request.
    pub current: Option<CurrentSession>,
    /// Where the request came from, recorded on new sessions.
    pub client: Client,
}

/// Where a request came from, as it arrived. Only sign-ins record it, so it
/// becomes a [`ClientInfo`] there and costs other requests nothing.
#[derive(Debug, Default)]
pub struct Client {
    pub user_agent: Option<HeaderValue>,
    pub peer: Option<IpAddr>,
}

impl Client {
    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            user_agent: self
                .user_agent
                .as_ref()
                // UTF-8, not `to_str`, which refuses anything but ASCII.
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            ip: self.peer,
        }
    }
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
    ctx.data::<Arc<RequestAuth>>()
        .map(Arc::as_ref)
        .map_err(|e| AppError::internal(anyhow::anyhow!("request auth missing: {}", e.message)))
}

fn auth_service<'a>(ctx: &Context<'a>) -> Result<&'a AuthService, AppError> {
    ctx.data::<AuthService>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("auth service missing: {}", e.message)))
}
