//! Events: archive new CloudTrail files minutes after delivery, from the queue that
//! announces them, by the same verified, create-only copy as `sync` (handed in by the
//! runtime as a [`CopyFile`]). Events take no lease and move no watermark: the scheduled
//! `sync` stays the completeness check and copies whatever events missed.

pub mod drain;
pub mod message;
mod metrics;
pub mod report;
pub mod select;

pub use crate::archive::CopyOutcome;
pub use drain::{CopyFile, DrainJob, EventSource};
pub use report::{events_records, EventsReport, SourceEvents};
