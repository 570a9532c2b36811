//! Refuses costly documents before anything whose cost can grow faster than
//! the document: too deep, too many selections, aliases, root fields or
//! password checks, or fragments that spread themselves.
//!
//! This extension parses the query itself and never calls the next parser.
//! async-graphql's own post-parse checks (recursion depth, directive count)
//! and its depth and complexity visitors expand fragments path by path, so
//! an 868-byte chain of fragments would cost 3^18 visits there. Here every
//! check is linear in the document ([`document_cost`]), and what reaches
//! validation is bounded in its expanded size.
//!
//! [`document_cost`]: crate::graphql::document_cost

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, Variables};
use tokio::sync::Semaphore;

use crate::domain::query_limits::*;
use crate::error::AppError;
use crate::graphql::document_cost::{self, WalkError, WalkLimits};

/// The extension factory to register on the schema.
///
/// Parsing a 64 KiB document takes milliseconds. It runs on the blocking
/// pool, at most one per core at a time, so a flood of new documents waits
/// its turn instead of holding the async workers that answer `/healthz`
/// and guarded requests.
pub struct QueryLimits(Arc<Semaphore>);

impl Default for QueryLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self(Arc::new(Semaphore::new(cores)))
    }
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsExtension(self.0.clone()))
    }
}

struct QueryLimitsExtension(Arc<Semaphore>);

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimitsExtension {
    async fn parse_query(
        &self,
        _ctx: &ExtensionContext<'_>,
        query: &str,
        _variables: &Variables,
        _next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let closed = |_| ServerError::new("The server is shutting down", None);
        let permit = self.0.clone().acquire_owned().await.map_err(closed)?;
        let query = query.to_owned();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            parse(&query)
        })
        .await
        .map_err(|e| AppError::internal(e).into_server_error())?
    }
}

/// Parses `query` and measures it against every limit.
pub fn parse(query: &str) -> ServerResult<ExecutableDocument> {
    if bracket_depth(query) > MAX_BRACKETS {
        return Err(AppError::QueryRejected(QueryLimit::Nesting).into_server_error());
    }
    let document = async_graphql::parser::parse_query(query)?;
    check(&document).map_err(rejected)?;
    Ok(document)
}

fn rejected(limit: QueryLimit) -> ServerError {
    AppError::QueryRejected(limit).into_server_error()
}

/// Measures a parsed document against every limit, in linear time.
fn check(document: &ExecutableDocument) -> Result<(), QueryLimit> {
    let limits = WalkLimits {
        nesting: MAX_NESTING,
        directives: MAX_DIRECTIVES,
        arguments: MAX_ARGUMENTS,
        value_depth: MAX_VALUE_DEPTH,
    };
    let cost = document_cost::measure(document, limits, PASSWORD_FIELDS).map_err(|e| match e {
        WalkError::Nesting => QueryLimit::Nesting,
        WalkError::Directives => QueryLimit::Directives,
        WalkError::Arguments => QueryLimit::Arguments,
        WalkError::Cycle(name) => QueryLimit::FragmentCycle(name),
    })?;
    for (_, operation) in document.operations.iter() {
        if operation.node.variable_definitions.len() > MAX_VARIABLES {
            return Err(QueryLimit::Variables);
        }
    }
    let mut total = 0usize;
    let definitions = cost
        .operations
        .iter()
        .map(|(_, c)| c)
        .chain(&cost.fragments);
    for c in definitions {
        if c.nesting > MAX_NESTING {
            return Err(QueryLimit::Nesting);
        }
        if c.depth > MAX_DEPTH || c.introspection_depth > MAX_INTROSPECTION_DEPTH {
            return Err(QueryLimit::Depth);
        }
        if c.selections > MAX_SELECTIONS {
            return Err(QueryLimit::Complexity);
        }
        if c.aliases > MAX_ALIASES {
            return Err(QueryLimit::Aliases);
        }
        total = total.saturating_add(c.selections);
    }
    if total > MAX_DOCUMENT_SELECTIONS {
        return Err(QueryLimit::Complexity);
    }
    for (_, c) in &cost.operations {
        if c.top_fields > MAX_ROOT_FIELDS {
            return Err(QueryLimit::RootFields);
        }
        if c.password_checks > MAX_PASSWORD_CHECKS {
            return Err(QueryLimit::PasswordChecks);
        }
    }
    Ok(())
}

/// The deepest nesting of `{`, `[` and `(` outside strings and comments,
/// read as the parser reads them.
fn bracket_depth(query: &str) -> usize {
    let bytes = query.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let rest = &bytes[i..];
        i += match rest[0] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
                1
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                1
            }
            b'#' => rest
                .iter()
                .position(|b| matches!(b, b'\n' | b'\r'))
                .unwrap_or(rest.len()),
            // A block string ends at the first unescaped `"""`. Without one
            // the parser reads `""`, an empty string, and goes on.
            b'"' if rest.starts_with(b"\"\"\"") => block_string_len(rest).unwrap_or(2),
            b'"' => string_len(rest),
            _ => 1,
        };
    }
    max
}

/// The length of the block string `rest` starts with, if it is closed.
fn block_string_len(rest: &[u8]) -> Option<usize> {
    let mut i = 3;
    while i < rest.len() {
        if rest[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if rest[i..].starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// The length of the string `rest` starts with, up to its closing quote or
/// the end of the line (where the parser fails).
fn string_len(rest: &[u8]) -> usize {
    let mut i = 1;
    while i < rest.len() {
        match rest[i] {
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    rest.len()
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

    /// `{ ...F0 }` where each `Fi` spreads `F(i+1)` `fan_out` times.
    fn fragment_chain(fan_out: usize, depth: usize, leaf: &str) -> String {
        let mut query = String::from("{ ...F0 } ");
        for i in 0..depth {
            let spreads = format!("...F{} ", i + 1).repeat(fan_out);
            query.push_str(&format!("fragment F{i} on Query {{ {spreads}}} "));
        }
        query.push_str(&format!("fragment F{depth} on Query {{ {leaf} }}"));
        query
    }

    #[test]
    fn depth_limit_is_inclusive() {
        assert_eq!(check_query(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check_query(&nested(MAX_DEPTH + 1)), Err(QueryLimit::Depth));
    }

    #[test]
    fn fragments_count_towards_depth() {
        let deep = format!(
            "{{ ...F }} fragment F on Query {{ {} }}",
            chain(MAX_DEPTH + 1)
        );
        assert_eq!(check_query(&deep), Err(QueryLimit::Depth));
        let split = format!(
            "{{ a {{ ...F }} }} fragment F on A {{ {} }}",
            chain(MAX_DEPTH)
        );
        assert_eq!(check_query(&split), Err(QueryLimit::Depth));
    }

    #[test]
    fn fragment_cycles_are_refused() {
        let cycle = "{ ...A } fragment A on Query { x ...B } fragment B on Query { ...A }";
        assert!(matches!(
            check_query(cycle),
            Err(QueryLimit::FragmentCycle(_))
        ));
        // Even a fragment no operation uses.
        let unused = "{ x } fragment A on Query { ...A }";
        assert!(matches!(
            check_query(unused),
            Err(QueryLimit::FragmentCycle(_))
        ));
    }

    #[test]
    fn the_issue_chain_is_refused_at_once() {
        let query = fragment_chain(3, 18, "__typename");
        assert!(query.len() < 1024, "{}", query.len());
        let started = std::time::Instant::now();
        assert_eq!(check_query(&query), Err(QueryLimit::Complexity));
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }

    #[test]
    fn unknown_leaf_spreads_still_count() {
        // No field at all, but 2^20 spreads for any walk that expands them.
        let query = fragment_chain(2, 20, "...Missing");
        assert_eq!(check_query(&query), Err(QueryLimit::Complexity));
    }

    #[test]
    fn selections_are_counted_per_use() {
        // The spread, `a`, and the fields under it.
        let fields = |n: usize| format!("a {{ {} }}", "x ".repeat(n));
        let at_limit = fragment_chain(1, 0, &fields(MAX_SELECTIONS - 2));
        assert_eq!(check_query(&at_limit), Ok(()));
        let past = fragment_chain(1, 0, &fields(MAX_SELECTIONS - 1));
        assert_eq!(check_query(&past), Err(QueryLimit::Complexity));
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
    fn root_fields_are_counted_through_fragments() {
        let roots: String = (0..=MAX_ROOT_FIELDS).map(|i| format!("f{i} ")).collect();
        for query in [
            format!("{{ ... on Query {{ {roots} }} }}"),
            format!("{{ ...R }} fragment R on Query {{ {roots} }}"),
            format!("{{ f0 ...R }} fragment R on Query {{ ... {{ {roots} }} }}"),
        ] {
            assert_eq!(check_query(&query), Err(QueryLimit::RootFields), "{query}");
        }
    }

    #[test]
    fn one_password_check_per_operation() {
        let login = "login(input: {email: \"a@b.c\", password: \"p\"}) { token }";
        assert_eq!(check_query(&format!("mutation {{ {login} }}")), Ok(()));
        for query in [
            format!("mutation {{ a: {login} b: {login} }}"),
            format!("mutation {{ ... on Mutation {{ a: {login} }} b: {login} }}"),
            format!("mutation {{ ...L ...L }} fragment L on Mutation {{ {login} }}"),
            format!(
                "mutation {{ {login} register(input: {{email: \"x@y.z\", password: \"p\"}}) {{ token }} }}"
            ),
        ] {
            assert_eq!(
                check_query(&query),
                Err(QueryLimit::PasswordChecks),
                "{query}"
            );
        }
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
        // A fragment on an introspection type is judged by the same limit.
        let fragment = format!(
            "{{ __schema {{ types {{ ...T }} }} }} fragment T on __Type {{ {} }}",
            chain(MAX_INTROSPECTION_DEPTH - 2)
        );
        assert_eq!(check_query(&fragment), Ok(()));
    }

    #[test]
    fn directives_arguments_and_variables_are_bounded() {
        let directives = "@skip(if: false) ".repeat(MAX_DIRECTIVES + 1);
        assert_eq!(
            check_query(&format!("{{ me {directives} {{ x }} }}")),
            Err(QueryLimit::Directives)
        );
        let arguments: String = (0..=MAX_ARGUMENTS).map(|i| format!("a{i}: 1 ")).collect();
        assert_eq!(
            check_query(&format!("{{ me({arguments}) {{ x }} }}")),
            Err(QueryLimit::Arguments)
        );
        let variables: String = (0..=MAX_VARIABLES)
            .map(|i| format!("$v{i}: Int "))
            .collect();
        assert_eq!(
            check_query(&format!("query Q({variables}) {{ x }}")),
            Err(QueryLimit::Variables)
        );
    }

    #[test]
    fn many_small_fragments_are_bounded_in_total() {
        let mut query = String::from("{ x }");
        for i in 0..=(MAX_DOCUMENT_SELECTIONS / 200) {
            let fields = "x ".repeat(199);
            query.push_str(&format!(" fragment F{i} on Query {{ a {{ {fields} }} }}"));
        }
        assert_eq!(check_query(&query), Err(QueryLimit::Complexity));
    }

    #[test]
    fn nested_values_are_bounded_wherever_they_are() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let ok = deep(MAX_VALUE_DEPTH - 1);
        assert_eq!(check_query(&format!("{{ me(a: {ok}) {{ x }} }}")), Ok(()));
        let past = deep(MAX_VALUE_DEPTH);
        for query in [
            format!("{{ me(a: {past}) {{ x }} }}"),
            format!("{{ me @skip(if: {past}) {{ x }} }}"),
            format!("query($v: [Int] = {past}) {{ x }}"),
            format!("{{ me(a: {{b: {past}}}) {{ x }} }}"),
            // The block string that is not one: `""` then `"x"`.
            format!(r#"{{ me(a: ["""x"], b: {past}) {{ x }} }}"#),
        ] {
            assert_eq!(check_query(&query), Err(QueryLimit::Nesting), "{query}");
        }
    }

    #[test]
    fn brackets_are_counted_as_the_parser_reads_them() {
        assert_eq!(bracket_depth("{ a { b(x: [1, {c: 2}]) } }"), 5);
        assert_eq!(bracket_depth(r#"{ a(s: "{{{{ \" [[[") }"#), 2);
        assert_eq!(bracket_depth("{ a # {{{{{\n }"), 1);
        assert_eq!(bracket_depth(r#"{ a(s: """ {{{ \""" {{ """) }"#), 2);
        // Not a block string: `""` then `"x"`, and the brackets after count.
        assert_eq!(bracket_depth(r#"{ a(s: ["""x"], t: [[[1]]]) }"#), 5);
        let deep = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
        assert_eq!(bracket_depth(&deep), 10_000);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn variable_uses_count_per_operation_that_reaches_them() {
        let variables: String = (0..50).map(|i| format!("$v{i} ")).collect();
        let operations: String = (0..30).map(|i| format!("query Q{i} {{ ...F }} ")).collect();
        let query = format!("{operations} fragment F on Query {{ me(a: [{variables}]) {{ x }} }}");
        assert_eq!(check_query(&query), Err(QueryLimit::Complexity));
    }
}
