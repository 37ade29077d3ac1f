//! A small OData `$filter` parser and evaluator for directory objects.
//!
//! Grammar (OData 4 subset the directory supports):
//! ```text
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | primary
//! primary := "(" or ")"
//!          | func "(" path "," literal ")"          func: startswith | endswith | contains
//!          | path "/" ("any"|"all") "(" var ":" or ")"
//!          | path "in" "(" literal ("," literal)* ")"
//!          | path op literal                        op: eq ne gt ge lt le
//! literal := 'string' (with '' for ') | true | false | null | number | guid | datetime
//! ```
//! After parsing, `validate` checks every clause against what the directory supports for
//! the property, in the current mode (default, or advanced: `ConsistencyLevel: eventual`
//! plus `$count=true`), and rewrites property names to their canonical spelling.

use std::cmp::Ordering;

use serde_json::Value;

use super::errors::GraphError;
use super::schema::{self, FilterProp, Kind, PropType, Support};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare {
        path: Vec<String>,
        op: Op,
        value: Literal,
    },
    In {
        path: Vec<String>,
        values: Vec<Literal>,
    },
    Func {
        func: Func,
        path: Vec<String>,
        value: Literal,
    },
    Lambda {
        path: Vec<String>,
        all: bool,
        var: String,
        body: Box<Expr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Str(String),
    Number(f64),
    Guid(String),
    DateTime(String),
}

impl Literal {
    fn edm_type(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Bool(_) => "Edm.Boolean",
            Literal::Str(_) => "Edm.String",
            Literal::Number(_) => "Edm.Int32",
            Literal::Guid(_) => "Edm.Guid",
            Literal::DateTime(_) => "Edm.DateTimeOffset",
        }
    }
}

/// A parsed, validated filter, ready to evaluate.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses and validates `$filter` for a collection of `kind`.
    pub fn parse(text: &str, kind: Kind, advanced: bool) -> Result<Filter, GraphError> {
        let mut expr = Parser::new(text)?.parse_all()?;
        Validator { kind, advanced }.validate(&mut expr, None)?;
        Ok(Filter { expr })
    }

    /// Evaluates against one object; `get` returns a property by canonical name
    /// (`None` when the object's type lacks it, which compares like null).
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<Value>) -> bool {
        eval(&self.expr, get, None)
    }
}

/// Parses `$filter` text into an expression without validating it against a directory
/// type: Outlook resources (messages) validate it their own way (`graph::mail::filter`).
pub(crate) fn parse_expr(text: &str) -> Result<Expr, GraphError> {
    Parser::new(text)?.parse_all()
}

/// Evaluates an expression from `parse_expr` (same semantics as `Filter::matches`).
pub(crate) fn eval_expr(expr: &Expr, get: &dyn Fn(&str) -> Option<Value>) -> bool {
    eval(expr, get, None)
}

// --- lexer ------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Colon,
    Slash,
    Str(String),
    Word(String),
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, usize> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => out.push((Tok::LParen, start)),
            ')' => out.push((Tok::RParen, start)),
            ',' => out.push((Tok::Comma, start)),
            ':' => out.push((Tok::Colon, start)),
            '/' => out.push((Tok::Slash, start)),
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(start),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), start));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '$' => {
                let mut w = String::new();
                while let Some(&ch) = chars.get(i) {
                    let date_time_colon = ch == ':' && looks_like_date_time(&w);
                    if ch.is_alphanumeric()
                        || matches!(ch, '_' | '-' | '.' | '$' | '+')
                        || date_time_colon
                    {
                        w.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((Tok::Word(w), start));
                continue;
            }
            _ => return Err(start),
        }
        i += 1;
    }
    Ok(out)
}

/// `2021-01-01T10` so far: an unquoted DateTimeOffset literal, which contains colons.
fn looks_like_date_time(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() >= 11
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
}

fn is_guid(w: &str) -> bool {
    let parts: Vec<&str> = w.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n)
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

// --- parser -----------------------------------------------------------------------------

/// How deeply parentheses, `not` and lambdas may nest; the parser is recursive and a
/// URL can hold tens of thousands of `(`.
const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, GraphError> {
        let toks = lex(text).map_err(|at| syntax_error(text, at))?;
        Ok(Parser {
            text,
            toks,
            pos: 0,
            depth: 0,
        })
    }

    fn error(&self) -> GraphError {
        let at = self
            .toks
            .get(self.pos)
            .map_or(self.text.chars().count(), |(_, p)| *p);
        syntax_error(self.text, at)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn expect(&mut self, tok: Tok) -> Result<(), GraphError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn parse_all(&mut self) -> Result<Expr, GraphError> {
        let e = self.parse_or()?;
        if self.pos < self.toks.len() {
            return Err(self.error());
        }
        Ok(e)
    }

    fn parse_or(&mut self) -> Result<Expr, GraphError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: The recursion limit of {MAX_DEPTH} has been exceeded."
            )));
        }
        let result = self.parse_or_inner();
        self.depth -= 1;
        result
    }

    fn parse_or_inner(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.parse_and()?;
        while self.peek_word() == Some("or") {
            self.pos += 1;
            let right = self.parse_and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.parse_unary()?;
        while self.peek_word() == Some("and") {
            self.pos += 1;
            let right = self.parse_unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Expr, GraphError> {
        if self.peek_word() == Some("not") {
            self.pos += 1;
            // `not not not ...` nests like parentheses do.
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error());
            }
            let inner = self.parse_unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, GraphError> {
        match self.peek() {
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.parse_or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                let func = match w.to_ascii_lowercase().as_str() {
                    "startswith" => Some(Func::StartsWith),
                    "endswith" => Some(Func::EndsWith),
                    "contains" => Some(Func::Contains),
                    _ => None,
                };
                let call = self.toks.get(self.pos + 1).map(|(t, _)| t) == Some(&Tok::LParen);
                match func {
                    Some(func) if call => {
                        self.pos += 2;
                        let path = self.parse_path()?;
                        self.expect(Tok::Comma)?;
                        let value = self.parse_literal()?;
                        self.expect(Tok::RParen)?;
                        Ok(Expr::Func { func, path, value })
                    }
                    _ => self.parse_path_expr(),
                }
            }
            _ => Err(self.error()),
        }
    }

    fn parse_path(&mut self) -> Result<Vec<String>, GraphError> {
        let mut path = Vec::new();
        match self.next() {
            Some(Tok::Word(w)) if is_identifier(&w) => path.push(w),
            _ => {
                self.pos -= 1;
                return Err(self.error());
            }
        }
        while self.peek() == Some(&Tok::Slash) {
            // `prop/any(` ends the path: the caller handles the lambda.
            let lambda_next = matches!(
                self.toks.get(self.pos + 1).map(|(t, _)| t),
                Some(Tok::Word(w)) if w == "any" || w == "all"
            ) && self.toks.get(self.pos + 2).map(|(t, _)| t)
                == Some(&Tok::LParen);
            if lambda_next {
                break;
            }
            self.pos += 1;
            match self.next() {
                Some(Tok::Word(w)) if is_identifier(&w) => path.push(w),
                _ => {
                    self.pos -= 1;
                    return Err(self.error());
                }
            }
        }
        Ok(path)
    }

    fn parse_path_expr(&mut self) -> Result<Expr, GraphError> {
        let path = self.parse_path()?;
        if self.peek() == Some(&Tok::Slash) {
            self.pos += 1;
            let all = self.peek_word() == Some("all");
            self.pos += 1; // any | all
            self.expect(Tok::LParen)?;
            let var = match self.next() {
                Some(Tok::Word(w)) if is_identifier(&w) => w,
                _ => {
                    self.pos -= 1;
                    return Err(self.error());
                }
            };
            self.expect(Tok::Colon)?;
            let body = self.parse_or()?;
            self.expect(Tok::RParen)?;
            return Ok(Expr::Lambda {
                path,
                all,
                var,
                body: Box::new(body),
            });
        }
        let op_word = self.peek_word().map(str::to_string);
        let op = match op_word.as_deref() {
            Some("eq") => Op::Eq,
            Some("ne") => Op::Ne,
            Some("gt") => Op::Gt,
            Some("ge") => Op::Ge,
            Some("lt") => Op::Lt,
            Some("le") => Op::Le,
            Some("in") => {
                self.pos += 1;
                self.expect(Tok::LParen)?;
                let mut values = vec![self.parse_literal()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    values.push(self.parse_literal()?);
                }
                self.expect(Tok::RParen)?;
                return Ok(Expr::In { path, values });
            }
            _ => return Err(self.error()),
        };
        self.pos += 1;
        let value = self.parse_literal()?;
        Ok(Expr::Compare { path, op, value })
    }

    fn parse_literal(&mut self) -> Result<Literal, GraphError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Word(w)) => match w.as_str() {
                "null" => Ok(Literal::Null),
                "true" => Ok(Literal::Bool(true)),
                "false" => Ok(Literal::Bool(false)),
                _ if is_guid(&w) => Ok(Literal::Guid(w)),
                _ if looks_like_date_time(&w) => Ok(Literal::DateTime(w)),
                _ => match w.parse::<f64>() {
                    Ok(n)
                        if w.chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_digit() || c == '-') =>
                    {
                        Ok(Literal::Number(n))
                    }
                    _ => {
                        self.pos -= 1;
                        Err(self.error())
                    }
                },
            },
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }
}

fn is_identifier(w: &str) -> bool {
    w.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && w.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !matches!(
            w,
            "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "and" | "or" | "not" | "in"
        )
}

fn syntax_error(text: &str, at: usize) -> GraphError {
    GraphError::bad_request(format!(
        "Invalid filter clause: Syntax error at position {at} in '{text}'."
    ))
}

// --- validation -------------------------------------------------------------------------

struct Validator {
    kind: Kind,
    advanced: bool,
}

impl Validator {
    fn unsupported(&self, property: &str) -> GraphError {
        GraphError::unsupported_query(format!(
            "Unsupported or invalid query filter clause specified for property '{property}' of resource '{}'.",
            self.kind.resource_name()
        ))
    }

    fn allowed(&self, support: Support) -> bool {
        match support {
            Support::No => false,
            Support::Default => true,
            Support::Advanced => self.advanced,
        }
    }

    /// Resolves `path` to a property of the collection's type and canonicalises it in place.
    /// Inside a lambda, paths start with the range variable and are not checked further.
    fn resolve(
        &self,
        path: &mut [String],
        lambda_var: Option<&str>,
    ) -> Result<Option<&'static FilterProp>, GraphError> {
        if let Some(var) = lambda_var
            && path.first().map(String::as_str) == Some(var)
        {
            return Ok(None);
        }
        let name = path.first().cloned().unwrap_or_default();
        if path.len() > 1 {
            return Err(self.unsupported(&path.join("/")));
        }
        let prop = schema::filter_property(self.kind, &name).ok_or_else(|| {
            if schema::canonical_property(self.kind, &name).is_some() {
                // A real property the directory cannot filter on.
                self.unsupported(&name)
            } else {
                GraphError::bad_request(format!(
                    "Invalid filter clause: Could not find a property named '{name}' on type '{}'.",
                    self.kind.type_name()
                ))
            }
        })?;
        if let Some(first) = path.first_mut() {
            *first = prop.name.to_string();
        }
        Ok(Some(prop))
    }

    fn check_type(&self, prop: &FilterProp, value: &Literal, op: &str) -> Result<(), GraphError> {
        let ok = matches!(
            (prop.ty, value),
            (_, Literal::Null)
                | (PropType::String, Literal::Str(_))
                | (PropType::Bool, Literal::Bool(_))
                | (PropType::Guid, Literal::Str(_) | Literal::Guid(_))
                | (PropType::DateTime, Literal::DateTime(_) | Literal::Str(_))
        );
        if ok {
            return Ok(());
        }
        let prop_type = match prop.ty {
            PropType::String => "Edm.String",
            PropType::Bool => "Edm.Boolean",
            PropType::Guid => "Edm.Guid",
            PropType::DateTime => "Edm.DateTimeOffset",
            PropType::Collection => "Collection",
        };
        Err(GraphError::bad_request(format!(
            "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '{prop_type}' and '{}' for operator kind '{op}'.",
            value.edm_type()
        )))
    }

    fn validate(&self, expr: &mut Expr, lambda_var: Option<&str>) -> Result<(), GraphError> {
        match expr {
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.validate(a, lambda_var)?;
                self.validate(b, lambda_var)
            }
            Expr::Not(inner) => {
                self.validate(inner, lambda_var)?;
                if !self.advanced {
                    return Err(self.unsupported(first_property(inner).as_deref().unwrap_or("not")));
                }
                Ok(())
            }
            Expr::Compare { path, op, value } => {
                let Some(prop) = self.resolve(path, lambda_var)? else {
                    return Ok(());
                };
                let op = *op;
                let support = match (op, &*value) {
                    (Op::Eq, Literal::Null) => prop.null,
                    (Op::Ne, Literal::Null) => prop.null.max_advanced(),
                    (Op::Eq, _) => prop.eq,
                    (Op::Ne, _) => prop.eq.max_advanced(),
                    (Op::Ge | Op::Le | Op::Gt | Op::Lt, _) => prop.range,
                };
                if !self.allowed(support) {
                    return Err(self.unsupported(prop.name));
                }
                let op_name = match op {
                    Op::Eq => "Equal",
                    Op::Ne => "NotEqual",
                    Op::Gt => "GreaterThan",
                    Op::Ge => "GreaterThanOrEqual",
                    Op::Lt => "LessThan",
                    Op::Le => "LessThanOrEqual",
                };
                self.check_type(prop, value, op_name)
            }
            Expr::In { path, values } => {
                let Some(prop) = self.resolve(path, lambda_var)? else {
                    return Ok(());
                };
                if !self.allowed(prop.in_list) {
                    return Err(self.unsupported(prop.name));
                }
                values
                    .iter()
                    .try_for_each(|v| self.check_type(prop, v, "In"))
            }
            Expr::Func { func, path, value } => {
                if *func == Func::Contains {
                    // The directory has no substring search; `$search` is the tool for that.
                    return Err(GraphError::unsupported_query("Unsupported Query."));
                }
                if !matches!(value, Literal::Str(_)) {
                    return Err(GraphError::bad_request(
                        "Invalid filter clause: the second argument of startswith/endswith must be a string.",
                    ));
                }
                let Some(prop) = self.resolve(path, lambda_var)? else {
                    return Ok(());
                };
                let support = match func {
                    Func::StartsWith => prop.starts_with,
                    _ => prop.ends_with,
                };
                if !self.allowed(support) {
                    return Err(self.unsupported(prop.name));
                }
                Ok(())
            }
            Expr::Lambda {
                path,
                all,
                var,
                body,
            } => {
                if lambda_var.is_some() {
                    return Err(GraphError::unsupported_query("Unsupported Query."));
                }
                let Some(prop) = self.resolve(path, None)? else {
                    return Ok(());
                };
                if *all || !self.allowed(prop.any) {
                    return Err(self.unsupported(prop.name));
                }
                let var = var.clone();
                self.validate(body, Some(&var))
            }
        }
    }
}

impl Support {
    /// `ne` and `not` need an advanced query even where `eq` works by default.
    fn max_advanced(self) -> Support {
        match self {
            Support::No => Support::No,
            _ => Support::Advanced,
        }
    }
}

fn first_property(expr: &Expr) -> Option<String> {
    match expr {
        Expr::And(a, _) | Expr::Or(a, _) => first_property(a),
        Expr::Not(e) => first_property(e),
        Expr::Compare { path, .. }
        | Expr::In { path, .. }
        | Expr::Func { path, .. }
        | Expr::Lambda { path, .. } => path.first().cloned(),
    }
}

// --- evaluation -------------------------------------------------------------------------

type Binding<'v> = Option<(&'v str, &'v Value)>;

fn eval(expr: &Expr, get: &dyn Fn(&str) -> Option<Value>, binding: Binding<'_>) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, get, binding) && eval(b, get, binding),
        Expr::Or(a, b) => eval(a, get, binding) || eval(b, get, binding),
        Expr::Not(e) => !eval(e, get, binding),
        Expr::Compare { path, op, value } => compare(&lookup(path, get, binding), *op, value),
        Expr::In { path, values } => {
            let v = lookup(path, get, binding);
            values.iter().any(|lit| compare(&v, Op::Eq, lit))
        }
        Expr::Func { func, path, value } => {
            let (Value::String(s), Literal::Str(prefix)) = (lookup(path, get, binding), value)
            else {
                return false;
            };
            let s = s.to_lowercase();
            let prefix = prefix.to_lowercase();
            match func {
                Func::StartsWith => s.starts_with(&prefix),
                Func::EndsWith => s.ends_with(&prefix),
                Func::Contains => s.contains(&prefix),
            }
        }
        Expr::Lambda {
            path,
            all,
            var,
            body,
        } => {
            let Value::Array(items) = lookup(path, get, binding) else {
                return false;
            };
            let test = |item: &Value| eval(body, get, Some((var.as_str(), item)));
            if *all {
                items.iter().all(test)
            } else {
                items.iter().any(test)
            }
        }
    }
}

fn lookup(path: &[String], get: &dyn Fn(&str) -> Option<Value>, binding: Binding<'_>) -> Value {
    let (root, rest) = match (binding, path.split_first()) {
        (Some((var, item)), Some((first, rest))) if first == var => (item.clone(), rest),
        (_, Some((first, rest))) => (get(first).unwrap_or(Value::Null), rest),
        (_, None) => return Value::Null,
    };
    rest.iter().fold(root, |v, key| {
        v.as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or(Value::Null)
    })
}

fn compare(v: &Value, op: Op, lit: &Literal) -> bool {
    let ordering = match (v, lit) {
        (Value::Null, Literal::Null) => Some(Ordering::Equal),
        (_, Literal::Null) => None,
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Value::String(a), Literal::Str(b) | Literal::Guid(b) | Literal::DateTime(b)) => {
            // Directory string comparisons ignore case.
            Some(a.to_lowercase().cmp(&b.to_lowercase()))
        }
        (Value::Number(a), Literal::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
        _ => None,
    };
    match (op, ordering) {
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Eq, None) => false,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Ne, None) => true,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (_, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(v: Value) -> impl Fn(&str) -> Option<Value> {
        move |name: &str| v.get(name).cloned()
    }

    fn check(filter: &str, advanced: bool, v: Value) -> Result<bool, GraphError> {
        let f = Filter::parse(filter, Kind::User, advanced)?;
        Ok(f.matches(&user(v)))
    }

    #[test]
    fn equality_is_case_insensitive_and_quotes_are_doubled() {
        let v = json!({"surname": "O'Brien", "displayName": "Siobhan O'Brien"});
        assert_eq!(check("surname eq 'o''brien'", false, v.clone()), Ok(true));
        assert_eq!(check("surname eq 'OBrien'", false, v), Ok(false));
    }

    #[test]
    fn functions_in_and_boolean_logic_combine() {
        let v = json!({"displayName": "Ada Lovelace", "department": "Engineering", "accountEnabled": true});
        assert_eq!(
            check(
                "(startswith(displayName,'ada') or department eq 'Sales') and accountEnabled eq true",
                false,
                v.clone()
            ),
            Ok(true)
        );
        assert_eq!(
            check("department in ('Sales', 'engineering')", false, v.clone()),
            Ok(true)
        );
        assert_eq!(check("not(department eq 'Sales')", true, v), Ok(true));
    }

    #[test]
    fn advanced_only_clauses_are_rejected_in_default_mode() {
        let v = json!({"mail": "a@b.example"});
        for f in [
            "mail ne 'x'",
            "not (mail eq 'x')",
            "endswith(mail,'b.example')",
            "officeLocation eq '1/2'",
        ] {
            let err = check(f, false, v.clone()).expect_err(f);
            assert_eq!(err.code, "Request_UnsupportedQuery", "{f}");
        }
        assert_eq!(check("endswith(mail,'B.example')", true, v), Ok(true));
    }

    #[test]
    fn syntax_errors_and_unknown_properties_are_bad_requests() {
        for f in [
            "displayName eq",
            "displayName eq 'x",
            "startswith(displayName)",
            "foo eq 'x'",
            "(a eq 'b'",
        ] {
            let err = check(f, false, json!({})).expect_err(f);
            assert_eq!(err.code, "BadRequest", "{f}");
            assert!(
                err.message.starts_with("Invalid filter clause"),
                "{f}: {}",
                err.message
            );
        }
        let err = check("accountEnabled eq 'true'", false, json!({})).expect_err("types");
        assert_eq!(err.code, "BadRequest");
        let err = check("contains(displayName,'x')", false, json!({})).expect_err("contains");
        assert_eq!(err.code, "Request_UnsupportedQuery");
    }

    #[test]
    fn lambdas_and_unquoted_guids_work() {
        let v = json!({
            "assignedLicenses": [{"disabledPlans": [], "skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965"}],
            "identities": [{"issuer": "x.example", "issuerAssignedId": "j@x.example"}],
        });
        assert_eq!(
            check(
                "assignedLicenses/any(u:u/skuId eq 05e9a617-0261-4cee-bb44-138d3ef5d965)",
                false,
                v.clone()
            ),
            Ok(true)
        );
        assert_eq!(
            check(
                "identities/any(c:c/issuerAssignedId eq 'j@x.example' and c/issuer eq 'x.example')",
                false,
                v
            ),
            Ok(true)
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!(
            "{}displayName eq 'x'{}",
            "(".repeat(50_000),
            ")".repeat(50_000)
        );
        assert_eq!(
            check(&deep, false, json!({})).map_err(|e| e.code),
            Err("BadRequest")
        );
        let nots = format!("{}displayName eq 'x'", "not ".repeat(50_000));
        assert!(check(&nots, true, json!({})).is_err());
    }

    #[test]
    fn random_token_soup_never_panics() {
        let pieces = [
            "(",
            ")",
            ",",
            ":",
            "/",
            "'",
            "''",
            " ",
            "eq",
            "ne",
            "and",
            "or",
            "not",
            "in",
            "any",
            "startswith",
            "endswith",
            "displayName",
            "accountEnabled",
            "identities",
            "c",
            "c/issuer",
            "true",
            "null",
            "12",
            "05e9a617-0261-4cee-bb44-138d3ef5d965",
            "2021-01-01T00:00:00Z",
            "'a'",
            "é",
            "\\",
            "$",
            "-",
        ];
        let mut rng = crate::tenant::SplitMix64::new(9);
        for _ in 0..20_000 {
            let n = (rng.next_u64() % 12) as usize;
            let text: String = (0..n)
                .map(|_| pieces[(rng.next_u64() % pieces.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ");
            for kind in [Kind::User, Kind::Group, Kind::DirectoryObject] {
                if let Ok(f) = Filter::parse(&text, kind, true) {
                    let v = json!({"displayName": "a", "accountEnabled": true, "identities": [{"issuer": "x"}]});
                    let _ = f.matches(&|name: &str| v.get(name).cloned());
                }
            }
        }
    }

    #[test]
    fn property_names_are_canonicalised() {
        let v = json!({"displayName": "Ada"});
        assert_eq!(check("DisplayName eq 'ada'", false, v), Ok(true));
    }
}
