//! `$filter` on messages: the OData grammar of `graph::filter`, validated against the
//! message properties Exchange can restrict on, plus the `InefficientFilter` rule for
//! `$filter` with `$orderby` (graph-protocol.md §5.3).

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::errors::GraphError;
use super::super::filter::{self as odata, Expr, Func, Literal, Op};
use super::render;
use crate::mail::{Mailbox, Message};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Str,
    Bool,
    Date,
}

/// Scalar properties (and property paths) a message filter may compare.
const SCALARS: [(&str, Ty); 22] = [
    ("receivedDateTime", Ty::Date),
    ("sentDateTime", Ty::Date),
    ("createdDateTime", Ty::Date),
    ("lastModifiedDateTime", Ty::Date),
    ("isRead", Ty::Bool),
    ("hasAttachments", Ty::Bool),
    ("isDraft", Ty::Bool),
    ("isDeliveryReceiptRequested", Ty::Bool),
    ("isReadReceiptRequested", Ty::Bool),
    ("importance", Ty::Str),
    ("inferenceClassification", Ty::Str),
    ("conversationId", Ty::Str),
    ("subject", Ty::Str),
    ("internetMessageId", Ty::Str),
    ("parentFolderId", Ty::Str),
    ("id", Ty::Str),
    ("bodyPreview", Ty::Str),
    ("from/emailAddress/address", Ty::Str),
    ("from/emailAddress/name", Ty::Str),
    ("sender/emailAddress/address", Ty::Str),
    ("sender/emailAddress/name", Ty::Str),
    ("flag/flagStatus", Ty::Str),
];

/// Collections a lambda (`any`) may range over; recipients compare `r/emailAddress/…`.
const COLLECTIONS: [&str; 5] = [
    "categories",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
];

pub(crate) fn invalid_filter() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidUrlQueryFilter",
        "The query filter contains one or more invalid nodes.",
    )
}

fn unknown(name: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Invalid filter clause: Could not find a property named '{name}' on type 'microsoft.graph.message'."
    ))
}

pub(crate) fn inefficient() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "InefficientFilter",
        "The restriction or sort order is too complex for this operation.",
    )
}

/// A validated message filter.
#[derive(Clone, Debug)]
pub(crate) struct MailFilter {
    expr: Expr,
    /// Property paths in order of first appearance (for the InefficientFilter rule).
    properties: Vec<String>,
}

impl MailFilter {
    pub fn parse(raw: &str) -> Result<MailFilter, GraphError> {
        let mut expr = odata::parse_expr(raw)?;
        let mut properties = Vec::new();
        validate(&mut expr, None, &mut properties)?;
        Ok(MailFilter { expr, properties })
    }

    /// Whether this is `receivedDateTime ge|gt {value}`, the only filter message delta takes.
    pub fn is_received_lower_bound(&self) -> bool {
        matches!(
            &self.expr,
            Expr::Compare { path, op: Op::Ge | Op::Gt, value: Literal::DateTime(_) }
                if path.len() == 1 && path[0] == "receivedDateTime"
        )
    }

    #[cfg(test)]
    pub fn properties(&self) -> &[String] {
        &self.properties
    }

    pub fn matches(&self, mb: &Mailbox, m: &Message) -> bool {
        odata::eval_expr(&self.expr, &|name: &str| Some(value(mb, m, name)))
    }

    /// Exchange's rule for `$filter` with `$orderby`: the sort properties come first in the
    /// filter, in the same order.
    pub fn check_order(&self, order: &[(&'static str, bool)]) -> Result<(), GraphError> {
        for (i, (name, _)) in order.iter().enumerate() {
            let ok = self
                .properties
                .get(i)
                .is_some_and(|p| p.eq_ignore_ascii_case(name));
            if !ok {
                return Err(inefficient());
            }
        }
        Ok(())
    }
}

/// A message's top-level property as JSON, for the evaluator.
fn value(mb: &Mailbox, m: &Message, name: &str) -> Value {
    match name {
        "categories" => json!(m.categories),
        _ => render::property(mb, m, name, false),
    }
}

fn canonical_datetime(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(crate::clock::format_utc_seconds(t.unix_timestamp()))
}

fn type_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "Edm.String",
        Ty::Bool => "Edm.Boolean",
        Ty::Date => "Edm.DateTimeOffset",
    }
}

fn literal_type(l: &Literal) -> &'static str {
    match l {
        Literal::Null => "null",
        Literal::Bool(_) => "Edm.Boolean",
        Literal::Str(_) => "Edm.String",
        Literal::Number(_) => "Edm.Int32",
        Literal::Guid(_) => "Edm.Guid",
        Literal::DateTime(_) => "Edm.DateTimeOffset",
    }
}

/// Checks a literal against a property type; DateTimeOffset literals become canonical
/// (`2024-01-01T00:00:00Z`) so they compare as strings.
fn check_literal(ty: Ty, lit: &mut Literal, op: &str) -> Result<(), GraphError> {
    let ok = match (ty, &*lit) {
        (_, Literal::Null) => true,
        (Ty::Str, Literal::Str(_)) | (Ty::Bool, Literal::Bool(_)) => true,
        (Ty::Date, Literal::DateTime(s)) => {
            let canonical = canonical_datetime(s).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid filter clause: '{s}' is not a valid DateTimeOffset literal."
                ))
            })?;
            *lit = Literal::DateTime(canonical);
            true
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(GraphError::bad_request(format!(
        "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '{}' and '{}' for operator kind '{op}'.",
        type_name(ty),
        literal_type(lit)
    )))
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "Equal",
        Op::Ne => "NotEqual",
        Op::Gt => "GreaterThan",
        Op::Ge => "GreaterThanOrEqual",
        Op::Lt => "LessThan",
        Op::Le => "LessThanOrEqual",
    }
}

/// Resolves a comparison path to its type, rewriting it to canonical spelling and noting
/// top-level properties in order of appearance.
fn resolve(
    path: &mut [String],
    lambda: Option<(&str, &str)>,
    seen: &mut Vec<String>,
) -> Result<Ty, GraphError> {
    if let Some((var, collection)) = lambda
        && path.first().is_some_and(|p| p == var)
    {
        let rest: Vec<String> = path[1..].iter().map(|s| s.to_ascii_lowercase()).collect();
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        return match (collection, rest.as_slice()) {
            ("categories", []) => Ok(Ty::Str),
            (c, ["emailaddress", leaf @ ("address" | "name")]) if c != "categories" => {
                path[1] = "emailAddress".into();
                path[2] = (*leaf).to_string();
                Ok(Ty::Str)
            }
            _ => Err(invalid_filter()),
        };
    }
    let joined = path.join("/");
    let (canonical, ty) = SCALARS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&joined))
        .ok_or_else(|| {
            if COLLECTIONS.iter().any(|c| c.eq_ignore_ascii_case(&joined)) {
                invalid_filter()
            } else {
                unknown(&joined)
            }
        })?;
    for (seg, canon) in path.iter_mut().zip(canonical.split('/')) {
        *seg = canon.to_string();
    }
    if !seen.iter().any(|s| s == canonical) {
        seen.push((*canonical).to_string());
    }
    Ok(*ty)
}

fn validate(
    expr: &mut Expr,
    lambda: Option<(&str, &str)>,
    seen: &mut Vec<String>,
) -> Result<(), GraphError> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            validate(a, lambda, seen)?;
            validate(b, lambda, seen)
        }
        Expr::Not(inner) => validate(inner, lambda, seen),
        Expr::Compare { path, op, value } => {
            let ty = resolve(path, lambda, seen)?;
            check_literal(ty, value, op_name(*op))
        }
        Expr::In { path, values } => {
            let ty = resolve(path, lambda, seen)?;
            values
                .iter_mut()
                .try_for_each(|v| check_literal(ty, v, "In"))
        }
        Expr::Func { func, path, value } => {
            if *func == Func::EndsWith {
                return Err(invalid_filter());
            }
            let ty = resolve(path, lambda, seen)?;
            if ty != Ty::Str || !matches!(value, Literal::Str(_)) {
                return Err(GraphError::bad_request(
                    "Invalid filter clause: contains and startswith take a string property and a string literal.",
                ));
            }
            Ok(())
        }
        Expr::Lambda {
            path,
            all,
            var,
            body,
        } => {
            if lambda.is_some() || *all {
                return Err(invalid_filter());
            }
            let joined = path.join("/");
            let collection = COLLECTIONS
                .iter()
                .find(|c| c.eq_ignore_ascii_case(&joined))
                .ok_or_else(|| {
                    if SCALARS.iter().any(|(s, _)| s.eq_ignore_ascii_case(&joined)) {
                        invalid_filter()
                    } else {
                        unknown(&joined)
                    }
                })?;
            *path = vec![(*collection).to_string()];
            if !seen.iter().any(|s| s == collection) {
                seen.push((*collection).to_string());
            }
            let var = var.clone();
            validate(body, Some((&var, collection)), seen)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_validate_and_record_property_order() {
        let f = MailFilter::parse(
            "receivedDateTime ge 2024-01-01T00:00:00Z and (isRead eq false or importance eq 'high') and categories/any(c:c eq 'Red category')",
        )
        .expect("valid");
        assert_eq!(
            f.properties(),
            ["receivedDateTime", "isRead", "importance", "categories"]
        );
        assert!(f.check_order(&[("receivedDateTime", true)]).is_ok());
        assert!(f.check_order(&[("isRead", true)]).is_err());
        assert!(
            f.check_order(&[("receivedDateTime", true), ("isRead", false)])
                .is_ok()
        );

        for bad in [
            "foo eq 'x'",
            "isRead eq 'yes'",
            "receivedDateTime ge '2024-01-01'",
            "endswith(subject,'x')",
            "toRecipients/all(r:r/emailAddress/address eq 'x')",
            "toRecipients/any(r:r/emailAddress/bogus eq 'x')",
            "subject eq",
        ] {
            assert!(MailFilter::parse(bad).is_err(), "{bad}");
        }
        assert!(
            MailFilter::parse("toRecipients/any(r:r/emailAddress/address eq 'a@b.example')")
                .is_ok()
        );
        assert!(MailFilter::parse("From/EmailAddress/Address eq 'a@b.example'").is_ok());
    }
}
