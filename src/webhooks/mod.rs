//! Change notifications: Graph's webhooks in, consumers' events out.
//!
//! - `manage.rs`   the shared runtime; creating, renewing, deleting Graph subscriptions
//! - `receive.rs`  `/webhooks/graph` and `/webhooks/graph/lifecycle`: the validation
//!   handshake, clientState checks, commit to the outbox before 202
//! - `worker.rs`   drains the outbox: re-reads what changed, records events, evicts caches
//! - `renewal.rs`  keeps Graph subscriptions alive, re-creates lost ones, delta resyncs
//! - `bus.rs`      live fan-out of events to GraphQL subscribers
//! - `rich.rs`     rich notifications: validation tokens, decrypting resource data
//! - `outbound.rs` signed deliveries of events to consumers' webhooks, retries, dead letters

pub mod bus;
pub mod manage;
pub mod outbound;
pub mod receive;
pub mod renewal;
pub mod rich;
pub mod worker;
