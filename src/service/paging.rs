//! Relay-style paging over Graph's `@odata.nextLink` pages.
//!
//! A cursor names a Graph page (its relative URL) and how many of its items to skip, so
//! every edge has a cursor and a client may change `first` between calls. Cursors are
//! opaque to callers but not trusted: on the way back in, the page URL must address the
//! same collection the field pages over, so a crafted cursor cannot read anything else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ServiceError, Session};
use crate::graph::models::Collection;
use crate::graph::{GraphError, GraphGet};

/// Largest page (`first`) a caller may ask for, on every list.
pub const MAX_PAGE: usize = 100;

/// Checks a caller's page size and returns it as Graph's `$top`.
pub(crate) fn check_first(first: usize) -> Result<u32, ServiceError> {
    if (1..=MAX_PAGE).contains(&first) {
        Ok(first as u32)
    } else {
        Err(ServiceError::BadInput(format!(
            "first must be between 1 and {MAX_PAGE}, got {first}"
        )))
    }
}

/// Most pages followed to fill one connection (each page holds at least one item unless
/// Graph misbehaves; this bounds the work a single request can cause).
const MAX_PAGES: usize = 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    /// Relative Graph URL of the page.
    #[serde(rename = "u")]
    url: String,
    /// Items of that page already returned.
    #[serde(rename = "o")]
    offset: usize,
    /// The page needs `ConsistencyLevel: eventual`.
    #[serde(rename = "e", default)]
    eventual: bool,
    /// `@odata.count` from the first page (Graph sends it only there).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str, expected_path: &str) -> Result<Self, ServiceError> {
        let bad = || ServiceError::BadInput("the cursor is not valid for this list".into());
        if text.len() > 4096 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let path = cursor.url.split('?').next().unwrap_or_default();
        if !cursor.url.starts_with('/')
            || cursor.url.chars().any(|c| c.is_control())
            || !same_path(path, expected_path)
            || cursor.offset > 1000
        {
            return Err(bad());
        }
        Ok(cursor)
    }
}

pub(super) fn same_path(a: &str, b: &str) -> bool {
    percent_decode_str(a).decode_utf8_lossy() == percent_decode_str(b).decode_utf8_lossy()
}

/// What a gateway delta token holds: the Graph link to continue from (a nextLink or
/// deltaLink, relative to the Graph root), bound to the collection it was issued for.
#[derive(Serialize, Deserialize)]
struct DeltaState {
    u: String,
}

/// Graph writes delta links as `…/delta?token=…` or `…/delta(token='…')`; either form must
/// stay on the collection (`expected_path`) the token was issued for.
fn delta_path_matches(link: &str, expected_path: &str) -> bool {
    let path = link.split('?').next().unwrap_or_default();
    let path = match path.find("(token=") {
        Some(at) if path.ends_with(')') => &path[..at],
        _ => path,
    };
    same_path(path, expected_path)
}

/// A caller's delta token back to the Graph link, only for the collection at
/// `expected_path` (`what` names it in the error: "folder", "drive").
pub(super) fn decode_delta_token(
    token: &str,
    expected_path: &str,
    what: &str,
) -> Result<String, ServiceError> {
    let bad = || ServiceError::BadInput(format!("the delta token is not valid for this {what}"));
    if token.len() > 8192 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let state: DeltaState = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if !state.u.starts_with('/')
        || state.u.chars().any(char::is_control)
        || !delta_path_matches(&state.u, expected_path)
    {
        return Err(bad());
    }
    Ok(state.u)
}

impl Session {
    /// The caller's token for what follows a delta page: Graph's nextLink (more now) or
    /// deltaLink (changes later), checked to stay on the collection at `expected_path`.
    pub(super) fn next_delta_token(
        &self,
        next_link: Option<&str>,
        delta_link: Option<&str>,
        expected_path: &str,
        what: &str,
    ) -> Result<String, ServiceError> {
        let link = next_link
            .or(delta_link)
            .ok_or(ServiceError::UpstreamBadResponse)?;
        let next = self
            .graph()
            .relative_link(link)
            .map_err(|e| self.upstream(e, what))?;
        if !delta_path_matches(&next, expected_path) {
            tracing::warn!("a delta link for another collection");
            return Err(ServiceError::UpstreamBadResponse);
        }
        Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&DeltaState { u: next }).unwrap_or_default()))
    }
}

/// One page of a connection.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<(T, Cursor)>,
    pub has_next: bool,
    pub total_count: Option<u64>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl Fn(T) -> Result<U, ServiceError>) -> Result<Page<U>, ServiceError> {
        Ok(Page {
            items: self
                .items
                .into_iter()
                .map(|(item, cursor)| Ok((f(item)?, cursor)))
                .collect::<Result<_, ServiceError>>()?,
            has_next: self.has_next,
            total_count: self.total_count,
        })
    }

    pub fn end_cursor(&self) -> Option<String> {
        self.items.last().map(|(_, c)| c.encode())
    }
}

impl Session {
    /// Returns `first` items of the collection at `start` (or after `after`), following
    /// nextLinks as needed. `expected_path` is the collection's path, used to check cursors.
    pub(crate) async fn page<T: DeserializeOwned>(
        &self,
        start: GraphGet,
        expected_path: &str,
        first: usize,
        after: Option<&str>,
        what: &str,
    ) -> Result<Page<T>, ServiceError> {
        // `Prefer` (body format, time zone) comes from this request's arguments, never from
        // the cursor, so a crafted cursor cannot add preferences.
        let prefer = start.prefer.clone();
        let no_store = start.no_store;
        let mut cursor = match after {
            Some(text) => Cursor::decode(text, expected_path)?,
            None => Cursor {
                url: start.url,
                offset: 0,
                eventual: start.eventual,
                count: None,
            },
        };
        let mut items = Vec::new();
        // Ends as `true` when the page limit stops the walk with more to come.
        let mut has_next = true;
        let mut visited = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            // A nextLink that leads back to a page already read would loop forever.
            if !visited.insert(cursor.url.clone()) {
                return Err(self.upstream(GraphError::Refused("a nextLink cycle".into()), what));
            }
            has_next = false;
            let request = GraphGet::new(&cursor.url)
                .eventual(cursor.eventual)
                .prefer(prefer.as_deref())
                .no_store(no_store);
            let page: Collection<T> = self
                .get_json(request)
                .await
                .map_err(|e| self.upstream(e, what))?;
            cursor.count = cursor.count.or(page.count);
            for (i, item) in page.value.into_iter().enumerate().skip(cursor.offset) {
                if items.len() == first {
                    has_next = true;
                    break;
                }
                let mut at = cursor.clone();
                at.offset = i + 1;
                items.push((item, at));
            }
            if has_next {
                break;
            }
            match page.next_link {
                Some(link) if items.len() < first => {
                    let url = self
                        .graph()
                        .relative_link(&link)
                        .map_err(|e| self.upstream(e, what))?;
                    if !same_path(url.split('?').next().unwrap_or_default(), expected_path) {
                        return Err(self.upstream(
                            GraphError::Refused("a nextLink for another collection".into()),
                            what,
                        ));
                    }
                    cursor.url = url;
                    cursor.offset = 0;
                    // More to read; stays true if the page limit ends the walk here.
                    has_next = true;
                }
                Some(_) => {
                    has_next = true;
                    break;
                }
                None => break,
            }
        }
        let total_count = cursor.count;
        Ok(Page {
            items,
            has_next,
            total_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_token_only_works_for_its_collection_in_either_link_form() {
        for link in [
            "/drives/d1/root/delta?token=abc",
            "/drives/d1/root/delta(token='abc')",
        ] {
            let token = URL_SAFE_NO_PAD.encode(json_of(link));
            assert!(decode_delta_token(&token, "/drives/d1/root/delta", "drive").is_ok());
            assert!(decode_delta_token(&token, "/drives/d2/root/delta", "drive").is_err());
        }
        let token = URL_SAFE_NO_PAD.encode(json_of(
            "/users/u1/mailFolders/inbox/messages/delta?$deltatoken=abc",
        ));
        assert!(
            decode_delta_token(
                &token,
                "/users/u1/mailFolders/inbox/messages/delta",
                "folder"
            )
            .is_ok()
        );
        assert!(
            decode_delta_token(
                &token,
                "/users/u2/mailFolders/inbox/messages/delta",
                "folder"
            )
            .is_err()
        );
        assert!(decode_delta_token("!!", "/x", "folder").is_err());
    }

    fn json_of(link: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "u": link })).unwrap()
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_collection_only() {
        let cursor = Cursor {
            url: "/users?$top=5&$skiptoken=abc".into(),
            offset: 3,
            eventual: true,
            count: Some(60),
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, "/users").unwrap(), cursor);
        assert!(Cursor::decode(&text, "/groups").is_err());
    }

    #[test]
    fn forged_cursors_are_bad_input() {
        for forged in [
            "not base64!",
            &URL_SAFE_NO_PAD.encode(br#"{"u":"https://evil.example/users","o":0}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"u":"/users/../groups","o":0}"#),
            &URL_SAFE_NO_PAD.encode(b"{\"u\":\"/users\\r\\nX: y\",\"o\":0}"),
            &URL_SAFE_NO_PAD.encode(br#"{"u":"/users","o":99999}"#),
        ] {
            assert!(
                matches!(
                    Cursor::decode(forged, "/users"),
                    Err(ServiceError::BadInput(_))
                ),
                "{forged}"
            );
        }
    }
}
