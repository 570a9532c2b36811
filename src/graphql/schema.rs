//! Builds the schema once at start, and prints its SDL for `schema.graphql`.

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

use crate::graphql::document_cache::DocumentCache;
use crate::graphql::limits::QueryLimits;
use crate::graphql::mutation::Mutation;
use crate::graphql::query::Query;
use crate::graphql::read_only::ReadOnlyGet;
use crate::services::auth::AuthService;
use crate::session_cookie::SessionCookie;

/// Gatehouse's executable schema.
pub type GatehouseSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with its services attached, ready to execute.
pub fn build(
    auth: AuthService,
    cookie: Option<SessionCookie>,
    introspection: bool,
) -> GatehouseSchema {
    let mut builder = builder().data(auth);
    if let Some(cookie) = cookie {
        builder = builder.data(cookie);
    }
    if !introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The SDL that `gatehouse schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl()
}

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    // Outermost first: a GET is judged on the document the others return.
    Schema::build(Query, Mutation, EmptySubscription)
        .extension(ReadOnlyGet)
        .extension(DocumentCache::default())
        .extension(QueryLimits::default())
}
