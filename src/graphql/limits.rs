//! Refuses abusive documents after parsing and before any validation or
//! execution: too deep, too many fields, too many aliases or root fields.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError, ServerResult, Variables};

use crate::error::{AppError, QueryLimit};

/// Deepest nesting of application fields (ours is 4 at most).
pub const MAX_DEPTH: usize = 12;
/// Deepest nesting inside `__schema`/`__type`: GraphiQL's introspection
/// query needs 14; introspection of introspection types is recursive.
pub const MAX_INTROSPECTION_DEPTH: usize = 16;
/// Most field selections after expanding fragments (GraphiQL's
/// introspection query is about 130).
pub const MAX_FIELDS: usize = 250;
/// Most aliased fields in one document.
pub const MAX_ALIASES: usize = 15;
/// Most root fields in one operation.
pub const MAX_ROOT_FIELDS: usize = 10;

/// The extension factory to register on the schema.
pub struct QueryLimits;

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsExtension)
    }
}

struct QueryLimitsExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimitsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check(&document).map_err(|limit| {
            let error = async_graphql::Error::from(AppError::QueryRejected(limit));
            let mut server_error = ServerError::new(error.message, None);
            server_error.extensions = error.extensions;
            server_error
        })?;
        Ok(document)
    }
}

/// Measures a parsed document against every limit.
pub fn check(document: &ExecutableDocument) -> Result<(), QueryLimit> {
    let mut walk = Walk {
        document,
        fields: 0,
        aliases: 0,
        fragment_stack: Vec::new(),
    };
    for (_, operation) in document.operations.iter() {
        let selections = &operation.node.selection_set.node.items;
        let root_fields = selections
            .iter()
            .filter(|s| matches!(s.node, Selection::Field(_)))
            .count();
        if root_fields > MAX_ROOT_FIELDS {
            return Err(QueryLimit::RootFields);
        }
        walk.selection_set(&operation.node.selection_set, 0, false)?;
    }
    Ok(())
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    fields: usize,
    aliases: usize,
    /// Fragments being expanded, so a (still unvalidated) cycle ends here.
    fragment_stack: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn selection_set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        depth: usize,
        introspection: bool,
    ) -> Result<(), QueryLimit> {
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    self.fields += 1;
                    if self.fields > MAX_FIELDS {
                        return Err(QueryLimit::Complexity);
                    }
                    if field.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > MAX_ALIASES {
                            return Err(QueryLimit::Aliases);
                        }
                    }
                    let introspection =
                        introspection || matches!(field.name.node.as_str(), "__schema" | "__type");
                    let depth = depth + 1;
                    let limit = if introspection {
                        MAX_INTROSPECTION_DEPTH
                    } else {
                        MAX_DEPTH
                    };
                    if depth > limit {
                        return Err(QueryLimit::Depth);
                    }
                    self.selection_set(&field.selection_set, depth, introspection)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set, depth, introspection)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.fragment_stack.contains(&name) {
                        continue; // a cycle: validation will reject it
                    }
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue; // unknown: validation will reject it
                    };
                    self.fragment_stack.push(name);
                    self.selection_set(&fragment.node.selection_set, depth, introspection)?;
                    self.fragment_stack.pop();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_query(query: &str) -> Result<(), QueryLimit> {
        check(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    /// `a { a { … x } }` with `fields` fields in the chain.
    fn chain(fields: usize) -> String {
        format!("{}x{}", "a { ".repeat(fields - 1), " }".repeat(fields - 1))
    }

    fn nested(depth: usize) -> String {
        format!("{{ {} }}", chain(depth))
    }

    #[test]
    fn depth_limit_is_inclusive() {
        assert_eq!(check_query(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check_query(&nested(MAX_DEPTH + 1)), Err(QueryLimit::Depth));
    }

    #[test]
    fn fragments_count_towards_depth_and_cycles_terminate() {
        let deep = format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            chain(MAX_DEPTH + 1)
        );
        assert_eq!(check_query(&deep), Err(QueryLimit::Depth));
        assert_eq!(
            check_query("{ ...A } fragment A on Query { x ...B } fragment B on Query { ...A }"),
            Ok(())
        );
    }

    #[test]
    fn exponential_fragment_expansion_is_cut_off() {
        let mut query = String::from("{ ...F0 } ");
        for i in 0..20 {
            query.push_str(&format!(
                "fragment F{i} on Query {{ a {{ ...F{} }} b {{ ...F{} }} }} ",
                i + 1,
                i + 1
            ));
        }
        query.push_str("fragment F20 on Query { x }");
        assert!(check_query(&query).is_err());
    }

    #[test]
    fn aliases_and_root_fields_are_counted() {
        let aliases: String = (0..=MAX_ALIASES)
            .map(|i| format!("a{i}: me {{ x }} "))
            .collect();
        assert_eq!(
            check_query(&format!("{{ me {{ {aliases} }} }}")),
            Err(QueryLimit::Aliases)
        );
        let roots: String = (0..=MAX_ROOT_FIELDS).map(|i| format!("f{i} ")).collect();
        assert_eq!(
            check_query(&format!("{{ {roots} }}")),
            Err(QueryLimit::RootFields)
        );
    }

    #[test]
    fn introspection_gets_its_own_depth() {
        let at_limit = format!(
            "{{ __schema {{ {} }} }}",
            chain(MAX_INTROSPECTION_DEPTH - 1)
        );
        assert_eq!(check_query(&at_limit), Ok(()));
        let past = format!("{{ __schema {{ {} }} }}", chain(MAX_INTROSPECTION_DEPTH));
        assert_eq!(check_query(&past), Err(QueryLimit::Depth));
    }
}
