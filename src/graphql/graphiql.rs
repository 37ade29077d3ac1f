//! GraphiQL, served by the gateway itself with every file compiled into the binary.
//!
//! `GET /graphiql` is the page, `GET /graphiql/assets/{file}` its scripts and styles.
//! Nothing is loaded from any other host: GraphiQL's CSS carries its fonts and images
//! as `data:` URLs, and the page's Content-Security-Policy forbids everything but the
//! gateway's own origin. The page has no inline script: `assets/init.js` reads the
//! settings from a `<script type="application/json" id="graphiql-settings">` block.
//! It also keeps headers (bearer tokens) out of the browser's localStorage, and gives
//! the introspection GraphiQL fires on load, before its headers pane exists, the
//! default headers, so an endpoint that wants a token still yields docs and completion.
//!
//! The vendored bundles, their versions and how to refresh them: `assets/README.md`.

use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the page is served.
pub const PAGE_PATH: &str = "/graphiql";
/// Every asset URL starts with this; the file name follows.
pub const ASSETS_PREFIX: &str = "/graphiql/assets/";

/// npm `graphiql` version of `assets/graphiql.min.{js,css}`.
const GRAPHIQL_VERSION: &str = "4.1.2";
/// npm `react` and `react-dom` version of `assets/react*.production.min.js`.
const REACT_VERSION: &str = "18.3.1";

static GRAPHIQL_JS: &[u8] = include_bytes!("assets/graphiql.min.js");
static GRAPHIQL_CSS: &[u8] = include_bytes!("assets/graphiql.min.css");
static REACT_JS: &[u8] = include_bytes!("assets/react.production.min.js");
static REACT_DOM_JS: &[u8] = include_bytes!("assets/react-dom.production.min.js");
static INIT_JS: &[u8] = include_bytes!("assets/init.js");
static PAGE_CSS: &[u8] = include_bytes!("assets/page.css");
static FAVICON: &[u8] = include_bytes!("assets/favicon.svg");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const HTML: &str = "text/html; charset=utf-8";

/// A year, and never revalidated: every asset name carries its version or content hash.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// What the GraphiQL page is set up with.
#[derive(Clone, Debug)]
pub struct GraphiqlSettings {
    /// The GraphQL endpoint, e.g. `"/graphql"`. Resolved against the page's location, so a
    /// path is the usual value. It must be on the gateway's own origin: the page's
    /// Content-Security-Policy allows `connect-src 'self'` only.
    pub endpoint: String,
    /// JSON text pre-filled into the headers pane, e.g. `{"Authorization":"Bearer eyJ…"}`.
    /// When set, the headers pane is open. Headers are never persisted in the browser.
    pub default_headers: Option<String>,
    /// The query shown in a fresh editor (GraphiQL's own welcome text when `None`).
    pub default_query: Option<String>,
    /// The page's `<title>`.
    pub title: String,
}

impl Default for GraphiqlSettings {
    fn default() -> Self {
        Self {
            endpoint: "/graphql".to_owned(),
            default_headers: None,
            default_query: None,
            title: "GraphiQL".to_owned(),
        }
    }
}

/// Router serving GET /graphiql (the page) and GET /graphiql/assets/{file} (the embedded files).
///
/// Merge it at the root of the app (`app.merge(graphiql::router(settings))`), not under
/// `nest`: the page refers to its assets by the absolute paths above.
pub fn router<S: Clone + Send + Sync + 'static>(settings: GraphiqlSettings) -> Router<S> {
    let page = Arc::new(Page::new(&settings));
    Router::new()
        .route(
            PAGE_PATH,
            get(move || {
                let page = Arc::clone(&page);
                async move { page.respond() }
            }),
        )
        .route("/graphiql/assets/{file}", get(serve_asset))
}

/// One embedded file, under a name that changes whenever its content does.
struct Asset {
    name: String,
    body: &'static [u8],
    content_type: &'static str,
}

static ASSETS: LazyLock<[Asset; 7]> = LazyLock::new(|| {
    let asset = |name: String, body, content_type| Asset {
        name,
        body,
        content_type,
    };
    [
        asset(
            format!("react-{REACT_VERSION}.production.min.js"),
            REACT_JS,
            JS,
        ),
        asset(
            format!("react-dom-{REACT_VERSION}.production.min.js"),
            REACT_DOM_JS,
            JS,
        ),
        asset(
            format!("graphiql-{GRAPHIQL_VERSION}.min.js"),
            GRAPHIQL_JS,
            JS,
        ),
        asset(
            format!("graphiql-{GRAPHIQL_VERSION}.min.css"),
            GRAPHIQL_CSS,
            CSS,
        ),
        // Ours: no package version, so the name carries a hash of the content.
        asset(format!("init-{:016x}.js", fnv1a64(INIT_JS)), INIT_JS, JS),
        asset(
            format!("page-{:016x}.css", fnv1a64(PAGE_CSS)),
            PAGE_CSS,
            CSS,
        ),
        asset(
            format!("favicon-{:016x}.svg", fnv1a64(FAVICON)),
            FAVICON,
            SVG,
        ),
    ]
});

// Positions in ASSETS.
const REACT: usize = 0;
const REACT_DOM: usize = 1;
const GRAPHIQL: usize = 2;
const GRAPHIQL_STYLE: usize = 3;
const INIT: usize = 4;
const PAGE_STYLE: usize = 5;
const ICON: usize = 6;

fn asset_url(index: usize) -> String {
    format!("{ASSETS_PREFIX}{}", ASSETS[index].name)
}

async fn serve_asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == file) else {
        return (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            "no such GraphiQL asset\n",
        )
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, ASSET_CACHE_CONTROL),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from(asset.body),
    )
        .into_response()
}

/// The page, rendered once; only the per-response style nonce goes between the halves.
struct Page {
    before_nonce: String,
    after_nonce: String,
}

impl Page {
    fn new(settings: &GraphiqlSettings) -> Self {
        let mut head = String::new();
        head.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n");
        head.push_str("<meta charset=\"utf-8\">\n");
        head.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        head.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
        let _ = writeln!(head, "<title>{}</title>", html_escape(&settings.title));
        let _ = writeln!(
            head,
            "<link rel=\"icon\" type=\"image/svg+xml\" href=\"{}\">",
            asset_url(ICON)
        );
        for css in [GRAPHIQL_STYLE, PAGE_STYLE] {
            let _ = writeln!(
                head,
                "<link rel=\"stylesheet\" href=\"{}\">",
                asset_url(css)
            );
        }
        head.push_str("</head>\n<body>\n<div id=\"graphiql\">Loading GraphiQL…</div>\n");
        head.push_str("<script type=\"application/json\" id=\"graphiql-settings\">{");
        head.push_str("\"endpoint\":");
        push_json_string(&mut head, &settings.endpoint);
        head.push_str(",\"headers\":");
        push_json_opt(&mut head, settings.default_headers.as_deref());
        head.push_str(",\"query\":");
        push_json_opt(&mut head, settings.default_query.as_deref());
        head.push_str(",\"styleNonce\":\"");

        let mut tail = String::from("\"}</script>\n");
        for js in [REACT, REACT_DOM, GRAPHIQL, INIT] {
            let _ = writeln!(tail, "<script src=\"{}\"></script>", asset_url(js));
        }
        tail.push_str("</body>\n</html>\n");
        Self {
            before_nonce: head,
            after_nonce: tail,
        }
    }

    fn respond(&self) -> Response {
        let nonce = style_nonce();
        let html = format!("{}{nonce}{}", self.before_nonce, self.after_nonce);
        // Scripts, styles and requests: this origin only. The one exception is the
        // nonce'd <style> that GraphiQL's dialogs inject (react-remove-scroll); fonts
        // and small images come as data: URLs inside graphiql.min.css.
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        let csp = HeaderValue::from_str(&csp).expect("the nonce is hex");
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(HTML)),
                (header::CONTENT_SECURITY_POLICY, csp),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                // The page may carry a bearer token in its default headers.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            html,
        )
            .into_response()
    }
}

/// 128 bits, fresh for every response, for the CSP style nonce. `RandomState` keys
/// SipHash with per-thread keys seeded from the OS's randomness (and changed for every
/// `RandomState`), so the output can't be predicted from outside. It guards only the
/// style-src exception; scripts need no nonce.
fn style_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let (a, b) = (state.hash_one((count, 0u8)), state.hash_one((count, 1u8)));
    format!("{a:016x}{b:016x}")
}

/// FNV-1a, for content-hashed asset names.
const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn push_json_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => push_json_string(out, value),
        None => out.push_str("null"),
    }
}

/// A JSON string literal that is also inert inside an HTML `<script>` element: `<`, `>`
/// and `&` are written as `\u003c`, `\u003e`, `\u0026` (so neither `</script>` nor
/// `<!--` can appear), and U+2028/U+2029 as escapes too.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::http::{HeaderMap, Request};
    use tower::ServiceExt as _;

    struct Fetched {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Fetched {
        fn text(&self) -> String {
            String::from_utf8(self.body.clone()).expect("UTF-8 body")
        }

        fn header(&self, name: header::HeaderName) -> &str {
            self.headers
                .get(&name)
                .unwrap_or_else(|| panic!("no {name} header"))
                .to_str()
                .expect("ASCII header")
        }
    }

    async fn fetch(settings: GraphiqlSettings, uri: &str) -> Fetched {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        let response = router::<()>(settings)
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Fetched {
            status,
            headers,
            body,
        }
    }

    fn with_headers(headers: &str) -> GraphiqlSettings {
        GraphiqlSettings {
            default_headers: Some(headers.to_owned()),
            ..GraphiqlSettings::default()
        }
    }

    /// Every `src=` and `href=` value in the page (the page writes them double-quoted).
    fn referenced_urls(html: &str) -> Vec<String> {
        let mut urls = Vec::new();
        for attribute in ["src=", "href="] {
            for (at, _) in html.match_indices(attribute) {
                let rest = &html[at + attribute.len()..];
                let rest = rest
                    .strip_prefix('"')
                    .unwrap_or_else(|| panic!("unquoted {attribute} in {html}"));
                let end = rest.find('"').expect("closing quote");
                urls.push(rest[..end].to_owned());
            }
        }
        urls
    }

    /// The text inside `<script type="application/json" id="graphiql-settings">`.
    fn settings_block(html: &str) -> &str {
        let open = "<script type=\"application/json\" id=\"graphiql-settings\">";
        let start = html.find(open).expect("settings block") + open.len();
        let len = html[start..]
            .find("</script>")
            .expect("end of settings block");
        &html[start..start + len]
    }

    #[tokio::test]
    async fn the_page_is_html_and_loads_every_asset_from_the_gateway_itself() {
        let page = fetch(GraphiqlSettings::default(), "/graphiql").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.header(header::CONTENT_TYPE), HTML);
        let html = page.text();
        assert!(html.starts_with("<!doctype html>"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );

        let urls = referenced_urls(&html);
        assert_eq!(urls.len(), 7, "{urls:?}");
        for url in &urls {
            assert!(
                url.starts_with(ASSETS_PREFIX),
                "{url} is not an embedded asset"
            );
        }
        assert!(urls.iter().any(|u| u.contains("graphiql-4.1.2.min.js")));
        assert!(
            urls.iter()
                .any(|u| u.contains("react-dom-18.3.1.production.min.js"))
        );
    }

    #[tokio::test]
    async fn every_asset_the_page_references_is_served_with_its_content_type_and_a_year_of_caching()
    {
        let html = fetch(GraphiqlSettings::default(), "/graphiql").await.text();
        for url in referenced_urls(&html) {
            let asset = fetch(GraphiqlSettings::default(), &url).await;
            assert_eq!(asset.status, StatusCode::OK, "{url}");
            let expected = match url.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => CSS,
                Some("svg") => SVG,
                _ => panic!("unexpected asset type: {url}"),
            };
            assert_eq!(asset.header(header::CONTENT_TYPE), expected, "{url}");
            assert_eq!(asset.header(header::CACHE_CONTROL), ASSET_CACHE_CONTROL);
            assert_eq!(asset.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            let embedded = ASSETS
                .iter()
                .find(|a| url.ends_with(&a.name))
                .expect("served from ASSETS");
            assert_eq!(asset.body, embedded.body, "{url}");
        }
    }

    #[tokio::test]
    async fn the_page_is_sent_with_a_strict_content_security_policy_and_no_framing_or_referrer() {
        let page = fetch(with_headers(r#"{"Authorization":"Bearer t"}"#), "/graphiql").await;
        let csp = page.header(header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "connect-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe-"), "{csp}");
        assert!(!csp.contains("http"), "{csp}");
        assert_eq!(page.header(header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(page.header(header::REFERRER_POLICY), "no-referrer");
        assert_eq!(page.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(page.header(header::CACHE_CONTROL), "no-store");
    }

    #[tokio::test]
    async fn each_page_gets_a_fresh_style_nonce_that_matches_its_policy() {
        let mut nonces = Vec::new();
        for _ in 0..2 {
            let page = fetch(GraphiqlSettings::default(), "/graphiql").await;
            let csp = page.header(header::CONTENT_SECURITY_POLICY).to_owned();
            let html = page.text();
            let settings = settings_block(&html).to_owned();
            let nonce = settings
                .split("\"styleNonce\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("styleNonce")
                .to_owned();
            assert_eq!(nonce.len(), 32);
            assert!(
                csp.contains(&format!("style-src 'self' 'nonce-{nonce}';")),
                "{csp}"
            );
            nonces.push(nonce);
        }
        assert_ne!(nonces[0], nonces[1]);
    }

    #[tokio::test]
    async fn the_settings_block_carries_the_endpoint_headers_and_query_as_json() {
        let settings = GraphiqlSettings {
            endpoint: "/graphql".to_owned(),
            default_headers: Some(r#"{"Authorization":"Bearer abc"}"#.to_owned()),
            default_query: Some("{ me { id } }".to_owned()),
            title: "Gateway".to_owned(),
        };
        let html = fetch(settings, "/graphiql").await.text();
        let block = settings_block(&html);
        assert!(
            block.starts_with(
                r#"{"endpoint":"/graphql","headers":"{\"Authorization\":\"Bearer abc\"}","query":"{ me { id } }","styleNonce":""#
            ),
            "{block}"
        );
        assert!(html.contains("<title>Gateway</title>"));

        let html = fetch(GraphiqlSettings::default(), "/graphiql").await.text();
        assert!(settings_block(&html).contains(r#""headers":null,"query":null"#));
    }

    #[tokio::test]
    async fn a_default_header_value_cannot_break_out_of_the_settings_script() {
        let hostile = "{\"X\":\"</script><script>alert(1)</script><!-- \u{2028}\u{2029} & \"}";
        let settings = GraphiqlSettings {
            title: "</title><script>alert(2)</script>".to_owned(),
            default_query: Some("</SCRIPT><script>alert(3)</script>".to_owned()),
            ..with_headers(hostile)
        };
        let html = fetch(settings, "/graphiql").await.text();

        assert!(!html.contains("alert(1)</script>"), "{html}");
        assert!(
            !html.to_ascii_lowercase().contains("<script>alert"),
            "{html}"
        );
        // Exactly the page's own five script elements: the settings block and four sources.
        assert_eq!(html.matches("<script").count(), 5, "{html}");
        assert_eq!(html.matches("</script>").count(), 5, "{html}");

        let block = settings_block(&html);
        assert!(
            !block.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
            "{block}"
        );
        assert!(block.contains(
            r#""headers":"{\"X\":\"\u003c/script\u003e\u003cscript\u003ealert(1)\u003c/script\u003e\u003c!-- \u2028\u2029 \u0026 \"}""#
        ), "{block}");
        assert!(
            html.contains("<title>&lt;/title&gt;&lt;script&gt;alert(2)&lt;/script&gt;</title>")
        );
    }

    #[tokio::test]
    async fn an_unknown_asset_is_not_found() {
        for uri in [
            "/graphiql/assets/nope.js",
            "/graphiql/assets/graphiql-0.0.0.min.js",
            "/graphiql/assets/init.js",
            "/graphiql/assets/..%2Fgraphiql.rs",
        ] {
            let response = fetch(GraphiqlSettings::default(), uri).await;
            assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        }
    }

    #[test]
    fn json_strings_escape_quotes_controls_and_line_separators() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\n\r\t\u{1}é\u{2028}");
        assert_eq!(out, r#""a\"b\\c\n\r\t\u0001é\u2028""#);
    }
}
