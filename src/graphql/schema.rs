//! Builds the schema once at start, and prints its SDL for `schema.graphql`.

use std::sync::Arc;

use async_graphql::{MergedObject, Schema};

use crate::graphql::document_cache::DocumentCache;
use crate::graphql::email_code::EmailCodeMutation;
use crate::graphql::limits::QueryLimits;
use crate::graphql::mutation::AccountMutation;
use crate::graphql::null_propagation::{NullPropagation, OutputTypes};
use crate::graphql::operation_label::OperationLabel;
use crate::graphql::passkeys::PasskeyMutation;
use crate::graphql::providers::ProviderMutation;
use crate::graphql::query::Query;
use crate::graphql::request_checks::RequestChecks;
use crate::graphql::second_factor::SecondFactorMutation;
use crate::graphql::subscription::{ExpiryWarning, Subscription};
use crate::graphql::variables::InputTypes;
use crate::services::auth::AuthService;
use crate::services::recovery::Recovery;
use crate::session_cookie::SessionCookie;

/// `GATEHOUSE_REQUIRE_VERIFIED_EMAIL`: whether an unverified account may
/// do more than verify its address.
#[derive(Clone, Copy, Debug)]
pub struct RequireVerifiedEmail(pub bool);

/// The root of every write, from one object per area.
#[derive(MergedObject, Default)]
pub struct Mutation(
    AccountMutation,
    SecondFactorMutation,
    PasskeyMutation,
    ProviderMutation,
    EmailCodeMutation,
);

/// Gatehouse's executable schema.
pub type GatehouseSchema = Schema<Query, Mutation, Subscription>;

/// The schema with its services attached, ready to execute.
pub fn build(
    auth: AuthService,
    recovery: Recovery,
    cookie: Option<SessionCookie>,
    introspection: bool,
    warning: ExpiryWarning,
    verified: RequireVerifiedEmail,
) -> anyhow::Result<GatehouseSchema> {
    let sdl = sdl();
    let types = InputTypes::from_sdl(&sdl).map_err(anyhow::Error::msg)?;
    let outputs = OutputTypes::from_sdl(&sdl).map_err(anyhow::Error::msg)?;
    // Outermost first: the checks see the document the others return, and
    // null propagation the response they all leave.
    let mut builder = Schema::build(Query, Mutation::default(), Subscription)
        .extension(NullPropagation::new(outputs))
        .extension(OperationLabel)
        .extension(RequestChecks::new(types))
        .extension(DocumentCache::default())
        .extension(QueryLimits::default())
        // In an Arc: each live subscription keeps a handle on it.
        .data(Arc::new(auth))
        .data(recovery)
        .data(warning)
        .data(verified);
    if let Some(cookie) = cookie {
        builder = builder.data(cookie);
    }
    if !introspection {
        builder = builder.disable_introspection();
    }
    Ok(builder.finish())
}

/// The SDL that `gatehouse schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    Schema::build(Query, Mutation::default(), Subscription)
        .finish()
        .sdl()
}
