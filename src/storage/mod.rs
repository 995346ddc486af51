//! Edge: the only code that talks to clouds and disks. Small traits — a CloudTrail
//! [`Source`] (S3), a [`BlobStore`] (Azure Blob, used both for the write-once archive
//! and the mutable state container) and a restore [`Sink`] — with S3, Azure, folder and
//! in-memory implementations. Knows nothing of CloudTrail beyond the metadata it carries.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub mod aws_credentials;
pub mod aws_waits;
pub mod azure_auth;
pub mod azure_http;
pub mod blob;
pub mod blob_folders;
pub mod decorate;
pub mod folder;
pub mod limit;
pub mod list;
pub mod memory;
pub mod retry;
pub mod s3;
pub mod s3_get;
pub mod stores;
pub mod streams;
pub mod verified;

pub use list::{BlobStoreExt, ListStream, Page, PageToken, SourceExt};
pub use stores::{ArchiveStore, StateStore};

/// What went wrong, in the terms the logic above needs to decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    /// Create-only write met an existing object (409 / 412 with If-None-Match: *).
    AlreadyExists,
    /// If-Match failed, or a lease no longer matches: someone else wrote.
    PreconditionFailed,
    /// A lease is held by someone else.
    LeaseHeld,
    /// The service refused our identity or signature.
    Auth,
    /// Credentials could not be obtained or were refused as credentials: STS or the
    /// Entra identity failed (refused, unreachable, garbled answer), or S3 called the key
    /// expired, unknown or mis-signed. Not an outage of the service itself.
    Credentials,
    /// The endpoint could not be reached (DNS, connect, timeout).
    Unreachable,
    /// Bytes did not match their checksum on the wire, or a body ended early.
    Integrity,
    /// The service asked us to slow down (429, S3 `SlowDown`, Azure `ServerBusy`).
    Throttled,
    /// The service failed (500, 502, 503, 504): the request may succeed again.
    Unavailable,
    Other,
}

impl ErrorKind {
    /// Worth another attempt: the fault was on the way or at the service, not in what we asked.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable | ErrorKind::Integrity | ErrorKind::Throttled | ErrorKind::Unavailable
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {target}: {message}")]
pub struct StorageError {
    pub kind: ErrorKind,
    pub op: &'static str,
    pub target: String,
    /// Already stripped of credentials.
    pub message: String,
    /// How long the service asked us to wait (`Retry-After`), when it said.
    pub retry_after: Option<std::time::Duration>,
}

impl StorageError {
    pub fn new(kind: ErrorKind, op: &'static str, target: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            kind,
            op,
            target: target.into(),
            message: crate::secret::redact_text(&message.to_string()),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, wait: Option<std::time::Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl crate::fault::Classify for StorageError {
    fn fault(&self) -> crate::fault::Fault {
        // A checksum mismatch on the wire is a transfer that failed, not evidence of
        // tampering: archived bytes are judged by verify and restore themselves.
        crate::fault::Fault::Failed
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// An object as a source listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    pub key: String,
    pub size: u64,
    /// As S3 gives it, without quotes. Not a content hash for KMS or multipart objects.
    pub etag: String,
    pub last_modified: DateTime<Utc>,
}

pub use crate::archive::SourceHead;

pub type ByteStream = BoxStream<'static, StorageResult<Bytes>>;

pub struct SourceBody {
    pub head: SourceHead,
    pub body: ByteStream,
}

/// A bucket of CloudTrail files.
#[async_trait]
pub trait Source: Send + Sync {
    fn bucket(&self) -> &str;
    /// One page of the objects under `prefix` whose keys sort after `start_after`, in
    /// key order; `token` continues a listing. Walk them with [`SourceExt::list`].
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>>;
    /// The "folders" directly under `prefix` (delimiter `/`), each ending in `/`. They are
    /// few (accounts, regions) and come whole.
    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>>;
    async fn get(&self, key: &str) -> StorageResult<SourceBody>;
}

/// Properties of a stored blob, as a listing or a HEAD shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: u64,
    pub content_md5: Option<[u8; 16]>,
    pub content_type: Option<String>,
    pub etag: String,
    pub metadata: BTreeMap<String, String>,
    /// A lease is held on it (set by `head`; listings leave it false).
    pub leased: bool,
}

/// What a write sends besides the bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    /// MD5 of the whole blob: checked by the service on a single Put Blob, stored on a block list.
    pub content_md5: Option<[u8; 16]>,
    pub metadata: BTreeMap<String, String>,
    pub condition: Condition,
    pub lease_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Condition {
    #[default]
    None,
    /// Create only: fail with [`ErrorKind::AlreadyExists`] if the blob exists.
    IfNoneMatch,
    /// Replace only the version we read: fail with [`ErrorKind::PreconditionFailed`] otherwise.
    IfMatch(String),
}

pub struct BlobBody {
    pub info: BlobInfo,
    pub body: ByteStream,
}

/// A blob container. Block ids given to one blob must all have the same length.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// A name for messages: `account/container`.
    fn describe(&self) -> String;
    async fn ensure_container(&self) -> StorageResult<()>;
    /// One page of the blobs whose names start with `prefix`, in name order; `token`
    /// continues a listing. Walk them with [`BlobStoreExt::list`].
    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>>;
    /// One page of the "folders" directly under `prefix` (delimiter `/`), each ending in
    /// `/`. Walk them with [`BlobStoreExt::list_folders`].
    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>>;
    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>>;
    async fn get(&self, name: &str) -> StorageResult<BlobBody>;
    /// One Put Blob; returns the new ETag.
    async fn put(&self, name: &str, data: Bytes, opts: PutOptions) -> StorageResult<String>;
    /// One Put Block, whose bytes the service checks against `md5`.
    async fn stage_block(&self, name: &str, block_id: &[u8], data: Bytes, md5: [u8; 16]) -> StorageResult<()>;
    /// Put Block List; `opts.content_md5` is stored, not checked (each block was).
    async fn commit_blocks(&self, name: &str, block_ids: Vec<Vec<u8>>, opts: PutOptions) -> StorageResult<String>;
    /// Acquire a lease of `seconds` (15-60) on an existing blob.
    async fn acquire_lease(&self, name: &str, seconds: u32) -> StorageResult<String>;
    async fn renew_lease(&self, name: &str, lease_id: &str) -> StorageResult<()>;
    async fn release_lease(&self, name: &str, lease_id: &str) -> StorageResult<()>;
}

/// A blob store whose blobs may also be deleted: the state container's (a spooled record
/// is deleted once sent). The archive is only ever a [`BlobStore`], so nothing can delete
/// an archived file through trailvault's code.
#[async_trait]
pub trait StateBlobStore: BlobStore {
    /// Deletes a blob; absent is fine.
    async fn delete(&self, name: &str) -> StorageResult<()>;
}

/// How to write a restored file besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct RestoreMeta {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_md5: Option<[u8; 16]>,
    /// S3 user metadata as CloudTrail wrote it (`signature`, `signature-algorithm`, ...).
    pub user_metadata: BTreeMap<String, String>,
    /// Written next to the file by targets that have no metadata (folders).
    pub sidecar: Option<serde_json::Value>,
}

/// What a restore target already holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub size: u64,
    /// An MD5 of the bytes where the target offers one cheaply (a plain S3 ETag).
    pub md5: Option<[u8; 16]>,
}

/// Where `restore` writes: a folder or an S3 bucket. Keys are original S3 keys.
/// Decorators implement every method, defaults included (`missing_trait_methods` is
/// denied on them), so a default can never answer for the store they wrap.
#[async_trait]
pub trait Sink: Send + Sync {
    fn describe(&self) -> String;
    /// Why this target cannot hold `key` verbatim, if it cannot (a folder cannot hold
    /// `a//b`; a bucket holds any key).
    fn cannot_hold(&self, _key: &str) -> Option<String> {
        None
    }
    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>>;
    /// SHA-256 (lowercase hex) of what is at `key`, reading it whole.
    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>>;
    /// Starts writing `key` (`size` bytes): nothing is at `key` until
    /// [`Upload::commit`], which is create-only ([`ErrorKind::AlreadyExists`]).
    /// `meta` carries what is known before the bytes (type, encoding, user metadata).
    async fn begin(&self, key: &str, size: u64, meta: &RestoreMeta) -> StorageResult<Box<dyn Upload + '_>>;
    /// Writes the metadata sidecar beside `key` (targets without object metadata);
    /// never over a different one.
    async fn put_sidecar(&self, _key: &str, _sidecar: &serde_json::Value) -> StorageResult<SidecarOutcome> {
        Ok(SidecarOutcome::Same)
    }
}

/// One file being written to a [`Sink`], a chunk at a time.
#[async_trait]
pub trait Upload: Send {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()>;
    /// Puts the (verified) bytes at their key, create-only; `meta.content_md5` is final.
    async fn commit(self: Box<Self>, meta: &RestoreMeta) -> StorageResult<()>;
    /// Drops what was written; nothing appears at the key.
    async fn abort(self: Box<Self>);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarOutcome {
    Written,
    /// Already there with the same content.
    Same,
    /// A different file is there: left alone, reported.
    Different,
}

/// Writes `data` at `key` only if nothing is there yet ([`ErrorKind::AlreadyExists`]
/// otherwise): one upload, begun, written and committed. A function over the trait, not
/// a default method a decorator could forget to forward.
pub async fn put_new(sink: &dyn Sink, key: &str, data: Bytes, meta: &RestoreMeta) -> StorageResult<()> {
    let mut up = sink.begin(key, data.len() as u64, meta).await?;
    if let Err(e) = up.write(data).await {
        up.abort().await;
        return Err(e);
    }
    up.commit(meta).await
}

/// How long a body may go without a byte before it counts as broken off. Without it a
/// stalled connection would hold its copy, its request permit and the run forever.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `body`, failing with [`ErrorKind::Integrity`] (bytes lost on the way: the whole read is
/// worth again) when no chunk arrives within `idle`.
pub fn with_idle_timeout(body: ByteStream, idle: std::time::Duration, target: String) -> ByteStream {
    use futures::StreamExt;
    futures::stream::unfold((body, Some(target)), move |(mut body, target)| async move {
        // After a stall the stream has ended with its error.
        let target = target?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(chunk)) => Some((chunk, (body, Some(target)))),
            Ok(None) => None,
            Err(_) => {
                let stalled = StorageError::new(
                    ErrorKind::Integrity,
                    "read",
                    target,
                    format!("no data for {} s: the transfer stalled", idle.as_secs_f32()),
                );
                Some((Err(stalled), (body, None)))
            }
        }
    })
    .boxed()
}

/// SHA-256 of a byte stream, in lowercase hex.
pub async fn sha256_of(mut body: ByteStream) -> StorageResult<String> {
    use futures::StreamExt;
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    while let Some(chunk) = body.next().await {
        h.update(&chunk?);
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads a whole small blob (state documents) into memory.
pub async fn read_all(store: &dyn BlobStore, name: &str) -> StorageResult<Option<(Bytes, BlobInfo)>> {
    use futures::TryStreamExt;
    match store.get(name).await {
        Ok(b) => {
            let chunks: Vec<Bytes> = b.body.try_collect().await?;
            Ok(Some((Bytes::from(chunks.concat()), b.info)))
        }
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, TryStreamExt};

    #[tokio::test]
    async fn a_stalled_body_fails_as_bytes_lost_and_ends() {
        let first = futures::stream::once(async { Ok(Bytes::from_static(b"abc")) });
        let stalled: ByteStream = first.chain(futures::stream::pending()).boxed();
        let mut body = with_idle_timeout(stalled, std::time::Duration::from_millis(50), "t".into());
        assert_eq!(body.try_next().await.unwrap().as_deref(), Some(&b"abc"[..]));
        let err = body.try_next().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Integrity);
        assert!(err.message.contains("stalled"), "{err}");
        assert!(body.next().await.is_none(), "the stream ends after the stall");
    }

    #[tokio::test]
    async fn a_steady_body_passes_whole() {
        let chunks: ByteStream =
            futures::stream::iter([Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))]).boxed();
        let got: Vec<Bytes> = with_idle_timeout(chunks, std::time::Duration::from_millis(50), "t".into())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), b"ab");
    }
}
