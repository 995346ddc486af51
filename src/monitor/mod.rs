//! Edge: Azure Monitor. The Logs Ingestion API over azure_core (there is no usable
//! Rust client) behind the [`RecordSink`] trait, and the query API for `status`.
//! Records go to the contract's `TrailVault_CL` table through a DCR stream.

pub mod ingest;
pub mod query;

pub use ingest::{LogsIngestion, MonitorError};
pub use query::LogsQuery;

use crate::records::Record;

/// Where run records go beyond the state container. Publishing (spool, order) is
/// written against this trait, so it is tested without a network.
#[async_trait::async_trait]
pub trait RecordSink: Send + Sync {
    /// Sends one batch as [`ingest::batches`] cuts them: one call, accepted or refused
    /// whole, so the caller knows which records went through when a later batch fails.
    async fn send_batch(&self, batch: &[Record]) -> Result<(), MonitorError>;
}

#[async_trait::async_trait]
impl RecordSink for LogsIngestion {
    async fn send_batch(&self, batch: &[Record]) -> Result<(), MonitorError> {
        LogsIngestion::send_batch(self, batch).await
    }
}

/// A pipeline that adds a bearer token for `scope` on every try (the azure_core retry
/// policy of `options` wraps it).
pub(crate) fn bearer_pipeline(
    scope: &'static str,
    credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    options: azure_core::http::ClientOptions,
) -> azure_core::http::Pipeline {
    let bearer = std::sync::Arc::new(azure_core::http::policies::auth::BearerTokenAuthorizationPolicy::new(
        credential,
        vec![scope],
    ));
    azure_core::http::Pipeline::new(
        option_env!("CARGO_PKG_NAME"),
        option_env!("CARGO_PKG_VERSION"),
        options,
        Vec::new(),
        vec![bearer],
        None,
    )
}
