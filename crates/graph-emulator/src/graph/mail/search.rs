//! `$search` on messages: a KQL subset (graph-protocol.md §5.5).
//!
//! The value sits in double quotes: `$search="pizza"`, `$search="from:alice subject:invoice"`.
//! Terms: bare words (matched against from, subject and body), `from:`, `to:`, `cc:`,
//! `participants:`, `subject:`, `body:`, `attachment:` (attachment names), `category:`,
//! `hasAttachments:true|false`, `isRead:true|false`, `importance:high`, and dates
//! `received:2024-05-01`, `received>=2024-05-01` (also `>`, `<`, `<=`, `=`; `sent` alike;
//! dates as `YYYY-MM-DD`, `MM/DD/YYYY` or RFC 3339). Adjacent terms and `AND` must all match;
//! `OR` separates alternatives (`AND` binds tighter). Text matches are case-insensitive word
//! prefixes, as KQL's (`invoice` finds "Invoices"); a value with punctuation (an address)
//! matches as a substring. Unknown `property:value` terms are plain words, as in KQL.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use super::super::errors::GraphError;
use crate::mail::text::html_to_text;
use crate::mail::{Message, Recipient};

/// "$search on messages returns up to 250 results."
pub(crate) const MAX_RESULTS: usize = 250;

#[derive(Clone, Debug, PartialEq)]
enum Term {
    Text(String),
    From(String),
    To(String),
    Cc(String),
    Participants(String),
    Subject(String),
    Body(String),
    Attachment(String),
    Category(String),
    HasAttachments(bool),
    IsRead(bool),
    Importance(String),
    /// (sent instead of received, comparison, start, end): a day is `[midnight, +24 h)`, an
    /// RFC 3339 instant `[t, t + 1 s)`.
    Date(bool, Cmp, i64, i64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Day,
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Clone, Debug)]
pub(crate) struct MailSearch {
    any_of: Vec<Vec<Term>>,
}

fn syntax(detail: &str) -> GraphError {
    GraphError::bad_request(format!("Syntax error in $search: {detail}"))
}

/// `(start, end)` of a date or instant.
fn parse_day(s: &str) -> Option<(i64, i64)> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some((t.unix_timestamp(), t.unix_timestamp() + 1));
    }
    let (y, m, d) = if let [y, m, d] = s.split('-').collect::<Vec<_>>()[..] {
        (y, m, d)
    } else if let [m, d, y] = s.split('/').collect::<Vec<_>>()[..] {
        (y, m, d)
    } else {
        return None;
    };
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    let start = date.midnight().assume_utc().unix_timestamp();
    Some((start, start + 86_400))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

fn term(word: &str) -> Result<Term, GraphError> {
    for (prefix, sent) in [("received", false), ("sent", true)] {
        let lower = word.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix(prefix) {
            let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
                (Cmp::Ge, v)
            } else if let Some(v) = rest.strip_prefix("<=") {
                (Cmp::Le, v)
            } else if let Some(v) = rest.strip_prefix('>') {
                (Cmp::Gt, v)
            } else if let Some(v) = rest.strip_prefix('<') {
                (Cmp::Lt, v)
            } else if let Some(v) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('=')) {
                (Cmp::Day, v)
            } else {
                continue;
            };
            let (start, end) = parse_day(&word[word.len() - value.len()..])
                .ok_or_else(|| syntax(&format!("'{word}' has no valid date.")))?;
            return Ok(Term::Date(sent, cmp, start, end));
        }
    }
    let Some((prop, value)) = word.split_once(':') else {
        return Ok(Term::Text(word.to_lowercase()));
    };
    let value_lower = value.trim_matches('\'').to_lowercase();
    let boolean =
        |v: &str| parse_bool(v).ok_or_else(|| syntax(&format!("'{word}' needs true or false.")));
    Ok(match prop.to_ascii_lowercase().as_str() {
        "from" => Term::From(value_lower),
        "to" => Term::To(value_lower),
        "cc" => Term::Cc(value_lower),
        "participants" => Term::Participants(value_lower),
        "subject" => Term::Subject(value_lower),
        "body" => Term::Body(value_lower),
        "attachment" | "attachments" => Term::Attachment(value_lower),
        "category" | "categories" => Term::Category(value_lower),
        "hasattachments" | "hasattachment" => Term::HasAttachments(boolean(value)?),
        "isread" => Term::IsRead(boolean(value)?),
        "importance" => Term::Importance(value_lower),
        _ => Term::Text(word.to_lowercase()),
    })
}

impl MailSearch {
    /// Parses the raw `$search` value, quotes included.
    pub fn parse(raw: &str) -> Result<MailSearch, GraphError> {
        let raw = raw.trim();
        let inner = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .filter(|_| raw.len() >= 2)
            .ok_or_else(|| {
                syntax("the value must be enclosed in double quotes, e.g. $search=\"pizza\".")
            })?;
        let mut any_of: Vec<Vec<Term>> = vec![Vec::new()];
        let mut expect_term = true;
        for word in inner.split_whitespace() {
            match word {
                "OR" => {
                    if expect_term {
                        return Err(syntax("OR needs a term on both sides."));
                    }
                    any_of.push(Vec::new());
                    expect_term = true;
                }
                "AND" => {
                    if expect_term {
                        return Err(syntax("AND needs a term on both sides."));
                    }
                    expect_term = true;
                }
                _ => {
                    let t = term(word)?;
                    if let Some(all) = any_of.last_mut() {
                        all.push(t);
                    }
                    expect_term = false;
                }
            }
        }
        if expect_term {
            return Err(syntax("the search is empty or ends with an operator."));
        }
        Ok(MailSearch { any_of })
    }

    pub fn matches(&self, m: &Message) -> bool {
        let body = if m.body.html {
            html_to_text(&m.body.content)
        } else {
            m.body.content.clone()
        }
        .to_lowercase();
        self.any_of
            .iter()
            .any(|all| all.iter().all(|t| term_matches(t, m, &body)))
    }
}

/// `needle` (lower-case) in `hay`: a word prefix, or a substring when it has punctuation.
fn text_match(hay: &str, needle: &str) -> bool {
    let hay = hay.to_lowercase();
    if needle.chars().all(char::is_alphanumeric) {
        hay.split(|c: char| !c.is_alphanumeric())
            .any(|word| word.starts_with(needle))
    } else {
        hay.contains(needle)
    }
}

fn recipient_matches(r: &Recipient, needle: &str) -> bool {
    text_match(&r.name, needle) || text_match(&r.address, needle)
}

fn term_matches(t: &Term, m: &Message, body: &str) -> bool {
    let from = |n: &str| m.from.as_ref().is_some_and(|r| recipient_matches(r, n));
    let any = |list: &[Recipient], n: &str| list.iter().any(|r| recipient_matches(r, n));
    match t {
        Term::Text(w) => from(w) || text_match(&m.subject, w) || text_match(body, w),
        Term::From(w) => from(w),
        Term::To(w) => any(&m.to, w),
        Term::Cc(w) => any(&m.cc, w),
        Term::Participants(w) => from(w) || any(&m.to, w) || any(&m.cc, w) || any(&m.bcc, w),
        Term::Subject(w) => text_match(&m.subject, w),
        Term::Body(w) => text_match(body, w),
        Term::Attachment(w) => m.attachments.iter().any(|a| text_match(&a.name, w)),
        Term::Category(w) => m.categories.iter().any(|c| text_match(c, w)),
        Term::HasAttachments(b) => m.has_attachments() == *b,
        Term::IsRead(b) => m.is_read == *b,
        Term::Importance(w) => m.importance == w,
        Term::Date(sent, cmp, start, end) => {
            let t = if *sent { m.sent } else { m.received };
            match cmp {
                Cmp::Day => t >= *start && t < *end,
                Cmp::Ge => t >= *start,
                Cmp::Gt => t >= *end,
                Cmp::Le => t < *end,
                Cmp::Lt => t < *start,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_need_quotes_and_operands() {
        assert!(MailSearch::parse("pizza").is_err());
        assert!(MailSearch::parse("\"\"").is_err());
        assert!(MailSearch::parse("\"a OR\"").is_err());
        assert!(MailSearch::parse("\"received>=2024-13-01\"").is_err());
        assert!(MailSearch::parse("\"from:a AND subject:b OR hasAttachments:true\"").is_ok());
        assert_eq!(parse_day("05/01/2024"), parse_day("2024-05-01"));
    }
}
