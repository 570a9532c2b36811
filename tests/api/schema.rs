//! `schema.graphql` as a contract: every public type, field and argument is
//! described, so GraphiQL's docs and generated clients explain the API.

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

#[test]
fn every_type_field_and_argument_has_a_description() {
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let document = parse_schema(&sdl).expect("schema.graphql parses");
    let mut missing = Vec::new();
    let described = |d: &Option<async_graphql::Positioned<String>>| {
        d.as_ref().is_some_and(|d| !d.node.trim().is_empty())
    };
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = &ty.node;
        let name = ty.name.node.as_str();
        if !described(&ty.description) {
            missing.push(name.to_owned());
        }
        match &ty.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    let field = &field.node;
                    if !described(&field.description) {
                        missing.push(format!("{name}.{}", field.name.node));
                    }
                    for arg in &field.arguments {
                        if !described(&arg.node.description) {
                            missing.push(format!(
                                "{name}.{}({})",
                                field.name.node, arg.node.name.node
                            ));
                        }
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    if !described(&field.node.description) {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "undescribed in schema.graphql: {missing:?}"
    );
}
