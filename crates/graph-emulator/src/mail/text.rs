//! Message bodies: HTML ↔ text as Exchange converts them for
//! `Prefer: outlook.body-content-type`, `bodyPreview`, and HTML escaping for seeded mail.

/// Escapes text for an HTML body.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps plain text in the minimal HTML document Exchange produces: line breaks become `<br>`.
pub(crate) fn text_to_html(text: &str) -> String {
    let escaped = escape_html(text)
        .replace("\r\n", "\n")
        .replace('\n', "<br>\r\n");
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{escaped}</div>\r\n</body>\r\n</html>\r\n"
    )
}

/// HTML → text: drops `head`/`style`/`script`, turns block ends and `<br>` into line breaks,
/// strips the other tags and decodes the common entities.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut skip_until: Option<&'static str> = None;
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&decode_entities(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            // A lone '<': text, not a tag.
            if skip_until.is_none() {
                out.push_str(&decode_entities(&rest[open..]));
            }
            rest = "";
            break;
        };
        let tag = after[..close].trim();
        rest = &after[close + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("head", false) => skip_until = Some("head"),
            ("style", false) => skip_until = Some("style"),
            ("script", false) => skip_until = Some("script"),
            ("br", _) => out.push_str("\r\n"),
            ("p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => {
                out.push_str("\r\n")
            }
            ("hr", _) => out.push_str("\r\n________________________________\r\n"),
            _ => {}
        }
    }
    if skip_until.is_none() {
        out.push_str(&decode_entities(rest));
    }
    // Collapse runs of blank lines and trim the ends.
    let mut lines: Vec<&str> = Vec::new();
    let mut blank = 0;
    for line in out.split("\r\n").flat_map(|l| l.split('\n')) {
        let line = line.trim();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
            lines.push("");
        } else {
            blank = 0;
            lines.push(line);
        }
    }
    lines.join("\r\n").trim().to_string()
}

/// A text node: source line breaks are whitespace in HTML; entities decoded.
fn decode_entities(s: &str) -> String {
    let s = s.replace("\r\n", " ").replace(['\n', '\r'], " ");
    if !s.contains('&') {
        return s;
    }
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `bodyPreview`: the first 255 characters of the body as text.
pub(crate) fn preview(html: bool, content: &str) -> String {
    let text = if html {
        html_to_text(content)
    } else {
        content.trim().to_string()
    };
    text.chars().take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text_and_back() {
        let html = "<html><head><style>p{}</style></head><body><p>Hi &amp; welcome,</p><p>Line<br>two</p></body></html>";
        assert_eq!(html_to_text(html), "Hi & welcome,\r\nLine\r\ntwo");
        let back = text_to_html("a < b\r\nc");
        assert!(back.starts_with("<html>"));
        assert!(back.contains("a &lt; b<br>\r\nc"));
        assert_eq!(html_to_text(&back), "a < b\r\nc");
        assert_eq!(html_to_text("1 < 2"), "1 < 2");
    }

    #[test]
    fn previews_are_at_most_255_characters() {
        let long = "é".repeat(300);
        assert_eq!(preview(false, &long).chars().count(), 255);
        assert_eq!(preview(true, "<p>x</p>"), "x");
    }
}
