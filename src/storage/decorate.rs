//! Cross-cutting behaviour as decorators over the storage traits, beside the retry
//! decorators in `retry.rs`: request counting (what a run cost, for the run document and
//! the benchmark) and read-only stores (a dry run cannot write, by construction).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::StateBlobStore;
use super::{
    BlobBody, BlobInfo, BlobStore, ErrorKind, Existing, Page, PageToken, PutOptions, RestoreMeta, SidecarOutcome, Sink,
    Source, SourceBody, SourceObject, StorageError, StorageResult, Upload,
};

/// Requests made, by `{side}.{operation}` (`s3.get`, `archive.put`, `state.get`, ...).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>,
}

impl RequestCounter {
    fn slot(&self, side: &str, operation: &str) -> Arc<AtomicU64> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.entry(format!("{side}.{operation}")).or_default().clone()
    }

    fn count(&self, side: &str, operation: &str) {
        self.slot(side, operation).fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// A [`Source`] that counts its requests under `s3.*`.
pub struct CountingSource {
    inner: Arc<dyn Source>,
    counter: RequestCounter,
}

impl CountingSource {
    pub fn new(inner: Arc<dyn Source>, counter: RequestCounter) -> Self {
        Self { inner, counter }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Source for CountingSource {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        self.counter.count("s3", "list");
        self.inner.list_page(prefix, start_after, token).await
    }

    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.counter.count("s3", "list");
        self.inner.list_folders(prefix).await
    }

    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        self.counter.count("s3", "get");
        self.inner.get(key).await
    }
}

/// A [`BlobStore`] that counts its requests under `{side}.*`.
pub struct CountingStore<S: ?Sized = dyn BlobStore> {
    inner: Arc<S>,
    counter: RequestCounter,
    side: &'static str,
}

impl<S: BlobStore + ?Sized> CountingStore<S> {
    pub fn new(inner: Arc<S>, counter: RequestCounter, side: &'static str) -> Self {
        Self { inner, counter, side }
    }

    fn count(&self, operation: &str) {
        self.counter.count(self.side, operation);
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: BlobStore + ?Sized> BlobStore for CountingStore<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn ensure_container(&self) -> StorageResult<()> {
        self.count("container");
        self.inner.ensure_container().await
    }

    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>> {
        self.count("list");
        self.inner.list_page(prefix, token).await
    }

    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>> {
        self.count("list");
        self.inner.list_folders_page(prefix, token).await
    }

    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>> {
        self.count("head");
        self.inner.head(name).await
    }

    async fn get(&self, name: &str) -> StorageResult<BlobBody> {
        self.count("get");
        self.inner.get(name).await
    }

    async fn put(&self, name: &str, data: Bytes, opts: PutOptions) -> StorageResult<String> {
        self.count("put");
        self.inner.put(name, data, opts).await
    }

    async fn stage_block(&self, name: &str, block_id: &[u8], data: Bytes, md5: [u8; 16]) -> StorageResult<()> {
        self.count("put");
        self.inner.stage_block(name, block_id, data, md5).await
    }

    async fn commit_blocks(&self, name: &str, block_ids: Vec<Vec<u8>>, opts: PutOptions) -> StorageResult<String> {
        self.count("put");
        self.inner.commit_blocks(name, block_ids, opts).await
    }

    async fn acquire_lease(&self, name: &str, seconds: u32) -> StorageResult<String> {
        self.count("lease");
        self.inner.acquire_lease(name, seconds).await
    }

    async fn renew_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        self.count("lease");
        self.inner.renew_lease(name, lease_id).await
    }

    async fn release_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        self.count("lease");
        self.inner.release_lease(name, lease_id).await
    }
}

#[async_trait]
impl<S: StateBlobStore + ?Sized> StateBlobStore for CountingStore<S> {
    async fn delete(&self, name: &str) -> StorageResult<()> {
        self.count("delete");
        self.inner.delete(name).await
    }
}

/// A restore [`Sink`] that counts its requests under `{side}.*`. An upload counts as one
/// `put`, however many parts it sends.
pub struct CountingSink {
    inner: Arc<dyn Sink>,
    counter: RequestCounter,
    side: &'static str,
}

impl CountingSink {
    pub fn new(inner: Arc<dyn Sink>, counter: RequestCounter, side: &'static str) -> Self {
        Self { inner, counter, side }
    }

    fn count(&self, operation: &str) {
        self.counter.count(self.side, operation);
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Sink for CountingSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    /// No request: a rule of the target's naming.
    fn cannot_hold(&self, key: &str) -> Option<String> {
        self.inner.cannot_hold(key)
    }

    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>> {
        self.count("head");
        self.inner.existing(key).await
    }

    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        self.count("get");
        self.inner.existing_sha256(key).await
    }

    async fn begin(&self, key: &str, size: u64, meta: &RestoreMeta) -> StorageResult<Box<dyn Upload + '_>> {
        self.count("put");
        self.inner.begin(key, size, meta).await
    }

    async fn put_sidecar(&self, key: &str, sidecar: &serde_json::Value) -> StorageResult<SidecarOutcome> {
        self.count("put");
        self.inner.put_sidecar(key, sidecar).await
    }
}

/// A [`BlobStore`] that reads and refuses every write: what a dry run gets, so "writes
/// nothing" holds by construction, not by every code path remembering a flag.
pub struct ReadOnlyStore<S: ?Sized = dyn BlobStore> {
    inner: Arc<S>,
}

impl<S: BlobStore + ?Sized> ReadOnlyStore<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    fn refuse<T>(&self, op: &'static str, name: &str) -> StorageResult<T> {
        Err(StorageError::new(
            ErrorKind::Other,
            op,
            format!("{}/{name}", self.inner.describe()),
            "refused: this run is read-only (dry run)",
        ))
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: BlobStore + ?Sized> BlobStore for ReadOnlyStore<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn ensure_container(&self) -> StorageResult<()> {
        self.refuse("create container", "")
    }

    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>> {
        self.inner.list_page(prefix, token).await
    }

    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>> {
        self.inner.list_folders_page(prefix, token).await
    }

    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>> {
        self.inner.head(name).await
    }

    async fn get(&self, name: &str) -> StorageResult<BlobBody> {
        self.inner.get(name).await
    }

    async fn put(&self, name: &str, _data: Bytes, _opts: PutOptions) -> StorageResult<String> {
        self.refuse("put", name)
    }

    async fn stage_block(&self, name: &str, _block_id: &[u8], _data: Bytes, _md5: [u8; 16]) -> StorageResult<()> {
        self.refuse("put block", name)
    }

    async fn commit_blocks(&self, name: &str, _block_ids: Vec<Vec<u8>>, _opts: PutOptions) -> StorageResult<String> {
        self.refuse("commit blocks", name)
    }

    async fn acquire_lease(&self, name: &str, _seconds: u32) -> StorageResult<String> {
        self.refuse("acquire lease", name)
    }

    async fn renew_lease(&self, name: &str, _lease_id: &str) -> StorageResult<()> {
        self.refuse("renew lease", name)
    }

    async fn release_lease(&self, name: &str, _lease_id: &str) -> StorageResult<()> {
        self.refuse("release lease", name)
    }
}

#[async_trait]
impl<S: BlobStore + ?Sized> StateBlobStore for ReadOnlyStore<S> {
    async fn delete(&self, name: &str) -> StorageResult<()> {
        self.refuse("delete", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBlobStore;
    use crate::storage::BlobStoreExt;

    #[tokio::test]
    async fn counting_counts_by_side_and_operation() {
        let counter = RequestCounter::default();
        let store = CountingStore::new(Arc::new(MemoryBlobStore::new()), counter.clone(), "azure");
        store.ensure_container().await.unwrap();
        store
            .put("a", Bytes::from_static(b"x"), PutOptions::default())
            .await
            .unwrap();
        store.head("a").await.unwrap();
        store.list_all("").await.unwrap();
        for name in ["b", "c", "d"] {
            store
                .put(name, Bytes::from_static(b"x"), PutOptions::default())
                .await
                .unwrap();
        }
        // Four blobs at the memory store's three a page: a listing is two requests.
        assert_eq!(store.list_all("").await.unwrap().len(), 4);
        let counts = counter.snapshot();
        assert_eq!(counts["azure.put"], 4);
        assert_eq!(counts["azure.list"], 3);
        assert_eq!(counts["azure.head"], 1);
    }

    #[tokio::test]
    async fn a_counting_sink_counts_by_operation_and_forwards_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let counter = RequestCounter::default();
        let folder = Arc::new(crate::storage::folder::FolderSink::new(dir.path()));
        let sink = CountingSink::new(folder, counter.clone(), "target");
        let meta = RestoreMeta::default();
        crate::storage::put_new(&sink, "a/b.json.gz", Bytes::from_static(b"x"), &meta)
            .await
            .unwrap();
        assert!(sink.existing("a/b.json.gz").await.unwrap().is_some());
        assert!(sink.existing_sha256("a/b.json.gz").await.unwrap().is_some());
        assert!(sink.cannot_hold("a//b").is_some(), "the folder's rule fell through");
        let counts = counter.snapshot();
        assert_eq!(counts["target.put"], 1);
        assert_eq!(counts["target.head"], 1);
        assert_eq!(counts["target.get"], 1);
    }

    #[tokio::test]
    async fn a_read_only_store_reads_and_refuses_every_write() {
        let inner = Arc::new(MemoryBlobStore::new());
        inner.ensure_container().await.unwrap();
        inner
            .put("a", Bytes::from_static(b"x"), PutOptions::default())
            .await
            .unwrap();
        let ro = ReadOnlyStore::new(inner.clone());
        assert!(ro.head("a").await.unwrap().is_some());
        assert_eq!(ro.list_all("").await.unwrap().len(), 1);
        assert!(ro.put("b", Bytes::new(), PutOptions::default()).await.is_err());
        assert!(ro.delete("a").await.is_err());
        assert!(ro.acquire_lease("a", 15).await.is_err());
        assert!(ro.ensure_container().await.is_err());
        assert!(inner.head("b").await.unwrap().is_none());
        assert!(inner.head("a").await.unwrap().is_some());
    }
}
