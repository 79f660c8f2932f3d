//! The GraphQL front end: every document is pre-scanned (size, bracket nesting), parsed once,
//! and measured with its fragments expanded before async-graphql validates or runs it. Both
//! the parser and async-graphql's validators recurse, and the validators expand fragment
//! spreads without memoizing them (30 fragments each spreading the next twice are 2^30 visits),
//! so these limits must hold before either sees the document.
//!
//! The measure walks each fragment once and remembers its size and height, so it is linear in
//! the document however the fragments fan out, and stops at the first limit crossed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::parser::{Pos, Positioned};
use async_graphql::{ServerError, Value as ConstValue};

use super::prescan::{PrescanError, prescan};
use super::schema::MAX_RECURSIVE_DEPTH;

/// The longest GraphQL document accepted, in bytes. The official client's and Web UI's largest
/// documents are about 3 kB, a full introspection query about 2 kB.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The deepest nesting of `{`, `[` and `(` accepted anywhere in a document (selections,
/// arguments, list and object literals, variable types and defaults). Real documents nest
/// about 10 (introspection's `ofType` chain); the parser recurses several frames per level.
pub const MAX_NESTING_DEPTH: usize = 32;

/// The most nodes (fields, fragment spreads, inline fragments and argument values) a document
/// may hold once every fragment spread is replaced by its fragment, summed over its operations
/// and fragment definitions. This bounds the work of validation, which expands spreads and
/// runs on the worker thread: the costliest document at this limit (3,000 unknown fields)
/// took 0.4 s to validate in a debug build on a loaded machine. The client's largest query
/// has about 100, an introspection query about 500; a query that runs selects at most 1,000
/// fields (`MAX_QUERY_COMPLEXITY`).
pub const MAX_EXPANDED_NODES: usize = 3_000;

/// How long one GraphQL request may run (validation and resolvers) before it is stopped and
/// answered with an error. The slowest legitimate calls (a storage volume listing through the
/// proxies, a purge) take well under a second; a request holding a worker longer is an attack
/// or a fault.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A limit a document crossed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Prescan(#[from] PrescanError),
    #[error(
        "the GraphQL document has more than {limit} fields, fragment spreads and argument values \
         once its fragments are expanded"
    )]
    TooManyNodes { limit: usize },
    #[error(
        "the GraphQL document's selections nest more than {limit} levels deep once its \
         fragments are expanded"
    )]
    TooDeep { limit: usize, at: Pos },
    #[error("fragment {name:?} spreads itself (directly or through other fragments)")]
    FragmentCycle { name: String, at: Pos },
}

impl LimitError {
    /// The error as a GraphQL error entry, with the position where one is known.
    pub fn to_server_error(&self) -> ServerError {
        let position = match self {
            LimitError::TooDeep { at, .. } | LimitError::FragmentCycle { at, .. } => Some(*at),
            LimitError::Prescan(PrescanError::TooDeep { at, .. }) => Some(Pos {
                line: at.line,
                column: at.column,
            }),
            LimitError::Prescan(PrescanError::TooLarge { .. })
            | LimitError::TooManyNodes { .. } => None,
        };
        ServerError::new(self.to_string(), position)
    }
}

/// The limits a document is held to; [`Limits::SERVER`] in production, smaller in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_document_bytes: usize,
    pub max_nesting_depth: usize,
    pub max_expanded_nodes: usize,
    pub max_selection_depth: usize,
}

impl Limits {
    pub const SERVER: Limits = Limits {
        max_document_bytes: MAX_DOCUMENT_BYTES,
        max_nesting_depth: MAX_NESTING_DEPTH,
        max_expanded_nodes: MAX_EXPANDED_NODES,
        max_selection_depth: MAX_RECURSIVE_DEPTH,
    };
}

/// Pre-scans, parses and measures `document`. CPU-bound (up to a few ms for the largest
/// document): async callers run it with `spawn_blocking`.
pub fn parse_document(document: &str, limits: Limits) -> Result<ExecutableDocument, ServerError> {
    prescan(
        document,
        limits.max_document_bytes,
        limits.max_nesting_depth,
    )
    .map_err(|e| LimitError::from(e).to_server_error())?;
    let parsed = async_graphql::parser::parse_query(document).map_err(ServerError::from)?;
    measure(&parsed, limits).map_err(|e| e.to_server_error())?;
    Ok(parsed)
}

/// Checks the expanded size and depth of a parsed document.
pub fn measure(document: &ExecutableDocument, limits: Limits) -> Result<(), LimitError> {
    let mut measure = Measure {
        document,
        limits,
        fragments: HashMap::new(),
    };
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        total = total.saturating_add(measure.operation(&operation.node)?);
        measure.check_total(total)?;
    }
    // Fragment definitions add their own expansions: validation checks each selection set of
    // a definition with the spreads in it expanded (overlapping fields), and the cycle check
    // follows the spreads of fragments no operation reaches too.
    for (name, fragment) in &document.fragments {
        if let Some((cost, _)) = measure.fragment(name.as_str(), 0, fragment.pos)? {
            total = total.saturating_add(cost);
            measure.check_total(total)?;
        }
    }
    Ok(())
}

/// The operation a request runs, chosen as async-graphql chooses it (`None` when it would
/// refuse the request for a missing or unknown operation name).
pub fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => Some(&operation.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The most root field names a log line lists.
pub const MAX_LOGGED_ROOT_FIELDS: usize = 16;

/// The names of the root fields `operation` selects (through fragments at the root level),
/// in document order, at most [`MAX_LOGGED_ROOT_FIELDS`], for the log.
pub fn root_fields(document: &ExecutableDocument, operation: &OperationDefinition) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut seen_fragments: Vec<&str> = Vec::new();
    // Selection sets still to list, last first; fragments are entered once each.
    let mut pending: Vec<std::slice::Iter<'_, Positioned<Selection>>> =
        vec![operation.selection_set.node.items.iter()];
    while let Some(items) = pending.last_mut() {
        let Some(item) = items.next() else {
            pending.pop();
            continue;
        };
        match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                    if names.len() == MAX_LOGGED_ROOT_FIELDS {
                        break;
                    }
                }
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if !seen_fragments.contains(&name)
                    && let Some(fragment) = document.fragments.get(name)
                {
                    seen_fragments.push(name);
                    pending.push(fragment.node.selection_set.node.items.iter());
                }
            }
            Selection::InlineFragment(inline) => {
                pending.push(inline.node.selection_set.node.items.iter());
            }
        }
    }
    names
}

/// One per argument plus the nodes of its value. The value type of executable documents is not
/// exported by async-graphql, so this is a macro; its constant form (variables as `null`) has
/// the same shape and is counted instead.
macro_rules! arguments_cost {
    ($arguments:expr) => {
        $arguments.iter().fold(0usize, |cost, (_, value)| {
            let constant = value
                .node
                .clone()
                .into_const_with(|_| Ok::<_, Infallible>(ConstValue::Null))
                .unwrap_or_else(|never| match never {});
            cost.saturating_add(1)
                .saturating_add(const_value_nodes(&constant))
        })
    };
}

enum FragmentState {
    /// Being measured: reaching it again is a cycle.
    InProgress,
    /// Its expanded node count and its height (levels of selections below its own).
    Done { cost: usize, height: usize },
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    limits: Limits,
    fragments: HashMap<&'a str, FragmentState>,
}

impl<'a> Measure<'a> {
    fn check_total(&self, total: usize) -> Result<(), LimitError> {
        if total > self.limits.max_expanded_nodes {
            return Err(LimitError::TooManyNodes {
                limit: self.limits.max_expanded_nodes,
            });
        }
        Ok(())
    }

    fn operation(&mut self, operation: &'a OperationDefinition) -> Result<usize, LimitError> {
        let mut cost = directives_cost(&operation.directives);
        for variable in &operation.variable_definitions {
            cost = cost
                .saturating_add(directives_cost(&variable.node.directives))
                .saturating_add(
                    variable
                        .node
                        .default_value
                        .as_ref()
                        .map_or(0, |value| const_value_nodes(&value.node)),
                );
        }
        let (selections, _) = self.selection_set(&operation.selection_set, 0)?;
        Ok(cost.saturating_add(selections))
    }

    /// The expanded node count and height of `set`, found at `depth`. Recursion follows the
    /// document's nesting and fragment spreads, both bounded by `max_selection_depth`.
    fn selection_set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        depth: usize,
    ) -> Result<(usize, usize), LimitError> {
        if depth > self.limits.max_selection_depth {
            return Err(LimitError::TooDeep {
                limit: self.limits.max_selection_depth,
                at: set.pos,
            });
        }
        let mut cost = 0usize;
        let mut height = 0usize;
        for item in &set.node.items {
            cost = cost
                .saturating_add(1)
                .saturating_add(directives_cost(item.node.directives()));
            match &item.node {
                Selection::Field(field) => {
                    cost = cost.saturating_add(arguments_cost!(field.node.arguments));
                    if !field.node.selection_set.node.items.is_empty() {
                        let (inner, inner_height) =
                            self.selection_set(&field.node.selection_set, depth + 1)?;
                        cost = cost.saturating_add(inner);
                        height = height.max(inner_height + 1);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some((inner, inner_height)) =
                        self.fragment(name, depth + 1, spread.pos)?
                    {
                        cost = cost.saturating_add(inner);
                        height = height.max(inner_height + 1);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let (inner, inner_height) =
                        self.selection_set(&inline.node.selection_set, depth + 1)?;
                    cost = cost.saturating_add(inner);
                    height = height.max(inner_height + 1);
                }
            }
            self.check_total(cost)?;
        }
        Ok((cost, height))
    }

    /// The fragment `name` spread at `depth` (its selection set sits at that depth): its
    /// expanded node count and height, measured once. `None` for an unknown fragment, which
    /// validation reports.
    fn fragment(
        &mut self,
        name: &'a str,
        depth: usize,
        at: Pos,
    ) -> Result<Option<(usize, usize)>, LimitError> {
        match self.fragments.get(name) {
            Some(FragmentState::Done { cost, height }) => {
                if depth + height > self.limits.max_selection_depth {
                    return Err(LimitError::TooDeep {
                        limit: self.limits.max_selection_depth,
                        at,
                    });
                }
                return Ok(Some((*cost, *height)));
            }
            Some(FragmentState::InProgress) => {
                return Err(LimitError::FragmentCycle {
                    name: name.to_owned(),
                    at,
                });
            }
            None => {}
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(None);
        };
        self.fragments.insert(name, FragmentState::InProgress);
        let (cost, height) = self.selection_set(&fragment.node.selection_set, depth)?;
        let cost = cost.saturating_add(directives_cost(&fragment.node.directives));
        self.fragments
            .insert(name, FragmentState::Done { cost, height });
        Ok(Some((cost, height)))
    }
}

fn directives_cost(directives: &[Positioned<Directive>]) -> usize {
    directives.iter().fold(0usize, |cost, directive| {
        cost.saturating_add(1)
            .saturating_add(arguments_cost!(directive.node.arguments))
    })
}

/// The number of nodes of a constant value, without recursion.
fn const_value_nodes(value: &ConstValue) -> usize {
    let mut count = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        count = count.saturating_add(1);
        match value {
            ConstValue::List(items) => pending.extend(items.iter()),
            ConstValue::Object(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(document: &str) -> Result<ExecutableDocument, ServerError> {
        parse_document(document, Limits::SERVER)
    }

    /// `count` fragments, each spreading the next one twice.
    pub(crate) fn fragment_bomb(count: usize) -> String {
        let mut document = String::from("query { ...F0 }\n");
        for n in 0..count {
            document.push_str(&format!(
                "fragment F{n} on Queries {{ ...F{next} ...F{next} }}\n",
                next = n + 1
            ));
        }
        document.push_str(&format!("fragment F{count} on Queries {{ __typename }}\n"));
        document
    }

    #[test]
    fn ordinary_documents_pass() {
        let document = parse(
            "query Q($f: String = \"x\") { keypair_list(limit: 1, offset: 0, filter: $f) \
             { total_count items { ...K } } } fragment K on KeyPair { access_key }",
        )
        .unwrap();
        let operation = selected_operation(&document, None).unwrap();
        assert_eq!(
            operation.ty,
            async_graphql::parser::types::OperationType::Query
        );
        assert_eq!(root_fields(&document, operation), ["keypair_list"]);
    }

    /// GraphiQL's introspection query (graphql-js `getIntrospectionQuery()`), the deepest
    /// document tools commonly send.
    const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name } mutationType { name } subscriptionType { name }
        types { ...FullType }
        directives { name description locations args { ...InputValue } }
      }
    }
    fragment FullType on __Type {
      kind name description
      fields(includeDeprecated: true) {
        name description args { ...InputValue } type { ...TypeRef }
        isDeprecated deprecationReason
      }
      inputFields { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
    fragment TypeRef on __Type {
      kind name
      ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
    }"#;

    #[test]
    fn an_introspection_query_passes_and_runs() {
        parse(INTROSPECTION_QUERY).unwrap();
        let response =
            futures::executor::block_on(crate::gql::http::schema().execute(INTROSPECTION_QUERY));
        assert!(response.errors.is_empty(), "{:?}", response.errors);
    }

    #[test]
    fn deep_literals_and_defaults_are_refused_by_the_prescan() {
        for document in [
            format!(
                "{{ keypair_list(limit:1, offset:0, filter: {}) {{ total_count }} }}",
                "[".repeat(2_500)
            ),
            format!("{{ a(x: {}) }}", "{a: ".repeat(2_500)),
            format!("query ($v: [Int] = {}) {{ a }}", "[".repeat(2_500)),
            "{ a ".repeat(2_500),
        ] {
            let error = parse(&document).unwrap_err();
            assert!(
                error
                    .message
                    .contains("nests brackets more than 32 levels deep"),
                "{}",
                error.message
            );
            assert_eq!(error.locations.len(), 1);
        }
    }

    #[test]
    fn large_documents_are_refused() {
        let document = format!("{{ a{} }}", " ".repeat(MAX_DOCUMENT_BYTES));
        let error = parse(&document).unwrap_err();
        assert!(error.message.contains("more than the limit of 65536 bytes"));
    }

    #[test]
    fn fragment_fan_out_is_measured_once_per_fragment() {
        let error = parse(&fragment_bomb(30)).unwrap_err();
        assert_eq!(
            error.message,
            "the GraphQL document has more than 3000 fields, fragment spreads and argument \
             values once its fragments are expanded"
        );
        // A small fan-out stays under the budget: 2^6 leaves.
        assert!(parse(&fragment_bomb(6)).is_ok());
    }

    #[test]
    fn fragment_chains_and_cycles_are_refused() {
        let mut chain = String::from("query { ...F0 }\n");
        for n in 0..40 {
            chain.push_str(&format!("fragment F{n} on Queries {{ ...F{} }}\n", n + 1));
        }
        chain.push_str("fragment F40 on Queries { __typename }\n");
        let error = parse(&chain).unwrap_err();
        assert!(
            error.message.contains("nest more than 32 levels deep"),
            "{}",
            error.message
        );
        let cycle = "query { ...A } fragment A on Queries { ...B } fragment B on Queries { ...A }";
        let error = parse(cycle).unwrap_err();
        assert!(
            error.message.contains("spreads itself"),
            "{}",
            error.message
        );
        let self_cycle = "query { a } fragment A on Queries { b ...A ...A }";
        assert!(parse(self_cycle).is_err());
    }

    #[test]
    fn argument_values_count_towards_the_budget() {
        let list = vec!["1"; 3_000].join(",");
        let document =
            format!("query {{ ...F ...F ...F ...F }} fragment F on Queries {{ a(x: [{list}]) }}");
        assert!(matches!(
            measure(
                &async_graphql::parser::parse_query(&document).unwrap(),
                Limits::SERVER
            ),
            Err(LimitError::TooManyNodes { .. })
        ));
    }

    /// The stack of an actix worker or a blocking-pool thread (Rust's default).
    const WORKER_STACK_BYTES: usize = 2 * 1024 * 1024;

    /// Documents right at the limits are parsed and validated on a worker-sized stack (in a
    /// debug build, whose frames are larger than a release build's).
    #[test]
    fn documents_at_the_limits_fit_a_worker_stack() {
        let below = MAX_NESTING_DEPTH - 3;
        let documents = vec![
            format!(
                "{{ keypair_list(limit: 1, offset: 0, filter: {}\"x\"{}) {{ total_count }} }}",
                "[".repeat(below),
                "]".repeat(below)
            ),
            format!(
                "{{ keypair_list(limit: 1, offset: 0, filter: {}1{}) {{ total_count }} }}",
                "{a: ".repeat(below),
                "}".repeat(below)
            ),
            format!(
                "query ($v: String = {}1{}) {{ keypair_list(limit: 1, offset: 0, filter: $v) \
                 {{ total_count }} }}",
                "[".repeat(MAX_NESTING_DEPTH - 1),
                "]".repeat(MAX_NESTING_DEPTH - 1)
            ),
            fragment_bomb(8),
        ];
        let worker = std::thread::Builder::new()
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || {
                let mut messages = Vec::new();
                for document in documents {
                    parse(&document).unwrap_or_else(|e| panic!("{}: {document}", e.message));
                    let response = futures::executor::block_on(
                        crate::gql::http::schema().execute(document.as_str()),
                    );
                    messages.push(response.errors.first().map(|e| e.message.clone()));
                }
                messages
            })
            .unwrap();
        let messages = worker.join().expect("no stack overflow");
        // Validation rejects the literals' types; nothing crashed on the way there.
        assert!(messages[..3].iter().all(Option::is_some), "{messages:?}");
    }

    #[test]
    fn the_operation_is_chosen_as_async_graphql_chooses_it() {
        let document = parse("mutation M { a }").unwrap();
        assert_eq!(
            selected_operation(&document, None).map(|op| op.ty),
            Some(async_graphql::parser::types::OperationType::Mutation)
        );
        let document = parse("query A { a } mutation B { b }").unwrap();
        assert!(selected_operation(&document, None).is_none());
        assert_eq!(
            selected_operation(&document, Some("B")).map(|op| op.ty),
            Some(async_graphql::parser::types::OperationType::Mutation)
        );
        let document = parse("{ a }").unwrap();
        assert!(selected_operation(&document, Some("A")).is_none());
    }

    #[test]
    fn root_fields_follow_root_fragments_once() {
        let document = parse(
            "{ a ...F ... on Queries { c } } fragment F on Queries { b ...F2 a } \
             fragment F2 on Queries { d }",
        );
        // F2 is fine; the list is in document order without repeats.
        let document = document.unwrap();
        let operation = selected_operation(&document, None).unwrap();
        assert_eq!(root_fields(&document, operation), ["a", "b", "d", "c"]);
    }
}
