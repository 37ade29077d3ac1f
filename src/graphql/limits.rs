//! Operation limits, checked before an operation runs so a refused one costs no Graph
//! call: a lexical scan (tokens, bracket nesting) before the parser sees the text, then
//! one pass over the parsed operation (depth, aliases, root fields, cost, `first`, list
//! arguments), type-aware through an index built from the schema's own SDL.
//!
//! async-graphql has `limit_depth` and `limit_complexity`, but their errors carry no code,
//! they run after parsing (a 20,000-field document is parsed first), and complexity has no
//! notion of `first × children`; hence this module.

use std::collections::HashMap;

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
    Selection, SelectionSet, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::config::GraphqlConfig;

/// Deepest bracket nesting (`{`, `[`, `(`) the scanner lets through to the parser. The
/// parser recurses per level; a legitimate document stays far below this.
const MAX_NESTING: usize = 64;

/// Largest page a connection may ask for.
const MAX_FIRST: i64 = 100;

/// Most field selections an operation may have once its fragments are expanded. Validation
/// walks the expanded selections (more than once), so 25 fragments each spreading the
/// previous one twice (2²⁵ selections) must be refused before it; real operations have
/// hundreds.
const MAX_SELECTIONS: u64 = 10_000;

/// What a delta page without `first` counts as in the cost.
const UNSTATED_FIRST: u64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the document has more than {0} tokens")]
    Tokens(usize),
    #[error("the operation nests deeper than {0} levels")]
    Depth(usize),
    #[error("the operation uses more than {0} aliases")]
    Aliases(usize),
    #[error("the operation selects more than {0} root fields")]
    RootFields(usize),
    #[error(
        "the operation may cost {cost}, more than the limit of {limit} (a connection costs `first` × what is selected under it)"
    )]
    Cost { cost: u64, limit: u64 },
    #[error("the operation has more than {0} field selections once its fragments are expanded")]
    Selections(u64),
    #[error("{0}")]
    BadInput(String),
}

impl LimitError {
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::Tokens(_) => "TOKEN_LIMIT_EXCEEDED",
            LimitError::Depth(_) => "MAX_DEPTH_EXCEEDED",
            LimitError::Aliases(_) => "MAX_ALIASES_EXCEEDED",
            LimitError::RootFields(_) => "MAX_ROOT_FIELDS_EXCEEDED",
            LimitError::Cost { .. } => "COST_LIMIT_EXCEEDED",
            LimitError::Selections(_) => "MAX_SELECTIONS_EXCEEDED",
            LimitError::BadInput(_) => "BAD_USER_INPUT",
        }
    }
}

/// Counts tokens and bracket nesting in one linear pass, so a huge or absurdly nested
/// document is refused without being parsed. Hand-written: the only parsers that count
/// tokens are whole second GraphQL parsers, and this needs nothing but the lexical rules
/// (GraphQL spec §2.1): whitespace, commas and comments are ignored; strings and block
/// strings are one token.
pub fn scan(source: &str, max_tokens: usize) -> Result<(), LimitError> {
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut tokens = 0usize;
    let mut nesting = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b'{' | b'[' | b'(' => {
                nesting += 1;
                if nesting > MAX_NESTING {
                    return Err(LimitError::Depth(MAX_NESTING));
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'+' => {
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'+' | b'-')
                {
                    i += 1;
                }
            }
            // Punctuators and anything else (the parser reports what is not GraphQL).
            _ => i += utf8_len(b),
        }
        tokens += 1;
        if tokens > max_tokens {
            return Err(LimitError::Tokens(max_tokens));
        }
    }
    Ok(())
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// What the analysis found out about an operation that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analysis {
    pub kind: OperationType,
    pub cost: u64,
    /// The operation asks for `__schema` or `__type`.
    pub introspection: bool,
}

/// Fields of each object and interface type, from the schema's SDL.
pub struct SchemaIndex {
    types: HashMap<String, HashMap<String, FieldInfo>>,
    query: String,
    mutation: String,
    subscription: String,
}

struct FieldInfo {
    /// The named type the field returns (lists and non-null unwrapped).
    ty: String,
    /// Arguments whose type is a list.
    list_args: Vec<String>,
    /// The field takes `first`: its cost multiplies. On a connection (`…Connection`)
    /// `first` is required and at most 100; delta pages have their own ranges.
    takes_first: bool,
}

impl SchemaIndex {
    pub fn from_sdl(sdl: &str) -> SchemaIndex {
        let mut index = SchemaIndex {
            types: HashMap::new(),
            query: "Query".into(),
            mutation: "Mutation".into(),
            subscription: "Subscription".into(),
        };
        // The SDL is our own schema's: it always parses.
        let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
            return index;
        };
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    if let Some(q) = schema.query {
                        index.query = q.node.to_string();
                    }
                    if let Some(m) = schema.mutation {
                        index.mutation = m.node.to_string();
                    }
                    if let Some(s) = schema.subscription {
                        index.subscription = s.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let fields = match ty.kind {
                        TypeKind::Object(o) => o.fields,
                        TypeKind::Interface(i) => i.fields,
                        _ => continue,
                    };
                    let fields = fields
                        .into_iter()
                        .map(|f| {
                            let f = f.node;
                            let info = FieldInfo {
                                ty: named(&f.ty.node.base),
                                list_args: f
                                    .arguments
                                    .iter()
                                    .filter(|a| matches!(a.node.ty.node.base, BaseType::List(_)))
                                    .map(|a| a.node.name.node.to_string())
                                    .collect(),
                                takes_first: f
                                    .arguments
                                    .iter()
                                    .any(|a| a.node.name.node == "first"),
                            };
                            (f.name.node.to_string(), info)
                        })
                        .collect();
                    index.types.insert(ty.name.node.to_string(), fields);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        index
    }

    fn field(&self, parent: Option<&str>, name: &str) -> Option<&FieldInfo> {
        self.types.get(parent?)?.get(name)
    }
}

fn named(base: &BaseType) -> String {
    match base {
        BaseType::Named(name) => name.to_string(),
        BaseType::List(inner) => named(&inner.base),
    }
}

/// The operation a request runs: the named one, or the only one.
pub fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Checks the operation against the limits. `None` when the request names no operation
/// the document has: validation then reports that, with its own error.
pub fn analyze(
    index: &SchemaIndex,
    limits: &GraphqlConfig,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> Result<Option<Analysis>, LimitError> {
    let Some(operation) = selected_operation(document, operation_name) else {
        return Ok(None);
    };
    let root = match operation.ty {
        OperationType::Query => &index.query,
        OperationType::Mutation => &index.mutation,
        OperationType::Subscription => &index.subscription,
    };
    let mut walker = Walker {
        index,
        limits,
        document,
        operation,
        variables,
        aliases: 0,
        fragments: HashMap::new(),
        introspection: false,
    };
    let mut root_fields = 0;
    walker.count_root_fields(&operation.selection_set.node, &mut root_fields, 0);
    if root_fields > limits.max_root_fields {
        return Err(LimitError::RootFields(limits.max_root_fields));
    }
    let measure = walker.measure(&operation.selection_set.node, Some(root.as_str()))?;
    if measure.selections > MAX_SELECTIONS {
        return Err(LimitError::Selections(MAX_SELECTIONS));
    }
    if walker.aliases > limits.max_aliases {
        return Err(LimitError::Aliases(limits.max_aliases));
    }
    if measure.depth > limits.max_depth {
        return Err(LimitError::Depth(limits.max_depth));
    }
    if measure.cost > limits.max_cost {
        return Err(LimitError::Cost {
            cost: measure.cost,
            limit: limits.max_cost,
        });
    }
    Ok(Some(Analysis {
        kind: operation.ty,
        cost: measure.cost,
        introspection: walker.introspection,
    }))
}

#[derive(Clone, Copy, Default)]
struct Measure {
    depth: usize,
    cost: u64,
    /// Field selections once fragments are expanded.
    selections: u64,
}

struct Walker<'a> {
    index: &'a SchemaIndex,
    limits: &'a GraphqlConfig,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    aliases: usize,
    /// Each fragment is measured once (so 25 fragments each spreading the previous twice
    /// cost 25 visits, not 2²⁵). `None` while a fragment is being measured: meeting it
    /// again is a cycle, which validation refuses; the walk just stops there.
    fragments: HashMap<Name, Option<Measure>>,
    introspection: bool,
}

impl Walker<'_> {
    fn measure(&mut self, set: &SelectionSet, parent: Option<&str>) -> Result<Measure, LimitError> {
        let mut total = Measure::default();
        for selection in &set.items {
            let measure = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if field.alias.is_some() {
                        self.aliases += 1;
                    }
                    let name = field.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        self.introspection = true;
                    }
                    let info = self.index.field(parent, name);
                    let children =
                        self.measure(&field.selection_set.node, info.map(|i| i.ty.as_str()))?;
                    let mut multiplier = 1;
                    if let Some(info) = info {
                        for (arg, value) in &field.arguments {
                            if info.list_args.iter().any(|a| *a == arg.node.as_str()) {
                                self.check_list(name, arg.node.as_str(), &value.node)?;
                            }
                        }
                        if info.takes_first {
                            let connection = info.ty.ends_with("Connection");
                            multiplier = self.first(name, &field.arguments, connection)?;
                        }
                    }
                    let own = u64::from(!field.selection_set.node.items.is_empty());
                    Measure {
                        depth: children.depth + 1,
                        cost: own.saturating_add(multiplier.saturating_mul(children.cost)),
                        selections: children.selections.saturating_add(1),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    let on = fragment
                        .type_condition
                        .as_ref()
                        .map(|t| t.node.on.node.to_string());
                    self.measure(&fragment.selection_set.node, on.as_deref().or(parent))?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node)?
                }
            };
            total.depth = total.depth.max(measure.depth);
            total.cost = total.cost.saturating_add(measure.cost);
            total.selections = total.selections.saturating_add(measure.selections);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &Name) -> Result<Measure, LimitError> {
        match self.fragments.get(name) {
            Some(Some(measure)) => return Ok(*measure),
            Some(None) => return Ok(Measure::default()),
            None => {}
        }
        let Some(definition) = self.document.fragments.get(name) else {
            return Ok(Measure::default());
        };
        self.fragments.insert(name.clone(), None);
        let on = definition.node.type_condition.node.on.node.to_string();
        let measure = self.measure(&definition.node.selection_set.node, Some(on.as_str()))?;
        self.fragments.insert(name.clone(), Some(measure));
        Ok(measure)
    }

    /// Fields at the root, through fragments; `__typename` is free.
    fn count_root_fields(&self, set: &SelectionSet, count: &mut usize, nesting: usize) {
        // Fragment cycles are refused by validation; this only must not loop on one.
        if nesting > self.document.fragments.len() + 1 {
            return;
        }
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) if field.node.name.node != "__typename" => *count += 1,
                Selection::Field(_) => {}
                Selection::InlineFragment(fragment) => {
                    self.count_root_fields(&fragment.node.selection_set.node, count, nesting + 1)
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(definition) =
                        self.document.fragments.get(&spread.node.fragment_name.node)
                    {
                        self.count_root_fields(
                            &definition.node.selection_set.node,
                            count,
                            nesting + 1,
                        );
                    }
                }
            }
        }
    }

    /// How many items a field taking `first` may return. A connection must say, 1 to 100
    /// (the schema makes it required, so a missing one is a validation error too); a delta
    /// page checks its own range when it runs and counts as [`UNSTATED_FIRST`] if unsaid.
    fn first(
        &self,
        field: &str,
        arguments: &[(Positioned<Name>, Positioned<Value>)],
        connection: bool,
    ) -> Result<u64, LimitError> {
        let value = arguments
            .iter()
            .find(|(name, _)| name.node == "first")
            .and_then(|(_, value)| self.resolve(&value.node));
        let n = match value {
            Some(ConstValue::Number(n)) => n,
            // Not an Int: validation reports the type error.
            Some(_) => return Ok(UNSTATED_FIRST),
            None if connection => {
                return Err(LimitError::BadInput(format!(
                    "`{field}` is a connection: give `first` (1 to {MAX_FIRST})"
                )));
            }
            None => return Ok(UNSTATED_FIRST),
        };
        match n.as_i64() {
            Some(first @ 1..=MAX_FIRST) if connection => Ok(first as u64),
            Some(first) if !connection && first >= 1 => Ok(first as u64),
            _ if connection => Err(LimitError::BadInput(format!(
                "`{field}(first:)` must be between 1 and {MAX_FIRST}, got {n}"
            ))),
            _ => Err(LimitError::BadInput(format!(
                "`{field}(first:)` must be at least 1, got {n}"
            ))),
        }
    }

    fn check_list(&self, field: &str, argument: &str, value: &Value) -> Result<(), LimitError> {
        let items = match value {
            Value::List(items) => items.len(),
            other => match self.resolve(other) {
                Some(ConstValue::List(items)) => items.len(),
                _ => 0,
            },
        };
        if items > self.limits.max_list_items {
            return Err(LimitError::BadInput(format!(
                "`{field}({argument}:)` takes at most {} items, got {items}",
                self.limits.max_list_items,
            )));
        }
        Ok(())
    }

    /// A literal, or a variable's value (sent, or its default); `None` when absent or null.
    fn resolve(&self, value: &Value) -> Option<ConstValue> {
        let value = match value {
            Value::Variable(name) => match self.variables.get(name) {
                Some(v) => v.clone(),
                None => self
                    .operation
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == *name)
                    .and_then(|d| d.node.default_value.as_ref())
                    .map(|d| d.node.clone())?,
            },
            other => other.clone().into_const()?,
        };
        (value != ConstValue::Null).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str) -> Result<Option<Analysis>, LimitError> {
        let index = SchemaIndex::from_sdl(&crate::graphql::sdl());
        let limits = GraphqlConfig::default();
        scan(query, limits.max_tokens)?;
        let document = async_graphql::parser::parse_query(query).expect("parses");
        analyze(&index, &limits, &document, None, &Variables::default())
    }

    #[test]
    fn the_org_chart_example_is_well_within_every_limit() {
        let analysis = check(crate::app::EXAMPLE_QUERY).unwrap().unwrap();
        assert!(analysis.cost > 100 && analysis.cost < 1_000, "{analysis:?}");
        assert!(!analysis.introspection);
    }

    #[test]
    fn a_three_level_fan_out_of_a_hundred_is_over_the_cost_budget() {
        let q = "{ user(id:\"u1\"){ directReports(first:100){ nodes { directReports(first:100){ nodes { directReports(first:100){ nodes { id } } } } } } } }";
        assert!(matches!(check(q), Err(LimitError::Cost { .. })));
    }

    #[test]
    fn strings_comments_and_block_strings_are_one_token_each() {
        assert_eq!(scan("{ a(b: \"x y z\") } # c d e", 8), Ok(()));
        assert_eq!(scan("{ a(b: \"\"\"x \\\"\"\" y\"\"\") }", 8), Ok(()));
        assert_eq!(scan("{ a b c d }", 4), Err(LimitError::Tokens(4)));
    }

    #[test]
    fn brackets_nested_past_the_parser_s_comfort_are_refused_unparsed() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(scan(&deep, 1_000_000), Err(LimitError::Depth(MAX_NESTING)));
    }

    #[test]
    fn a_fragment_bomb_is_measured_in_linear_time() {
        let mut q = String::from("query { me { ...F25 } }\nfragment F0 on User { id }\n");
        for i in 1..=25 {
            q.push_str(&format!(
                "fragment F{i} on User {{ a{i}: manager {{ ...F{p} }} b{i}: manager {{ ...F{p} }} }}\n",
                p = i - 1
            ));
        }
        // 2²⁶ selections once expanded, found without expanding them.
        assert!(matches!(check(&q), Err(LimitError::Selections(_))));
    }
}
