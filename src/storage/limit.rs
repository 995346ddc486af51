//! Concurrency limits as decorators (object_store's `LimitStore`): at most `max_requests`
//! requests in flight to one service, whatever the layers above fan out — planning lists
//! many day folders at once, copies many files, each file many blocks. A read holds its
//! permit until its body is consumed or dropped, because an open body is an open
//! connection.
//!
//! Lease calls are not limited: the lock keeps its own clock, and a renewal queued
//! behind a burst of writes could outlive the lease it renews.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StateBlobStore;
use super::{
    BlobBody, BlobInfo, BlobStore, ByteStream, ErrorKind, Existing, Page, PageToken, PutOptions, RestoreMeta,
    SidecarOutcome, Sink, Source, SourceBody, SourceObject, StorageError, StorageResult, Upload,
};

/// Permits for one service's requests.
#[derive(Debug, Clone)]
struct Permits {
    semaphore: Arc<Semaphore>,
}

impl Permits {
    fn new(max_requests: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max_requests.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }

    async fn acquire(&self, op: &'static str, target: &str) -> StorageResult<OwnedSemaphorePermit> {
        // The semaphore is never closed; an error here would be a bug, reported, not a panic.
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, op, target, e))
    }

    fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// A body that gives its permit back when it ends, fails or is dropped: a copy that has
/// read its source to the end no longer holds the source's permit while it commits.
fn hold_until_done(body: ByteStream, permit: OwnedSemaphorePermit) -> ByteStream {
    futures::stream::unfold((body, Some(permit)), |(mut body, mut permit)| async move {
        permit.as_ref()?;
        let chunk = body.next().await;
        if !matches!(chunk, Some(Ok(_))) {
            permit = None;
        }
        chunk.map(|c| (c, (body, permit)))
    })
    .boxed()
}

/// A [`Source`] with at most `max_requests` requests in flight.
pub struct LimitedSource {
    inner: Arc<dyn Source>,
    permits: Permits,
}

impl LimitedSource {
    pub fn new(inner: Arc<dyn Source>, max_requests: usize) -> Self {
        Self {
            inner,
            permits: Permits::new(max_requests),
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Source for LimitedSource {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        let _permit = self.permits.acquire("list", prefix).await?;
        self.inner.list_page(prefix, start_after, token).await
    }

    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        let _permit = self.permits.acquire("list", prefix).await?;
        self.inner.list_folders(prefix).await
    }

    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        let permit = self.permits.acquire("get", key).await?;
        let SourceBody { head, body } = self.inner.get(key).await?;
        Ok(SourceBody {
            head,
            body: hold_until_done(body, permit),
        })
    }
}

/// A [`BlobStore`] with at most `max_requests` requests in flight (leases excepted).
pub struct LimitedStore<S: ?Sized = dyn BlobStore> {
    inner: Arc<S>,
    permits: Permits,
}

impl<S: BlobStore + ?Sized> LimitedStore<S> {
    pub fn new(inner: Arc<S>, max_requests: usize) -> Self {
        Self {
            inner,
            permits: Permits::new(max_requests),
        }
    }

    /// Permits not in use now (for tests and diagnostics).
    pub fn available(&self) -> usize {
        self.permits.available()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: BlobStore + ?Sized> BlobStore for LimitedStore<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn ensure_container(&self) -> StorageResult<()> {
        let _permit = self.permits.acquire("create container", "").await?;
        self.inner.ensure_container().await
    }

    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>> {
        let _permit = self.permits.acquire("list", prefix).await?;
        self.inner.list_page(prefix, token).await
    }

    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>> {
        let _permit = self.permits.acquire("list", prefix).await?;
        self.inner.list_folders_page(prefix, token).await
    }

    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>> {
        let _permit = self.permits.acquire("head", name).await?;
        self.inner.head(name).await
    }

    async fn get(&self, name: &str) -> StorageResult<BlobBody> {
        let permit = self.permits.acquire("get", name).await?;
        let BlobBody { info, body } = self.inner.get(name).await?;
        Ok(BlobBody {
            info,
            body: hold_until_done(body, permit),
        })
    }

    async fn put(&self, name: &str, data: Bytes, opts: PutOptions) -> StorageResult<String> {
        let _permit = self.permits.acquire("put", name).await?;
        self.inner.put(name, data, opts).await
    }

    async fn stage_block(&self, name: &str, block_id: &[u8], data: Bytes, md5: [u8; 16]) -> StorageResult<()> {
        let _permit = self.permits.acquire("put block", name).await?;
        self.inner.stage_block(name, block_id, data, md5).await
    }

    async fn commit_blocks(&self, name: &str, block_ids: Vec<Vec<u8>>, opts: PutOptions) -> StorageResult<String> {
        let _permit = self.permits.acquire("commit blocks", name).await?;
        self.inner.commit_blocks(name, block_ids, opts).await
    }

    async fn acquire_lease(&self, name: &str, seconds: u32) -> StorageResult<String> {
        self.inner.acquire_lease(name, seconds).await
    }

    async fn renew_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        self.inner.renew_lease(name, lease_id).await
    }

    async fn release_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        self.inner.release_lease(name, lease_id).await
    }
}

#[async_trait]
impl<S: StateBlobStore + ?Sized> StateBlobStore for LimitedStore<S> {
    async fn delete(&self, name: &str) -> StorageResult<()> {
        let _permit = self.permits.acquire("delete", name).await?;
        self.inner.delete(name).await
    }
}

/// A restore [`Sink`] with at most `max_requests` requests in flight. An upload holds its
/// permit from `begin` until it is committed or aborted: like an open body, an open
/// upload is an open file or multipart upload, whose parts go out one at a time inside it.
pub struct LimitedSink {
    inner: Arc<dyn Sink>,
    permits: Permits,
}

impl LimitedSink {
    pub fn new(inner: Arc<dyn Sink>, max_requests: usize) -> Self {
        Self {
            inner,
            permits: Permits::new(max_requests),
        }
    }

    /// Permits not in use now (for tests and diagnostics).
    pub fn available(&self) -> usize {
        self.permits.available()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Sink for LimitedSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    /// No request: a rule of the target's naming.
    fn cannot_hold(&self, key: &str) -> Option<String> {
        self.inner.cannot_hold(key)
    }

    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>> {
        let _permit = self.permits.acquire("head", key).await?;
        self.inner.existing(key).await
    }

    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        let _permit = self.permits.acquire("get", key).await?;
        self.inner.existing_sha256(key).await
    }

    async fn begin(&self, key: &str, size: u64, meta: &RestoreMeta) -> StorageResult<Box<dyn Upload + '_>> {
        let permit = self.permits.acquire("put", key).await?;
        let inner = self.inner.begin(key, size, meta).await?;
        Ok(Box::new(LimitedUpload { inner, _permit: permit }))
    }

    async fn put_sidecar(&self, key: &str, sidecar: &serde_json::Value) -> StorageResult<SidecarOutcome> {
        let _permit = self.permits.acquire("put", key).await?;
        self.inner.put_sidecar(key, sidecar).await
    }
}

/// An upload holding its sink's permit until it ends.
struct LimitedUpload<'a> {
    inner: Box<dyn Upload + 'a>,
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Upload for LimitedUpload<'_> {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()> {
        self.inner.write(chunk).await
    }

    async fn commit(self: Box<Self>, meta: &RestoreMeta) -> StorageResult<()> {
        let LimitedUpload { inner, _permit } = *self;
        inner.commit(meta).await
    }

    async fn abort(self: Box<Self>) {
        let LimitedUpload { inner, _permit } = *self;
        inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::{MemoryBlobStore, MemorySource};
    use crate::storage::{BlobStoreExt, SourceExt};
    use futures::TryStreamExt;
    use std::time::Duration;

    async fn store_with(names: &[&str]) -> LimitedStore {
        let inner = Arc::new(MemoryBlobStore::new());
        for name in names {
            inner
                .put(name, Bytes::from_static(b"x"), PutOptions::default())
                .await
                .unwrap();
        }
        LimitedStore::new(inner, 2)
    }

    #[tokio::test]
    async fn an_open_body_holds_its_permit_until_it_is_read_or_dropped() {
        let store = store_with(&["a", "b"]).await;
        let a = store.get("a").await.unwrap();
        let b = store.get("b").await.unwrap();
        assert_eq!(store.available(), 0);
        // A third request waits while both bodies are open.
        let third = tokio::time::timeout(Duration::from_millis(50), store.head("a")).await;
        assert!(third.is_err(), "a request went past the limit");
        let mut a_body = a.body;
        while a_body.try_next().await.unwrap().is_some() {}
        // Read to the end: the permit is back though the stream is still held.
        assert_eq!(store.available(), 1);
        drop(a_body);
        assert_eq!(store.available(), 1);
        drop(b);
        assert_eq!(store.available(), 2);
        assert!(store.head("a").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_listing_takes_a_permit_per_page_not_for_its_whole_walk() {
        let store = store_with(&["a", "b", "c", "d", "e", "f", "g"]).await;
        let mut listing = store.list("");
        let first = listing.try_next().await.unwrap();
        assert_eq!(first.map(|b| b.name).as_deref(), Some("a"));
        // Between pages nothing is held, so a walk cannot starve the copies beside it.
        assert_eq!(store.available(), 2);
        let rest: Vec<BlobInfo> = listing.try_collect().await.unwrap();
        assert_eq!(rest.len(), 6);
    }

    #[tokio::test]
    async fn leases_are_not_queued_behind_other_requests() {
        let store = store_with(&["lock", "a", "b"]).await;
        let _a = store.get("a").await.unwrap();
        let _b = store.get("b").await.unwrap();
        let lease = tokio::time::timeout(Duration::from_secs(5), store.acquire_lease("lock", 15)).await;
        assert!(lease.expect("a lease call waited for a permit").is_ok());
    }

    #[tokio::test]
    async fn an_open_upload_holds_its_permit_until_it_is_committed_or_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LimitedSink::new(Arc::new(crate::storage::folder::FolderSink::new(dir.path())), 1);
        let meta = RestoreMeta::default();
        let mut upload = sink.begin("a/b.json.gz", 1, &meta).await.unwrap();
        upload.write(Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(sink.available(), 0);
        let head = tokio::time::timeout(Duration::from_millis(50), sink.existing("a/b.json.gz"));
        assert!(head.await.is_err(), "a request went past the limit");
        upload.commit(&meta).await.unwrap();
        assert_eq!(sink.available(), 1);
        assert!(sink.existing("a/b.json.gz").await.unwrap().is_some());
        let upload = sink.begin("a/c.json.gz", 1, &meta).await.unwrap();
        upload.abort().await;
        assert_eq!(sink.available(), 1);
        assert!(sink.existing("a/c.json.gz").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_source_body_holds_its_permit_too() {
        let inner = Arc::new(MemorySource::new("b"));
        inner.put("k", Bytes::from_static(b"x"), Default::default(), chrono::Utc::now());
        let source = LimitedSource::new(inner, 1);
        let body = source.get("k").await.unwrap();
        let listing = tokio::time::timeout(Duration::from_millis(50), source.list("", None).try_collect::<Vec<_>>());
        assert!(listing.await.is_err(), "a listing went past the limit");
        drop(body);
        let listed: Vec<SourceObject> = source.list("", None).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
    }
}
