//! The HTTP edge: the session guard, the GraphQL endpoint, health and GraphiQL.

pub mod client_address;
pub mod cors_guard;
pub mod graphql;
pub mod guard;
pub mod health;
pub mod listener;
pub mod metrics_page;
pub mod negotiate;
pub mod places;
pub mod playground;
pub mod request_log;
pub mod response;
pub mod socket_executor;
pub mod timeout;
pub mod websocket;

/// The largest request body accepted; a GraphQL operation is far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
