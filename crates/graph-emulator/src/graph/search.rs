//! Directory `$search`: `"displayName:wa" OR "mail:x" AND "jobTitle:eng"` (§5.5).
//!
//! Each clause sits in double quotes as `property:text` (with `\"` and `\\` escapes); `AND`
//! and `OR` stand outside the quotes in upper case, `AND` binding tighter. `displayName` and
//! `description` match word by word (tokenised); other properties match by prefix.

use serde_json::Value;

use super::errors::GraphError;
use super::schema::{self, Kind, SearchMode};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Search {
    /// Disjunction of conjunctions of clauses.
    any_of: Vec<Vec<Clause>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Clause {
    property: &'static str,
    mode: SearchMode,
    text: String,
}

fn invalid(detail: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid $search clause: {detail}"))
}

impl Search {
    pub fn parse(raw: &str, kind: Kind) -> Result<Search, GraphError> {
        let chars: Vec<char> = raw.chars().collect();
        let mut i = 0;
        let mut any_of: Vec<Vec<Clause>> = vec![Vec::new()];
        let skip_ws = |i: &mut usize| {
            while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
                *i += 1;
            }
        };
        loop {
            skip_ws(&mut i);
            if chars.get(i) != Some(&'"') {
                return Err(invalid("each clause must be a quoted \"property:text\"."));
            }
            i += 1;
            let mut body = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(invalid("unterminated quoted clause.")),
                    Some('\\') => {
                        let escaped = chars
                            .get(i + 1)
                            .ok_or_else(|| invalid("dangling escape."))?;
                        body.push(*escaped);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        body.push(c);
                        i += 1;
                    }
                }
            }
            let (name, text) = body
                .split_once(':')
                .ok_or_else(|| invalid("each clause must have the form \"property:text\"."))?;
            let prop = schema::filter_property(kind, name.trim())
                .filter(|p| p.search != SearchMode::No)
                .ok_or_else(|| {
                    GraphError::unsupported_query(format!(
                        "Unsupported or invalid search clause specified for property '{}' of resource '{}'.",
                        name.trim(),
                        kind.resource_name()
                    ))
                })?;
            if let Some(current) = any_of.last_mut() {
                current.push(Clause {
                    property: prop.name,
                    mode: prop.search,
                    text: text.to_lowercase(),
                });
            }
            skip_ws(&mut i);
            if i >= chars.len() {
                break;
            }
            let rest: String = chars[i..].iter().collect();
            if rest.starts_with("AND") {
                i += 3;
            } else if rest.starts_with("OR") {
                i += 2;
                any_of.push(Vec::new());
            } else {
                return Err(invalid("clauses must be joined by AND or OR."));
            }
        }
        Ok(Search { any_of })
    }

    pub fn matches(&self, get: &dyn Fn(&str) -> Option<Value>) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|clause| clause.matches(get)))
    }
}

impl Clause {
    fn matches(&self, get: &dyn Fn(&str) -> Option<Value>) -> bool {
        let Some(Value::String(value)) = get(self.property) else {
            return false;
        };
        let value = value.to_lowercase();
        match self.mode {
            SearchMode::StartsWith => value.starts_with(&self.text),
            SearchMode::Tokenized => {
                let tokens = tokens(&value);
                tokens_of_query(&self.text)
                    .iter()
                    .all(|term| tokens.iter().any(|t| t.starts_with(term.as_str())))
            }
            SearchMode::No => false,
        }
    }
}

/// Splits on anything that is not a letter or digit ("O'Brien" → "o", "brien"; "a-b" → "a", "b").
fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn tokens_of_query(s: &str) -> Vec<String> {
    let t = tokens(s);
    if t.is_empty() { vec![String::new()] } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(search: &str, v: Value) -> bool {
        let s = Search::parse(search, Kind::User).expect("parse");
        s.matches(&|name: &str| v.get(name).cloned())
    }

    #[test]
    fn display_name_matches_word_prefixes_and_others_match_whole_prefixes() {
        let v = json!({"displayName": "Oscar Ward", "mail": "oscar.ward@x.example"});
        assert!(matches("\"displayName:wa\"", v.clone()));
        assert!(!matches("\"displayName:ar\"", v.clone()));
        assert!(matches("\"mail:oscar\"", v.clone()));
        assert!(!matches("\"mail:ward\"", v.clone()));
        assert!(matches("\"displayName:zz\" OR \"mail:osc\"", v.clone()));
        assert!(!matches("\"displayName:wa\" AND \"mail:zz\"", v));
    }

    #[test]
    fn escapes_and_malformed_clauses() {
        let v = json!({"displayName": "Say \"hi\""});
        assert!(matches(r#""displayName:\"hi""#, v));
        assert!(Search::parse("displayName:wa", Kind::User).is_err());
        assert!(Search::parse("\"displayName:wa\" XOR \"mail:a\"", Kind::User).is_err());
        let err = Search::parse("\"accountEnabled:true\"", Kind::User).expect_err("unsupported");
        assert_eq!(err.code, "Request_UnsupportedQuery");
    }
}
