//! Coerces a request's variables against its operation's declarations
//! before anything runs, as GraphQL's CoerceVariableValues asks.
//!
//! async-graphql coerces a variable only when a field reads it. An absent
//! required variable, or a string where an input object belongs, then
//! failed only that field, after the mutation fields before it had run.

use std::collections::{HashMap, HashSet};

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql::{Name, Value as ConstValue, Variables};

/// The schema's input types, by name.
pub struct InputTypes(HashMap<String, InputType>);

enum InputType {
    Scalar,
    Enum(HashSet<String>),
    Object(Vec<InputField>),
}

struct InputField {
    name: Name,
    ty: Type,
    has_default: bool,
}

impl InputTypes {
    /// Reads them from the schema's SDL.
    pub fn from_sdl(sdl: &str) -> Result<Self, String> {
        let document = async_graphql::parser::parse_schema(sdl).map_err(|e| e.to_string())?;
        let mut types = HashMap::new();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let ty = ty.node;
            let input = match ty.kind {
                TypeKind::Scalar => InputType::Scalar,
                TypeKind::Enum(e) => InputType::Enum(
                    e.values
                        .into_iter()
                        .map(|v| v.node.value.node.to_string())
                        .collect(),
                ),
                TypeKind::InputObject(object) => InputType::Object(
                    object
                        .fields
                        .into_iter()
                        .map(|f| InputField {
                            name: f.node.name.node,
                            ty: f.node.ty.node,
                            has_default: f.node.default_value.is_some(),
                        })
                        .collect(),
                ),
                _ => continue,
            };
            types.insert(ty.name.node.to_string(), input);
        }
        Ok(Self(types))
    }

    /// Checks `variables` against the operation `name` selects. An operation
    /// that cannot be selected is left for validation to refuse.
    pub fn check(
        &self,
        document: &ExecutableDocument,
        name: Option<&str>,
        variables: &Variables,
    ) -> Result<(), String> {
        let Some(operation) = select(document, name) else {
            return Ok(());
        };
        for definition in &operation.variable_definitions {
            let definition = &definition.node;
            let name = &definition.name.node;
            let ty = &definition.var_type.node;
            match variables.get(name) {
                None if definition.default_value.is_none() && !ty.nullable => {
                    return Err(format!(
                        "Variable \"${name}\" of required type \"{ty}\" was not provided"
                    ));
                }
                None => {}
                Some(value) => self
                    .value(ty, value)
                    .map_err(|at| format!("Variable \"${name}\" is not a valid \"{ty}\"{at}"))?,
            }
        }
        Ok(())
    }

    /// Whether `value` coerces to `ty`; on failure, where inside it the
    /// fault is (never the value itself: it may be a password).
    fn value(&self, ty: &Type, value: &ConstValue) -> Result<(), String> {
        if *value == ConstValue::Null {
            return if ty.nullable {
                Ok(())
            } else {
                Err(String::new())
            };
        }
        match &ty.base {
            BaseType::List(item) => match value {
                ConstValue::List(items) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, v)| self.value(item, v).map_err(|at| format!("[{i}]{at}"))),
                // A single value is a list of one.
                single => self.value(item, single),
            },
            BaseType::Named(name) => self.named(name, value),
        }
    }

    fn named(&self, name: &str, value: &ConstValue) -> Result<(), String> {
        let fits = match (self.0.get(name), value) {
            // The SDL leaves the built-in scalars out.
            (None, value) if BUILT_IN.contains(&name) => scalar_fits(name, value),
            // Not an input type: validation refuses the declaration.
            (None, _) => true,
            (Some(InputType::Scalar), value) => scalar_fits(name, value),
            (Some(InputType::Enum(values)), ConstValue::String(v)) => values.contains(v),
            (Some(InputType::Enum(values)), ConstValue::Enum(v)) => values.contains(v.as_str()),
            (Some(InputType::Object(fields)), ConstValue::Object(map)) => {
                return self.object(fields, map);
            }
            _ => false,
        };
        if fits { Ok(()) } else { Err(String::new()) }
    }

    fn object(
        &self,
        fields: &[InputField],
        map: &IndexMap<Name, ConstValue>,
    ) -> Result<(), String> {
        if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|f| f.name == **k)) {
            return Err(format!(" at \"{unknown}\", which is not a field"));
        }
        for field in fields {
            match map.get(&field.name) {
                None if !field.has_default && !field.ty.nullable => {
                    return Err(format!(" at \"{}\", which is required", field.name));
                }
                None => {}
                Some(value) => self
                    .value(&field.ty, value)
                    .map_err(|at| format!(" at \"{}\"{at}", field.name))?,
            }
        }
        Ok(())
    }
}

const BUILT_IN: [&str; 5] = ["String", "Boolean", "Int", "Float", "ID"];

/// The built-in scalars' input coercion; a custom scalar parses its own.
fn scalar_fits(name: &str, value: &ConstValue) -> bool {
    match (name, value) {
        ("String", ConstValue::String(_)) | ("Boolean", ConstValue::Boolean(_)) => true,
        ("Int", ConstValue::Number(n)) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ("Float", ConstValue::Number(_)) => true,
        ("ID", ConstValue::String(_)) => true,
        ("ID", ConstValue::Number(n)) => n.is_i64() || n.is_u64(),
        ("String" | "Boolean" | "Int" | "Float" | "ID", _) => false,
        _ => true,
    }
}

/// The operation a request selects, as execution would pick it.
pub fn select<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> InputTypes {
        InputTypes::from_sdl(&crate::graphql::schema::sdl()).unwrap()
    }

    fn check(query: &str, variables: serde_json::Value) -> Result<(), String> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        types().check(&document, None, &Variables::from_json(variables))
    }

    const LOGIN: &str = "mutation($in: LoginInput!) { login(input: $in) { token } }";

    #[test]
    fn values_that_fit_pass() {
        let ok = [
            (
                LOGIN,
                serde_json::json!({ "in": { "email": "a@b.c", "password": "p" } }),
            ),
            (
                "query($s: Boolean) { __typename @skip(if: $s) }",
                serde_json::json!({}),
            ),
            (
                "query($s: Boolean = false) { __typename @skip(if: $s) }",
                serde_json::json!({}),
            ),
            (
                "mutation($id: ID!) { revokeSession(input: {sessionId: $id}) { session { id } } }",
                serde_json::json!({ "id": 7 }),
            ),
        ];
        for (query, variables) in ok {
            assert_eq!(
                check(query, variables.clone()),
                Ok(()),
                "{query} {variables}"
            );
        }
    }

    #[test]
    fn values_that_do_not_fit_are_refused_without_echoing_them() {
        let refused = [
            (LOGIN, serde_json::json!({})),
            (LOGIN, serde_json::json!({ "in": null })),
            (LOGIN, serde_json::json!({ "in": "hunter2-secret" })),
            (LOGIN, serde_json::json!({ "in": { "email": "a@b.c" } })),
            (
                LOGIN,
                serde_json::json!({ "in": { "email": "a@b.c", "password": 5 } }),
            ),
            (
                LOGIN,
                serde_json::json!({ "in": { "email": "a", "password": "p", "extra": 1 } }),
            ),
            (
                "mutation($id: ID!) { revokeSession(input: {sessionId: $id}) { session { id } } }",
                serde_json::json!({ "id": 1.5 }),
            ),
            (
                "query($s: Boolean!) { __typename @skip(if: $s) }",
                serde_json::json!({ "s": "yes" }),
            ),
        ];
        for (query, variables) in refused {
            let err = check(query, variables.clone()).expect_err(&variables.to_string());
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
