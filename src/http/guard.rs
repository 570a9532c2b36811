//! The session guard: runs before any resolver, on every GraphQL request.
//! A token that is sent must be valid, live and unrevoked, or the request is
//! refused with 401 and the reason; resolvers only ever see the outcome.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::token::SessionToken;
use crate::error::{AppError, AuthFailure};
use crate::graphql::RequestAuth;
use crate::repo::sessions::ClientInfo;
use crate::services::auth::AuthService;

/// The longest `User-Agent` kept on a session.
const MAX_USER_AGENT: usize = 512;

/// Authenticates the request, then hands a [`RequestAuth`] to the schema.
pub async fn guard(State(auth): State<AuthService>, mut request: Request, next: Next) -> Response {
    let current = match bearer_token(request.headers()) {
        Ok(None) => None,
        Ok(Some(token)) => match auth.authenticate(&token).await {
            Ok(current) => Some(current),
            Err(err) => return err.into_response(),
        },
        Err(failure) => return AppError::Unauthenticated(failure).into_response(),
    };
    let client = client_info(&request);
    request
        .extensions_mut()
        .insert(RequestAuth { current, client });
    next.run(request).await
}

/// The token from `Authorization: Bearer …`; any other `Authorization` is
/// an invalid token rather than silently anonymous.
fn bearer_token(headers: &HeaderMap) -> Result<Option<SessionToken>, AuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthFailure::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::InvalidToken);
    }
    SessionToken::parse(token.trim())
        .map(Some)
        .ok_or(AuthFailure::InvalidToken)
}

fn client_info(request: &Request) -> ClientInfo {
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
    let ip_address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    ClientInfo {
        user_agent,
        ip_address,
    }
}
