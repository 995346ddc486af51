//! The logic above the storage traits over the in-memory stores: the storage contract,
//! sync, restore, verify, keys, saml audit, status and Log Analytics publishing. Fast, no
//! emulator, no process: the library is driven directly. One file per domain; they share
//! the helpers here.

use trailvault_test_support as support;

mod audit;
mod events;
mod keys;
mod publish;
mod restore;
mod status;
mod sync;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use trailvault::config::SyncSettings;
use trailvault::storage::memory::{MemoryBlobStore, MemorySource};
use trailvault::storage::{BlobStore, BlobStoreExt, Page, PageToken, Source, SourceBody, SourceObject, StorageResult};
use trailvault::sync::{SourceHandle, SyncJob};

#[tokio::test]
async fn memory_blob_store_meets_the_storage_contract() {
    support::store_suite::blob_store_contract(&MemoryBlobStore::new(), "contract").await;
}

#[tokio::test]
async fn memory_source_meets_the_storage_contract() {
    let src = MemorySource::new("b");
    support::store_suite::source_contract(&src, &src).await;
}

fn settings() -> SyncSettings {
    SyncSettings {
        concurrency: 4,
        max_requests: 8,
        in_flight_bytes: 8 << 20,
        lookback: std::time::Duration::from_secs(72 * 3600),
        max_gap: std::time::Duration::from_secs(8 * 3600),
    }
}

fn job(src: Arc<dyn Source>, archive: Arc<MemoryBlobStore>, state: Arc<MemoryBlobStore>) -> SyncJob {
    SyncJob {
        sources: vec![SourceHandle {
            name: "m".into(),
            prefix: String::new(),
            source: src,
            credentials_error: None,
        }],
        archive: archive.into(),
        state: state.into(),
        settings: settings(),
        dry_run: false,
        progress: Arc::new(trailvault::progress::NoProgress),
        health: trailvault::config::HealthConfig {
            probe_timeout: std::time::Duration::from_secs(5),
            degraded_after: 1,
            outage_after: 3,
        },
        retry: trailvault::storage::retry::RetryPolicy::new(Default::default()),
        cancel: Default::default(),
        requests: Default::default(),
        deadline: None,
        create_containers: false,
    }
}

fn seed(src: &MemorySource) -> Vec<support::ctgen::GenFile> {
    let files = support::ctgen::Trail::sample("b", 3).generate();
    for f in &files {
        src.put(&f.key, f.body.clone().into(), f.metadata.clone(), chrono::Utc::now());
    }
    files
}

#[tokio::test]
async fn replay_store_over_memory() {
    support::store_suite::replay_store_contract(&MemoryBlobStore::new()).await;
}
