//! In-memory [`BlobStore`] and [`Source`] with the same semantics as the real services
//! (create-only, If-Match, leases, MD5 checks), so the domain logic can be exercised
//! fast and the same test suite can run against the emulators.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};

use super::*;

#[derive(Clone)]
struct StoredBlob {
    data: Bytes,
    info: BlobInfo,
}

struct Lease {
    id: String,
    until: Instant,
}

#[derive(Default)]
struct State {
    blobs: BTreeMap<String, StoredBlob>,
    staged: HashMap<(String, Vec<u8>), Bytes>,
    leases: HashMap<String, Lease>,
    etag_counter: u64,
}

/// Small enough that listings of a few test files take several pages, so every test that
/// lists walks real continuations.
pub const DEFAULT_PAGE_SIZE: usize = 3;

pub struct MemoryBlobStore {
    state: Mutex<State>,
    page_size: usize,
}

impl Default for MemoryBlobStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl MemoryBlobStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Listings of at most `page_size` blobs a request.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a test panicked elsewhere; the map is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces a blob's bytes behind the store's back (tests of tamper detection).
    pub fn tamper(&self, name: &str, data: Bytes) -> bool {
        let mut st = self.lock();
        match st.blobs.get_mut(name) {
            Some(b) => {
                b.data = data;
                true
            }
            None => false,
        }
    }
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

impl State {
    fn check_write(&mut self, name: &str, opts: &PutOptions) -> StorageResult<()> {
        let existing = self.blobs.get(name);
        match (&opts.condition, existing) {
            (Condition::IfNoneMatch, Some(_)) => {
                return Err(StorageError::new(
                    ErrorKind::AlreadyExists,
                    "put",
                    name,
                    "BlobAlreadyExists",
                ))
            }
            (Condition::IfMatch(e), Some(b)) if &b.info.etag != e => {
                return Err(StorageError::new(
                    ErrorKind::PreconditionFailed,
                    "put",
                    name,
                    "ConditionNotMet",
                ))
            }
            (Condition::IfMatch(_), None) => {
                return Err(StorageError::new(
                    ErrorKind::PreconditionFailed,
                    "put",
                    name,
                    "ConditionNotMet",
                ))
            }
            _ => {}
        }
        if let Some(lease) = self.leases.get(name).filter(|l| l.until > Instant::now()) {
            match &opts.lease_id {
                Some(id) if id == &lease.id => {}
                Some(_) => {
                    return Err(StorageError::new(
                        ErrorKind::PreconditionFailed,
                        "put",
                        name,
                        "LeaseIdMismatchWithBlobOperation",
                    ))
                }
                None => {
                    return Err(StorageError::new(
                        ErrorKind::PreconditionFailed,
                        "put",
                        name,
                        "LeaseIdMissing",
                    ))
                }
            }
        }
        Ok(())
    }

    fn store(&mut self, name: &str, data: Bytes, opts: PutOptions) -> String {
        self.etag_counter += 1;
        let etag = format!("\"0x{:X}\"", self.etag_counter);
        let info = BlobInfo {
            name: name.to_string(),
            size: data.len() as u64,
            content_md5: opts.content_md5,
            content_type: opts.content_type,
            etag: etag.clone(),
            metadata: opts.metadata,
            leased: false,
        };
        self.blobs.insert(name.to_string(), StoredBlob { data, info });
        etag
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn ensure_container(&self) -> StorageResult<()> {
        Ok(())
    }

    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>> {
        let st = self.lock();
        let under = st
            .blobs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, b)| (k.clone(), b.info.clone()));
        Ok(list::page_after(under, token.as_ref(), self.page_size))
    }

    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>> {
        let st = self.lock();
        let folders: std::collections::BTreeSet<String> = st
            .blobs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| {
                k[prefix.len()..]
                    .find('/')
                    .map(|i| k[..prefix.len() + i + 1].to_string())
            })
            .collect();
        let folders = folders.into_iter().map(|f| (f.clone(), f));
        Ok(list::page_after(folders, token.as_ref(), self.page_size))
    }

    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>> {
        let st = self.lock();
        let leased = st.leases.get(name).is_some_and(|l| l.until > Instant::now());
        Ok(st.blobs.get(name).map(|b| BlobInfo {
            leased,
            ..b.info.clone()
        }))
    }

    async fn get(&self, name: &str) -> StorageResult<BlobBody> {
        let b = self
            .lock()
            .blobs
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::new(ErrorKind::NotFound, "get", name, "BlobNotFound"))?;
        Ok(BlobBody {
            info: b.info,
            body: Box::pin(futures::stream::once(async move { Ok(b.data) })),
        })
    }

    async fn put(&self, name: &str, data: Bytes, opts: PutOptions) -> StorageResult<String> {
        if let Some(md5) = opts.content_md5 {
            if md5_of(&data) != md5 {
                return Err(StorageError::new(ErrorKind::Integrity, "put", name, "Md5Mismatch"));
            }
        }
        let mut st = self.lock();
        st.check_write(name, &opts)?;
        Ok(st.store(name, data, opts))
    }

    async fn stage_block(&self, name: &str, block_id: &[u8], data: Bytes, md5: [u8; 16]) -> StorageResult<()> {
        if md5_of(&data) != md5 {
            return Err(StorageError::new(
                ErrorKind::Integrity,
                "stage block",
                name,
                "Md5Mismatch",
            ));
        }
        self.lock().staged.insert((name.to_string(), block_id.to_vec()), data);
        Ok(())
    }

    async fn commit_blocks(&self, name: &str, block_ids: Vec<Vec<u8>>, opts: PutOptions) -> StorageResult<String> {
        let mut st = self.lock();
        st.check_write(name, &opts)?;
        let mut data = Vec::new();
        for id in &block_ids {
            let block = st
                .staged
                .get(&(name.to_string(), id.clone()))
                .ok_or_else(|| StorageError::new(ErrorKind::Other, "commit blocks", name, "InvalidBlockList"))?;
            data.extend_from_slice(block);
        }
        st.staged.retain(|(n, _), _| n != name);
        Ok(st.store(name, Bytes::from(data), opts))
    }

    async fn acquire_lease(&self, name: &str, seconds: u32) -> StorageResult<String> {
        let mut st = self.lock();
        if !st.blobs.contains_key(name) {
            return Err(StorageError::new(
                ErrorKind::NotFound,
                "acquire lease",
                name,
                "BlobNotFound",
            ));
        }
        if st.leases.get(name).is_some_and(|l| l.until > Instant::now()) {
            return Err(StorageError::new(
                ErrorKind::LeaseHeld,
                "acquire lease",
                name,
                "LeaseAlreadyPresent",
            ));
        }
        let id = format!("{:032x}", rand::random::<u128>());
        st.leases.insert(
            name.to_string(),
            Lease {
                id: id.clone(),
                until: Instant::now() + Duration::from_secs(seconds.into()),
            },
        );
        Ok(id)
    }

    async fn renew_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        let mut st = self.lock();
        match st.leases.get_mut(name) {
            Some(l) if l.id == lease_id => {
                l.until = Instant::now() + Duration::from_secs(60);
                Ok(())
            }
            _ => Err(StorageError::new(
                ErrorKind::PreconditionFailed,
                "renew lease",
                name,
                "LeaseIdMismatchWithLeaseOperation",
            )),
        }
    }

    async fn release_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        let mut st = self.lock();
        if st.leases.get(name).is_some_and(|l| l.id == lease_id) {
            st.leases.remove(name);
        }
        Ok(())
    }
}

#[async_trait]
impl StateBlobStore for MemoryBlobStore {
    async fn delete(&self, name: &str) -> StorageResult<()> {
        self.lock().blobs.remove(name);
        Ok(())
    }
}

/// An in-memory bucket.
pub struct MemorySource {
    bucket: String,
    objects: Mutex<BTreeMap<String, (Bytes, SourceHead)>>,
    page_size: usize,
}

impl MemorySource {
    pub fn new(bucket: &str) -> Self {
        Self {
            bucket: bucket.to_string(),
            objects: Mutex::new(BTreeMap::new()),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Listings of at most `page_size` objects a request (S3's is 1,000).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, SourceHead)>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put(&self, key: &str, data: Bytes, metadata: BTreeMap<String, String>, now: DateTime<Utc>) {
        let head = SourceHead {
            size: data.len() as u64,
            etag: hex::encode(md5_of(&data)),
            last_modified: Some(now),
            content_type: Some("application/json".into()),
            content_encoding: Some("gzip".into()),
            metadata,
            kms_or_customer_key: false,
        };
        self.lock().insert(key.to_string(), (data, head));
    }

    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[async_trait]
impl Source for MemorySource {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        let objs = self.lock();
        // From where the page starts, not from the bucket's first key: a listing of a
        // large bucket stays linear in its pages.
        let from = [Some(prefix), start_after, token.as_ref().map(PageToken::as_str)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or_default()
            .to_string();
        let after = objs
            .range(from..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| start_after.is_none_or(|s| k.as_str() > s))
            .map(|(k, (_, h))| {
                let object = SourceObject {
                    key: k.clone(),
                    size: h.size,
                    etag: h.etag.clone(),
                    last_modified: h.last_modified.unwrap_or_default(),
                };
                (k.clone(), object)
            });
        Ok(list::page_after(after, token.as_ref(), self.page_size))
    }

    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        let objs = self.lock();
        let mut out: Vec<String> = objs
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .filter_map(|rest| rest.find('/').map(|i| format!("{prefix}{}", &rest[..=i])))
            .collect();
        out.dedup();
        Ok(out)
    }

    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        let (data, head) = self
            .lock()
            .get(key)
            .cloned()
            .ok_or_else(|| StorageError::new(ErrorKind::NotFound, "get", key, "NoSuchKey"))?;
        Ok(SourceBody {
            head,
            body: Box::pin(futures::stream::once(async move { Ok(data) })),
        })
    }
}
