//! trailvault keeps a verified, write-once copy of AWS CloudTrail logs in Azure Blob
//! Storage, so that auditing goes on when AWS does not.
//!
//! Floors, each importing only from those below: `cloudtrail`, `config`, `secret`,
//! `telemetry` (pure knowledge) < `storage` (the only code that talks to clouds) <
//! `sync`, `failover`, `federation` (the product's logic, provider-free) < `cli`.

pub mod app;
pub mod archive;
pub mod cli;
pub mod cloudtrail;
pub mod config;
pub mod failover;
pub mod federation;
pub mod monitor;
pub mod progress;
pub mod secret;
pub mod serve;
pub mod storage;
pub mod sync;
pub mod telemetry;
