//! Edge: the state container's layout, owned in one place. Every mutable document
//! trailvault keeps — watermarks, run records, per-source health, the sync lock, the
//! Log Analytics spool, conflict notes — is named and typed here and read or written
//! through the [`BlobStore`] trait, so the domains never spell a state path.

pub mod conflicts;
pub mod health;
pub mod lock;
pub mod newest;
pub mod runs;
pub mod select;
pub mod spool;
pub mod watermark;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::storage::{read_all, BlobStore, Condition, PutOptions, StorageResult};

pub use health::SourceHealth;
pub use lock::{LockError, LockHolder, SyncLock, LOCK_BLOB};
pub use runs::write_run_records;

/// A JSON document as stored: parsed (or why it could not be) and its ETag.
#[derive(Debug)]
pub struct Doc<T> {
    pub value: Result<T, serde_json::Error>,
    pub etag: String,
}

/// Reads a JSON document; `None` when it does not exist. A document that does not
/// parse is returned as such, so each caller decides what unreadable state costs.
pub async fn get_json<T: DeserializeOwned>(state: &dyn BlobStore, name: &str) -> StorageResult<Option<Doc<T>>> {
    Ok(read_all(state, name).await?.map(|(bytes, info)| Doc {
        value: serde_json::from_slice(&bytes),
        etag: info.etag,
    }))
}

/// Writes a JSON document under `condition`; returns the new ETag.
pub async fn put_json<T: Serialize>(
    state: &dyn BlobStore,
    name: &str,
    doc: &T,
    condition: Condition,
    lease_id: Option<String>,
) -> StorageResult<String> {
    let body = serde_json::to_vec_pretty(doc)
        .map_err(|e| crate::storage::StorageError::new(crate::storage::ErrorKind::Other, "encode", name, e))?;
    state
        .put(
            name,
            body.into(),
            PutOptions {
                content_type: Some("application/json".into()),
                condition,
                lease_id,
                ..Default::default()
            },
        )
        .await
}
