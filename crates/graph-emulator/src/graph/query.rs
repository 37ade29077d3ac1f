//! OData system query options: reading them off the URL, `$expand`, `$orderby`, and the
//! opaque `$skiptoken` that carries a collection query from one page to the next.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::errors::GraphError;
use super::schema::{self, FilterProp, Kind, Selection};

/// The system query options of one request, still as text (each is validated against
/// the resource it applies to, which the parser does not know).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueryOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orderby: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<bool>,
    #[serde(skip)]
    pub top: Option<String>,
    #[serde(skip)]
    pub skiptoken: Option<String>,
}

impl QueryOptions {
    /// Reads the query string (`+` and `%20` both mean a space, as in Graph).
    pub fn parse(raw: Option<&str>) -> Result<QueryOptions, GraphError> {
        let mut opts = QueryOptions::default();
        let Some(raw) = raw else {
            return Ok(opts);
        };
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let lower = key.to_ascii_lowercase();
            let slot = match lower.as_str() {
                "$select" => &mut opts.select,
                "$filter" => &mut opts.filter,
                "$search" => &mut opts.search,
                "$orderby" => &mut opts.orderby,
                "$expand" => &mut opts.expand,
                "$top" => &mut opts.top,
                "$skiptoken" => &mut opts.skiptoken,
                "$count" => {
                    if opts.count.is_some() {
                        return Err(repeated(&key));
                    }
                    opts.count = Some(match value.as_ref() {
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
                "$skip" => {
                    return Err(GraphError::directory_bad_request(
                        "'$skip' is not supported by the service.",
                    ));
                }
                // Only JSON exists; accept the spelled-out default.
                "$format" => continue,
                _ if lower.starts_with('$') => {
                    return Err(GraphError::bad_request(format!(
                        "Query option '{key}' is not allowed. Supported query options are $select, $filter, $search, $orderby, $expand, $top, $count and $skiptoken."
                    )));
                }
                // Graph ignores query parameters that are not system query options.
                _ => continue,
            };
            if slot.is_some() {
                return Err(repeated(&key));
            }
            *slot = Some(value.into_owned());
        }
        Ok(opts)
    }

    /// Whether `$count=true` was given.
    pub fn count_requested(&self) -> bool {
        self.count == Some(true)
    }

    /// `$top` as a page size in `1..=max`.
    pub fn page_size(&self, default: usize, max: usize) -> Result<usize, GraphError> {
        let Some(raw) = &self.top else {
            return Ok(default);
        };
        match raw.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(GraphError::directory_bad_request(format!(
                "Invalid page size specified: '{raw}'. Must be between 1 and {max} inclusive."
            ))),
        }
    }
}

fn repeated(key: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Query option '{key}' was specified more than once, but it must be specified at most once."
    ))
}

/// `$orderby=displayName desc,userPrincipalName`.
pub(crate) fn parse_orderby(
    raw: &str,
    kind: Kind,
) -> Result<Vec<(&'static FilterProp, bool)>, GraphError> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut words = item.split_whitespace();
        let name = words.next().unwrap_or_default();
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                return Err(GraphError::bad_request(format!(
                    "Syntax error at position {} in '{raw}'.",
                    item.len()
                )));
            }
        };
        if words.next().is_some() {
            return Err(GraphError::bad_request(format!(
                "Syntax error in $orderby '{raw}'."
            )));
        }
        let prop = schema::filter_property(kind, name).ok_or_else(|| {
            if schema::canonical_property(kind, name).is_some() {
                unsupported_sort()
            } else {
                schema::unknown_property(kind, name)
            }
        })?;
        out.push((prop, descending));
    }
    Ok(out)
}

pub(crate) fn unsupported_sort() -> GraphError {
    GraphError::unsupported_query("Sorting not supported for current query.")
}

/// The navigation property of a `$expand`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nav {
    Manager,
    DirectReports,
    MemberOf,
    Members,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Levels {
    Max,
    Count(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expand {
    pub nav: Nav,
    pub select: Selection,
    /// `$levels`: only meaningful for `manager` (the management chain).
    pub levels: Option<Levels>,
}

/// `$expand=manager($levels=max;$select=id,displayName)`. Graph expands one relationship
/// per directory request.
pub(crate) fn parse_expand(raw: &str, kind: Kind) -> Result<Option<Expand>, GraphError> {
    let items = split_top_level(raw, ',');
    let items: Vec<&str> = items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    let item = match items.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(GraphError::directory_bad_request(
                "Only one navigation property can be expanded per request.",
            ));
        }
    };
    let (name, options) = match item.find('(') {
        Some(open) if item.ends_with(')') => {
            (item[..open].trim(), Some(&item[open + 1..item.len() - 1]))
        }
        Some(_) => {
            return Err(GraphError::bad_request(format!(
                "Syntax error in $expand '{raw}'."
            )));
        }
        None => (item, None),
    };
    let nav = match (kind, name.to_ascii_lowercase().as_str()) {
        (Kind::User, "manager") => Nav::Manager,
        (Kind::User, "directreports") => Nav::DirectReports,
        (Kind::User | Kind::Group, "memberof") => Nav::MemberOf,
        (Kind::Group, "members") => Nav::Members,
        _ if schema::canonical_property(kind, name).is_some() => {
            return Err(GraphError::bad_request(format!(
                "Property '{name}' on type '{}' is not a navigation property or complex property. Only navigation properties can be expanded.",
                kind.type_name()
            )));
        }
        _ => return Err(schema::unknown_property(kind, name)),
    };
    let target = match nav {
        Nav::Manager => Kind::User,
        _ => Kind::DirectoryObject,
    };
    let mut expand = Expand {
        nav,
        select: Selection::Default,
        levels: None,
    };
    for option in options.map(|o| split_top_level(o, ';')).unwrap_or_default() {
        let option = option.trim();
        if option.is_empty() {
            continue;
        }
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| GraphError::bad_request(format!("Syntax error in $expand '{raw}'.")))?;
        match key.trim().to_ascii_lowercase().as_str() {
            "$select" => expand.select = Selection::parse(value, target)?,
            "$levels" if nav == Nav::Manager => {
                expand.levels = Some(match value.trim() {
                    "max" => Levels::Max,
                    n => match n.parse::<u32>() {
                        Ok(n) if (1..=1000).contains(&n) => Levels::Count(n),
                        _ => {
                            return Err(GraphError::bad_request(format!(
                                "The value '{n}' is not valid for $levels. It must be 'max' or an integer between 1 and 1000."
                            )));
                        }
                    },
                })
            }
            other => {
                return Err(GraphError::bad_request(format!(
                    "Query option '{other}' is not supported inside $expand."
                )));
            }
        }
    }
    Ok(Some(expand))
}

/// Splits on `sep` outside parentheses.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// What a `$skiptoken` carries: where the next page starts and the query that produced it,
/// so a client that follows `@odata.nextLink` verbatim gets the same query's next page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageToken {
    /// The collection path (lower-cased) the token belongs to.
    pub path: String,
    pub offset: usize,
    pub top: usize,
    pub query: QueryOptions,
}

impl PageToken {
    pub fn encode(&self) -> String {
        // Serialising this plain struct cannot fail; an empty token would simply be rejected.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(token: &str, path: &str) -> Result<PageToken, GraphError> {
        let invalid = || {
            GraphError::directory_bad_request(
                "The specified page token value is invalid or has expired.",
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid())?;
        let page: PageToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if page.path != path.to_ascii_lowercase() {
            return Err(invalid());
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_unknown_options_are_rejected() {
        assert!(QueryOptions::parse(Some("$top=1&$top=2")).is_err());
        assert!(QueryOptions::parse(Some("$foo=1")).is_err());
        assert!(QueryOptions::parse(Some("$skip=1")).is_err());
        let o = QueryOptions::parse(Some("$filter=a+eq+'b'&custom=1")).expect("parse");
        assert_eq!(o.filter.as_deref(), Some("a eq 'b'"));
    }

    #[test]
    fn expand_with_nested_options() {
        let e = parse_expand("manager($levels=max;$select=id,displayName)", Kind::User)
            .expect("parse")
            .expect("some");
        assert_eq!(e.nav, Nav::Manager);
        assert_eq!(e.levels, Some(Levels::Max));
        assert_eq!(e.select, Selection::Props(vec!["id", "displayName"]));
        assert!(parse_expand("manager,memberOf", Kind::User).is_err());
        assert!(parse_expand("displayName", Kind::User).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_their_path() {
        let t = PageToken {
            path: "/users".into(),
            offset: 7,
            top: 7,
            query: QueryOptions {
                filter: Some("x eq 'y'".into()),
                ..Default::default()
            },
        };
        let s = t.encode();
        assert_eq!(PageToken::decode(&s, "/Users"), Ok(t));
        assert!(PageToken::decode(&s, "/groups").is_err());
        assert!(PageToken::decode("garbage!", "/users").is_err());
    }
}
