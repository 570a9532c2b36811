//! Write operations. Each takes one `input` (where it needs any) and returns
//! a payload.

use async_graphql::{Context, Object, Result};
use axum::http::header;
use chrono::Utc;
use uuid::Uuid;

use crate::error::AppError;
use crate::graphql::types::{
    AuthPayload, ChangePasswordInput, ChangePasswordPayload, LoginInput, RefreshSessionPayload,
    RegisterInput, RevokeSessionInput, RevokeSessionPayload, Session,
};
use crate::graphql::{auth_service, current, request_auth};
use crate::http::cookie::SessionCookie;
use crate::services::auth::{AuthService, SignedIn};

/// The root of every write.
pub struct Mutation;

/// Every write: signing up and in, keeping a session alive, signing out.
#[Object]
impl Mutation {
    /// Creates an account and signs it in at once.
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account's e-mail and password.")] input: RegisterInput,
    ) -> Result<AuthPayload> {
        let auth = auth_service(ctx)?;
        let client = request_auth(ctx)?.client.info();
        let signed_in = auth.register(&input.email, input.password, &client).await?;
        Ok(signed_in_payload(ctx, signed_in, auth))
    }

    /// Signs in with e-mail and password, opening a new session with a new token.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's e-mail and password.")] input: LoginInput,
    ) -> Result<AuthPayload> {
        let auth = auth_service(ctx)?;
        let client = request_auth(ctx)?.client.info();
        let signed_in = auth.login(&input.email, input.password, &client).await?;
        Ok(signed_in_payload(ctx, signed_in, auth))
    }

    /// Records activity now, sliding the idle window; the absolute cap stays.
    /// Needs a session token.
    async fn refresh_session(&self, ctx: &Context<'_>) -> Result<RefreshSessionPayload> {
        let auth = auth_service(ctx)?;
        let session = auth.refresh(current(ctx)?).await?;
        let session = Session::of_current(&session, auth.policy());
        Ok(RefreshSessionPayload {
            expires_at: session.expires_at,
            session,
        })
    }

    /// Signs out one of the caller's sessions, on every node at once.
    /// Needs a session token.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which of your sessions to sign out.")] input: RevokeSessionInput,
    ) -> Result<RevokeSessionPayload> {
        let auth = auth_service(ctx)?;
        let current = current(ctx)?;
        let id = Uuid::parse_str(&input.session_id)
            .map_err(|_| AppError::BadUserInput("sessionId must be a UUID".into()))?;
        let session = auth.revoke(current, id).await?;
        Ok(RevokeSessionPayload {
            session: Session::new(&session, auth.policy(), current.session.id),
        })
    }

    /// Signs out the current session (and clears the session cookie, if
    /// cookies are on). Needs a session token.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let current = current(ctx)?;
        auth_service(ctx)?
            .revoke(current, current.session.id)
            .await?;
        if let Some(cookie) = ctx.data_opt::<SessionCookie>() {
            ctx.append_http_header(header::SET_COOKIE, cookie.clear());
        }
        Ok(true)
    }

    /// Signs out every other session of the caller; returns how many.
    /// Needs a session token.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> Result<i32> {
        let count = auth_service(ctx)?.revoke_others(current(ctx)?).await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// Replaces the caller's password and signs out every other session; this
    /// one stays. Needs a session token and the current password.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The current password and the new one.")] input: ChangePasswordInput,
    ) -> Result<ChangePasswordPayload> {
        let auth = auth_service(ctx)?;
        let current = current(ctx)?;
        let client = request_auth(ctx)?.client.info();
        let changed = auth
            .change_password(current, input.current_password, input.new_password, &client)
            .await?;
        Ok(ChangePasswordPayload {
            session: Session::of_current(&current.session, auth.policy()),
            revoked_sessions: i32::try_from(changed.revoked_sessions).unwrap_or(i32::MAX),
        })
    }
}

/// The payload of a new session; with cookies on, also sets the cookie for
/// as long as the session can live.
fn signed_in_payload(ctx: &Context<'_>, signed_in: SignedIn, auth: &AuthService) -> AuthPayload {
    let payload = AuthPayload::new(signed_in, auth.policy());
    if let Some(cookie) = ctx.data_opt::<SessionCookie>() {
        let max_age = (payload.session.absolute_expires_at - Utc::now()).num_seconds();
        if let Some(value) = cookie.set(&payload.token, max_age) {
            ctx.append_http_header(header::SET_COOKIE, value);
        }
    }
    payload
}
