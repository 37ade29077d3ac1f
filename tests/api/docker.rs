//! The container files agree with the binary: every command and health check in
//! `docker/compose.yaml` and `docker/Dockerfile` is a real subcommand with real flags, and
//! every gateway service's configuration, as composed (file + environment), passes
//! `m365-gateway check-config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::gateway;
use crate::helpers::spawn_app;

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(docker_dir().join("compose.yaml")).unwrap();
    yaml_serde::from_str(&text).expect("compose.yaml is YAML")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `${NAME:-default}` as compose resolves it when `NAME` is unset.
fn compose_value(raw: &str) -> String {
    match raw
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|r| r.split_once(":-"))
    {
        Some((_, default)) => default.to_owned(),
        None => raw.to_owned(),
    }
}

/// Checks that `args` (after the binary's name) name a subcommand, and that each of its
/// `--flags` is one the subcommand's help lists.
fn assert_cli_accepts(args: &[String], context: &str) {
    let sub = &args[0];
    let help = gateway().arg(sub).arg("--help").output().unwrap();
    assert!(help.status.success(), "{context}: no subcommand '{sub}'");
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(text.contains(name), "{context}: '{sub}' has no flag {name}");
    }
}

#[test]
fn every_gateway_service_in_compose_passes_check_config_as_composed() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let mut checked = Vec::new();
    for (name, service) in services {
        if service["image"] != "m365-gateway:local" {
            continue;
        }
        let command = strings(&service["command"]);
        assert_cli_accepts(&command, &format!("service {name}"));
        let health = strings(&service["healthcheck"]["test"]);
        assert_eq!(
            health.get(..2),
            Some(&["CMD".to_owned(), "m365-gateway".to_owned()][..]),
            "{name}"
        );
        assert_cli_accepts(&health[2..], &format!("service {name} healthcheck"));
        if command[0] != "serve" {
            continue;
        }
        // The --config path inside the container, mapped back through the volumes.
        let inside = command
            .iter()
            .skip_while(|a| *a != "--config")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: serve without --config"));
        let host = strings(&service["volumes"])
            .into_iter()
            .find_map(|v| {
                let mut parts = v.split(':');
                let (host, container) = (parts.next()?, parts.next()?);
                (container == inside).then(|| docker_dir().join(host))
            })
            .unwrap_or_else(|| panic!("{name}: {inside} is not mounted"));
        let environment: BTreeMap<String, String> = service["environment"]
            .as_object()
            .map(|e| {
                e.iter()
                    .map(|(k, v)| (k.clone(), compose_value(v.as_str().unwrap_or_default())))
                    .collect()
            })
            .unwrap_or_default();
        // Traces go to the collector of the same compose project.
        assert_eq!(
            environment
                .get("M365GW_TELEMETRY__OTLP_ENDPOINT")
                .map(String::as_str),
            Some("http://otel-collector:4318"),
            "{name}"
        );
        let output = gateway()
            .arg("check-config")
            .arg("--config")
            .arg(&host)
            .envs(&environment)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: check-config failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        checked.push(name.clone());
    }
    assert_eq!(checked, ["gateway-1", "gateway-2"], "two gateway replicas");
    // The load balancer sends traffic to exactly those replicas.
    let nginx = std::fs::read_to_string(docker_dir().join("nginx.conf")).unwrap();
    for replica in &checked {
        assert!(
            nginx.contains(&format!("server {replica}:8080;")),
            "{replica}"
        );
    }
    for other in ["lb", "postgres", "redis", "otel-collector", "emulator"] {
        assert!(services.contains_key(other), "compose lacks {other}");
    }
}

#[test]
fn the_dockerfile_runs_real_subcommands_as_a_non_root_user() {
    let text = std::fs::read_to_string(docker_dir().join("Dockerfile")).unwrap();
    let json_args = |prefix: &str| -> Vec<String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line"));
        let start = line.find('[').unwrap();
        serde_json::from_str(&line[start..]).unwrap()
    };
    assert_eq!(json_args("ENTRYPOINT"), ["m365-gateway"]);
    assert_cli_accepts(&json_args("CMD [\"serve"), "CMD");
    let health = json_args("CMD [\"m365-gateway\", \"health\"");
    assert_cli_accepts(&health[1..], "HEALTHCHECK");
    assert!(text.contains("USER 10001"), "runs as a non-root user");
    assert!(text.contains("EXPOSE 8080") && text.contains("ENV M365GW_LISTEN=0.0.0.0:8080"));
    // The image's environment alone is a valid configuration (the embedded default).
    let output = gateway()
        .arg("check-config")
        .env("M365GW_LISTEN", "0.0.0.0:8080")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_health_subcommand_says_whether_the_gateway_answers() {
    let app = spawn_app().await;
    let url = format!("{}/healthz", app.base);
    let ok =
        tokio::task::spawn_blocking(move || gateway().args(["health", "--url", &url]).output())
            .await
            .unwrap()
            .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = format!("http://{closed}/healthz");
    let failed = tokio::task::spawn_blocking(move || {
        gateway()
            .args(["health", "--timeout", "1s", "--url", &down])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("unhealthy"));
}

#[test]
fn plain_http_to_graph_beyond_loopback_needs_allow_http_and_never_in_production() {
    let mut config = crate::helpers::test_config();
    config.graph.base_url = "http://emulator:4000/v1.0".parse().unwrap();
    config.graph.authority = "http://emulator:4000".parse().unwrap();
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("graph.base_url: must be an https URL"),
        "{error}"
    );
    config.graph.allow_http = true;
    config.validate().unwrap();
    config.production = true;
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("graph.allow_http"), "{error}");
}
