//! Keeps GET requests read-only: a link, an image or a prefetch can send a
//! GET, so only a query may run on one. The check comes after parsing and
//! the limits, on the operation the request selects.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{ServerResult, Variables};

use crate::error::AppError;

/// Request data that marks a request as sent with GET, naming the
/// operation it asked for.
pub struct SentWithGet {
    pub operation_name: Option<String>,
}

/// The extension factory to register on the schema, before the others.
pub struct ReadOnlyGet;

impl ExtensionFactory for ReadOnlyGet {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ReadOnlyGet)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ReadOnlyGet {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Some(get) = ctx.data_opt::<SentWithGet>()
            && selects_a_write(&document, get.operation_name.as_deref())
        {
            return Err(AppError::MethodNotAllowed.into_server_error());
        }
        Ok(document)
    }
}

/// Whether the operation `name` selects is anything but a query. A name
/// that selects nothing is left for validation to refuse.
fn selects_a_write(document: &ExecutableDocument, name: Option<&str>) -> bool {
    let is_write = |ty: OperationType| ty != OperationType::Query;
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => is_write(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name).is_some_and(|op| is_write(op.node.ty))
        }
        // No name among several: refused by validation, but never run.
        (DocumentOperations::Multiple(ops), None) => ops.values().any(|op| is_write(op.node.ty)),
    }
}
