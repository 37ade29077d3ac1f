//! The gateway as its own process (the real binary), configured against an emulator that
//! runs in the test process: for tests that measure the gateway's own memory, or need
//! process-wide things of their own (signals, exit codes, the global trace exporter).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use graph_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningEmulator};

use crate::helpers::{TEST_ISSUER, TEST_SECRET};

/// A running gateway process; killed, and its directory removed, when dropped.
pub struct GatewayProcess {
    child: Child,
    pub base: String,
    dir: PathBuf,
    /// Keep `dir` when dropped (a restarted process takes it over).
    keep_dir: bool,
}

impl GatewayProcess {
    /// Starts the gateway against `emulator` with the test HS256 issuer and `caller` (a TOML
    /// `[callers.<name>]` section whose issuer is `tests`), and waits until it answers.
    pub async fn start(emulator: &RunningEmulator, caller: &str) -> GatewayProcess {
        Self::start_with(emulator, caller, "").await
    }

    /// [`GatewayProcess::start`] with more TOML appended (further tables: `[telemetry]`,
    /// `[http]`…).
    pub async fn start_with(
        emulator: &RunningEmulator,
        caller: &str,
        extra: &str,
    ) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("m365gw-proc-{}-{port}", std::process::id()));
        Self::start_at(emulator, caller, extra, port, dir).await
    }

    /// Starts (or restarts) the gateway on `port` with its files in `dir` (the config, the
    /// SQLite store of the embedded default), which may hold a previous process's data.
    pub async fn start_at(
        emulator: &RunningEmulator,
        caller: &str,
        extra: &str,
        port: u16,
        dir: PathBuf,
    ) -> GatewayProcess {
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                r#"
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[log]
level = "warn"
[graph]
base_url = "{graph}"
authority = "{authority}"
tenant_id = "{tenant}"
client_id = "{DEFAULT_CLIENT_ID}"
client_secret = "{DEFAULT_CLIENT_SECRET}"
[issuers.tests]
issuer = "{TEST_ISSUER}"
audiences = ["m365-gateway"]
kind = "hs256"
secret = "{TEST_SECRET}"
client_claim = "azp"
{caller}
{extra}
"#,
                graph = emulator.graph_url(),
                authority = emulator.base_url(),
                tenant = emulator.emulator.tenant_id(),
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_m365-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("M365GW_CONFIG")
            .env("NO_COLOR", "1")
            .current_dir(&dir)
            .stdout(Stdio::null())
            // Kept for a failing test to show (see `stderr`).
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("stderr.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let gateway = GatewayProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            keep_dir: false,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http
            .get(format!("{}/healthz", gateway.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "gateway did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        gateway
    }

    /// What the process wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Sends SIGTERM, as an orchestrator stopping the container does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `VmRSS` (resident now) or `VmHWM` (peak) of the process, in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl GatewayProcess {
    /// Waits (up to 30 s) for the process to exit after `terminate`; its directory stays
    /// for a restart.
    pub async fn stopped(mut self) -> PathBuf {
        let status = self.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "no clean exit: {status:?}"
        );
        self.keep_dir = true;
        self.dir.clone()
    }

    /// SIGKILL: no shutdown of any kind, as a crashed machine or the OOM killer. Its
    /// directory stays for a restart.
    pub fn kill_hard(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.keep_dir = true;
        self.dir.clone()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
