//! The HTTP edge: the session guard, the GraphQL endpoint, health and GraphiQL.

pub mod graphql;
pub mod guard;
pub mod health;
pub mod playground;
pub mod timeout;
