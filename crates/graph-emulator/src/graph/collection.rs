//! The one pipeline every directory collection goes through: `$skiptoken` → `$search` →
//! `$filter` → `$orderby` → `@odata.count` → page (`$top`) → `$select`/`$expand` →
//! `@odata.nextLink`. Also the `/$count` segment.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::errors::GraphError;
use super::filter::Filter;
use super::query::{self, Expand, Levels, Nav, PageToken, QueryOptions};
use super::schema::{self, Kind, Selection, Support};
use super::search::Search;
use super::{Ctx, GraphResponse};
use crate::tenant::{DirObj, Tenant};

/// Directory collections page at 100 by default, 999 at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;
/// `$expand` of a directory relationship returns at most 20 items and no nextLink.
const MAX_EXPANDED: usize = 20;

pub(crate) const CONTEXT_BASE: &str = "https://graph.microsoft.com/v1.0/$metadata#";

/// What kind of collection is being listed.
pub(crate) struct ListSpec {
    /// The item type, for `$select`/`$filter`/`$orderby`/`$search` validation.
    pub kind: Kind,
    /// The entity set in `@odata.context`: `users`, `groups`, `directoryObjects`, ...
    pub context: &'static str,
    /// Whether each item carries `@odata.type` (directoryObject collections do).
    pub with_type: bool,
    /// Relationship collections and casts (memberOf, members, directReports) filter and sort
    /// only as advanced queries.
    pub relationship: bool,
}

/// The validated query a collection request asks for.
struct Plan {
    selection: Selection,
    expand: Option<Expand>,
    filter: Option<Filter>,
    search: Option<Search>,
    order: Vec<(&'static str, bool)>,
    with_count: bool,
}

fn plan(opts: &QueryOptions, eventual: bool, spec: &ListSpec) -> Result<Plan, GraphError> {
    let advanced = eventual && opts.count_requested();
    let search = match &opts.search {
        Some(_) if !eventual => {
            return Err(GraphError::unsupported_query(
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        Some(raw) => Some(Search::parse(raw, spec.kind)?),
        None => None,
    };
    let filter = match &opts.filter {
        Some(_) if spec.relationship && !advanced => {
            return Err(GraphError::unsupported_query(
                "The specified filter to the reference property query is currently not supported.",
            ));
        }
        Some(raw) => Some(Filter::parse(raw, spec.kind, advanced)?),
        None => None,
    };
    let mut order = Vec::new();
    if let Some(raw) = &opts.orderby {
        for (prop, descending) in query::parse_orderby(raw, spec.kind)? {
            // displayName/userPrincipalName sort by default, unless combined with $filter or
            // asked of a relationship; everything else is an advanced query.
            let ok = match prop.sort {
                Support::No => false,
                Support::Default => {
                    advanced || (filter.is_none() && search.is_none() && !spec.relationship)
                }
                Support::Advanced => advanced,
            };
            if !ok {
                return Err(query::unsupported_sort());
            }
            order.push((prop.name, descending));
        }
    }
    let selection = match &opts.select {
        Some(raw) => Selection::parse(raw, spec.kind)?,
        None => Selection::Default,
    };
    let expand = match &opts.expand {
        Some(raw) => query::parse_expand(raw, spec.kind)?,
        None => None,
    };
    Ok(Plan {
        selection,
        expand,
        filter,
        search,
        order,
        // Without `ConsistencyLevel: eventual`, `$count=true` is silently ignored.
        with_count: eventual && opts.count_requested(),
    })
}

/// Applies search, filter and order to `items`.
fn select_items(tenant: &Tenant, items: Vec<DirObj>, plan: &Plan) -> Vec<DirObj> {
    let mut items: Vec<DirObj> = items
        .into_iter()
        .filter(|&obj| {
            let get = |name: &str| schema::object_property(tenant, obj, name);
            plan.search.as_ref().is_none_or(|s| s.matches(&get))
                && plan.filter.as_ref().is_none_or(|f| f.matches(&get))
        })
        .collect();
    if !plan.order.is_empty() {
        // Stable sort, case-insensitive like the directory; nulls first.
        let key = |obj: DirObj, name: &str| -> Option<String> {
            schema::object_property(tenant, obj, name)
                .and_then(|v| v.as_str().map(str::to_lowercase))
        };
        items.sort_by(|&a, &b| {
            for &(name, descending) in &plan.order {
                let o = key(a, name).cmp(&key(b, name));
                let o = if descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    items
}

/// Lists a collection with paging. `items` is the full collection in its natural order.
pub(crate) fn list(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    items: Vec<DirObj>,
    spec: &ListSpec,
) -> Result<GraphResponse, GraphError> {
    // A skiptoken replaces the query with the one it was issued for.
    let (opts, offset, token_top) = match &ctx.opts.skiptoken {
        Some(token) => {
            let page = PageToken::decode(token, ctx.path)?;
            (page.query, page.offset, Some(page.top))
        }
        None => (ctx.opts.clone(), 0, None),
    };
    let top = match (&ctx.opts.top, token_top) {
        (None, Some(t)) => t,
        _ => ctx.opts.page_size(DEFAULT_PAGE, MAX_PAGE)?,
    };
    let plan = plan(&opts, ctx.eventual, spec)?;
    let items = select_items(tenant, items, &plan);

    let mut body = Map::new();
    let context = match plan.selection.context_suffix() {
        Some(props) => format!("{CONTEXT_BASE}{}({props})", spec.context),
        None => format!("{CONTEXT_BASE}{}", spec.context),
    };
    body.insert("@odata.context".into(), Value::String(context));
    if plan.with_count && offset == 0 {
        body.insert("@odata.count".into(), Value::from(items.len()));
    }
    let end = offset.saturating_add(top).min(items.len());
    let page: Vec<Value> = items
        .get(offset..end)
        .unwrap_or(&[])
        .iter()
        .map(|&obj| {
            Value::Object(render_with_expand(
                tenant,
                obj,
                &plan.selection,
                spec.with_type,
                plan.expand.as_ref(),
            ))
        })
        .collect();
    if end < items.len() {
        let next = PageToken {
            path: ctx.path.to_ascii_lowercase(),
            offset: end,
            top,
            query: opts,
        };
        body.insert(
            "@odata.nextLink".into(),
            Value::String(format!(
                "{}/v1.0{}?$top={top}&$skiptoken={}",
                ctx.base_url,
                ctx.path,
                next.encode()
            )),
        );
    }
    body.insert("value".into(), Value::Array(page));
    Ok(GraphResponse::json(Value::Object(body)))
}

/// `/…/$count`: the number of items after `$filter`/`$search`, as `text/plain`. Needs
/// `ConsistencyLevel: eventual`.
pub(crate) fn count(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    items: Vec<DirObj>,
    spec: &ListSpec,
) -> Result<GraphResponse, GraphError> {
    if !ctx.eventual {
        return Err(GraphError::directory_bad_request(
            "$count is not currently supported.",
        ));
    }
    // The segment itself makes this an advanced query.
    let mut opts = ctx.opts.clone();
    opts.count = Some(true);
    opts.orderby = None;
    let plan = plan(&opts, true, spec)?;
    let n = select_items(tenant, items, &plan).len();
    Ok(GraphResponse::text(n.to_string()))
}

/// Renders one object, plus the expanded relationship if asked for.
pub(crate) fn render_with_expand(
    tenant: &Tenant,
    obj: DirObj,
    selection: &Selection,
    with_type: bool,
    expand: Option<&Expand>,
) -> Map<String, Value> {
    let mut out = schema::render(tenant, obj, selection, with_type);
    if let Some(expand) = expand {
        expand_into(tenant, obj, &mut out, expand, 1);
    }
    out
}

fn expand_into(
    tenant: &Tenant,
    obj: DirObj,
    out: &mut Map<String, Value>,
    expand: &Expand,
    depth: u32,
) {
    match (expand.nav, obj) {
        (Nav::Manager, DirObj::User(u)) => {
            // Users without a manager simply lack the property.
            let Some(m) = tenant.users[u].manager else {
                return;
            };
            let mut manager = schema::render(tenant, DirObj::User(m), &expand.select, true);
            let deeper = match expand.levels {
                Some(Levels::Max) => true,
                Some(Levels::Count(n)) => depth < n,
                None => false,
            };
            if deeper {
                expand_into(tenant, DirObj::User(m), &mut manager, expand, depth + 1);
            }
            out.insert("manager".into(), Value::Object(manager));
        }
        (Nav::DirectReports, DirObj::User(u)) => {
            let items = tenant.users[u]
                .direct_reports
                .iter()
                .map(|&r| DirObj::User(r));
            out.insert(
                "directReports".into(),
                expanded(tenant, items, &expand.select),
            );
        }
        (Nav::MemberOf, DirObj::User(u)) => {
            let items = tenant.users[u].member_of.iter().copied();
            out.insert("memberOf".into(), expanded(tenant, items, &expand.select));
        }
        (Nav::MemberOf, DirObj::Group(g)) => {
            let items = tenant.groups.iter().enumerate().filter_map(|(i, group)| {
                group
                    .members
                    .contains(&DirObj::Group(g))
                    .then_some(DirObj::Group(i))
            });
            out.insert("memberOf".into(), expanded(tenant, items, &expand.select));
        }
        (Nav::Members, DirObj::Group(g)) => {
            let items = tenant.groups[g].members.iter().copied();
            out.insert("members".into(), expanded(tenant, items, &expand.select));
        }
        _ => {}
    }
}

fn expanded(tenant: &Tenant, items: impl Iterator<Item = DirObj>, selection: &Selection) -> Value {
    Value::Array(
        items
            .take(MAX_EXPANDED)
            .map(|obj| Value::Object(schema::render(tenant, obj, selection, true)))
            .collect(),
    )
}
