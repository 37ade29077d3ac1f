//! The typed builder that is the only way to make a Graph URL.
//!
//! Every path segment is percent-encoded on its own (so an id can never add a segment or
//! a query: `#EXT#` becomes `%23EXT%23`, `../` stays inside its segment), OData string
//! literals double their single quotes, and CR/LF/NUL are refused outright.

use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Characters escaped inside one path segment: everything that could end the segment or
/// start a query/fragment, plus what is not safe in a URL at all.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'\\')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^')
    .add(b'[')
    .add(b']');

/// Inside a path-addressed segment (`root:/a/b:`) a `:` would end the path, so it is
/// escaped too.
const PATH_SEGMENT: &AsciiSet = &SEGMENT.add(b':');

/// Characters escaped inside a query value: the separators of the query itself.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// A relative Graph URL (`/users/{id}?$select=…`), always built from typed parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GraphUrl {
    path: String,
    query: Vec<(&'static str, String)>,
}

/// A value that cannot go into a Graph URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

impl GraphUrl {
    /// Starts at a fixed collection such as `users` or `groups` (literal, trusted).
    pub fn root(collection: &'static str) -> Self {
        Self {
            path: format!("/{collection}"),
            query: Vec::new(),
        }
    }

    /// Appends a fixed segment such as `manager` (literal, trusted).
    pub fn then(mut self, segment: &'static str) -> Self {
        self.path.push('/');
        self.path.push_str(segment);
        self
    }

    /// Appends a caller-supplied identifier as exactly one encoded segment.
    pub fn id(mut self, id: &str) -> Result<Self, UrlError> {
        check_text("id", id)?;
        if id.is_empty() || id.len() > 1024 {
            return Err(UrlError("an id must be 1 to 1024 characters".into()));
        }
        // `.` and `..` would be normalised away by some HTTP stacks and change the path.
        if id == "." || id == ".." {
            return Err(UrlError("an id cannot be '.' or '..'".into()));
        }
        self.path.push('/');
        self.path
            .extend(utf8_percent_encode(id, SEGMENT).map(|s| s.to_owned()));
        Ok(self)
    }

    /// Appends path-based addressing: `/{anchor}:/{seg}/{seg}:` (`root:/Reports/q1.pdf:`,
    /// or a site's `host:/sites/finance:`). Every segment is encoded on its own, `:`
    /// included; empty, `.` and `..` segments are refused. No segments: `/{anchor}`.
    pub fn item_path(mut self, anchor: &str, segments: &[&str]) -> Result<Self, UrlError> {
        check_text("path", anchor)?;
        self.path.push('/');
        self.path
            .extend(utf8_percent_encode(anchor, PATH_SEGMENT).map(|s| s.to_owned()));
        if segments.is_empty() {
            return Ok(self);
        }
        self.path.push(':');
        for segment in segments {
            check_text("path", segment)?;
            if segment.is_empty() || *segment == "." || *segment == ".." || segment.len() > 400 {
                return Err(UrlError(
                    "a path segment must be 1 to 400 characters and not '.' or '..'".into(),
                ));
            }
            self.path.push('/');
            self.path
                .extend(utf8_percent_encode(segment, PATH_SEGMENT).map(|s| s.to_owned()));
        }
        self.path.push(':');
        Ok(self)
    }

    pub fn select(self, fields: &[&str]) -> Self {
        if fields.is_empty() {
            return self;
        }
        self.param("$select", fields.join(","))
    }

    pub fn top(self, n: u32) -> Self {
        self.param("$top", n.to_string())
    }

    pub fn filter(self, filter: &str) -> Self {
        self.param("$filter", filter.to_owned())
    }

    pub fn search(self, search: &str) -> Self {
        self.param("$search", search.to_owned())
    }

    pub fn orderby(self, orderby: &str) -> Self {
        self.param("$orderby", orderby.to_owned())
    }

    pub fn expand(self, expand: &str) -> Self {
        self.param("$expand", expand.to_owned())
    }

    pub fn count(self) -> Self {
        self.param("$count", "true".to_owned())
    }

    /// Any other query parameter (`startDateTime`, …); the value is encoded.
    pub fn param(mut self, key: &'static str, value: String) -> Self {
        self.query.push((key, value));
        self
    }

    /// The path alone, e.g. `/users/abc/directReports` (used to check cursors and nextLinks).
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for GraphUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        for (i, (key, value)) in self.query.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            f.write_str(key)?;
            f.write_str("=")?;
            for part in utf8_percent_encode(value, QUERY_VALUE) {
                f.write_str(part)?;
            }
        }
        Ok(())
    }
}

/// An OData string literal: `O'Brien` → `'O''Brien'`.
pub fn odata_string(value: &str) -> Result<String, UrlError> {
    check_text("filter value", value)?;
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// One `$search` clause for directory objects: `"property:text"`, with `"` and `\`
/// escaped by a backslash as Graph's search syntax requires.
pub fn search_clause(property: &str, text: &str) -> Result<String, UrlError> {
    check_text("search text", text)?;
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    Ok(format!("\"{property}:{escaped}\""))
}

fn check_text(what: &str, value: &str) -> Result<(), UrlError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(UrlError(format!("{what} contains a control character")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_segment() {
        let url = GraphUrl::root("users")
            .id("guest_example.com#EXT#@tenant.example")
            .unwrap()
            .then("manager");
        assert_eq!(
            url.to_string(),
            "/users/guest_example.com%23EXT%23@tenant.example/manager"
        );
        let url = GraphUrl::root("users").id("../groups/x?y").unwrap();
        assert_eq!(url.to_string(), "/users/..%2Fgroups%2Fx%3Fy");
    }

    #[test]
    fn control_characters_and_dot_segments_are_refused() {
        assert!(GraphUrl::root("users").id("a\r\nHost: evil").is_err());
        assert!(GraphUrl::root("users").id("..").is_err());
        assert!(GraphUrl::root("users").id("").is_err());
        assert!(odata_string("x\0").is_err());
    }

    #[test]
    fn path_addressing_encodes_each_segment_and_refuses_dot_segments() {
        let url = GraphUrl::root("drives")
            .id("b!x")
            .unwrap()
            .item_path("root", &["Q1 reports", "a:b#c?.pdf"])
            .unwrap()
            .then("content");
        assert_eq!(
            url.to_string(),
            "/drives/b!x/root:/Q1%20reports/a%3Ab%23c%3F.pdf:/content"
        );
        assert_eq!(
            GraphUrl::root("sites")
                .item_path("contoso.sharepoint.com", &["sites", "finance"])
                .unwrap()
                .to_string(),
            "/sites/contoso.sharepoint.com:/sites/finance:"
        );
        for bad in [&["..", "x"][..], &["a", ""][..], &["a\nb"][..]] {
            assert!(GraphUrl::root("drives").item_path("root", bad).is_err());
        }
    }

    #[test]
    fn odata_literals_double_single_quotes() {
        assert_eq!(odata_string("O'Brien").unwrap(), "'O''Brien'");
    }

    #[test]
    fn query_values_cannot_inject_parameters() {
        let url = GraphUrl::root("users").filter("displayName eq 'a&$top=1'");
        assert_eq!(
            url.to_string(),
            "/users?$filter=displayName%20eq%20'a%26$top%3D1'"
        );
    }

    #[test]
    fn search_clauses_escape_quotes_and_backslashes() {
        assert_eq!(
            search_clause("displayName", r#"a"b\c"#).unwrap(),
            r#""displayName:a\"b\\c""#
        );
    }
}
