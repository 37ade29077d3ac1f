//! m365-gateway: one simple, safe and fast GraphQL + REST door into Microsoft 365.
//!
//! The request path runs one way (see `docs/architecture.md`):
//! tower layers → [`auth`] → transport ([`graphql`], [`rest`]) → [`service`] → [`graph`]
//! → Microsoft Graph or the built-in emulator (the `graph-emulator` crate).

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod graph;
pub mod graphql;
pub mod identity;
pub mod rate_limit;
pub mod redis_pubsub;
pub mod rest;
pub mod service;
pub mod shared_cache;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use app::App;
pub use config::Config;
