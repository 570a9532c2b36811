//! Read operations.

use async_graphql::{Context, Object, Result};

use crate::graphql::any_level;
use crate::graphql::types::Viewer;

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
}
