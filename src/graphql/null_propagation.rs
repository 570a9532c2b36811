//! Field errors as GraphQL's "Handling Field Errors" (§6.4.4) asks: a field
//! that fails is null, and a null in a non-null position makes its parent
//! null, up to the nearest nullable ancestor or `data` itself.
//!
//! async-graphql instead drops a failed field's key from its parent, and
//! nulls an object only when every one of its fields failed. This extension
//! repairs each response, on every transport, from the errors' paths, the
//! operation's selections and the schema's output types.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextSubscribe,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationType, Selection, SelectionSet, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql::{Name, PathSegment, Request, Response, ServerResult, Value, Variables};

use crate::graphql::variables;

/// Fragments nest no deeper than this (the limits allow 32 levels of
/// nesting in all); deeper spreads are not followed.
const MAX_SPREAD_DEPTH: usize = 64;

/// The schema's output types: each object's and interface's fields, and
/// the root types.
pub struct OutputTypes {
    fields: HashMap<Name, HashMap<Name, Type>>,
    roots: [Option<Name>; 3],
    typename: Type,
}

impl OutputTypes {
    /// Reads them from the schema's SDL.
    pub fn from_sdl(sdl: &str) -> Result<Self, String> {
        let document = async_graphql::parser::parse_schema(sdl).map_err(|e| e.to_string())?;
        let mut fields = HashMap::new();
        let mut roots = None;
        for definition in document.definitions {
            let ty = match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    let name = |root: Option<async_graphql::Positioned<Name>>| root.map(|r| r.node);
                    roots = Some([
                        name(schema.query),
                        name(schema.mutation),
                        name(schema.subscription),
                    ]);
                    continue;
                }
                TypeSystemDefinition::Type(ty) => ty.node,
                TypeSystemDefinition::Directive(_) => continue,
            };
            let defined = match ty.kind {
                TypeKind::Object(object) => object.fields,
                TypeKind::Interface(interface) => interface.fields,
                _ => continue,
            };
            let defined = defined
                .into_iter()
                .map(|f| (f.node.name.node, f.node.ty.node))
                .collect();
            fields.insert(ty.name.node, defined);
        }
        // Without a schema definition, the roots go by their usual names.
        let roots = roots.unwrap_or_else(|| {
            ["Query", "Mutation", "Subscription"].map(|name| {
                let name = Name::new(name);
                fields.contains_key(&name).then_some(name)
            })
        });
        let typename = Type {
            base: BaseType::Named(Name::new("String")),
            nullable: false,
        };
        Ok(Self {
            fields,
            roots,
            typename,
        })
    }

    fn root(&self, operation: OperationType) -> Option<&Name> {
        let index = match operation {
            OperationType::Query => 0,
            OperationType::Mutation => 1,
            OperationType::Subscription => 2,
        };
        self.roots[index].as_ref()
    }

    /// The type of `field` on `parent`; none for introspection's own fields,
    /// which the SDL leaves out.
    fn field(&self, parent: &str, field: &str) -> Option<&Type> {
        if field == "__typename" {
            return Some(&self.typename);
        }
        self.fields.get(parent)?.get(field)
    }
}

/// Repairs `response` to what the spec's null propagation gives, for the
/// operation `name` selects in `document`. Errors whose path leaves what
/// the operation selected are left as they are.
pub fn propagate(
    types: &OutputTypes,
    document: &ExecutableDocument,
    name: Option<&str>,
    response: &mut Response,
) {
    if response.errors.iter().all(|e| e.path.is_empty()) {
        return;
    }
    let Some(operation) = variables::select(document, name) else {
        return;
    };
    let Some(root) = types.root(operation.ty) else {
        return;
    };
    let mut shape = Shape::new(types, document, &operation.selection_set.node, root);
    let mut targets = Vec::new();
    for error in &response.errors {
        let Some(along) = shape.types_along(&error.path) else {
            continue;
        };
        match nearest_nullable(&along, along.len()) {
            Some(len) => targets.push((&error.path, along, len)),
            None => {
                response.data = Value::Null;
                return;
            }
        }
    }
    // Deepest first: a null set later, higher up, covers any below it.
    targets.sort_by_key(|(_, _, len)| Reverse(*len));
    let mut inserted = false;
    for (path, along, mut len) in targets {
        loop {
            match null_at(&mut response.data, &path[..len], &mut inserted) {
                Ok(()) => break,
                // No list to index: null the nearest nullable position above.
                Err(depth) => match nearest_nullable(&along, depth) {
                    Some(above) => len = above,
                    None => {
                        response.data = Value::Null;
                        return;
                    }
                },
            }
        }
    }
    if inserted {
        shape.reorder(0, &mut response.data);
    }
}

/// The length of the path to the last nullable position among the first
/// `len` of `along`, or none if they are all non-null.
fn nearest_nullable(along: &[&Type], len: usize) -> Option<usize> {
    along[..len]
        .iter()
        .rposition(|ty| ty.nullable)
        .map(|position| position + 1)
}

/// Sets the value at `path` to null, making the objects on the way that
/// async-graphql nulled or dropped, and noting in `inserted` any key it
/// adds. The error is the depth at which a list was missing.
fn null_at(mut value: &mut Value, path: &[PathSegment], inserted: &mut bool) -> Result<(), usize> {
    for (depth, segment) in path.iter().enumerate() {
        value = match segment {
            PathSegment::Field(key) => {
                if !matches!(value, Value::Object(_)) {
                    *value = Value::Object(IndexMap::new());
                }
                let Value::Object(fields) = value else {
                    return Err(depth);
                };
                *inserted |= !fields.contains_key(key.as_str());
                fields.entry(Name::new(key)).or_insert(Value::Null)
            }
            PathSegment::Index(index) => match value {
                Value::List(items) => items.get_mut(*index).ok_or(depth)?,
                _ => return Err(depth),
            },
        };
    }
    *value = Value::Null;
    Ok(())
}

/// The operation's selections as a tree of response keys, indexed lazily
/// along the errors' paths, so each selection set is read at most once.
struct Shape<'a> {
    types: &'a OutputTypes,
    document: &'a ExecutableDocument,
    nodes: Vec<Node<'a>>,
}

struct Node<'a> {
    /// The field's type; none for the root and for introspection fields.
    ty: Option<&'a Type>,
    /// The selection sets merged under this response key, each with the
    /// type it selects on.
    sets: Vec<(&'a SelectionSet, &'a str)>,
    /// The response keys below, in the order the response has them.
    children: Option<IndexMap<&'a str, usize>>,
}

impl<'a> Shape<'a> {
    fn new(
        types: &'a OutputTypes,
        document: &'a ExecutableDocument,
        root: &'a SelectionSet,
        on: &'a str,
    ) -> Self {
        let root = Node {
            ty: None,
            sets: vec![(root, on)],
            children: None,
        };
        Self {
            types,
            document,
            nodes: vec![root],
        }
    }

    /// The type at each position of `path`, or none if the path leaves the
    /// operation's selections or the schema's types.
    fn types_along(&mut self, path: &[PathSegment]) -> Option<Vec<&'a Type>> {
        let mut node = 0;
        let mut along: Vec<&'a Type> = Vec::with_capacity(path.len());
        for segment in path {
            let ty = match segment {
                PathSegment::Field(key) => {
                    node = self.child(node, key)?;
                    self.nodes[node].ty?
                }
                PathSegment::Index(_) => match &along.last()?.base {
                    BaseType::List(item) => item,
                    BaseType::Named(_) => return None,
                },
            };
            along.push(ty);
        }
        Some(along)
    }

    fn child(&mut self, node: usize, key: &str) -> Option<usize> {
        if self.nodes[node].children.is_none() {
            self.index(node);
        }
        self.nodes[node].children.as_ref()?.get(key).copied()
    }

    fn index(&mut self, node: usize) {
        let sets = std::mem::take(&mut self.nodes[node].sets);
        let mut children = IndexMap::new();
        for (set, on) in sets {
            self.collect(set, on, &mut children, 0);
        }
        self.nodes[node].children = Some(children);
    }

    /// Collects the fields of `set`, through fragments, by response key.
    fn collect(
        &mut self,
        set: &'a SelectionSet,
        on: &'a str,
        children: &mut IndexMap<&'a str, usize>,
        depth: usize,
    ) {
        if depth > MAX_SPREAD_DEPTH {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = field.response_key().node.as_str();
                    let types: &'a OutputTypes = self.types;
                    let ty = types.field(on, &field.name.node);
                    let child = *children.entry(key).or_insert_with(|| {
                        self.nodes.push(Node {
                            ty,
                            sets: Vec::new(),
                            children: None,
                        });
                        self.nodes.len() - 1
                    });
                    if let Some(ty) = ty
                        && !field.selection_set.node.items.is_empty()
                    {
                        let named = named(ty).as_str();
                        self.nodes[child]
                            .sets
                            .push((&field.selection_set.node, named));
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = self.document.fragments.get(name) {
                        let fragment = &fragment.node;
                        let on = fragment.type_condition.node.on.node.as_str();
                        self.collect(&fragment.selection_set.node, on, children, depth + 1);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    let on = inline
                        .type_condition
                        .as_ref()
                        .map_or(on, |condition| condition.node.on.node.as_str());
                    self.collect(&inline.selection_set.node, on, children, depth + 1);
                }
            }
        }
    }

    /// Puts each object's keys back in selection order, where a key was
    /// added at the end; only the indexed part of the tree is visited.
    fn reorder(&self, node: usize, value: &mut Value) {
        match value {
            Value::List(items) => {
                for item in items {
                    self.reorder(node, item);
                }
            }
            Value::Object(fields) => {
                let Some(children) = &self.nodes[node].children else {
                    return;
                };
                let order = |key: &Name| children.get_index_of(key.as_str());
                fields.sort_by(|a, _, b, _| order(a).cmp(&order(b)));
                for (key, value) in fields.iter_mut() {
                    if let Some(&child) = children.get(key.as_str()) {
                        self.reorder(child, value);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The named type inside any list wrappers.
fn named(ty: &Type) -> &Name {
    match &ty.base {
        BaseType::Named(name) => name,
        BaseType::List(item) => named(item),
    }
}

/// The extension factory to register on the schema, first, so that it sees
/// the document the other extensions return and the response they leave.
pub struct NullPropagation(Arc<OutputTypes>);

impl NullPropagation {
    /// Propagates nulls by `types`.
    pub fn new(types: OutputTypes) -> Self {
        Self(Arc::new(types))
    }
}

impl ExtensionFactory for NullPropagation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NullPropagationExtension {
            types: self.0.clone(),
            operation: Arc::default(),
        })
    }
}

/// What one request runs, as the extension learns it.
#[derive(Default)]
struct Operation {
    name: Option<String>,
    document: Option<ExecutableDocument>,
    /// Whether the `execute` hook repaired the response already, so a
    /// query or mutation sent over a WebSocket is not repaired twice.
    executed: bool,
}

struct NullPropagationExtension {
    types: Arc<OutputTypes>,
    operation: Arc<Mutex<Operation>>,
}

/// Repairs `response` for the operation recorded so far.
fn repair(types: &OutputTypes, operation: &Mutex<Operation>, response: &mut Response) {
    let operation = operation.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(document) = &operation.document {
        propagate(types, document, operation.name.as_deref(), response);
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for NullPropagationExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = next.run(ctx, request).await?;
        let mut operation = self
            .operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        operation.name = request.operation_name.clone();
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut operation = self
            .operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        operation.document = Some(document.clone());
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        repair(&self.types, &self.operation, &mut response);
        let mut operation = self
            .operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        operation.executed = true;
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let types = self.types.clone();
        let operation = self.operation.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                let executed = operation
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .executed;
                if !executed {
                    repair(&types, &operation, &mut response);
                }
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{ServerError, value};

    use super::*;

    const SDL: &str = "
        type Query { me: Viewer! maybe: Viewer list: [Item!] items: [Item]! strict: [Item!]! }
        type Viewer { id: ID! name: String child: Viewer must: Viewer! }
        type Item { id: ID! label: String }
    ";

    /// `data` after propagation, for errors at `paths`.
    fn propagated(query: &str, data: Value, paths: &[Value]) -> Value {
        let types = OutputTypes::from_sdl(SDL).unwrap();
        let document = async_graphql::parser::parse_query(query).unwrap();
        let mut response = Response::new(data);
        for path in paths {
            let mut error = ServerError::new("failed", None);
            error.path = serde_json::from_value(path.clone().into_json().unwrap()).unwrap();
            response.errors.push(error);
        }
        propagate(&types, &document, None, &mut response);
        response.data
    }

    /// The keys of the object at `data.key`, in order.
    fn keys(data: &Value, key: &str) -> Vec<String> {
        let Value::Object(root) = data else {
            panic!("{data}")
        };
        let Value::Object(fields) = &root[key] else {
            panic!("{data}")
        };
        fields.keys().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_non_null_chain_nulls_data() {
        // async-graphql nulls an object whose only field failed.
        let data = propagated(
            "{ me { id } }",
            value!({"me": null}),
            &[value!(["me", "id"])],
        );
        assert_eq!(data, Value::Null);
        let data = propagated(
            "{ me { name id } }",
            value!({"me": {"name": "a"}}),
            &[value!(["me", "id"])],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn a_nullable_parent_takes_the_null() {
        let data = propagated(
            "{ maybe { id name } me { name } }",
            value!({"maybe": {"name": "a"}, "me": {"name": "b"}}),
            &[value!(["maybe", "id"])],
        );
        assert_eq!(data, value!({"maybe": null, "me": {"name": "b"}}));
    }

    #[test]
    fn a_nullable_field_is_null_in_its_place() {
        let data = propagated(
            "{ maybe { name id } }",
            value!({"maybe": {"id": "1"}}),
            &[value!(["maybe", "name"])],
        );
        assert_eq!(data, value!({"maybe": {"name": null, "id": "1"}}));
        assert_eq!(keys(&data, "maybe"), ["name", "id"]);
    }

    #[test]
    fn an_object_nulled_for_its_only_field_is_restored_around_the_null() {
        let data = propagated(
            "{ me { name } }",
            value!({"me": null}),
            &[value!(["me", "name"])],
        );
        assert_eq!(data, value!({"me": {"name": null}}));
    }

    #[test]
    fn a_non_null_item_nulls_a_nullable_list() {
        let data = propagated(
            "{ list { id label } me { name } }",
            value!({"list": [{"id": "1"}, {"label": "x"}], "me": {"name": "b"}}),
            &[value!(["list", 1, "id"])],
        );
        assert_eq!(data, value!({"list": null, "me": {"name": "b"}}));
    }

    #[test]
    fn a_nullable_item_is_null_in_its_list() {
        let data = propagated(
            "{ items { id label } }",
            value!({"items": [{"id": "1"}, {"label": "x"}]}),
            &[value!(["items", 1, "id"])],
        );
        assert_eq!(data, value!({"items": [{"id": "1"}, null]}));
    }

    #[test]
    fn a_non_null_list_of_non_null_items_nulls_data() {
        let data = propagated(
            "{ strict { id } maybe { name } }",
            value!({"strict": [null], "maybe": {"name": "a"}}),
            &[value!(["strict", 0, "id"])],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn a_list_that_was_dropped_whole_nulls_the_nearest_nullable_position() {
        let data = propagated(
            "{ list { label } me { name } }",
            value!({"me": {"name": "b"}}),
            &[value!(["list", 0, "label"])],
        );
        assert_eq!(data, value!({"list": null, "me": {"name": "b"}}));
        assert_eq!(keys(&value!({"d": data}), "d"), ["list", "me"]);
    }

    #[test]
    fn aliases_are_followed_by_their_fields_types() {
        // `a` is `maybe`, so nullable; `x` is `id`, so non-null.
        let data = propagated(
            "{ a: maybe { x: id } b: maybe { y: name } }",
            value!({"a": null, "b": {"y": "n"}}),
            &[value!(["a", "x"])],
        );
        assert_eq!(data, value!({"a": null, "b": {"y": "n"}}));
        // `me` aliased as `maybe`: non-null after all.
        let data = propagated(
            "{ maybe: me { id } }",
            value!({"maybe": null}),
            &[value!(["maybe", "id"])],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn fragments_and_inline_fragments_are_followed() {
        let query = "{ maybe { ...F } } fragment F on Viewer { name child { id } }";
        let data = propagated(
            query,
            value!({"maybe": {"name": "a", "child": null}}),
            &[value!(["maybe", "child", "id"])],
        );
        assert_eq!(data, value!({"maybe": {"name": "a", "child": null}}));
        let query = "{ maybe { name ... on Viewer { must { id } } } }";
        let data = propagated(
            query,
            value!({"maybe": {"name": "a", "must": null}}),
            &[value!(["maybe", "must", "id"])],
        );
        assert_eq!(data, value!({"maybe": null}));
        let query = "{ me { ... { n: name } } }";
        let data = propagated(query, value!({"me": null}), &[value!(["me", "n"])]);
        assert_eq!(data, value!({"me": {"n": null}}));
    }

    #[test]
    fn a_higher_null_covers_the_ones_below() {
        let data = propagated(
            "{ maybe { id child { name } } }",
            value!({"maybe": {"child": null}}),
            &[value!(["maybe", "child", "name"]), value!(["maybe", "id"])],
        );
        assert_eq!(data, value!({"maybe": null}));
    }

    #[test]
    fn errors_outside_the_known_types_are_left_alone() {
        let data = propagated(
            "{ maybe { name } __type(name: \"Query\") { name } }",
            value!({"maybe": {"name": "a"}}),
            &[value!(["__type", "name"]), value!(["nowhere"])],
        );
        assert_eq!(data, value!({"maybe": {"name": "a"}}));
    }

    #[test]
    fn the_real_schema_has_its_roots() {
        let types = OutputTypes::from_sdl(&crate::graphql::schema::sdl()).unwrap();
        for operation in [
            OperationType::Query,
            OperationType::Mutation,
            OperationType::Subscription,
        ] {
            assert!(types.root(operation).is_some(), "{operation:?}");
        }
        let me = types.field("Query", "me").unwrap();
        assert!(!me.nullable);
    }
}
