//! trailvault keeps a verified, write-once copy of AWS CloudTrail logs in Azure Blob
//! Storage, so that auditing goes on when AWS does not.
//!
//! Floors, each importing only from those below (no cycles between top-level modules):
//!
//! 1. knowledge, pure: `cloudtrail` (keys, digests, records), `archive` (naming and
//!    metadata), `records` (run records, run ids), `config`, `names` (identifier
//!    newtypes), `secret`, `telemetry`, `truncated`, `progress`, `fault` (error classes)
//! 2. edges, the only code that talks to clouds and disks: `storage` (traits and their
//!    S3, Blob, folder and memory implementations), `state` (the state container's
//!    layout), `cloudtrail_api` (ListPublicKeys), `monitor` (Log Analytics), `files` (the
//!    config and key files), `xmlsec` (libxml2/xmlsec FFI and samael), `federation_io` (IdP
//!    metadata, roles.toml, the replay cache file)
//! 3. domains, provider-free logic: `sync`, `integrity`, `federation`, `failover`
//! 4. runtime: `app` (all job wiring), `cli`, `serve`

// knowledge
pub mod archive;
pub mod cloudtrail;
pub mod config;
pub mod fault;
pub mod key_failure;
pub mod names;
pub mod progress;
pub mod records;
pub mod secret;
pub mod telemetry;
pub mod truncated;

// edges
pub mod cloudtrail_api;
pub mod federation_io;
pub mod files;
pub mod monitor;
pub mod queue;
pub mod state;
pub mod storage;
pub mod xmlsec;

// domains
pub mod events;
pub mod failover;
pub mod federation;
pub mod integrity;
pub mod sync;

// runtime
pub mod app;
pub mod cli;
pub mod serve;
