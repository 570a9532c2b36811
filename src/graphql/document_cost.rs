//! What a parsed document would cost once its fragments are expanded,
//! measured in time linear in the document's size.
//!
//! Each fragment's cost is computed once and reused at every spread, so a
//! chain of fragments that each spread the next several times costs one
//! visit per definition, not one per expanded path. Counts saturate instead
//! of overflowing.

use std::collections::HashMap;

use async_graphql::Positioned;
use async_graphql::parser::types::{
    Directive, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql_value::{ConstValue, Name, Value};

/// The expanded cost of one selection set, relative to where it is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Fields, fragment spreads, inline fragments and variable references
    /// in arguments, each counted per use: validation checks every
    /// operation against every variable its fragments use.
    pub selections: usize,
    /// Aliased fields.
    pub aliases: usize,
    /// Fields at this set's own level once fragments are flattened.
    pub top_fields: usize,
    /// Fields at this set's own level that check a password.
    pub password_checks: usize,
    /// Deepest field nesting on paths that never enter `__schema`/`__type`.
    pub depth: usize,
    /// Deepest field nesting on paths that enter `__schema`/`__type`.
    pub introspection_depth: usize,
    /// Deepest nesting of fields, spreads and inline fragments together:
    /// what bounds the recursion of every later walk of the document.
    pub nesting: usize,
}

/// Limits that the walk itself must enforce, because they bound it.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    pub nesting: usize,
    pub directives: usize,
    pub arguments: usize,
    /// Deepest list or object nesting in an argument or default value:
    /// validation and dropping a value both recurse once per level.
    pub value_depth: usize,
}

/// Why the walk stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// Nested deeper than [`WalkLimits::nesting`] or [`WalkLimits::value_depth`].
    Nesting,
    Directives,
    Arguments,
    /// A fragment that spreads itself, directly or through others.
    Cycle(String),
}

/// The costs of every operation and fragment definition of a document.
pub struct DocumentCost {
    pub operations: Vec<(OperationType, Cost)>,
    pub fragments: Vec<Cost>,
}

/// Measures every definition of `document`, each fragment once.
pub fn measure(
    document: &ExecutableDocument,
    limits: WalkLimits,
    password_fields: &[&str],
) -> Result<DocumentCost, WalkError> {
    let mut walk = Walk {
        document,
        limits,
        password_fields,
        memo: HashMap::new(),
    };
    let mut fragments = Vec::with_capacity(document.fragments.len());
    for (name, fragment) in &document.fragments {
        fragments.push(walk.fragment(name.as_str(), fragment, 0)?);
    }
    let mut operations = Vec::new();
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        let mut uses = walk.directives(&operation.directives)?;
        for variable in &operation.variable_definitions {
            uses += walk.directives(&variable.node.directives)?;
            if let Some(default) = &variable.node.default_value {
                walk.const_value(&default.node, 1)?;
            }
        }
        let mut cost = walk.selection_set(&operation.selection_set, 0)?;
        cost.selections = cost.selections.saturating_add(uses);
        operations.push((operation.ty, cost));
    }
    Ok(DocumentCost {
        operations,
        fragments,
    })
}

enum State {
    InProgress,
    Done(Cost),
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    limits: WalkLimits,
    password_fields: &'a [&'a str],
    memo: HashMap<&'a str, State>,
}

impl<'a> Walk<'a> {
    /// A fragment's cost, computed on first use. `at` is the nesting where
    /// it is first reached, so the walk stops as soon as any real path of
    /// the document is too deep.
    fn fragment(
        &mut self,
        name: &'a str,
        fragment: &'a Positioned<FragmentDefinition>,
        at: usize,
    ) -> Result<Cost, WalkError> {
        match self.memo.get(name) {
            Some(State::Done(cost)) => return Ok(*cost),
            Some(State::InProgress) => return Err(WalkError::Cycle(name.to_owned())),
            None => {}
        }
        self.memo.insert(name, State::InProgress);
        let uses = self.directives(&fragment.node.directives)?;
        let mut cost = self.selection_set(&fragment.node.selection_set, at)?;
        cost.selections = cost.selections.saturating_add(uses);
        if fragment.node.type_condition.node.on.node.starts_with("__") {
            // Only reachable inside introspection: all its depth is there.
            cost.introspection_depth = cost.introspection_depth.max(cost.depth);
            cost.depth = 0;
        }
        self.memo.insert(name, State::Done(cost));
        Ok(cost)
    }

    fn selection_set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        at: usize,
    ) -> Result<Cost, WalkError> {
        let mut total = Cost::default();
        for selection in &set.node.items {
            let cost = self.selection(&selection.node, at + 1)?;
            total.selections = total.selections.saturating_add(cost.selections);
            total.aliases = total.aliases.saturating_add(cost.aliases);
            total.top_fields = total.top_fields.saturating_add(cost.top_fields);
            total.password_checks = total.password_checks.saturating_add(cost.password_checks);
            total.depth = total.depth.max(cost.depth);
            total.introspection_depth = total.introspection_depth.max(cost.introspection_depth);
            total.nesting = total.nesting.max(cost.nesting);
        }
        Ok(total)
    }

    /// The cost of one selection, which sits at nesting `at`.
    fn selection(&mut self, selection: &'a Selection, at: usize) -> Result<Cost, WalkError> {
        if at > self.limits.nesting {
            return Err(WalkError::Nesting);
        }
        let inner = match selection {
            Selection::Field(field) => {
                let field = &field.node;
                let uses =
                    self.directives(&field.directives)? + self.arguments(&field.arguments)?;
                let sub = self.selection_set(&field.selection_set, at)?;
                let name = field.name.node.as_str();
                let (depth, introspection_depth) = if matches!(name, "__schema" | "__type") {
                    (0, 1 + sub.depth.max(sub.introspection_depth))
                } else {
                    let inner = sub.introspection_depth;
                    (1 + sub.depth, if inner > 0 { 1 + inner } else { 0 })
                };
                return Ok(Cost {
                    selections: sub.selections.saturating_add(1 + uses),
                    aliases: sub
                        .aliases
                        .saturating_add(usize::from(field.alias.is_some())),
                    top_fields: 1,
                    password_checks: usize::from(self.password_fields.contains(&name)),
                    depth,
                    introspection_depth,
                    nesting: sub.nesting + 1,
                });
            }
            Selection::InlineFragment(fragment) => {
                let uses = self.directives(&fragment.node.directives)?;
                (uses, self.selection_set(&fragment.node.selection_set, at)?)
            }
            Selection::FragmentSpread(spread) => {
                let uses = self.directives(&spread.node.directives)?;
                let name = spread.node.fragment_name.node.as_str();
                let cost = match self.document.fragments.get_key_value(name) {
                    Some((name, fragment)) => self.fragment(name.as_str(), fragment, at)?,
                    // Unknown: validation refuses it later; it costs one visit.
                    None => Cost::default(),
                };
                (uses, cost)
            }
        };
        let (uses, inner) = inner;
        Ok(Cost {
            selections: inner.selections.saturating_add(1 + uses),
            nesting: inner.nesting + 1,
            ..inner
        })
    }

    /// Checks directives and their arguments; returns the variable uses.
    fn directives(&self, directives: &[Positioned<Directive>]) -> Result<usize, WalkError> {
        if directives.len() > self.limits.directives {
            return Err(WalkError::Directives);
        }
        directives.iter().try_fold(0usize, |uses, directive| {
            Ok(uses.saturating_add(self.arguments(&directive.node.arguments)?))
        })
    }

    /// Checks arguments and their values; returns the variable uses.
    fn arguments(
        &self,
        arguments: &[(Positioned<Name>, Positioned<Value>)],
    ) -> Result<usize, WalkError> {
        if arguments.len() > self.limits.arguments {
            return Err(WalkError::Arguments);
        }
        arguments.iter().try_fold(0usize, |uses, (_, value)| {
            Ok(uses.saturating_add(self.value(&value.node, 1)?))
        })
    }

    /// Checks a value's nesting (stopping at the limit, so this recursion is
    /// bounded too); returns its variable uses.
    fn value(&self, value: &Value, depth: usize) -> Result<usize, WalkError> {
        if depth > self.limits.value_depth {
            return Err(WalkError::Nesting);
        }
        let inner: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Variable(_) => return Ok(1),
            Value::List(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => return Ok(0),
        };
        inner.into_iter().try_fold(0usize, |uses, item| {
            Ok(uses.saturating_add(self.value(item, depth + 1)?))
        })
    }

    fn const_value(&self, value: &ConstValue, depth: usize) -> Result<(), WalkError> {
        if depth > self.limits.value_depth {
            return Err(WalkError::Nesting);
        }
        match value {
            ConstValue::List(items) => items
                .iter()
                .try_for_each(|v| self.const_value(v, depth + 1)),
            ConstValue::Object(fields) => fields
                .values()
                .try_for_each(|v| self.const_value(v, depth + 1)),
            _ => Ok(()),
        }
    }
}
