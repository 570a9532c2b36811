//! The GraphQL API: its schema, resolvers and output types.

pub mod document_cache;
mod document_cost;
pub mod email_code;
pub mod limits;
pub mod mutation;
pub mod null_propagation;
pub mod operation_label;
pub mod passkeys;
pub mod persisted;
pub mod providers;
pub mod query;
pub mod request_checks;
pub mod schema;
pub mod second_factor;
pub mod subscription;
pub mod types;
pub mod variables;

use std::sync::Arc;

use async_graphql::Context;

use crate::context::{CurrentSession, RequestContext};
use crate::domain::second_factor::Restriction;
use crate::error::{AppError, AuthFailure};
use crate::services::auth::AuthService;
use crate::services::recovery::Recovery;

/// What the guard decided about this request.
fn request<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext, AppError> {
    if let Some(request) = ctx.data_opt::<Arc<RequestContext>>() {
        return Ok(request);
    }
    // A WebSocket connection carries its session, and no request: only
    // subscriptions run there.
    if ctx.data_opt::<CurrentSession>().is_some() {
        return Err(AppError::BadRequest(
            "Only subscriptions run over the WebSocket; send queries and mutations over HTTP"
                .into(),
        ));
    }
    Err(AppError::internal(anyhow::anyhow!(
        "request context missing"
    )))
}

/// The request and its session at whatever assurance level, or
/// `UNAUTHENTICATED`/`MISSING_TOKEN`: only for `me`, signing out, and what
/// lifts a second-factor restriction (step-up, enrolment). (The guard has
/// already refused any token that was sent but not valid.)
fn any_level<'a>(ctx: &Context<'a>) -> Result<(&'a RequestContext, &'a CurrentSession), AppError> {
    let request = request(ctx)?;
    let session = request
        .session
        .as_ref()
        .ok_or(AppError::Unauthenticated(AuthFailure::MissingToken))?;
    Ok((request, session))
}

/// As [`any_level`], refusing a session the second-factor rule restricts
/// (decided by the guard for this request): `AAL2_REQUIRED` or
/// `SECOND_FACTOR_ENROLMENT_REQUIRED`.
fn signed_in<'a>(ctx: &Context<'a>) -> Result<(&'a RequestContext, &'a CurrentSession), AppError> {
    let (request, session) = any_level(ctx)?;
    match session.restriction {
        None => Ok((request, session)),
        Some(Restriction::ProveFactor) => Err(AppError::Aal2Required),
        Some(Restriction::Enrol) => Err(AppError::EnrolmentRequired),
    }
}

/// As [`signed_in`], for what an account whose address is not verified may
/// not do while `GATEHOUSE_REQUIRE_VERIFIED_EMAIL` is on.
fn verified<'a>(ctx: &Context<'a>) -> Result<(&'a RequestContext, &'a CurrentSession), AppError> {
    let (request, session) = signed_in(ctx)?;
    let required = ctx
        .data_opt::<schema::RequireVerifiedEmail>()
        .is_some_and(|rule| rule.0);
    if required && !session.account.email_verified {
        return Err(AppError::EmailNotVerified);
    }
    Ok((request, session))
}

fn recovery<'a>(ctx: &Context<'a>) -> Result<&'a Recovery, AppError> {
    ctx.data::<Recovery>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("recovery service missing: {}", e.message)))
}

fn auth_service<'a>(ctx: &Context<'a>) -> Result<&'a Arc<AuthService>, AppError> {
    ctx.data::<Arc<AuthService>>()
        .map_err(|e| AppError::internal(anyhow::anyhow!("auth service missing: {}", e.message)))
}
