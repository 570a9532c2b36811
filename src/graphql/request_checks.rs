//! Checks on the operation a request selects, once its document has parsed
//! and passed the limits, and before anything runs:
//! - a GET is read-only: a link, an image or a prefetch can send one, so
//!   only a query may run on it;
//! - the variables coerce to their declared types.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{ServerResult, Variables};

use crate::error::AppError;
use crate::graphql::variables::InputTypes;

/// Request data from the HTTP layer: the operation the request names, and
/// whether it came by GET.
pub struct SelectedOperation {
    pub name: Option<String>,
    pub read_only: bool,
}

/// The extension factory to register on the schema, before the others.
pub struct RequestChecks(Arc<InputTypes>);

impl RequestChecks {
    pub fn new(types: InputTypes) -> Self {
        Self(Arc::new(types))
    }
}

impl ExtensionFactory for RequestChecks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestChecksExtension(self.0.clone()))
    }
}

struct RequestChecksExtension(Arc<InputTypes>);

#[async_graphql::async_trait::async_trait]
impl Extension for RequestChecksExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let selected = ctx.data_opt::<SelectedOperation>();
        let name = selected.and_then(|s| s.name.as_deref());
        if selected.is_some_and(|s| s.read_only) && selects_a_write(&document, name) {
            return Err(AppError::MethodNotAllowed.into_server_error());
        }
        self.0
            .check(&document, name, variables)
            .map_err(|why| AppError::InvalidVariables(why).into_server_error())?;
        Ok(document)
    }
}

/// Whether the operation `name` selects is anything but a query.
fn selects_a_write(document: &ExecutableDocument, name: Option<&str>) -> bool {
    let is_write = |ty: OperationType| ty != OperationType::Query;
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => is_write(op.node.ty),
        // A name that selects nothing is left for validation to refuse.
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name).is_some_and(|op| is_write(op.node.ty))
        }
        // No name among several: refused by validation, but never run.
        (DocumentOperations::Multiple(ops), None) => ops.values().any(|op| is_write(op.node.ty)),
    }
}
