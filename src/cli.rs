//! The command line: `serve` (default), `emulator`, `dev-token`, `schema`, `openapi`,
//! `check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{App, DEV_TOKEN_TTL};
use crate::config::{Config, DEMO_CALLER};

#[derive(Parser, Debug)]
#[command(
    name = "m365-gateway",
    version,
    about = "One simple, safe and fast GraphQL + REST door into Microsoft 365"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default). With no Microsoft credentials configured it starts
    /// the built-in Graph emulator and prints a ready dev token.
    Serve(ServeArgs),
    /// Run only the Microsoft Graph + Entra ID emulator.
    Emulator(EmulatorArgs),
    /// Print a JWT accepted by an HS256 issuer of the configuration (the embedded default's dev issuer).
    DevToken(DevTokenArgs),
    /// Print the GraphQL SDL (checked in as schema/schema.graphql).
    Schema,
    /// Print the OpenAPI document of the REST API (checked in as openapi.yaml).
    Openapi,
    /// Print the configuration reference (every key, default and environment variable) as
    /// the Markdown table in the README.
    ConfigReference,
    /// Load and validate a configuration, explain every problem, exit non-zero on error.
    CheckConfig(ConfigArg),
    /// Ask a running gateway whether it is live (`GET /healthz`); exit 0 if so, 1 if not.
    /// For container health checks, where no curl is installed.
    Health(HealthArgs),
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The URL to ask.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// How long to wait for the answer, e.g. 3s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub timeout: Duration,
}

#[derive(Args, Debug, Default, Clone)]
pub struct ConfigArg {
    /// TOML configuration file.
    #[arg(long, env = "M365GW_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Where the embedded emulator listens (default: an ephemeral loopback port).
    #[arg(long)]
    pub emulator_listen: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Number of users in the generated tenant.
    #[arg(long, default_value_t = 60)]
    pub users: usize,
    /// Seed of the generated tenant (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Latency added to every Graph request, e.g. 30ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Hosts to which plain-http notification URLs are accepted (comma-separated), besides
    /// loopback: gateways reached by a container service name, e.g. `lb`.
    #[arg(long, value_delimiter = ',')]
    pub allow_http_notification_hosts: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DevTokenArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Caller (a key of `callers`) the token identifies.
    #[arg(long, default_value = DEMO_CALLER)]
    pub caller: String,
    /// User the token acts for (UPN); default: the emulator's demo user.
    #[arg(long)]
    pub user: Option<String>,
    /// Lifetime, e.g. 30m, 12h.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "12h")]
    pub ttl: Duration,
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Emulator(args)) => emulator(args),
        Some(Command::DevToken(args)) => dev_token(args),
        Some(Command::Schema) => {
            print!("{}", crate::graphql::sdl());
            ExitCode::SUCCESS
        }
        Some(Command::Openapi) => {
            print!("{}", crate::rest::openapi_yaml());
            ExitCode::SUCCESS
        }
        Some(Command::ConfigReference) => {
            println!("{}", crate::config::reference::markdown());
            ExitCode::SUCCESS
        }
        Some(Command::CheckConfig(args)) => check_config(args),
        Some(Command::Health(args)) => health(args),
    }
}

fn health(args: HealthArgs) -> ExitCode {
    let answer = runtime().block_on(async {
        reqwest::Client::builder()
            .timeout(args.timeout)
            .build()?
            .get(&args.url)
            .send()
            .await
    });
    match answer {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: {} answered {}", args.url, response.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {}: {}", args.url, e.without_url());
            ExitCode::FAILURE
        }
    }
}

fn load(config: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(config.config.as_deref()).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// The configuration `serve` runs with: the file and environment, then the flags.
fn serve_config(args: &ServeArgs) -> Result<Config, ExitCode> {
    let mut config = load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(listen) = args.emulator_listen {
        config.emulator.listen = listen;
    }
    Ok(config)
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match serve_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let telemetry = crate::telemetry::init(&config.log, &config.telemetry);
    let runtime = runtime();
    let code = runtime.block_on(async move {
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        print_banner(&app);
        reload_on_sighup(app.reloader(), args);
        match app.run_until_stopped(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Requests left after the shutdown grace are abandoned here: dropping the runtime
    // would wait for them (and for blocking tasks) without bound.
    runtime.shutdown_timeout(Duration::from_millis(500));
    telemetry.shutdown();
    code
}

/// What a person needs to start: where GraphiQL is, a token, and a command to paste.
fn print_banner(app: &App) {
    let base = format!("http://{}", app.local_addr());
    let config = app.config();
    println!();
    match app.emulator() {
        Some(emulator) => println!(
            "m365-gateway is running on the built-in Microsoft Graph emulator ({} users, seed {}) at {}",
            config.emulator.users,
            config.emulator.seed,
            emulator.base_url()
        ),
        None => println!("m365-gateway is running against {}", config.graph.base_url),
    }
    println!();
    if config.graphiql_enabled() {
        println!("  GraphiQL   {base}/graphiql");
    }
    println!("  GraphQL    {base}/graphql");
    println!("  REST       {base}/api/v1/users");
    if let Some(token) = app.dev_token() {
        println!();
        println!(
            "  Dev token (caller '{DEMO_CALLER}', acting for {}, valid {}; pre-filled in GraphiQL):",
            graph_emulator::DEMO_USER_UPN,
            humantime::format_duration(DEV_TOKEN_TTL)
        );
        println!();
        println!("{token}");
        println!();
        println!("  Try:");
        println!(
            "  curl -s {base}/graphql -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    -d '{{\"query\":\"{{ me {{ displayName manager {{ displayName }} directReports(first: 5) {{ nodes {{ displayName jobTitle }} }} }} }}\"}}'"
        );
    }
    println!();
}

/// SIGHUP re-reads the configuration and applies its issuers, callers and policies; a
/// configuration that does not validate is refused and the running one stays.
fn reload_on_sighup(reloader: crate::app::Reloader, args: ServeArgs) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; configuration reload is off");
            return;
        };
        while hangups.recv().await.is_some() {
            let Ok(config) = serve_config(&args) else {
                tracing::error!(
                    "SIGHUP: the configuration cannot be read; keeping the running one"
                );
                continue;
            };
            match reloader.reload(config).await {
                Ok(()) => tracing::info!("SIGHUP: configuration reloaded"),
                Err(e) => tracing::error!("SIGHUP: {e}; keeping the running configuration"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (reloader, args);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

fn emulator(args: EmulatorArgs) -> ExitCode {
    let _logs = crate::telemetry::init(&Default::default(), &Default::default());
    runtime().block_on(async move {
        let settings = graph_emulator::EmulatorConfig {
            users: args.users,
            seed: args.seed,
            latency: args.latency,
            notifications: graph_emulator::NotificationSettings {
                allow_http_hosts: args.allow_http_notification_hosts,
                ..Default::default()
            },
            ..Default::default()
        };
        let running = match graph_emulator::Emulator::spawn(settings, args.listen).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the emulator on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!(
            "Microsoft Graph emulator: {} (Graph), {}/{}/oauth2/v2.0/token (Entra ID)",
            running.graph_url(),
            running.base_url(),
            running.emulator.tenant_id()
        );
        println!(
            "  tenant {}  client id {}  client secret {}",
            running.emulator.tenant_id(),
            graph_emulator::DEFAULT_CLIENT_ID,
            graph_emulator::DEFAULT_CLIENT_SECRET
        );
        println!("  stats    {}/_emulator/stats", running.base_url());
        shutdown_signal().await;
        ExitCode::SUCCESS
    })
}

fn dev_token(args: DevTokenArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(c) => c.with_embedded_defaults(),
        Err(code) => return code,
    };
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let user = args.user.or_else(|| {
        config
            .uses_emulator()
            .then(|| graph_emulator::DEMO_USER_UPN.to_owned())
    });
    match crate::auth::mint_dev_token(&config, &args.caller, user.as_deref(), args.ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(args: ConfigArg) -> ExitCode {
    let config = match load(&args) {
        Ok(c) => c.with_embedded_defaults(),
        Err(code) => return code,
    };
    match config.validate() {
        Ok(()) => {
            let mode = if config.uses_emulator() {
                "built-in emulator".to_owned()
            } else {
                format!("Microsoft Graph at {}", config.graph.base_url)
            };
            println!("configuration OK");
            println!("  listen      {}", config.listen);
            println!("  graph       {mode}");
            println!("  production  {}", config.production);
            println!(
                "  issuers     {}",
                config
                    .issuers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  callers     {}",
                config
                    .callers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
