//! The binary's subcommands.

use std::process::Command;

use serde_json::json;

use crate::helpers::spawn_app;

/// The gateway binary with no `M365GW_` variable of the test's own environment: only
/// what a test sets counts.
pub(crate) fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m365-gateway"));
    command.env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("M365GW_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn check_config_explains_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("m365gw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"
[graph]
client_id = "abc"
[issuers.internal]
issuer = "https://idp.example"
audiences = ["gw"]
kind = "hs256"
secret = "short-secret-value"
"#,
    )
    .unwrap();
    let output = gateway()
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "graph.tenant_id",
        "graph.client_secret",
        "issuers.internal.secret",
    ] {
        assert!(stderr.contains(key), "{key} not explained: {stderr}");
    }
    assert!(
        !stderr.contains("short-secret-value"),
        "secret printed: {stderr}"
    );
}

#[test]
fn check_config_accepts_the_embedded_default() {
    let output = gateway().arg("check-config").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("built-in emulator"));
}

#[test]
fn environment_variables_override_the_file_with_double_underscore_nesting() {
    let output = gateway()
        .arg("check-config")
        .env("M365GW_GRAPH__BATCH_SIZE", "50")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("graph.batch_size"));
}

#[test]
fn schema_and_openapi_print_the_contracts() {
    let sdl = gateway().arg("schema").output().unwrap();
    assert_eq!(
        String::from_utf8(sdl.stdout).unwrap(),
        m365_gateway::graphql::sdl()
    );
    let openapi = gateway().arg("openapi").output().unwrap();
    assert_eq!(
        String::from_utf8(openapi.stdout).unwrap(),
        m365_gateway::rest::openapi_yaml()
    );
}

#[tokio::test]
async fn dev_token_prints_a_token_the_gateway_accepts() {
    let app = spawn_app().await;
    let output = gateway()
        .args(["dev-token", "--ttl", "5m"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (_, body) = app
        .graphql_as(Some(&token), "{ me { userPrincipalName } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let unknown = gateway()
        .args(["dev-token", "--caller", "nobody"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "serve",
        "emulator",
        "dev-token",
        "schema",
        "openapi",
        "check-config",
        "health",
    ] {
        let output = gateway().args([sub, "--help"]).output().unwrap();
        assert!(output.status.success(), "{sub} --help failed");
    }
}

#[test]
fn sighup_reloads_callers_and_policies_without_a_restart() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = std::env::temp_dir().join(format!("m365gw-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    let secret = "sighup-test-issuer-secret-0123456789abcdef";
    let config = |operations: &str| {
        format!(
            "[issuers.internal]\nissuer = \"https://idp.internal.example\"\naudiences = [\"gw\"]\nkind = \"hs256\"\nsecret = \"{secret}\"\n\n\
             [callers.svc]\nissuer = \"internal\"\nclient_id = \"svc\"\nmode = \"app\"\nresources = [\"*\"]\noperations = [{operations}]\n"
        )
    };
    std::fs::write(&file, config("\"users.read\"")).unwrap();
    let mut child = gateway()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the banner").unwrap();
        if let Some(url) = line.trim().strip_prefix("GraphQL") {
            break url.trim().trim_end_matches("/graphql").to_owned();
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": "https://idp.internal.example", "aud": "gw", "azp": "svc", "exp": now + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let groups = |base: &str| {
        runtime.block_on(async {
            let body: serde_json::Value = reqwest::Client::new()
                .post(format!("{base}/graphql"))
                .bearer_auth(&token)
                .json(&json!({ "query": "{ users(first: 1) { nodes { memberOf(first: 1) { nodes { id } } } } }" }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body
        })
    };
    let before = groups(&base);
    assert_eq!(
        before["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{before}"
    );

    std::fs::write(&file, config("\"users.read\", \"groups.read\"")).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut after = serde_json::Value::Null;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = groups(&base);
        if after.get("errors").is_none() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(after.get("errors").is_none(), "not reloaded: {after}");
}
