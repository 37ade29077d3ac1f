//! Outlook's query options: `$top` (default 10, 1–1000), `$skip` (Outlook pages with
//! `$skip` nextLinks), `$count`, `$select`, `$filter`, `$orderby`, `$search`, `$expand`, and
//! delta's `$skiptoken`/`$deltatoken`.

use std::cmp::Ordering;

use axum::http::StatusCode;

use super::super::errors::GraphError;
use crate::mail::Message;

/// Outlook's default page size for messages and folders.
pub(crate) const DEFAULT_PAGE: usize = 10;
pub(crate) const MAX_PAGE: usize = 1000;

#[derive(Clone, Debug, Default)]
pub(crate) struct MailQuery {
    pub select: Option<String>,
    pub filter: Option<String>,
    pub search: Option<String>,
    pub orderby: Option<String>,
    pub expand: Option<String>,
    pub top: Option<String>,
    pub skip: Option<String>,
    pub count: Option<bool>,
    pub skiptoken: Option<String>,
    pub deltatoken: Option<String>,
    /// `includeHiddenFolders=true` on folder lists.
    pub include_hidden: bool,
}

fn invalid_argument(message: String) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "ErrorInvalidArgument", message)
}

impl MailQuery {
    pub fn parse(raw: Option<&str>) -> Result<MailQuery, GraphError> {
        let mut q = MailQuery::default();
        let Some(raw) = raw else { return Ok(q) };
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let lower = key.to_ascii_lowercase();
            let slot = match lower.as_str() {
                "$select" => &mut q.select,
                "$filter" => &mut q.filter,
                "$search" => &mut q.search,
                "$orderby" => &mut q.orderby,
                "$expand" => &mut q.expand,
                "$top" => &mut q.top,
                "$skip" => &mut q.skip,
                "$skiptoken" => &mut q.skiptoken,
                "$deltatoken" => &mut q.deltatoken,
                "$count" => {
                    q.count = Some(match value.as_ref() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(GraphError::bad_request(format!(
                                "Invalid value '{other}' for $count query option found. The $count query option requires a Boolean value."
                            )));
                        }
                    });
                    continue;
                }
                "$format" => continue,
                "includehiddenfolders" => {
                    q.include_hidden = value.eq_ignore_ascii_case("true");
                    continue;
                }
                _ if lower.starts_with('$') => {
                    return Err(GraphError::bad_request(format!(
                        "Query option '{key}' is not allowed. Supported query options are $select, $filter, $search, $orderby, $expand, $top, $skip, $count, $skiptoken and $deltatoken."
                    )));
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(GraphError::bad_request(format!(
                    "Query option '{key}' was specified more than once, but it must be specified at most once."
                )));
            }
            *slot = Some(value.into_owned());
        }
        Ok(q)
    }

    /// `$top` in 1..=1000 (default 10).
    pub fn page_size(&self) -> Result<usize, GraphError> {
        match &self.top {
            None => Ok(DEFAULT_PAGE),
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(invalid_argument(format!(
                    "The value '{raw}' of $top is not valid: it must be an integer between 1 and {MAX_PAGE}."
                ))),
            },
        }
    }

    pub fn skip(&self) -> Result<usize, GraphError> {
        match &self.skip {
            None => Ok(0),
            Some(raw) => raw.trim().parse::<usize>().map_err(|_| {
                invalid_argument(format!(
                    "The value '{raw}' of $skip is not valid: it must be a non-negative integer."
                ))
            }),
        }
    }
}

/// `{self_url}?{the request's query without $skip}&$skip={skip}`: Outlook's nextLink keeps
/// the other options verbatim.
pub(crate) fn next_link(self_url: &str, raw_query: Option<&str>, skip: usize) -> String {
    let mut parts: Vec<&str> = raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default();
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            !key.eq_ignore_ascii_case("$skip")
        })
        .collect();
    let skip = format!("$skip={skip}");
    parts.push(&skip);
    format!("{self_url}?{}", parts.join("&"))
}

/// The properties `$orderby` accepts on messages.
const SORTABLE: [&str; 10] = [
    "receivedDateTime",
    "sentDateTime",
    "createdDateTime",
    "lastModifiedDateTime",
    "subject",
    "importance",
    "from/emailAddress/name",
    "from/emailAddress/address",
    "isRead",
    "hasAttachments",
];

/// `$orderby=receivedDateTime desc,subject`: canonical names with `descending`.
pub(crate) fn parse_orderby(raw: &str) -> Result<Vec<(&'static str, bool)>, GraphError> {
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
        if words.next().is_some() {
            return Err(GraphError::bad_request(format!(
                "Syntax error in $orderby '{raw}'."
            )));
        }
        let canonical = SORTABLE
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.message' that can be sorted on."
                ))
            })?;
        out.push((*canonical, descending));
    }
    Ok(out)
}

fn importance_rank(i: &str) -> u8 {
    match i {
        "low" => 0,
        "normal" => 1,
        _ => 2,
    }
}

fn compare_by(a: &Message, b: &Message, name: &str) -> Ordering {
    let name_of = |m: &Message| {
        m.from
            .as_ref()
            .map(|r| r.name.to_lowercase())
            .unwrap_or_default()
    };
    let address_of = |m: &Message| {
        m.from
            .as_ref()
            .map(|r| r.address.to_lowercase())
            .unwrap_or_default()
    };
    match name {
        "receivedDateTime" => a.received.cmp(&b.received),
        "sentDateTime" => a.sent.cmp(&b.sent),
        "createdDateTime" => a.created.cmp(&b.created),
        "lastModifiedDateTime" => a.modified.cmp(&b.modified),
        "subject" => a.subject.to_lowercase().cmp(&b.subject.to_lowercase()),
        "importance" => importance_rank(a.importance).cmp(&importance_rank(b.importance)),
        "from/emailAddress/name" => name_of(a).cmp(&name_of(b)),
        "from/emailAddress/address" => address_of(a).cmp(&address_of(b)),
        "isRead" => a.is_read.cmp(&b.is_read),
        "hasAttachments" => a.has_attachments().cmp(&b.has_attachments()),
        _ => Ordering::Equal,
    }
}

/// Outlook's default order: newest received first (newest created first on ties).
pub(crate) fn default_order(a: &Message, b: &Message) -> Ordering {
    b.received
        .cmp(&a.received)
        .then_with(|| b.ordinal.cmp(&a.ordinal))
}

/// Sorts by `$orderby`, the default order breaking ties.
pub(crate) fn sort(messages: &mut [&Message], order: &[(&'static str, bool)]) {
    messages.sort_by(|a, b| {
        for &(name, descending) in order {
            let o = compare_by(a, b, name);
            let o = if descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        default_order(a, b)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_replace_skip_and_keep_the_rest() {
        assert_eq!(
            next_link(
                "http://h/v1.0/me/messages",
                Some("$top=5&$skip=5&$select=id"),
                10
            ),
            "http://h/v1.0/me/messages?$top=5&$select=id&$skip=10"
        );
        assert_eq!(
            next_link("http://h/v1.0/me/messages", None, 10),
            "http://h/v1.0/me/messages?$skip=10"
        );
    }

    #[test]
    fn top_and_skip_are_validated() {
        let q = MailQuery::parse(Some("$top=1001")).expect("parse");
        assert!(q.page_size().is_err());
        let q = MailQuery::parse(Some("$top=0")).expect("parse");
        assert!(q.page_size().is_err());
        let q = MailQuery::parse(Some("$top=1000&$skip=3")).expect("parse");
        assert_eq!(q.page_size(), Ok(1000));
        assert_eq!(q.skip(), Ok(3));
        assert!(
            MailQuery::parse(Some("$skip=-1"))
                .expect("parse")
                .skip()
                .is_err()
        );
        assert!(parse_orderby("receivedDateTime desc,from/emailAddress/name").is_ok());
        assert!(parse_orderby("body").is_err());
    }
}
