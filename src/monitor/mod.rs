//! Azure Monitor: the Logs Ingestion API over azure_core (there is no usable Rust
//! client). Records go to the contract's `TrailVault_CL` table through a DCR stream.

pub mod ingest;
pub mod query;

pub use ingest::{LogsIngestion, MonitorError};
pub use query::LogsQuery;
