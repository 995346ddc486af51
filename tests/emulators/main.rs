//! Everything that needs real emulators: Azurite for Blob, moto for S3, rclone as the
//! independent checker, a fault-injecting proxy for corruption and truncation. One
//! binary so the slow tests share a build; each test starts its own emulators. One
//! file per domain; helpers shared across them are `pub(super)` and glob-imported here.

use trailvault_test_support as support;

use std::collections::BTreeMap;

use futures::TryStreamExt;
use support::ctgen::{gzip, Trail};
use support::daemon::{answers_get, free_port, http_get, http_post, kill, metric, wait_for_metrics, Daemon};
use support::proxy::{Fault, Proxy};
use support::{files_under, World, SOURCE};
use trailvault::storage::{BlobStoreExt, SourceExt};

/// A world of fresh emulators, or an early return when they are missing outside CI
/// (under `CI=true` a missing emulator fails the test in `World::new`).
macro_rules! world {
    ($bucket:expr) => {
        match World::new($bucket).await {
            Some(w) => w,
            None => return,
        }
    };
}

mod aws;
mod aws_health;
mod credentials;
mod daemon;
mod direct_get;
mod events;
mod functions;
mod keys;
mod listings;
mod log_analytics;
mod resilience;
mod restore;
mod restore_safety;
mod saml_audit;
mod signals;
mod status;
mod sync;
mod verify;
mod waits;

#[allow(unused_imports)]
use {daemon::*, functions::*, restore::*, sync::*, verify::*};
