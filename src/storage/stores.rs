//! The two containers as distinct types, so they cannot be swapped by mistake and the
//! archive's write-once rule holds by type: an [`ArchiveStore`] reads and creates blobs and
//! has no delete; a [`StateStore`] (watermarks, health, run records, the spool) may also
//! delete.

use std::ops::Deref;
use std::sync::Arc;

use super::{BlobStore, StateBlobStore};

/// The archive container: reads and create-only writes, never a delete. Deleting through
/// it does not compile:
///
/// ```compile_fail
/// use trailvault::storage::{ArchiveStore, StateBlobStore};
/// async fn erase(archive: ArchiveStore) {
///     archive.delete("AWSLogs/o-1/CloudTrail/log.json.gz").await;
/// }
/// ```
///
/// while the state container's may:
///
/// ```
/// use trailvault::storage::{StateBlobStore, StateStore};
/// async fn unspool(state: StateStore) {
///     let _ = state.delete("spool/run.json").await;
/// }
/// ```
#[derive(Clone)]
pub struct ArchiveStore(Arc<dyn BlobStore>);

impl ArchiveStore {
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        Self(store)
    }

    /// The store itself, for code that holds it beyond a borrow (tasks, decorators).
    pub fn shared(&self) -> Arc<dyn BlobStore> {
        self.0.clone()
    }
}

impl Deref for ArchiveStore {
    type Target = dyn BlobStore;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl AsRef<dyn BlobStore> for ArchiveStore {
    fn as_ref(&self) -> &(dyn BlobStore + 'static) {
        self.0.as_ref()
    }
}

impl<T: BlobStore + 'static> From<Arc<T>> for ArchiveStore {
    fn from(store: Arc<T>) -> Self {
        Self(store)
    }
}

/// The state container: watermarks, health, the lock, run records and the spool.
#[derive(Clone)]
pub struct StateStore(Arc<dyn StateBlobStore>);

impl StateStore {
    pub fn new(store: Arc<dyn StateBlobStore>) -> Self {
        Self(store)
    }

    /// The store itself, for code that holds it beyond a borrow (the lock's renewal task).
    pub fn shared(&self) -> Arc<dyn StateBlobStore> {
        self.0.clone()
    }
}

impl Deref for StateStore {
    type Target = dyn StateBlobStore;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl AsRef<dyn StateBlobStore> for StateStore {
    fn as_ref(&self) -> &(dyn StateBlobStore + 'static) {
        self.0.as_ref()
    }
}

impl<T: StateBlobStore + 'static> From<Arc<T>> for StateStore {
    fn from(store: Arc<T>) -> Self {
        Self(store)
    }
}
