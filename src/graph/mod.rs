//! Everything that talks to Microsoft Graph. Knows nothing of axum or async-graphql.

mod client;
pub mod error;
pub mod models;
pub mod resilience;
pub mod url;

pub use client::{GraphClient, GraphClientSettings, GraphGet, GraphReply, GraphWrite, Idempotency};
pub use error::GraphError;
pub use resilience::RetrySettings;
pub use url::{GraphUrl, UrlError, odata_string, search_clause};
