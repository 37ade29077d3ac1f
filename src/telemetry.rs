//! Logging. `RUST_LOG` wins over the configured level so an operator can turn on debug
//! output without editing config.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide Prometheus recorder, installed on first use. Every `App` in the
/// process (tests start many) renders the same registry.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .expect("the only metrics recorder");
        // The exporter has no listener of its own here, so histogram upkeep is ours.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("a thread");
        handle
    })
}

/// A request refused by the caller's own rate limit (`kind`: requests or cost).
pub fn record_rate_limited(caller: &str, kind: &'static str) {
    metrics::counter!("gateway_rate_limited_total", "caller" => caller.to_owned(), "kind" => kind)
        .increment(1);
}

/// A low-cardinality label for a Graph URL: ids become `{id}`, the query is dropped.
/// `/users/ann@contoso.com/directReports?$top=5` → `/users/{id}/directReports`.
pub fn graph_route(url: &str) -> String {
    const COLLECTIONS: &[&str] = &[
        "users",
        "groups",
        "messages",
        "mailFolders",
        "events",
        "calendars",
        "contacts",
        "contactFolders",
        "drives",
        "items",
        "sites",
        "subscriptions",
        "attachments",
        "directoryRoles",
        "lists",
    ];
    let path = hide_item_paths(url.split('?').next().unwrap_or_default());
    let path = path.as_str();
    let mut out = String::new();
    let mut previous = "";
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if COLLECTIONS.contains(&previous) && !segment.starts_with('$') {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
        previous = segment;
    }
    if out.is_empty() { "/".to_owned() } else { out }
}

/// Path-based addressing (`root:/Q1/report.pdf:`, a site's `host:/sites/x:`) names files
/// and sites: each such path becomes `{path}` so labels stay few and say nothing private.
fn hide_item_paths(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find(":/") {
        out.push_str(&rest[..start]);
        out.push_str(":{path}");
        let after = &rest[start + 2..];
        match after.find(':') {
            Some(end) => {
                out.push(':');
                rest = &after[end + 1..];
            }
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::graph_route;

    #[test]
    fn graph_routes_hide_ids_and_queries() {
        assert_eq!(
            graph_route("/users/ann@contoso.com/directReports/microsoft.graph.user?$top=5"),
            "/users/{id}/directReports/microsoft.graph.user"
        );
        assert_eq!(graph_route("/users?$select=id"), "/users");
        assert_eq!(graph_route("/users/$count"), "/users/$count");
        assert_eq!(graph_route("/$batch"), "/$batch");
        assert_eq!(
            graph_route("/drives/b!x/root:/Q1 secret/report.pdf:/content"),
            "/drives/{id}/root:{path}:/content"
        );
        assert_eq!(
            graph_route("/sites/contoso.sharepoint.com:/sites/finance:/drives"),
            "/sites/{id}/drives"
        );
    }
}
