//! Query options on events and contacts: `$select`, `$filter` (the OData grammar of
//! `graph::filter`, validated against a property list), `$orderby`, `$top`/`$skip` paging
//! with absolute `$skip` nextLinks (as Outlook pages).

use std::cmp::Ordering;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::super::GraphResponse;
use super::super::errors::GraphError;
use super::super::filter::{self as odata, Expr, Func, Literal};
use super::super::mail::query::next_link;
use super::Cx;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Bool,
    /// A `dateTimeTimeZone.dateTime` string: literals are normalised to 7 digits.
    LocalDateTime,
}

/// What a collection's options may name.
pub(crate) struct Schema {
    pub type_name: &'static str,
    /// Properties `$select` accepts (the default set, in order).
    pub select: &'static [&'static str],
    /// Scalar paths `$filter` compares.
    pub scalars: &'static [(&'static str, Ty)],
    /// Collections a lambda ranges over, with the paths below the variable it may compare
    /// (`""` for the item itself).
    pub collections: &'static [(&'static str, &'static [&'static str])],
    /// Paths `$orderby` accepts.
    pub sortable: &'static [&'static str],
}

fn invalid_filter() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidUrlQueryFilter",
        "The query filter contains one or more invalid nodes.",
    )
}

/// `$select`: canonical names, `None` for the default set.
pub(crate) fn parse_select(
    raw: Option<&str>,
    schema: &Schema,
) -> Result<Option<Vec<&'static str>>, GraphError> {
    let Some(raw) = raw else { return Ok(None) };
    let mut out = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let canonical = schema
            .select
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type '{}'.",
                    schema.type_name
                ))
            })?;
        if !out.contains(canonical) {
            out.push(*canonical);
        }
    }
    Ok(Some(out))
}

/// `(select suffix for @odata.context)`.
pub(crate) fn select_suffix(select: &Option<Vec<&'static str>>) -> String {
    select
        .as_ref()
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default()
}

/// Keeps `@odata.etag`, `id` and the selected properties.
pub(crate) fn apply_select(
    mut item: Map<String, Value>,
    select: &Option<Vec<&'static str>>,
) -> Map<String, Value> {
    if let Some(select) = select {
        item.retain(|k, _| k.starts_with('@') || k == "id" || select.iter().any(|s| s == k));
    }
    item
}

fn normalise_local(s: &str) -> Option<String> {
    let dt = s.trim().parse::<jiff::civil::DateTime>().ok()?;
    Some(crate::calendar::tz::format_local(dt))
}

fn check_literal(ty: Ty, lit: &mut Literal, path: &str) -> Result<(), GraphError> {
    let ok = match (ty, &*lit) {
        (_, Literal::Null) => true,
        (Ty::Str, Literal::Str(_)) | (Ty::Bool, Literal::Bool(_)) => true,
        (Ty::LocalDateTime, Literal::Str(s) | Literal::DateTime(s)) => {
            let canonical = normalise_local(s).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Invalid filter clause: '{s}' is not a valid value for '{path}' (yyyy-MM-ddTHH:mm:ss)."
                ))
            })?;
            *lit = Literal::Str(canonical);
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GraphError::bad_request(format!(
            "Invalid filter clause: A binary operator with incompatible types was detected for '{path}'."
        )))
    }
}

fn resolve(
    schema: &Schema,
    path: &mut [String],
    lambda: Option<(&str, &'static [&'static str])>,
) -> Result<Ty, GraphError> {
    if let Some((var, subpaths)) = lambda
        && path.first().is_some_and(|p| p == var)
    {
        let rest = path[1..].join("/");
        let canonical = subpaths
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&rest))
            .ok_or_else(invalid_filter)?;
        for (seg, canon) in path[1..].iter_mut().zip(canonical.split('/')) {
            *seg = canon.to_string();
        }
        return Ok(Ty::Str);
    }
    let joined = path.join("/");
    let (canonical, ty) = schema
        .scalars
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&joined))
        .ok_or_else(|| {
            if schema.collections.iter().any(|(c, _)| c.eq_ignore_ascii_case(&joined)) {
                invalid_filter()
            } else {
                GraphError::bad_request(format!(
                    "Invalid filter clause: Could not find a property named '{joined}' on type '{}'.",
                    schema.type_name
                ))
            }
        })?;
    for (seg, canon) in path.iter_mut().zip(canonical.split('/')) {
        *seg = canon.to_string();
    }
    Ok(*ty)
}

fn validate(
    schema: &Schema,
    expr: &mut Expr,
    lambda: Option<(&str, &'static [&'static str])>,
) -> Result<(), GraphError> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            validate(schema, a, lambda)?;
            validate(schema, b, lambda)
        }
        Expr::Not(inner) => validate(schema, inner, lambda),
        Expr::Compare { path, value, .. } => {
            let joined = path.join("/");
            let ty = resolve(schema, path, lambda)?;
            check_literal(ty, value, &joined)
        }
        Expr::In { path, values } => {
            let joined = path.join("/");
            let ty = resolve(schema, path, lambda)?;
            values
                .iter_mut()
                .try_for_each(|v| check_literal(ty, v, &joined))
        }
        Expr::Func { func, path, value } => {
            if *func == Func::EndsWith {
                return Err(invalid_filter());
            }
            let ty = resolve(schema, path, lambda)?;
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
            let (collection, subpaths) = schema
                .collections
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(&joined))
                .ok_or_else(|| {
                    GraphError::bad_request(format!(
                        "Invalid filter clause: Could not find a collection named '{joined}' on type '{}'.",
                        schema.type_name
                    ))
                })?;
            *path = vec![(*collection).to_string()];
            let var = var.clone();
            validate(schema, body, Some((&var, subpaths)))
        }
    }
}

/// A validated `$filter`.
pub(crate) fn parse_filter(raw: &str, schema: &Schema) -> Result<Expr, GraphError> {
    let mut expr = odata::parse_expr(raw)?;
    validate(schema, &mut expr, None)?;
    Ok(expr)
}

/// Evaluates a filter on an item's JSON.
pub(crate) fn matches(expr: &Expr, item: &Map<String, Value>) -> bool {
    odata::eval_expr(expr, &|name: &str| item.get(name).cloned())
}

/// `$orderby=start/dateTime desc,subject`.
pub(crate) fn parse_orderby(
    raw: &str,
    schema: &Schema,
) -> Result<Vec<(&'static str, bool)>, GraphError> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut words = item.split_whitespace();
        let name = words.next().unwrap_or_default();
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(GraphError::bad_request(format!(
                    "Syntax error in $orderby '{raw}': unexpected '{other}'."
                )));
            }
        };
        let canonical = schema
            .sortable
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type '{}' that can be sorted on.",
                    schema.type_name
                ))
            })?;
        out.push((*canonical, descending));
    }
    Ok(out)
}

fn path_value<'v>(item: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('/');
    let mut v = item.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::String(a)), Some(Value::String(b))) => a.to_lowercase().cmp(&b.to_lowercase()),
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        (None | Some(Value::Null), Some(v)) if !v.is_null() => Ordering::Less,
        (Some(v), None | Some(Value::Null)) if !v.is_null() => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Sorts by `$orderby` (stable: the incoming order breaks ties).
pub(crate) fn sort(items: &mut [Map<String, Value>], order: &[(&'static str, bool)]) {
    items.sort_by(|a, b| {
        for &(name, descending) in order {
            let o = compare_values(path_value(a, name), path_value(b, name));
            let o = if descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

/// Refuses the options a single entity does not take.
pub(crate) fn single_entity_only(cx: &Cx<'_>) -> Result<(), GraphError> {
    let q = &cx.query;
    if q.filter.is_some()
        || q.orderby.is_some()
        || q.top.is_some()
        || q.skip.is_some()
        || q.search.is_some()
        || q.count.is_some()
    {
        return Err(GraphError::bad_request(
            "The query specified in the URI is not valid. The requested resource is not a collection. Query options $filter, $orderby, $count, $skip, and $top can be applied only on collections.",
        ));
    }
    no_unsupported(cx)
}

/// `$expand`, `$skiptoken` and `$deltatoken` are not emulated here.
pub(crate) fn no_unsupported(cx: &Cx<'_>) -> Result<(), GraphError> {
    let q = &cx.query;
    if q.expand.is_some() {
        return Err(GraphError::bad_request(
            "$expand is not supported on calendar and contact resources here.",
        ));
    }
    if q.skiptoken.is_some() || q.deltatoken.is_some() {
        return Err(GraphError::bad_request(
            "$skiptoken and $deltatoken are not supported on calendar and contact resources here.",
        ));
    }
    Ok(())
}

/// Filters, sorts, selects and pages rendered items into a collection answer.
pub(crate) fn collection(
    cx: &Cx<'_>,
    schema: &Schema,
    context: &str,
    mut items: Vec<Map<String, Value>>,
    default_order: &[(&'static str, bool)],
) -> Result<GraphResponse, GraphError> {
    no_unsupported(cx)?;
    let q = &cx.query;
    let top = q.page_size()?;
    let skip = q.skip()?;
    let select = parse_select(q.select.as_deref(), schema)?;
    if let Some(raw) = &q.filter {
        let expr = parse_filter(raw, schema)?;
        items.retain(|i| matches(&expr, i));
    }
    let order = match &q.orderby {
        Some(raw) => parse_orderby(raw, schema)?,
        None => default_order.to_vec(),
    };
    sort(&mut items, &order);
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|i| Value::Object(apply_select(i, &select)))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!("{context}{}", select_suffix(&select)))),
    );
    if q.count == Some(true) {
        body.insert("@odata.count".into(), Value::from(total));
    }
    body.insert("value".into(), Value::Array(page));
    if skip.saturating_add(top) < total {
        body.insert(
            "@odata.nextLink".into(),
            Value::String(next_link(
                &cx.self_url(),
                cx.req.query.as_deref(),
                skip + top,
            )),
        );
    }
    Ok(GraphResponse::json(Value::Object(body)))
}

/// One entity with its `@odata.context`.
pub(crate) fn entity(
    cx: &Cx<'_>,
    schema: &Schema,
    collection: &str,
    item: Map<String, Value>,
) -> Result<Value, GraphError> {
    let select = parse_select(cx.query.select.as_deref(), schema)?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!("{collection}{}/$entity", select_suffix(&select)))),
    );
    body.extend(apply_select(item, &select));
    Ok(Value::Object(body))
}
