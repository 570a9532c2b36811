//! Names each request by what it does, for its log line and metrics: the
//! root field it selects (`login`, `me`, …), `multiple`, or `unknown`.
//! Only field names the schema has are used, so the label is bounded.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Response, ServerResult, Variables};

use crate::request_labels;

/// The extension factory to register on the schema, outermost.
#[derive(Default)]
pub struct OperationLabel;

impl ExtensionFactory for OperationLabel {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Labeller::default())
    }
}

/// Each operation of the request's document, by name, with its label.
#[derive(Default)]
struct Labeller(Mutex<Vec<(Option<String>, String)>>);

#[async_graphql::async_trait::async_trait]
impl Extension for Labeller {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let registry = &ctx.schema_env.registry;
        let labels = document
            .operations
            .iter()
            .map(|(name, operation)| {
                let root = match operation.node.ty {
                    OperationType::Query => Some(registry.query_type.as_str()),
                    OperationType::Mutation => registry.mutation_type.as_deref(),
                    OperationType::Subscription => registry.subscription_type.as_deref(),
                };
                let items = &operation.node.selection_set.node.items;
                let label = match items.as_slice() {
                    [item] => match &item.node {
                        Selection::Field(field) => {
                            let name = field.node.name.node.as_str();
                            let known = root
                                .and_then(|root| registry.types.get(root))
                                .and_then(|ty| ty.field_by_name(name))
                                .is_some();
                            if name.starts_with("__") {
                                "introspection"
                            } else if known {
                                name
                            } else {
                                "unknown"
                            }
                        }
                        _ => "multiple",
                    },
                    _ => "multiple",
                };
                (name.map(|n| n.to_string()), label.to_owned())
            })
            .collect();
        if let Ok(mut slot) = self.0.lock() {
            *slot = labels;
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let label = self.0.lock().ok().and_then(|labels| {
            let chosen = match operation_name {
                Some(wanted) => labels
                    .iter()
                    .find(|(name, _)| name.as_deref() == Some(wanted)),
                None if labels.len() == 1 => labels.first(),
                None => None,
            };
            chosen.map(|(_, label)| label.clone())
        });
        if let Some(label) = label {
            request_labels::set_operation(&label);
        }
        next.run(ctx, operation_name).await
    }
}
