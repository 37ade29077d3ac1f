//! Contacts and contact folders: lists (with `$filter`, `$orderby`, `$search`, paging),
//! reads, creates, updates and deletes.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::super::errors::GraphError;
use super::super::{GraphResponse, Payload};
use super::odata::{Schema, Ty, collection, entity, single_entity_only};
use super::render::{
    self, CONTACT_ADDRESSES, CONTACT_LISTS, CONTACT_PROPS, CONTACT_READ_ONLY, CONTACT_SCHEMA,
};
use super::{Cx, body_read, item_not_found, unknown_folder};
use crate::calendar::{CalendarBox, CalendarStore, Contact, complete_contact};

const FOLDER_SCHEMA: Schema = Schema {
    type_name: "microsoft.graph.contactFolder",
    select: &["id", "displayName", "parentFolderId"],
    scalars: &[
        ("displayName", Ty::Str),
        ("id", Ty::Str),
        ("parentFolderId", Ty::Str),
    ],
    collections: &[],
    sortable: &["displayName"],
};

const ADDRESS_FIELDS: [&str; 5] = ["street", "city", "state", "countryOrRegion", "postalCode"];

/// The folder a path names: the default Contacts folder (no folder, or `contacts`), or a
/// child folder by id.
fn folder_id(b: &CalendarBox, key: Option<&str>) -> Result<String, GraphError> {
    match key.map(str::trim) {
        None => Ok(b.contacts_root.clone()),
        Some(k) if k.eq_ignore_ascii_case("contacts") || k == b.contacts_root => {
            Ok(b.contacts_root.clone())
        }
        Some(k) => b
            .contact_folders
            .iter()
            .find(|f| f.id == k)
            .map(|f| f.id.clone())
            .ok_or_else(|| unknown_folder(k)),
    }
}

fn context(b: &CalendarBox, folder: &str) -> String {
    if folder == b.contacts_root {
        "/contacts".to_string()
    } else {
        format!("/contactFolders('{folder}')/contacts")
    }
}

fn expected(name: &str, ty: &str) -> GraphError {
    body_read(format!(
        "Cannot convert the value of property '{name}' to the expected type '{ty}'."
    ))
}

/// The writable properties of a contact body, validated.
fn parse_props(obj: &Map<String, Value>, create: bool) -> Result<Map<String, Value>, GraphError> {
    let mut out = Map::new();
    for (key, v) in obj {
        if key.contains('@') {
            continue;
        }
        let Some(name) = CONTACT_PROPS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key))
            .copied()
        else {
            return Err(body_read(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.contact'. Make sure to only use property names that are defined by the type or mark the type as open type."
            )));
        };
        if CONTACT_READ_ONLY.contains(&name) {
            if create {
                continue;
            }
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidProperty",
                format!("The property '{name}' is read-only and can't be set."),
            ));
        }
        let value = match name {
            "emailAddresses" => match v {
                Value::Null => Value::Array(Vec::new()),
                Value::Array(items) => {
                    let mut list = Vec::new();
                    for item in items {
                        let o = item
                            .as_object()
                            .ok_or_else(|| expected(name, "microsoft.graph.emailAddress"))?;
                        let field = |f: &str| -> Result<Value, GraphError> {
                            match super::get_ci(o, f) {
                                None | Some(Value::Null) => Ok(Value::Null),
                                Some(Value::String(s)) => Ok(Value::String(s.trim().to_string())),
                                Some(_) => Err(expected(f, "Edm.String")),
                            }
                        };
                        let mut e = Map::new();
                        e.insert("name".into(), field("name")?);
                        e.insert("address".into(), field("address")?);
                        list.push(Value::Object(e));
                    }
                    Value::Array(list)
                }
                _ => return Err(expected(name, "Collection(microsoft.graph.emailAddress)")),
            },
            n if CONTACT_LISTS.contains(&n) => match v {
                Value::Null => Value::Array(Vec::new()),
                Value::Array(items) if items.iter().all(Value::is_string) => v.clone(),
                _ => return Err(expected(name, "Collection(Edm.String)")),
            },
            n if CONTACT_ADDRESSES.contains(&n) => match v {
                Value::Null => Value::Object(Map::new()),
                Value::Object(o) => {
                    let mut a = Map::new();
                    for (k, fv) in o {
                        let field = ADDRESS_FIELDS
                            .iter()
                            .find(|f| f.eq_ignore_ascii_case(k))
                            .ok_or_else(|| {
                                body_read(format!(
                                    "The property '{k}' does not exist on type 'microsoft.graph.physicalAddress'."
                                ))
                            })?;
                        if !(fv.is_string() || fv.is_null()) {
                            return Err(expected(field, "Edm.String"));
                        }
                        a.insert((*field).to_string(), fv.clone());
                    }
                    Value::Object(a)
                }
                _ => return Err(expected(name, "microsoft.graph.physicalAddress")),
            },
            _ => match v {
                Value::Null | Value::String(_) => v.clone(),
                _ => return Err(expected(name, "Edm.String")),
            },
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// `$search="text"`: a case-insensitive match on names, company and addresses.
fn search_text(raw: &str) -> Result<String, GraphError> {
    let t = raw.trim();
    if t.len() < 2 || !t.starts_with('"') || !t.ends_with('"') {
        return Err(GraphError::bad_request(format!(
            "Syntax error: '{t}' is not a valid $search value: enclose the search text in double quotes."
        )));
    }
    Ok(t[1..t.len() - 1].trim().to_lowercase())
}

fn search_matches(c: &Contact, needle: &str) -> bool {
    let text = |k: &str| {
        c.props
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().contains(needle))
    };
    ["displayName", "givenName", "surname", "companyName"]
        .into_iter()
        .any(text)
        || c.props
            .get("emailAddresses")
            .and_then(Value::as_array)
            .is_some_and(|list| {
                list.iter().any(|e| {
                    ["address", "name"].into_iter().any(|f| {
                        e.get(f)
                            .and_then(Value::as_str)
                            .is_some_and(|s| s.to_lowercase().contains(needle))
                    })
                })
            })
}

pub(super) fn contacts(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    folder: Option<&str>,
) -> Result<GraphResponse, GraphError> {
    let b = store.get(cx.tenant, cx.owner);
    let f = folder_id(b, folder)?;
    if cx.req.method == Method::POST {
        let obj = cx.json_body()?;
        let mut props = parse_props(&obj, true)?;
        complete_contact(&mut props);
        let i = b.insert_contact(Contact {
            id: String::new(),
            ordinal: 0,
            version: 1,
            folder: f.clone(),
            created: cx.now,
            modified: cx.now,
            props,
        });
        let item = render::contact(b, &b.contacts[i]);
        let body = entity(cx, &CONTACT_SCHEMA, &context(b, &f), item)?;
        return Ok(GraphResponse::with_status(
            StatusCode::CREATED,
            Payload::Json(body),
        ));
    }
    let q = &cx.query;
    let needle = match &q.search {
        Some(raw) => {
            if q.filter.is_some() || q.orderby.is_some() {
                return Err(GraphError::bad_request(
                    "The query parameters '$filter' and '$orderby' are not supported with '$search'.",
                ));
            }
            Some(search_text(raw)?)
        }
        None => None,
    };
    let items = b
        .contacts
        .iter()
        .filter(|c| c.folder == f)
        .filter(|c| needle.as_deref().is_none_or(|n| search_matches(c, n)))
        .map(|c| render::contact(b, c))
        .collect();
    collection(cx, &CONTACT_SCHEMA, &context(b, &f), items, &[])
}

pub(super) fn contact(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    folder: Option<&str>,
    id: &str,
) -> Result<GraphResponse, GraphError> {
    let b = store.get(cx.tenant, cx.owner);
    let f = folder.map(|k| folder_id(b, Some(k))).transpose()?;
    let i = b
        .contacts
        .iter()
        .position(|c| c.id == id.trim())
        .ok_or_else(|| unknown_folder(id))?;
    if f.as_ref().is_some_and(|f| *f != b.contacts[i].folder) {
        return Err(item_not_found());
    }
    let ctx = context(b, &b.contacts[i].folder.clone());
    match &cx.req.method {
        m if *m == Method::DELETE => {
            b.contacts.remove(i);
            Ok(GraphResponse::empty(StatusCode::NO_CONTENT))
        }
        m if *m == Method::PATCH => {
            let obj = cx.json_body()?;
            let props = parse_props(&obj, false)?;
            let c = &mut b.contacts[i];
            c.props.extend(props);
            complete_contact(&mut c.props);
            c.version += 1;
            c.modified = cx.now.max(c.created);
            let item = render::contact(b, &b.contacts[i]);
            Ok(GraphResponse::json(entity(
                cx,
                &CONTACT_SCHEMA,
                &ctx,
                item,
            )?))
        }
        _ => {
            single_entity_only(cx)?;
            let item = render::contact(b, &b.contacts[i]);
            Ok(GraphResponse::json(entity(
                cx,
                &CONTACT_SCHEMA,
                &ctx,
                item,
            )?))
        }
    }
}

pub(super) fn list_folders(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
) -> Result<GraphResponse, GraphError> {
    let b = store.get(cx.tenant, cx.owner);
    let items = b
        .contact_folders
        .iter()
        .map(render::contact_folder)
        .collect();
    collection(
        cx,
        &FOLDER_SCHEMA,
        "/contactFolders",
        items,
        &[("displayName", false)],
    )
}

pub(super) fn get_folder(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    id: &str,
) -> Result<GraphResponse, GraphError> {
    single_entity_only(cx)?;
    let b = store.get(cx.tenant, cx.owner);
    let f = folder_id(b, Some(id))?;
    let item = match b.contact_folders.iter().find(|x| x.id == f) {
        Some(folder) => render::contact_folder(folder),
        None => {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(b.contacts_root.clone()));
            m.insert("displayName".into(), Value::String("Contacts".into()));
            m.insert("parentFolderId".into(), Value::String(String::new()));
            m
        }
    };
    Ok(GraphResponse::json(entity(
        cx,
        &FOLDER_SCHEMA,
        "/contactFolders",
        item,
    )?))
}
