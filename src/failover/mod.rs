//! Reporting and recovery: run records, per-source health state (backup gap).
//! Restore, status and Log Analytics reporting build on these.

pub mod health;
pub mod keys;
pub mod publish;
pub mod record;
pub mod restore;
pub mod select;
pub mod status;
pub mod verify;

pub use health::{AwsHealth, SourceHealth};
pub use record::{new_run_id, write_run_records, Record, RecordType, RunStatus};
