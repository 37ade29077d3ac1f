//! `bench`: the benchmark harness of issue 9: the directory (users, manager, direct reports),
//! mail (the inbox with senders), calendar (a week of 20 calendars with organisers) and files
//! (a folder of 100 files with each file's last modifier, and the gateway's memory while a
//! 300 MB file streams through it).
//!
//! It runs the emulator and the gateway as separate child processes (so the gateway's RSS is
//! its own and the harness's CPU use is visible as such), counts Graph requests through the
//! emulator's `/_emulator/stats`, and writes `BENCHMARKS.md` and `bench/results.json`.
//! Every number in the outputs is measured by this program; nothing is typed in.
//!
//! ```sh
//! cargo run --release --bin bench -- --report BENCHMARKS.md --json bench/results.json
//! cargo run --bin bench -- --quick      # a few seconds; what CI runs; asserts no timings
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Benchmarks of m365-gateway against the Graph emulator (issue 9)"
)]
struct Args {
    /// Markdown report (default BENCHMARKS.md; quick mode: target/bench-quick.md).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Machine-readable results (default bench/results.json; quick: target/bench-quick.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Small sizes and 5 ms latency: a few seconds, for CI. Timings are printed, not asserted.
    #[arg(long)]
    quick: bool,
    /// Latency the emulator injects into every Graph and token request (default 30ms; quick 5ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    latency: Option<Duration>,
    /// Users in the emulated tenant of the latency runs (default 300: the 200-user query needs data).
    #[arg(long)]
    users: Option<usize>,
}

/// How much of everything to run; the quick mode shrinks it all.
#[derive(Clone, Debug, Serialize)]
struct Settings {
    quick: bool,
    build_profile: &'static str,
    latency_ms: f64,
    users: usize,
    /// Cold runs per query; each one on a freshly started gateway process.
    cold_runs: usize,
    /// Warm runs per query, sequential, on one gateway.
    warm_runs: usize,
    /// Naive-baseline runs of the 50-user queries (it has no cache: every run is cold).
    naive_runs: usize,
    /// Naive-baseline runs of the 200-user query (≈ 400 sequential requests each).
    naive_runs_200: usize,
    throughput_concurrency: usize,
    throughput_secs: f64,
    /// GraphQL requests sent at once to a cold gateway (token single-flight).
    burst: usize,
    /// Sequential runs of the overhead measure (cache misses, direct calls, cache hits).
    overhead_runs: usize,
    /// Users of the zero-latency emulator used for overhead, throughput and RSS.
    rss_users: usize,
    /// Distinct field selections per user when filling the cache (entries = users × this).
    rss_selections: usize,
}

impl Settings {
    fn from(args: &Args) -> Settings {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let quick = args.quick;
        let latency = args.latency.unwrap_or(if quick {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(30)
        });
        Settings {
            quick,
            build_profile: profile,
            latency_ms: latency.as_secs_f64() * 1000.0,
            users: args.users.unwrap_or(300),
            cold_runs: if quick { 2 } else { 10 },
            warm_runs: if quick { 20 } else { 200 },
            naive_runs: if quick { 2 } else { 10 },
            naive_runs_200: if quick { 1 } else { 5 },
            throughput_concurrency: 64,
            throughput_secs: if quick { 1.0 } else { 10.0 },
            burst: if quick { 200 } else { 1000 },
            overhead_runs: if quick { 20 } else { 200 },
            rss_users: if quick { 1_000 } else { 10_000 },
            rss_selections: if quick { 2 } else { 10 },
        }
    }

    fn latency(&self) -> Duration {
        Duration::from_secs_f64(self.latency_ms / 1000.0)
    }
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// A child process killed (and reaped) when dropped: on success, on `?`, on panic and on
/// Ctrl-C (main drops the running future), so no emulator or gateway outlives the harness.
struct ChildGuard {
    name: String,
    child: std::process::Child,
}

impl ChildGuard {
    fn spawn(name: &str, command: &mut Command) -> Result<ChildGuard> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null()) // banners; errors still reach stderr
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has already exited (it could not start, e.g. port taken).
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The temp directory holding gateway config files; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("m365gw-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port: bind port 0, read the port, release it. The emulator subcommand
/// needs a concrete port; the tiny race with other programs is acceptable for a benchmark
/// (a lost race shows up as a child that exits at once, which `wait_ready` reports).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `url` until it answers 2xx, failing fast when the child died.
async fn wait_ready(http: &reqwest::Client, url: &str, child: &mut ChildGuard) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        child.check_alive()?;
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} did not become ready at {url}",
            child.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS line")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

/// The `m365-gateway` binary next to this one. `cargo run --bin bench` builds only the
/// bench, so the gateway may be missing or stale: ask cargo to build it (a no-op when fresh).
fn gateway_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("m365-gateway");
    let missing = !exe.exists();
    let release = !cfg!(debug_assertions);
    if missing {
        eprintln!(
            "bench: {} is missing; building it first (cargo build{} --bin m365-gateway)",
            exe.display(),
            if release { " --release" } else { "" }
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--bin",
        "m365-gateway",
    ]);
    if release {
        build.arg("--release");
    }
    match build.status() {
        Ok(s) if s.success() => {}
        // Without cargo (a copied binary), a present gateway binary is still usable.
        _ if !missing => {
            eprintln!("bench: could not rebuild m365-gateway; using the existing binary")
        }
        other => bail!("cannot build m365-gateway: {other:?}"),
    }
    Ok(exe)
}

// ---------------------------------------------------------------------------------------
// Emulator and gateway processes
// ---------------------------------------------------------------------------------------

struct Emulator {
    /// Kept for its `Drop`: the emulator process lives as long as this value.
    _guard: ChildGuard,
    base: String,
}

impl Emulator {
    /// The emulator keeps uploaded files under `TMPDIR`: pointing it into the harness's
    /// own directory removes them with it, even though the process is killed.
    async fn spawn(
        exe: &Path,
        dir: &TempDir,
        http: &reqwest::Client,
        users: usize,
        latency: Duration,
    ) -> Result<Emulator> {
        let port = free_port()?;
        let mut guard = ChildGuard::spawn(
            "emulator",
            Command::new(exe).env("TMPDIR", &dir.0).args([
                "emulator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--users",
                &users.to_string(),
                "--latency",
                &humantime::format_duration(latency).to_string(),
            ]),
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(http, &format!("{base}/_emulator/stats"), &mut guard).await?;
        Ok(Emulator {
            _guard: guard,
            base,
        })
    }

    async fn stats(&self, http: &reqwest::Client) -> Result<Value> {
        Ok(http
            .get(format!("{}/_emulator/stats", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn graph_requests(&self, http: &reqwest::Client) -> Result<u64> {
        self.stats(http).await?["graph_requests"]
            .as_u64()
            .context("stats without graph_requests")
    }

    async fn reset(&self, http: &reqwest::Client) -> Result<()> {
        http.post(format!("{}/_emulator/stats/reset", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// A client-credentials token straight from the emulator's token endpoint, as the
    /// naive baseline (and the direct-call reference) use it.
    async fn app_token(&self, http: &reqwest::Client) -> Result<String> {
        let body: Value = http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                self.base,
                graph_emulator::DEFAULT_TENANT_ID
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", graph_emulator::DEFAULT_CLIENT_ID),
                ("client_secret", graph_emulator::DEFAULT_CLIENT_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned())
    }
}

const BENCH_SECRET: &str = "bench-harness-hs256-secret-0123456789abcdef";

struct Gateway {
    guard: ChildGuard,
    base: String,
}

impl Gateway {
    /// A gateway in "real mode" (Graph credentials configured) pointed at `emulator`.
    async fn spawn(
        exe: &Path,
        dir: &TempDir,
        http: &reqwest::Client,
        emulator: &Emulator,
    ) -> Result<Gateway> {
        let port = free_port()?;
        let config = dir.0.join(format!("gateway-{port}.toml"));
        std::fs::write(&config, gateway_toml(port, &emulator.base))?;
        let mut guard = ChildGuard::spawn(
            "gateway",
            Command::new(exe)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn"),
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(http, &format!("{base}/healthz"), &mut guard).await?;
        Ok(Gateway { guard, base })
    }

    /// `/readyz` acquires the gateway's Graph token: cold runs start from an empty response
    /// cache but a token in hand, as a gateway that has been running a while does.
    async fn acquire_token(&self, http: &reqwest::Client) -> Result<()> {
        http.get(format!("{}/readyz", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    fn rss_mib(&self) -> Result<f64> {
        rss_mib(self.guard.pid())
    }
}

fn gateway_toml(port: u16, emulator: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"

[graph]
base_url = "{emulator}/v1.0"
authority = "{emulator}"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret = "{secret}"

[cache]
ttl = "10m"
max_bytes = 4294967296

[log]
level = "warn"

# Each gateway its own store (watches, the notification outbox).
[store]
url = "sqlite::memory:"

# The benchmark measures the gateway's own speed with one caller at full tilt; a
# production caller's rate limit would measure the limit instead.
[rate_limit]
enabled = false

# The memory run fills the cache with 100 aliased `user(id:)` lookups per request, past
# the default operation limits (20 root fields, 30 aliases).
[graphql]
max_root_fields = 100
max_aliases = 100

[issuers.bench]
issuer = "bench"
audiences = ["bench"]
kind = "hs256"
secret = "{BENCH_SECRET}"

[callers.bench]
issuer = "bench"
client_id = "bench"
mode = "app"
user_claim = "upn"
operations = ["*"]
resources = ["*"]
sites = ["*"]
"#,
        tenant = graph_emulator::DEFAULT_TENANT_ID,
        client = graph_emulator::DEFAULT_CLIENT_ID,
        secret = graph_emulator::DEFAULT_CLIENT_SECRET,
    )
}

/// The caller's bearer token (HS256 issuer `bench`, acting for the emulator's demo user).
fn caller_token() -> Result<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "bench", "aud": "bench", "azp": "bench", "sub": "bench",
        "iat": now, "exp": now + 6 * 3600, "upn": graph_emulator::DEMO_USER_UPN,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(BENCH_SECRET.as_bytes()),
    )?)
}

async fn graphql(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Result<Value> {
    let response = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?;
    let status = response.status();
    let mut body: Value = response.json().await?;
    ensure!(
        status.is_success() && body.get("errors").is_none(),
        "GraphQL failed ({status}): {body}"
    );
    Ok(body["data"].take())
}

// ---------------------------------------------------------------------------------------
// The query set
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Query {
    /// `n` users with manager and first 10 direct reports.
    OrgChart(usize),
    /// `n` messages of the demo user's inbox with each sender's user and their manager.
    Inbox(usize),
    /// `n` users' calendar views for one week, each event's organiser resolved.
    Calendars(usize),
    /// `n` users with a 3-level manager chain.
    Chain(usize),
    /// `n` files of a folder with each file's last modifier resolved.
    Files(usize),
}

/// The demo user's folder of 100 seeded files (the emulator's seed).
const FILES_FOLDER: &str = "Reports";
/// The gateway caps `first` at 100: bigger lists are read page by page with `after`.
const GATEWAY_MAX_FIRST: usize = 100;
/// Graph pages users at up to 999 per request (`$top`).
const GRAPH_MAX_TOP: usize = 999;
/// Graph's `$batch` limit.
const BATCH: usize = 20;
const CHAIN_LEVELS: usize = 3;

impl Query {
    fn key(self) -> String {
        match self {
            Query::OrgChart(n) => format!("org_chart_{n}"),
            Query::Chain(n) => format!("manager_chain_{n}"),
            Query::Inbox(n) => format!("inbox_{n}"),
            Query::Calendars(n) => format!("calendars_{n}"),
            Query::Files(n) => format!("files_{n}"),
        }
    }

    fn title(self) -> String {
        match self {
            Query::OrgChart(n) => {
                format!("Org chart: {n} users with manager and first 10 direct reports")
            }
            Query::Chain(n) => format!("{CHAIN_LEVELS}-level manager chain for {n} users"),
            Query::Inbox(n) => {
                format!("Inbox: {n} messages with each sender's user and that user's manager")
            }
            Query::Calendars(n) => {
                format!("Calendars: {n} users' calendar view for one week, organisers resolved")
            }
            Query::Files(n) => {
                format!("Files: a folder with {n} items and each item's lastModifiedBy user")
            }
        }
    }

    fn items(self) -> usize {
        match self {
            Query::OrgChart(n)
            | Query::Chain(n)
            | Query::Inbox(n)
            | Query::Calendars(n)
            | Query::Files(n) => n,
        }
    }

    fn selection(self) -> &'static str {
        match self {
            Query::OrgChart(_) => {
                "displayName manager { displayName } directReports(first: 10) { nodes { displayName } }"
            }
            Query::Chain(_) => {
                "displayName manager { displayName manager { displayName manager { displayName } } }"
            }
            Query::Inbox(_) => {
                "subject from { address user { displayName manager { displayName } } }"
            }
            Query::Calendars(_) => {
                "calendarView(start: $start, end: $end, first: 50) { nodes { subject organizer { emailAddress { address user { displayName } } } } }"
            }
            Query::Files(_) => "name lastModifiedBy { user { displayName } }",
        }
    }

    /// The GraphQL text shown in the report (first page when paged).
    fn text(self) -> String {
        let n = self.items();
        if let Query::Calendars(_) = self {
            return format!(
                "query($start: String!, $end: String!) {{ users(first: {n}) {{ nodes {{ {} }} }} }}",
                self.selection()
            );
        }
        if let Query::Inbox(_) = self {
            return format!(
                "{{ me {{ messages(folder: \"inbox\", first: {n}) {{ nodes {{ {} }} }} }} }}",
                self.selection()
            );
        }
        if let Query::Files(_) = self {
            return format!(
                "{{ drive(drive: \"me\") {{ itemByPath(path: \"{FILES_FOLDER}\") {{ children(first: {n}, orderBy: NAME_DESC) {{ nodes {{ {} }} }} }} }} }}",
                self.selection()
            );
        }
        if n <= GATEWAY_MAX_FIRST {
            format!(
                "{{ users(first: {n}) {{ nodes {{ {} }} }} }}",
                self.selection()
            )
        } else {
            format!(
                "query($after: String) {{ users(first: {GATEWAY_MAX_FIRST}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {} }} }} }}",
                self.selection()
            )
        }
    }

    fn pages(self) -> usize {
        self.items().div_ceil(GATEWAY_MAX_FIRST)
    }

    /// Runs the query through the gateway (all its pages) and checks the answer is whole.
    async fn run(self, http: &reqwest::Client, base: &str, token: &str) -> Result<()> {
        let n = self.items();
        let text = self.text();
        if let Query::Calendars(_) = self {
            let (start, end) = calendar_window();
            let data = graphql(
                http,
                base,
                token,
                &text,
                json!({ "start": start, "end": end }),
            )
            .await?;
            let users = data["users"]["nodes"].as_array().context("no users")?;
            ensure!(users.len() == n, "{} users instead of {n}", users.len());
            let events: usize = users
                .iter()
                .map(|u| u["calendarView"]["nodes"].as_array().map_or(0, Vec::len))
                .sum();
            ensure!(events > 0, "no events in a week of {n} calendars");
            return Ok(());
        }
        if let Query::Files(_) = self {
            let data = graphql(http, base, token, &text, json!({})).await?;
            let nodes = data["drive"]["itemByPath"]["children"]["nodes"]
                .as_array()
                .context("no children")?;
            ensure!(nodes.len() == n, "{} files instead of {n}", nodes.len());
            ensure!(
                nodes
                    .iter()
                    .all(|f| f["lastModifiedBy"]["user"]["displayName"].is_string()),
                "a modifier was not resolved"
            );
            return Ok(());
        }
        if let Query::Inbox(_) = self {
            let data = graphql(http, base, token, &text, json!({})).await?;
            let nodes = data["me"]["messages"]["nodes"]
                .as_array()
                .context("no messages")?;
            ensure!(nodes.len() == n, "{} messages instead of {n}", nodes.len());
            ensure!(
                nodes
                    .iter()
                    .any(|m| !m["from"]["user"]["manager"].is_null()),
                "no sender's manager resolved"
            );
            return Ok(());
        }
        let mut seen = 0;
        let mut after = Value::Null;
        while seen < n {
            let data = graphql(http, base, token, &text, json!({ "after": after })).await?;
            let users = &data["users"];
            let nodes = users["nodes"].as_array().context("no nodes")?;
            ensure!(!nodes.is_empty(), "an empty page after {seen} users");
            if let Query::OrgChart(_) = self {
                // Only the top of the organisation lacks a manager.
                let no_manager = nodes.iter().filter(|u| u["manager"].is_null()).count();
                ensure!(no_manager <= 1, "{no_manager} users without a manager");
            }
            seen += nodes.len();
            after = users["pageInfo"]["endCursor"].clone();
            if seen < n {
                ensure!(
                    users["pageInfo"]["hasNextPage"] == json!(true),
                    "only {seen} users"
                );
            }
        }
        ensure!(seen == n, "{seen} users instead of {n}");
        Ok(())
    }

    fn min_round_trips_why(self) -> &'static str {
        match self {
            Query::OrgChart(_) => {
                "1 list of users with `$expand=manager` (Graph pages users at up to 999), then 1 wave of `$batch`es with every user's direct reports"
            }
            Query::Calendars(_) => {
                "1 list of the users, then 1 wave with every user's calendar view (`$batch`), then 1 wave of `$batch`es looking up every distinct organiser by address"
            }
            Query::Files(_) => {
                "1 list of the folder's children addressed by path (`/users/{id}/drive/root:/Reports:/children`), then 1 wave of `$batch`es looking up every distinct last modifier"
            }
            Query::Inbox(_) => {
                "1 list of the inbox's messages, then 1 wave of `$batch`es looking up every distinct sender with `$expand=manager` (external senders too: only Graph can say they are not in the directory)"
            }
            Query::Chain(_) => {
                "1 list with `$expand=manager` (covers level 1; Graph expands one level of a directory relationship per request), then 1 wave per level whose managers are not known yet: the managers of the distinct level-1 managers that are not in the list, then those of the distinct level-2 managers not looked up before. By the query's shape that is 1 + 2 = 3 round trips; with this tenant's data (managers are among the first users listed) fewer waves are needed, and the minimum here counts only the waves this data needs"
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The naive baseline
// ---------------------------------------------------------------------------------------

/// What a hand-written SDK integration typically does: one Graph request per object,
/// sequential, level by level, no cache, no `$batch`, no `$expand`. Its token is fetched
/// once, outside the timings (like the gateway's).
struct Naive<'a> {
    http: &'a reqwest::Client,
    base: String,
    token: String,
}

impl Naive<'_> {
    /// GET a Graph path (or absolute nextLink); `None` on 404 (e.g. no manager).
    async fn get(&self, path: &str) -> Result<Option<Value>> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0{path}", self.base)
        };
        let response = self.http.get(&url).bearer_auth(&self.token).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = response
            .error_for_status()
            .with_context(|| format!("GET {url}"))?;
        Ok(Some(response.json().await?))
    }

    async fn list_users(&self, n: usize) -> Result<Vec<Value>> {
        let mut users = Vec::new();
        let mut next = Some(format!(
            "/users?$top={}&$select=id,displayName",
            n.min(GRAPH_MAX_TOP)
        ));
        while let Some(url) = next.take() {
            let page = self.get(&url).await?.context("no users")?;
            users.extend(
                page["value"]
                    .as_array()
                    .context("no value")?
                    .iter()
                    .cloned(),
            );
            if users.len() < n {
                next = page["@odata.nextLink"].as_str().map(str::to_owned);
            }
        }
        users.truncate(n);
        ensure!(users.len() == n, "only {} users", users.len());
        Ok(users)
    }

    /// The inbox the naive way: the list, then per message the sender's user by address
    /// (404 for external senders), then that user's manager. Returns the distinct senders.
    async fn inbox(&self, n: usize) -> Result<Vec<Vec<String>>> {
        let list = self
            .get(&format!(
                "/users/{}/mailFolders/inbox/messages?$top={n}&$select=subject,from",
                graph_emulator::DEMO_USER_UPN
            ))
            .await?
            .context("no inbox")?;
        let messages = list["value"].as_array().context("no value")?;
        ensure!(messages.len() == n, "only {} messages", messages.len());
        let mut senders = Vec::new();
        for message in messages {
            let address = message["from"]["emailAddress"]["address"]
                .as_str()
                .context("no sender")?
                .to_lowercase();
            let encoded =
                percent_encoding::utf8_percent_encode(&address, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            if let Some(user) = self
                .get(&format!("/users/{encoded}?$select=id,displayName"))
                .await?
            {
                let id = user["id"].as_str().context("id")?;
                self.manager(id).await?;
            }
            senders.push(address);
        }
        senders.sort();
        senders.dedup();
        Ok(vec![senders])
    }

    /// Calendar views the naive way: the users, then per user their week, then per event
    /// the organiser by address. Returns the user ids and the distinct organisers.
    async fn calendars(&self, n: usize) -> Result<Vec<Vec<String>>> {
        let users = self.list_users(n).await?;
        let (start, end) = calendar_window();
        let mut organisers = Vec::new();
        let mut ids = Vec::new();
        for user in &users {
            let id = user["id"].as_str().context("id")?;
            ids.push(id.to_owned());
            let view = self
                .get(&format!(
                    "/users/{id}/calendarView?startDateTime={start}&endDateTime={end}&$top=50"
                ))
                .await?
                .context("no calendar view")?;
            for event in view["value"].as_array().context("no value")? {
                let Some(address) = event["organizer"]["emailAddress"]["address"].as_str() else {
                    continue;
                };
                let address = address.to_lowercase();
                let encoded = percent_encoding::utf8_percent_encode(
                    &address,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string();
                self.get(&format!("/users/{encoded}?$select=id,displayName"))
                    .await?;
                organisers.push(address);
            }
        }
        organisers.sort();
        organisers.dedup();
        Ok(vec![ids, organisers])
    }

    /// A folder the naive way: the user's drive, the folder by path, its children, then
    /// per file its last modifier's user. Returns the distinct modifiers.
    async fn files(&self, n: usize) -> Result<Vec<Vec<String>>> {
        let drive = self
            .get(&format!("/users/{}/drive", graph_emulator::DEMO_USER_UPN))
            .await?
            .context("no drive")?;
        let drive_id = drive["id"].as_str().context("drive id")?;
        let folder = self
            .get(&format!("/drives/{drive_id}/root:/{FILES_FOLDER}"))
            .await?
            .context("no folder")?;
        let folder_id = folder["id"].as_str().context("folder id")?;
        let children = self
            .get(&format!(
                "/drives/{drive_id}/items/{folder_id}/children?$top={n}&$orderby=name%20desc"
            ))
            .await?
            .context("no children")?;
        let files = children["value"].as_array().context("no value")?;
        ensure!(files.len() == n, "only {} files", files.len());
        let mut modifiers = Vec::new();
        for file in files {
            let id = file["lastModifiedBy"]["user"]["id"]
                .as_str()
                .context("no modifier")?;
            self.get(&format!("/users/{id}?$select=id,displayName"))
                .await?;
            modifiers.push(id.to_owned());
        }
        modifiers.sort();
        modifiers.dedup();
        Ok(vec![modifiers])
    }

    async fn manager(&self, id: &str) -> Result<Option<Value>> {
        self.get(&format!("/users/{id}/manager?$select=id,displayName"))
            .await
    }

    /// Runs the query the naive way. Returns the distinct user ids of each level (the
    /// list, then the managers of each level), from which the minimum is computed.
    async fn run(&self, query: Query) -> Result<Vec<Vec<String>>> {
        let ids_of = |users: &[Value]| -> Vec<String> {
            let mut ids: Vec<String> = users
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        match query {
            Query::Inbox(n) => self.inbox(n).await,
            Query::Calendars(n) => self.calendars(n).await,
            Query::Files(n) => self.files(n).await,
            Query::OrgChart(n) => {
                let users = self.list_users(n).await?;
                for user in &users {
                    let id = user["id"].as_str().context("id")?;
                    self.manager(id).await?;
                    self.get(&format!(
                        "/users/{id}/directReports?$top=10&$select=id,displayName"
                    ))
                    .await?;
                }
                Ok(vec![ids_of(&users)])
            }
            Query::Chain(n) => {
                let mut level = self.list_users(n).await?;
                let mut levels = vec![ids_of(&level)];
                // One `/manager` per object (duplicates included), level after level.
                for _ in 1..CHAIN_LEVELS {
                    let mut managers = Vec::new();
                    for user in &level {
                        let id = user["id"].as_str().context("id")?;
                        if let Some(m) = self.manager(id).await? {
                            managers.push(m);
                        }
                    }
                    levels.push(ids_of(&managers));
                    level = managers;
                }
                // The last level's managers are read too (they are the level-3 names).
                for user in &level {
                    let id = user["id"].as_str().context("id")?;
                    self.manager(id).await?;
                }
                Ok(levels)
            }
        }
    }
}

/// The week the calendar query looks at: today (UTC midnight) and the next 7 days, the
/// same for every run of one harness invocation.
fn calendar_window() -> (String, String) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let start = today
        .at(0, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp());
    let start = start.unwrap_or_else(|_| jiff::Timestamp::now());
    let end = start + jiff::SignedDuration::from_hours(24 * 7);
    (start.to_string(), end.to_string())
}

/// The waves of lookups a query needs after its list request, at best: the org chart looks
/// up every listed user's direct reports; the chain looks up the manager of each level-k
/// manager whose manager is not known yet (the list's `$expand=manager` gives the listed
/// users' managers, and an earlier wave gives the managers it looked up).
fn ideal_waves(query: Query, levels: &[Vec<String>]) -> Vec<usize> {
    match query {
        Query::OrgChart(n) => vec![n],
        // Every distinct sender, with the manager expanded in the same lookup.
        Query::Inbox(_) => vec![levels[0].len()],
        // Every distinct last modifier.
        Query::Files(_) => vec![levels[0].len()],
        // The users' views, then the distinct organisers.
        Query::Calendars(_) => vec![levels[0].len(), levels[1].len()],
        Query::Chain(_) => {
            let mut known: std::collections::HashSet<&String> = levels[0].iter().collect();
            let mut waves = Vec::new();
            for level in &levels[1..] {
                let wave: Vec<&String> = level.iter().filter(|id| !known.contains(id)).collect();
                waves.push(wave.len());
                known.extend(wave);
            }
            waves
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measures
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
struct Latency {
    runs: usize,
    p50_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(samples: &[Duration]) -> Latency {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        // Nearest-rank percentile: with 10 runs p99 is the slowest run.
        let pct = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            runs: ms.len(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        }
    }
}

#[derive(Debug, Serialize)]
struct QueryResult {
    key: String,
    title: String,
    graphql: String,
    gateway_pages: usize,
    gateway_cold_requests: Vec<u64>,
    gateway_cold_batch_items: u64,
    gateway_cold_routes: Value,
    gateway_warm_requests: u64,
    gateway_cold: Latency,
    gateway_warm: Latency,
    /// Dependent round trips the gateway's strategy takes (structural, per page).
    gateway_round_trips: usize,
    naive_requests: u64,
    naive: Latency,
    items: usize,
    min_round_trips: usize,
    min_round_trips_why: String,
    min_latency_ms: f64,
    /// Items each dependent wave looks up (distinct objects).
    items_per_level: Vec<usize>,
    /// Σ ceil(items / 20) over the waves plus the list request(s).
    min_requests: u64,
    /// The issue's bound: round trips × ceil(items per level / 20).
    target_requests: u64,
}

async fn measure_query(
    exe: &Path,
    dir: &TempDir,
    http: &reqwest::Client,
    emulator: &Emulator,
    token: &str,
    settings: &Settings,
    query: Query,
) -> Result<QueryResult> {
    eprintln!("bench: {}", query.title());
    // Cold: a fresh gateway process per run (empty response cache), token acquired first.
    let mut cold = Vec::new();
    let mut cold_requests = Vec::new();
    let mut cold_stats = Value::Null;
    for _ in 0..settings.cold_runs {
        let gateway = Gateway::spawn(exe, dir, http, emulator).await?;
        gateway.acquire_token(http).await?;
        emulator.reset(http).await?;
        let start = Instant::now();
        query.run(http, &gateway.base, token).await?;
        cold.push(start.elapsed());
        cold_stats = emulator.stats(http).await?;
        cold_requests.push(cold_stats["graph_requests"].as_u64().unwrap_or(0));
    }

    // Warm: one gateway, the query once to fill its cache, then the same query again.
    let gateway = Gateway::spawn(exe, dir, http, emulator).await?;
    query.run(http, &gateway.base, token).await?;
    emulator.reset(http).await?;
    let mut warm = Vec::new();
    for _ in 0..settings.warm_runs {
        let start = Instant::now();
        query.run(http, &gateway.base, token).await?;
        warm.push(start.elapsed());
    }
    let warm_requests = emulator.graph_requests(http).await?;
    drop(gateway);

    // The naive baseline: no cache, so every run is a cold run.
    let naive_client = Naive {
        http,
        base: emulator.base.clone(),
        token: emulator.app_token(http).await?,
    };
    let runs = if query.items() > GATEWAY_MAX_FIRST {
        settings.naive_runs_200
    } else {
        settings.naive_runs
    };
    let mut naive = Vec::new();
    let mut naive_requests = 0;
    let mut levels = Vec::new();
    for _ in 0..runs {
        emulator.reset(http).await?;
        let start = Instant::now();
        levels = naive_client.run(query).await?;
        naive.push(start.elapsed());
        naive_requests = emulator.graph_requests(http).await?;
    }

    let n = query.items();
    let waves = ideal_waves(query, &levels);
    // Each non-empty wave is one dependent round trip after the list.
    let min_round_trips = 1 + waves.iter().filter(|&&w| w > 0).count();
    let why = query.min_round_trips_why();
    let min_requests =
        (n.div_ceil(GRAPH_MAX_TOP) + waves.iter().map(|w| w.div_ceil(BATCH)).sum::<usize>()) as u64;
    // The issue's bound uses the query's shape: its dependent levels (org chart: list +
    // reports; chain: list + one per level `$expand` does not cover) × batches of the
    // widest level (distinct objects), whatever this tenant's data lets a client skip.
    let (shape_round_trips, widest) = match query {
        Query::OrgChart(_) | Query::Inbox(_) => (2, n),
        Query::Files(_) => (2, levels[0].len()),
        Query::Calendars(_) => (3, n.max(levels[1].len())),
        Query::Chain(_) => (
            CHAIN_LEVELS,
            levels[1..].iter().map(Vec::len).max().unwrap_or(0),
        ),
    };
    let target_requests = match query {
        // The issue's own bound for this query: the list, then batched senders, then
        // batched managers (1 + 3 + 3 for 50 messages).
        Query::Inbox(_) => (1 + 2 * n.div_ceil(BATCH)) as u64,
        // The issue's bound: 1 list (or its pages) + ceil(distinct users / 20) lookups.
        Query::Files(_) => (1 + levels[0].len().div_ceil(BATCH)) as u64,
        _ => (shape_round_trips * widest.max(1).div_ceil(BATCH)) as u64,
    };
    let gateway_round_trips = match query {
        // The gateway repeats list + wave for every page the client has to ask for.
        Query::OrgChart(_) => 2 * query.pages(),
        // The list, then the senders with their managers expanded.
        Query::Inbox(_) => 2,
        // The children by path, then the distinct modifiers.
        Query::Files(_) => 2,
        Query::Calendars(_) => 3,
        // List, the distinct level-1 managers' managers, then those level-2 managers whose
        // lookup is not already cached from the previous wave.
        Query::Chain(_) => {
            let upper: Vec<_> = levels[2]
                .iter()
                .filter(|id| !levels[1].contains(id))
                .collect();
            1 + usize::from(!levels[1].is_empty()) + usize::from(!upper.is_empty())
        }
    };
    Ok(QueryResult {
        key: query.key(),
        title: query.title(),
        graphql: query.text(),
        gateway_pages: query.pages(),
        gateway_cold_requests: cold_requests,
        gateway_cold_batch_items: cold_stats["batch_items"].as_u64().unwrap_or(0),
        gateway_cold_routes: cold_stats["routes"].clone(),
        gateway_warm_requests: warm_requests,
        gateway_cold: Latency::of(&cold),
        gateway_warm: Latency::of(&warm),
        gateway_round_trips,
        naive_requests,
        naive: Latency::of(&naive),
        items: n,
        min_round_trips,
        min_round_trips_why: why.to_owned(),
        min_latency_ms: min_round_trips as f64 * settings.latency_ms,
        items_per_level: waves,
        min_requests,
        target_requests,
    })
}

#[derive(Debug, Serialize)]
struct TokenBurst {
    requests: usize,
    succeeded: usize,
    token_requests: u64,
    graph_requests: u64,
    elapsed_ms: f64,
}

/// `burst` GraphQL requests at once on a gateway that has no Graph token yet.
async fn token_burst(
    exe: &Path,
    dir: &TempDir,
    emulator: &Emulator,
    token: &str,
    burst: usize,
) -> Result<TokenBurst> {
    eprintln!("bench: {burst} requests at once on a cold gateway");
    // A client of its own, so the burst opens its own connections.
    let http = reqwest::Client::new();
    emulator.reset(&http).await?; // before the gateway starts: count everything it does
    let gateway = Gateway::spawn(exe, dir, &http, emulator).await?;
    let start = Instant::now();
    let answers = futures::future::join_all((0..burst).map(|_| {
        graphql(
            &http,
            &gateway.base,
            token,
            "{ me { displayName } }",
            json!({}),
        )
    }))
    .await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    let stats = emulator.stats(&http).await?;
    Ok(TokenBurst {
        requests: burst,
        succeeded: answers.iter().filter(|a| a.is_ok()).count(),
        token_requests: stats["token_requests"].as_u64().unwrap_or(0),
        graph_requests: stats["graph_requests"].as_u64().unwrap_or(0),
        elapsed_ms,
    })
}

/// Every user id of the emulated tenant, read straight from Graph.
async fn all_user_ids(naive: &Naive<'_>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut next = Some(format!("/users?$top={GRAPH_MAX_TOP}&$select=id"));
    while let Some(url) = next.take() {
        let page = naive.get(&url).await?.context("no users")?;
        for user in page["value"].as_array().context("no value")? {
            ids.push(user["id"].as_str().context("id")?.to_owned());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    Ok(ids)
}

#[derive(Debug, Serialize)]
struct Overhead {
    /// What the direct call and the gateway's cache miss send to Graph.
    graph_url_example: String,
    /// `user(id:)` through the gateway, cache miss (one Graph GET to a zero-latency emulator).
    gateway_miss: Latency,
    /// The same Graph GET sent by the harness straight to the emulator with a token.
    direct: Latency,
    /// The same `user(id:)` through the gateway, served from its cache.
    gateway_hit: Latency,
    /// gateway_miss.p50 − direct.p50: what putting the gateway in the path adds.
    overhead_p50_ms: f64,
}

async fn overhead(
    http: &reqwest::Client,
    gateway: &Gateway,
    emulator: &Emulator,
    naive: &Naive<'_>,
    token: &str,
    ids: &[String],
    runs: usize,
) -> Result<Overhead> {
    eprintln!("bench: gateway overhead per request");
    let query = |id: &str| format!("{{ user(id: \"{id}\") {{ displayName }} }}");
    // Learn the exact Graph URL the gateway sends for this query, to send the same directly.
    emulator.reset(http).await?;
    graphql(http, &gateway.base, token, &query(&ids[0]), json!({})).await?;
    let log: Value = http
        .get(format!("{}/_emulator/requests", emulator.base))
        .send()
        .await?
        .json()
        .await?;
    let template = log
        .as_array()
        .and_then(|l| l.iter().find_map(|r| r["url"].as_str()))
        .filter(|u| u.contains(&ids[0]))
        .context("the gateway's Graph request was not recorded")?
        .to_owned();
    let path = |id: &str| template.replace(&ids[0], id).replacen("/v1.0", "", 1);

    let ids = &ids[1..=runs];
    let (mut miss, mut direct, mut hit) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved so that both sides see the same machine state.
    for id in ids {
        let start = Instant::now();
        graphql(http, &gateway.base, token, &query(id), json!({})).await?;
        miss.push(start.elapsed());
        let start = Instant::now();
        naive.get(&path(id)).await?.context("user")?;
        direct.push(start.elapsed());
    }
    for id in ids {
        let start = Instant::now();
        graphql(http, &gateway.base, token, &query(id), json!({})).await?;
        hit.push(start.elapsed());
    }
    let (miss, direct, hit) = (Latency::of(&miss), Latency::of(&direct), Latency::of(&hit));
    Ok(Overhead {
        graph_url_example: template,
        overhead_p50_ms: miss.p50_ms - direct.p50_ms,
        gateway_miss: miss,
        direct,
        gateway_hit: hit,
    })
}

#[derive(Debug, Serialize)]
struct Throughput {
    name: String,
    graphql: String,
    concurrency: usize,
    seconds: f64,
    ok: u64,
    errors: u64,
    requests_per_second: f64,
}

/// `concurrency` clients sending the same (cached) query back to back for `secs`.
async fn throughput(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    query: &str,
    concurrency: usize,
    secs: f64,
) -> Result<Throughput> {
    eprintln!("bench: throughput of {name}");
    graphql(http, base, token, query, json!({})).await?; // warm the cache
    let body = bytes::Bytes::from(serde_json::to_vec(&json!({ "query": query }))?);
    let url = Arc::new(format!("{base}/graphql"));
    let auth = Arc::new(format!("Bearer {token}"));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, body, url, auth) = (http.clone(), body.clone(), url.clone(), auth.clone());
            tokio::spawn(async move {
                let (mut ok, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let sent = http
                        .post(url.as_str())
                        .header("authorization", auth.as_str())
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    // Status and whole body read; the body's content was checked by the
                    // warming call (a GraphQL error would also be a 200, but cannot appear
                    // in a cached answer of the same query).
                    let good = match sent {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if good {
                        ok += 1;
                    } else {
                        errors += 1;
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        let (o, e) = task.await?;
        ok += o;
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Throughput {
        name: name.to_owned(),
        graphql: query.to_owned(),
        concurrency,
        seconds,
        ok,
        errors,
        requests_per_second: ok as f64 / seconds,
    })
}

/// Graph delivering notifications at a steady rate: how fast the gateway acknowledges
/// (each one committed to the outbox first).
#[derive(Debug, Serialize)]
struct WebhookAck {
    per_second: u32,
    seconds: f64,
    acknowledged: u64,
    errors: u64,
    latency: Latency,
}

/// One watch on the shared mailbox, then `per_second` single-item notification POSTs for
/// `secs`, each on its own schedule (an open loop: a slow answer does not slow the sender,
/// as Graph's do not).
async fn webhook_ack(
    http: &reqwest::Client,
    gateway: &Gateway,
    emulator: &Emulator,
    token: &str,
    per_second: u32,
    secs: f64,
) -> Result<WebhookAck> {
    eprintln!("bench: webhook acknowledgement at {per_second}/s");
    let created: Value = http
        .post(format!("{}/api/v1/subscriptions", gateway.base))
        .bearer_auth(token)
        .json(&json!({ "resource": { "mailbox": graph_emulator::SHARED_MAILBOX_UPN } }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let watch = created["id"].as_str().context("no watch id")?.to_owned();
    let subs: Value = http
        .get(format!("{}/v1.0/subscriptions", emulator.base))
        .bearer_auth(emulator.app_token(http).await?)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let sub = subs["value"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["clientState"].is_string()))
        .context("no Graph subscription")?
        .clone();
    let url = Arc::new(format!("{}/webhooks/graph", gateway.base));
    let total = (f64::from(per_second) * secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(per_second));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let body = json!({ "value": [{
            "subscriptionId": sub["id"],
            "subscriptionExpirationDateTime": sub["expirationDateTime"],
            "clientState": sub["clientState"],
            "changeType": "created",
            "resource": format!("Users/x/Messages/bench-{i}"),
            "resourceData": { "@odata.etag": "W/\"1\"", "id": format!("bench-{i}") }
        }]});
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = http
                .post(url.as_str())
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED);
            (ok, sent.elapsed())
        }));
    }
    let (mut samples, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (ok, took) = task.await?;
        if ok {
            samples.push(took);
        } else {
            errors += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Leave the outbox to drain before the next measurement.
    http.delete(format!("{}/api/v1/subscriptions/{watch}", gateway.base))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(!samples.is_empty(), "no notification was acknowledged");
    Ok(WebhookAck {
        per_second,
        seconds,
        acknowledged: samples.len() as u64,
        errors,
        latency: Latency::of(&samples),
    })
}

#[derive(Debug, Serialize)]
struct Rss {
    idle_mib: f64,
    after_fill_mib: f64,
    fill_graphql_requests: usize,
    /// Graph GETs the fill cost (direct GETs plus `$batch` items): each is one cached entry.
    cached_entries: u64,
    target_entries: usize,
    fill_graph_http_requests: u64,
    fill_seconds: f64,
    what_was_cached: String,
}

#[derive(Debug, Serialize)]
struct DownloadRss {
    bytes: u64,
    idle_mib: f64,
    upload_peak_mib: f64,
    upload_seconds: f64,
    /// RSS after the upload, before the download.
    baseline_mib: f64,
    download_peak_mib: f64,
    download_seconds: f64,
}

/// The highest VmRSS of `pid` seen every 20 ms until `stop` is set.
fn sample_peak(pid: u32, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(mib) = rss_mib(pid) {
                peak = peak.max(mib);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

/// Piece `i` of the benchmark file: cheap, deterministic, incompressible-looking.
fn file_piece(i: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

/// A fresh gateway's RSS while a large file goes up through it (REST `PUT`, streamed) and
/// while it comes back (REST `…/content`, streamed); the bytes are checked by SHA-256.
async fn download_rss(
    exe: &Path,
    dir: &TempDir,
    http: &reqwest::Client,
    emulator: &Emulator,
    token: &str,
    settings: &Settings,
) -> Result<DownloadRss> {
    use sha2::Digest;
    const PIECE: usize = 1 << 20;
    let pieces: u64 = if settings.quick { 20 } else { 300 };
    let bytes = pieces * PIECE as u64;
    eprintln!("bench: RSS while {} MiB go up and down", bytes >> 20);
    let gateway = Gateway::spawn(exe, dir, http, emulator).await?;
    gateway.acquire_token(http).await?;
    let url = format!(
        "{}/api/v1/drives/me/root:/Bench/big.bin:/content",
        gateway.base
    );
    // Warm the paths with a small file first.
    http.put(&url)
        .bearer_auth(token)
        .body("warm")
        .send()
        .await?
        .error_for_status()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_mib = gateway.rss_mib()?;
    let pid = gateway.guard.pid();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(pid, stop.clone());
    let body =
        futures::stream::iter(0..pieces).map(|i| Ok::<_, std::io::Error>(file_piece(i, PIECE)));
    let started = Instant::now();
    let item: Value = http
        .put(&url)
        .bearer_auth(token)
        .header("Content-Length", bytes)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let upload_seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let upload_peak_mib = sampler.await?;
    ensure!(item["size"] == json!(bytes), "uploaded size: {item}");
    let id = item["id"].as_str().context("no item id")?;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline_mib = gateway.rss_mib()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak(pid, stop.clone());
    let started = Instant::now();
    let response = http
        .get(format!(
            "{}/api/v1/drives/me/items/{id}/content",
            gateway.base
        ))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    let mut stream = response.bytes_stream();
    let mut got = sha2::Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        received += chunk.len() as u64;
        got.update(&chunk);
    }
    let download_seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let download_peak_mib = sampler.await?.max(baseline_mib);
    ensure!(received == bytes, "downloaded {received} of {bytes} bytes");
    let mut expected = sha2::Sha256::new();
    for i in 0..pieces {
        expected.update(file_piece(i, PIECE));
    }
    ensure!(
        got.finalize() == expected.finalize(),
        "the bytes came back changed"
    );
    Ok(DownloadRss {
        bytes,
        idle_mib,
        upload_peak_mib,
        upload_seconds,
        baseline_mib,
        download_peak_mib,
        download_seconds,
    })
}

const USER_FIELDS: [&str; 10] = [
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "department",
    "officeLocation",
    "businessPhones",
    "mobilePhone",
];

/// Idle RSS of a fresh gateway, then RSS after caching users × selections distinct GETs:
/// `user(id:)` lookups, 100 aliases per GraphQL request, one field each.
async fn rss(
    exe: &Path,
    dir: &TempDir,
    http: &reqwest::Client,
    emulator: &Emulator,
    token: &str,
    ids: &[String],
    selections: usize,
) -> Result<Rss> {
    eprintln!(
        "bench: RSS idle and after caching {} entries",
        ids.len() * selections
    );
    let gateway = Gateway::spawn(exe, dir, http, emulator).await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // let start-up work settle
    let idle_mib = gateway.rss_mib()?;
    emulator.reset(http).await?;
    let mut queries = Vec::new();
    for field in &USER_FIELDS[..selections] {
        for chunk in ids.chunks(100) {
            let mut q = String::from("{");
            for (i, id) in chunk.iter().enumerate() {
                let _ = write!(q, " u{i}: user(id: \"{id}\") {{ {field} }}");
            }
            q.push_str(" }");
            queries.push(q);
        }
    }
    let start = Instant::now();
    let base = gateway.base.clone();
    let results: Vec<Result<Value>> = futures::stream::iter(queries.iter())
        .map(|q| graphql(http, &base, token, q, json!({})))
        .buffer_unordered(4)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let fill_seconds = start.elapsed().as_secs_f64();
    let stats = emulator.stats(http).await?;
    let http_requests = stats["graph_requests"].as_u64().unwrap_or(0);
    let batches = stats["routes"]["POST /$batch"].as_u64().unwrap_or(0);
    let cached_entries = stats["batch_items"].as_u64().unwrap_or(0) + http_requests - batches;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_fill_mib = gateway.rss_mib()?;
    Ok(Rss {
        idle_mib,
        after_fill_mib,
        fill_graphql_requests: queries.len(),
        cached_entries,
        target_entries: 100_000,
        fill_graph_http_requests: http_requests,
        fill_seconds,
        what_was_cached: format!(
            "`GET /users/{{id}}?$select=id,<field>` for {} users × {} fields ({}), each a successful Graph GET cached by the gateway",
            ids.len(),
            selections,
            USER_FIELDS[..selections].join(", ")
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Machine, targets, report
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    memory_mib: u64,
    kernel: String,
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_mib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024);
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory_mib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
    }
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    let dirty = Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    (!commit.is_empty()).then(|| {
        if dirty {
            format!("{commit} (with uncommitted changes)")
        } else {
            commit
        }
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Met,
    NotMet,
}

impl Status {
    fn label(&self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "**not met**",
        }
    }
}

#[derive(Debug, Serialize)]
struct Target {
    target: String,
    status: Status,
    measured: String,
    /// Why it is not met and what would fix it.
    note: String,
}

fn target(target: String, met: bool, measured: String, note_if_not: &str) -> Target {
    Target {
        target,
        status: if met { Status::Met } else { Status::NotMet },
        measured,
        note: if met {
            String::new()
        } else {
            note_if_not.to_owned()
        },
    }
}

#[derive(Debug, Serialize)]
struct Results {
    generated_at: String,
    git_commit: Option<String>,
    machine: Machine,
    settings: Settings,
    queries: Vec<QueryResult>,
    token_burst: TokenBurst,
    overhead: Overhead,
    throughput: Vec<Throughput>,
    webhooks: Vec<WebhookAck>,
    rss: Rss,
    download: DownloadRss,
    targets: Vec<Target>,
    harness_seconds: f64,
}

fn targets(r: &Results) -> Vec<Target> {
    let mut t = Vec::new();
    for q in &r.queries {
        let worst = q.gateway_cold_requests.iter().copied().max().unwrap_or(0);
        t.push(target(
            format!("{}: cold Graph requests ≤ round trips × ceil(items per level / 20) = {}", q.key, q.target_requests),
            worst <= q.target_requests,
            format!("{worst} (minimum {})", q.min_requests),
            "the gateway sends more requests than the batching bound; see the routes in the query's section",
        ));
        t.push(target(
            format!("{}: warm Graph requests = 0", q.key),
            q.gateway_warm_requests == 0,
            q.gateway_warm_requests.to_string(),
            "a repeated query reached Graph: some GET is not cached",
        ));
        let bound = 1.15 * q.min_latency_ms;
        let note = if q.gateway_pages > 1 {
            format!(
                "the gateway caps `first` at {GATEWAY_MAX_FIRST}, so a client reads {} pages one after another and each page costs the 2 round trips again ({} dependent round trips instead of {}). Fix: allow `first` up to Graph's own page size for users (999), or let the gateway read the following page while the first page's batches run",
                q.gateway_pages, q.gateway_round_trips, q.min_round_trips
            )
        } else if q.gateway_round_trips > q.min_round_trips {
            format!(
                "the gateway takes {} dependent round trips where this data needs {}: it asks Graph for a manager's manager (`/users/{{id}}?$select=id&$expand=manager`) even when that manager was already listed, with its own manager expanded, by the list request. Fix: a per-request identity map that answers `manager` of a user already read in the same request",
                q.gateway_round_trips, q.min_round_trips
            )
        } else {
            "time outside the injected Graph latency (gateway CPU, loopback, harness on the same 2 cores) exceeds 15 % of the minimum; see the warm p50 for the gateway's own share".to_owned()
        };
        t.push(target(
            format!(
                "{}: cold p50 ≤ 1.15 × minimum ({:.0} ms) = {:.1} ms",
                q.key, q.min_latency_ms, bound
            ),
            q.gateway_cold.p50_ms <= bound,
            format!("{:.1} ms", q.gateway_cold.p50_ms),
            &note,
        ));
        let speedup = q.naive.p50_ms / q.gateway_cold.p50_ms;
        t.push(target(
            format!("{}: cold p50 ≥ 5 × faster than the naive baseline", q.key),
            speedup >= 5.0,
            format!("{speedup:.1} ×"),
            "the naive baseline is not slow enough relative to the gateway at this latency",
        ));
    }
    if let Some(small) = r.throughput.first() {
        t.push(target(
            format!(
                "warm cached query ({}) at concurrency {}: ≥ 10,000 requests/s",
                small.name, small.concurrency
            ),
            small.requests_per_second >= 10_000.0,
            format!("{:.0} requests/s", small.requests_per_second),
            "the load generator (this harness) shares the 2 cores with the gateway and takes a large part of them; per request the gateway authenticates the JWT, parses and validates the GraphQL document and serialises the answer. Fixes: cache parsed documents (async-graphql APQ or a document cache), verify each distinct bearer token once (a small token cache), and measure with the load generator on another machine",
        ));
    }
    for wh in &r.webhooks {
        let (limit, why) = match wh.per_second {
            200 => (100.0, "issue 8: p99 under 100 ms at 200 notifications/s"),
            _ => (
                1000.0,
                "catalogue row 74: p99 under 1 s at 500 notifications/s",
            ),
        };
        t.push(target(
            format!(
                "webhook acknowledgement at {}/s: p99 < {limit:.0} ms, no errors ({why})",
                wh.per_second
            ),
            wh.latency.p99_ms < limit && wh.errors == 0,
            format!("p99 {:.1} ms, {} errors", wh.latency.p99_ms, wh.errors),
            "each notification is committed to the store (one SQLite transaction) before the 202; the store's single writer bounds the rate",
        ));
    }
    t.push(target(
        "gateway overhead p50 < 1 ms (cache miss through the gateway − the same Graph GET sent directly)".to_owned(),
        r.overhead.overhead_p50_ms < 1.0,
        format!("{:.2} ms", r.overhead.overhead_p50_ms),
        "the gateway's per-request work (JWT check, GraphQL parse/validate, batcher tick, cache insert, second HTTP hop) costs more than 1 ms at p50 on this machine; see the throughput fixes",
    ));
    t.push(target(
        format!(
            "token endpoint calls when {} requests arrive at once on a cold gateway = 1",
            r.token_burst.requests
        ),
        r.token_burst.token_requests == 1 && r.token_burst.succeeded == r.token_burst.requests,
        format!(
            "{} (of {} requests, {} succeeded)",
            r.token_burst.token_requests, r.token_burst.requests, r.token_burst.succeeded
        ),
        "token acquisition is not single-flight, or requests failed",
    ));
    t.push(target(
        "idle RSS ≤ 40 MB".to_owned(),
        r.rss.idle_mib <= 40.0,
        format!("{:.1} MiB", r.rss.idle_mib),
        "start-up allocations (tokio workers, caches' initial capacity, GraphQL schema, TLS roots) exceed 40 MB",
    ));
    let d = &r.download;
    t.push(target(
        format!("a {} MB download adds < 64 MB of RSS", d.bytes / 1_000_000),
        d.download_peak_mib - d.baseline_mib < 64.0,
        format!(
            "+{:.1} MiB (peak {:.1} MiB over {:.1} MiB)",
            d.download_peak_mib - d.baseline_mib,
            d.download_peak_mib,
            d.baseline_mib
        ),
        "the download is buffered somewhere instead of streamed",
    ));
    t
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1} ×", a / b)
    } else {
        "—".to_owned()
    }
}

fn render(r: &Results) -> String {
    let s = &r.settings;
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `cargo run --release --bin bench -- --report BENCHMARKS.md --json bench/results.json` \
         (issue 9). Every number below was measured by that run; the same numbers are in \
         `bench/results.json`.\n"
    );
    if s.quick || s.build_profile != "release" {
        let _ = writeln!(
            w,
            "> **Quick or debug run** (`quick = {}`, `{}` build): small sizes, numbers not representative.\n",
            s.quick, s.build_profile
        );
    }
    let _ = writeln!(w, "## Machine and settings\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| date (UTC) | {} |", r.generated_at);
    let _ = writeln!(
        w,
        "| commit | {} |",
        r.git_commit.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(w, "| CPU | {} |", r.machine.cpu);
    let _ = writeln!(w, "| cores | {} |", r.machine.cores);
    let _ = writeln!(w, "| memory | {} MiB |", r.machine.memory_mib);
    let _ = writeln!(w, "| kernel | {} |", r.machine.kernel);
    let _ = writeln!(w, "| build | {} |", s.build_profile);
    let _ = writeln!(
        w,
        "| injected Graph latency | {} ms per HTTP request (token endpoint and each `$batch` envelope included) |",
        s.latency_ms
    );
    let _ = writeln!(w, "| emulated tenant | {} users (seed 42) |", s.users);
    let _ = writeln!(
        w,
        "| runs per query | cold {} (each on a freshly started gateway), warm {}, naive {} ({} for 200 users) |",
        s.cold_runs, s.warm_runs, s.naive_runs, s.naive_runs_200
    );
    let _ = writeln!(w, "| harness duration | {:.0} s |\n", r.harness_seconds);
    let _ = writeln!(
        w,
        "The emulator, the gateway and this harness are three processes on the same machine \
         (they share its cores). The gateway runs in real mode (Graph client credentials, \
         an HS256 caller issuer) against the emulator over loopback.\n\n\
         **How it is measured.** *Cold*: a new gateway process per run (empty response cache); \
         its Graph token is acquired through `/readyz` before the clock starts, as it would be on \
         a gateway that has been up for a while, and the emulator's counters are reset. *Warm*: \
         the same query again on one gateway whose cache holds it (TTL 10 min). *Graph requests* \
         are HTTP requests the emulator received (a `$batch` envelope counts once), from \
         `GET /_emulator/stats`. *Naive*: a client in the harness that fetches a client-credentials \
         token once, then `GET /users?$top=N`, then per user, one after another, \
         `GET /users/{{id}}/manager` and `GET /users/{{id}}/directReports?$top=10` (the chain: \
         `/manager` per object per level; the inbox: the message list, then per message the \
         sender by address and that user's `/manager`; the calendars: per user the week's \
         `calendarView`, then per event the organiser by address); no cache, no `$batch`, no \
         `$expand`, so its warm numbers are its cold numbers. *Minimum*: the dependent Graph round trips the data needs × the \
         injected latency, and Σ ceil(items / 20) requests. Percentiles are nearest-rank \
         (with 10 runs p99 is the slowest).\n"
    );

    for q in &r.queries {
        let _ = writeln!(w, "## {}\n", q.title);
        let _ = writeln!(w, "```graphql\n{}\n```\n", q.graphql);
        if q.gateway_pages > 1 {
            let _ = writeln!(
                w,
                "The gateway limits `first` to {GATEWAY_MAX_FIRST}, so the harness reads {} pages \
                 with `after` and counts them together.\n",
                q.gateway_pages
            );
        }
        let cold_requests = {
            let min = q.gateway_cold_requests.iter().min().copied().unwrap_or(0);
            let max = q.gateway_cold_requests.iter().max().copied().unwrap_or(0);
            if min == max {
                min.to_string()
            } else {
                format!("{min}–{max}")
            }
        };
        let gw_req = *q.gateway_cold_requests.iter().max().unwrap_or(&0) as f64;
        let _ = writeln!(
            w,
            "| | gateway | naive | minimum | gateway / minimum | naive / gateway |\n|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            w,
            "| Graph requests, cold | {cold_requests} | {} | {} | {} | {} |",
            q.naive_requests,
            q.min_requests,
            ratio(gw_req, q.min_requests as f64),
            ratio(q.naive_requests as f64, gw_req)
        );
        let _ = writeln!(
            w,
            "| Graph requests, warm | {} | {} (no cache) | 0 | — | — |",
            q.gateway_warm_requests, q.naive_requests
        );
        let _ = writeln!(
            w,
            "| dependent round trips | {} | {} | {} | {} | — |",
            q.gateway_round_trips,
            q.naive_requests,
            q.min_round_trips,
            ratio(q.gateway_round_trips as f64, q.min_round_trips as f64)
        );
        let _ = writeln!(
            w,
            "| latency p50, cold | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} |",
            q.gateway_cold.p50_ms,
            q.naive.p50_ms,
            q.min_latency_ms,
            ratio(q.gateway_cold.p50_ms, q.min_latency_ms),
            ratio(q.naive.p50_ms, q.gateway_cold.p50_ms)
        );
        let _ = writeln!(
            w,
            "| latency p99, cold | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} |",
            q.gateway_cold.p99_ms,
            q.naive.p99_ms,
            q.min_latency_ms,
            ratio(q.gateway_cold.p99_ms, q.min_latency_ms),
            ratio(q.naive.p99_ms, q.gateway_cold.p99_ms)
        );
        let _ = writeln!(
            w,
            "| latency p50, warm | {:.2} ms | {:.1} ms (no cache) | 0 ms (no Graph call) | — | {} |",
            q.gateway_warm.p50_ms,
            q.naive.p50_ms,
            ratio(q.naive.p50_ms, q.gateway_warm.p50_ms)
        );
        let _ = writeln!(
            w,
            "| latency p99, warm | {:.2} ms | {:.1} ms (no cache) | 0 ms | — | {} |",
            q.gateway_warm.p99_ms,
            q.naive.p99_ms,
            ratio(q.naive.p99_ms, q.gateway_warm.p99_ms)
        );
        let _ = writeln!(
            w,
            "| runs | cold {} / warm {} | {} | — | — | — |\n",
            q.gateway_cold.runs, q.gateway_warm.runs, q.naive.runs
        );
        let _ = writeln!(
            w,
            "Minimum: {} round trips — {}. Items looked up per dependent wave: {:?}; minimum \
             requests = {} list request(s) + Σ ceil(items / 20) = {}; the issue's bound \
             round trips × ceil(items per level / 20) = {}. Gateway's cold routes (last run): `{}`.\n",
            q.min_round_trips,
            q.min_round_trips_why,
            q.items_per_level,
            q.items.div_ceil(GRAPH_MAX_TOP),
            q.min_requests,
            q.target_requests,
            q.gateway_cold_routes
        );
    }
    if r.queries
        .iter()
        .any(|q| matches!(q.key.as_str(), k if k.starts_with("manager_chain")))
    {
        let _ = writeln!(
            w,
            "Note on the chain: Graph also offers `$expand=manager($levels=n)` (an advanced query, \
             `ConsistencyLevel: eventual`), which the emulator implements; a gateway using it could \
             read the whole chain with the list in 1 round trip. The minimum above follows what \
             plain `$expand` covers (one level), which is what the gateway uses today.\n"
        );
    }

    let _ = writeln!(w, "## Not measured yet\n");
    let _ = writeln!(w, "| query / measure | status |\n|---|---|");
    let _ = writeln!(w);

    let _ = writeln!(
        w,
        "## Warm throughput (concurrency {}, loopback)\n",
        s.throughput_concurrency
    );
    let _ = writeln!(
        w,
        "Each of {} harness tasks sends the same cached query back to back for {} s; the load \
         generator runs on the same cores as the gateway, so this is a lower bound of what the \
         gateway alone could serve. Against a zero-latency emulator (the answers are cached, \
         Graph is not called).\n",
        s.throughput_concurrency, s.throughput_secs
    );
    let _ = writeln!(
        w,
        "| query | requests/s | ok | errors | seconds |\n|---|---|---|---|---|"
    );
    for t in &r.throughput {
        let _ = writeln!(
            w,
            "| {} (`{}`) | {:.0} | {} | {} | {:.1} |",
            t.name, t.graphql, t.requests_per_second, t.ok, t.errors, t.seconds
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "## Webhook acknowledgement\n");
    let _ = writeln!(
        w,
        "Graph delivering single-item notifications at a steady rate (open loop: each POST on \
         its own schedule) to `/webhooks/graph` for {} s; the gateway commits each to the \
         outbox (in-memory SQLite here) before answering 202. Latency is the POST's round trip.\n",
        s.throughput_secs
    );
    let _ = writeln!(
        w,
        "| rate | acknowledged | errors | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|"
    );
    for wh in &r.webhooks {
        let _ = writeln!(
            w,
            "| {}/s | {} | {} | {:.1} | {:.1} | {:.1} |",
            wh.per_second,
            wh.acknowledged,
            wh.errors,
            wh.latency.p50_ms,
            wh.latency.p99_ms,
            wh.latency.max_ms
        );
    }
    let _ = writeln!(w);

    let o = &r.overhead;
    let _ = writeln!(w, "## Gateway overhead per request\n");
    let _ = writeln!(
        w,
        "Against an emulator with **no injected latency**, {} different users: \
         `{{ user(id: …) {{ displayName }} }}` through the gateway on a cache miss (it sends one \
         Graph GET, `{}`), the very same Graph GET sent by the harness straight to the emulator \
         with a token, and the gateway query again on a cache hit. Overhead = gateway miss p50 − \
         direct p50: what putting the gateway in the path costs a request.\n",
        o.gateway_miss.runs, o.graph_url_example
    );
    let _ = writeln!(w, "| | p50 | p99 | mean |\n|---|---|---|---|");
    for (name, l) in [
        ("gateway, cache miss", &o.gateway_miss),
        ("emulator directly", &o.direct),
        ("gateway, cache hit", &o.gateway_hit),
    ] {
        let _ = writeln!(
            w,
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms |",
            l.p50_ms, l.p99_ms, l.mean_ms
        );
    }
    let _ = writeln!(
        w,
        "| **overhead (miss − direct)** | **{:.2} ms** | | |\n",
        o.overhead_p50_ms
    );

    let b = &r.token_burst;
    let _ = writeln!(w, "## Token single-flight\n");
    let _ = writeln!(
        w,
        "{} `{{ me {{ displayName }} }}` requests sent at once to a gateway that has just started \
         (no Graph token yet; emulator counters reset before it started).\n",
        b.requests
    );
    let _ = writeln!(
        w,
        "| requests | succeeded | token endpoint calls | Graph requests | elapsed |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        w,
        "| {} | {} | {} | {} | {:.0} ms |\n",
        b.requests, b.succeeded, b.token_requests, b.graph_requests, b.elapsed_ms
    );

    let m = &r.rss;
    let _ = writeln!(w, "## Memory (gateway RSS, `/proc/<pid>/status` VmRSS)\n");
    let _ = writeln!(w, "| state | RSS |\n|---|---|");
    let _ = writeln!(
        w,
        "| idle (started, no request, 0.5 s settled) | {:.1} MiB |",
        m.idle_mib
    );
    let _ = writeln!(
        w,
        "| after caching {} entries | {:.1} MiB (+{:.1} MiB) |",
        m.cached_entries,
        m.after_fill_mib,
        m.after_fill_mib - m.idle_mib
    );
    let d = &r.download;
    let _ = writeln!(
        w,
        "| while uploading a {} MB file through it | {:.1} MiB (+{:.1} MiB) |",
        d.bytes / 1_000_000,
        d.upload_peak_mib,
        d.upload_peak_mib - d.idle_mib
    );
    let _ = writeln!(
        w,
        "| while downloading it (peak, sampled every 20 ms) | {:.1} MiB (+{:.1} MiB over the {:.1} MiB before it) |\n",
        d.download_peak_mib,
        d.download_peak_mib - d.baseline_mib,
        d.baseline_mib
    );
    let _ = writeln!(
        w,
        "The file went up in {:.1} s and came back in {:.1} s ({:.0} MB/s), byte-identical (SHA-256), \
         through a fresh gateway against the zero-latency emulator.\n",
        d.upload_seconds,
        d.download_seconds,
        d.bytes as f64 / 1e6 / d.download_seconds.max(1e-9)
    );
    let _ = writeln!(
        w,
        "Cached: {} ({} GraphQL requests of 100 aliased `user(id:)` lookups, 4 at a time; {} Graph \
         HTTP requests; {:.1} s).{}\n",
        m.what_was_cached,
        m.fill_graphql_requests,
        m.fill_graph_http_requests,
        m.fill_seconds,
        if (m.cached_entries as usize) < m.target_entries {
            format!(
                " Issue 9 asks for {} entries; this run cached {} (quick mode or a smaller tenant).",
                m.target_entries, m.cached_entries
            )
        } else {
            String::new()
        }
    );

    let _ = writeln!(w, "## Targets (issue 9)\n");
    let _ = writeln!(
        w,
        "| target | measured | status | why / fix |\n|---|---|---|---|"
    );
    for t in &r.targets {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            t.target,
            t.measured,
            t.status.label(),
            t.note
        );
    }
    md
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

async fn run(args: Args) -> Result<Results> {
    let started = Instant::now();
    let settings = Settings::from(&args);
    let exe = gateway_exe()?;
    let dir = TempDir::new()?;
    let http = reqwest::Client::new();
    let token = caller_token()?;

    // The latency emulator: the query set and the token burst.
    let emulator = Emulator::spawn(&exe, &dir, &http, settings.users, settings.latency()).await?;
    let mut queries = Vec::new();
    for query in [
        Query::OrgChart(50),
        Query::OrgChart(200),
        Query::Chain(50),
        Query::Inbox(50),
        Query::Calendars(20),
        Query::Files(100),
    ] {
        ensure!(
            query.items() <= settings.users,
            "--users {} is too small for {}",
            settings.users,
            query.title()
        );
        queries.push(measure_query(&exe, &dir, &http, &emulator, &token, &settings, query).await?);
    }
    let token_burst = token_burst(&exe, &dir, &emulator, &token, settings.burst).await?;
    drop(emulator);

    // A zero-latency emulator: overhead, throughput and memory measure the gateway itself.
    let fast = Emulator::spawn(&exe, &dir, &http, settings.rss_users, Duration::ZERO).await?;
    let naive = Naive {
        http: &http,
        base: fast.base.clone(),
        token: fast.app_token(&http).await?,
    };
    let ids = all_user_ids(&naive).await?;
    ensure!(ids.len() > settings.overhead_runs, "too few users");
    let gateway = Gateway::spawn(&exe, &dir, &http, &fast).await?;
    gateway.acquire_token(&http).await?;
    let overhead = overhead(
        &http,
        &gateway,
        &fast,
        &naive,
        &token,
        &ids,
        settings.overhead_runs,
    )
    .await?;
    let mut throughput_results = Vec::new();
    for (name, query) in [
        (
            "one user with manager",
            format!(
                "{{ user(id: \"{}\") {{ displayName manager {{ displayName }} }} }}",
                ids[0]
            ),
        ),
        ("org chart 50", Query::OrgChart(50).text()),
    ] {
        throughput_results.push(
            throughput(
                &http,
                &gateway.base,
                &token,
                name,
                &query,
                settings.throughput_concurrency,
                settings.throughput_secs,
            )
            .await?,
        );
    }
    let mut webhooks = Vec::new();
    for per_second in [200, 500] {
        webhooks.push(
            webhook_ack(
                &http,
                &gateway,
                &fast,
                &token,
                per_second,
                settings.throughput_secs,
            )
            .await?,
        );
    }
    drop(gateway);
    let rss = rss(
        &exe,
        &dir,
        &http,
        &fast,
        &token,
        &ids,
        settings.rss_selections,
    )
    .await?;
    let download = download_rss(&exe, &dir, &http, &fast, &token, &settings).await?;
    drop(fast);

    let mut results = Results {
        generated_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        git_commit: git_commit(),
        machine: machine(),
        settings,
        queries,
        token_burst,
        overhead,
        throughput: throughput_results,
        webhooks,
        rss,
        download,
        targets: Vec::new(),
        harness_seconds: 0.0,
    };
    results.targets = targets(&results);
    results.harness_seconds = started.elapsed().as_secs_f64();
    Ok(results)
}

fn write(path: &Path, content: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))
}

fn summary(r: &Results) -> String {
    let mut s = String::new();
    for q in &r.queries {
        let _ = writeln!(
            s,
            "{:<18} requests cold {:?} warm {} (naive {}, min {}) | p50 cold {:.1} ms warm {:.2} ms (naive {:.1} ms, min {:.0} ms)",
            q.key,
            q.gateway_cold_requests,
            q.gateway_warm_requests,
            q.naive_requests,
            q.min_requests,
            q.gateway_cold.p50_ms,
            q.gateway_warm.p50_ms,
            q.naive.p50_ms,
            q.min_latency_ms
        );
    }
    for t in &r.throughput {
        let _ = writeln!(
            s,
            "throughput {:<22} {:.0} req/s",
            t.name, t.requests_per_second
        );
    }
    for wh in &r.webhooks {
        let _ = writeln!(
            s,
            "webhook ack at {}/s: p50 {:.1} ms p99 {:.1} ms, {} errors",
            wh.per_second, wh.latency.p50_ms, wh.latency.p99_ms, wh.errors
        );
    }
    let _ = writeln!(
        s,
        "overhead p50 {:.2} ms | token calls on burst of {}: {} | RSS idle {:.1} MiB, after {} entries {:.1} MiB",
        r.overhead.overhead_p50_ms,
        r.token_burst.requests,
        r.token_burst.token_requests,
        r.rss.idle_mib,
        r.rss.cached_entries,
        r.rss.after_fill_mib
    );
    for t in &r.targets {
        let _ = writeln!(
            s,
            "[{}] {} — {}",
            t.status.label().trim_matches('*'),
            t.target,
            t.measured
        );
    }
    let _ = writeln!(s, "harness: {:.1} s", r.harness_seconds);
    s
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (report, json_path) = if args.quick {
        (
            args.report
                .clone()
                .unwrap_or_else(|| "target/bench-quick.md".into()),
            args.json
                .clone()
                .unwrap_or_else(|| "target/bench-quick.json".into()),
        )
    } else {
        (
            args.report
                .clone()
                .unwrap_or_else(|| "BENCHMARKS.md".into()),
            args.json
                .clone()
                .unwrap_or_else(|| "bench/results.json".into()),
        )
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    // Ctrl-C drops the running future, and with it every child-process guard.
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let written = serde_json::to_string_pretty(&results)
        .map_err(anyhow::Error::from)
        .and_then(|json| write(&json_path, &(json + "\n")))
        .and_then(|()| write(&report, &render(&results)));
    if let Err(e) = written {
        eprintln!("bench: error: {e:#}");
        return ExitCode::FAILURE;
    }
    print!("{}", summary(&results));
    println!("wrote {} and {}", report.display(), json_path.display());
    ExitCode::SUCCESS
}
