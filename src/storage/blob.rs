//! [`BlobStore`] over azure_storage_blob 1.x.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZero;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::{Etag, RequestContent, StatusCode, Url};
use azure_storage_blob::models::{
    BlobClientAcquireLeaseResultHeaders, BlobClientGetPropertiesResultHeaders, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientCommitBlockListResultHeaders, BlockBlobClientStageBlockOptions, BlockLookupList, LeaseStatus,
    ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::azure_auth::{client_auth, ClientAuth};
use super::*;
use crate::config::AzureAuth;

pub use super::azure_http::ENV_MAX_RETRIES;

/// The longest `NextMarker` accepted. Azure documents no limit for this opaque value; a
/// marker carries a blob name (at most 1,024 characters, percent-encoded up to three bytes
/// each), so 4 KiB is beyond any the service makes and far below what breaks a URL.
pub const MAX_MARKER_LEN: usize = 4096;

pub struct AzureBlobStore {
    container: BlobContainerClient,
    describe: String,
    /// For blob clients whose URL the SDK would build wrong (see [`AzureBlobStore::blob`]).
    container_url: Url,
    credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
    options: BlobContainerClientOptions,
    /// Blobs a listing request asks for; the service's own page (5,000) when unset.
    page_size: Option<u32>,
    /// Delimiter listings, which the SDK lacks.
    folders: super::blob_folders::FolderLister,
}

impl AzureBlobStore {
    /// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the SDK's own retries.
    pub fn open(
        account_url: &Url,
        container: &str,
        auth: &AzureAuth,
        max_delay: std::time::Duration,
    ) -> StorageResult<Self> {
        let describe = format!("{}/{}", account_url.as_str().trim_end_matches('/'), container);
        let fail = |m: String| StorageError::new(ErrorKind::Other, "open", describe.clone(), m);
        let mut url = Url::parse(&format!("{}/{}", account_url.as_str().trim_end_matches('/'), container))
            .map_err(|e| fail(e.to_string()))?;
        if let AzureAuth::Sas(sas) = auth {
            url.set_query(Some(sas.expose()));
        }
        let mut options = BlobContainerClientOptions {
            client_options: super::azure_http::client_options(max_delay),
            ..Default::default()
        };
        let credential = match client_auth(auth, max_delay).map_err(|e| fail(e.to_string()))? {
            ClientAuth::Token(t) => Some(t),
            ClientAuth::Policy(p) => {
                options.client_options.per_try_policies.push(p);
                None
            }
            ClientAuth::None => None,
        };
        let container = BlobContainerClient::new(url.clone(), credential.clone(), Some(options.clone()))
            .map_err(|e| fail(e.to_string()))?;
        let folders = super::blob_folders::FolderLister::new(
            url.clone(),
            credential.clone(),
            options.client_options.clone(),
            options.version.clone(),
        );
        Ok(Self {
            container,
            describe,
            container_url: url,
            credential,
            options,
            page_size: None,
            folders,
        })
    }

    /// Listings of at most `page_size` blobs a request (tests walk real continuations
    /// with a few blobs instead of thousands).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size.max(1));
        self
    }

    /// A client for one blob, its name percent-encoded whole (`/` as `%2F`, as the SDK
    /// does). The SDK's `blob_client` drops TAB, CR and LF from a name (the URL parser
    /// strips them from its input), which would archive a key under a name that never
    /// existed; such names get a URL built here, every byte outside the unreserved set
    /// encoded, so the service decodes exactly the name.
    fn blob(&self, name: &str) -> StorageResult<azure_storage_blob::BlobClient> {
        if !name.contains(['\t', '\n', '\r']) {
            return Ok(self.container.blob_client(name));
        }
        let url = blob_url(&self.container_url, name);
        let options = azure_storage_blob::BlobClientOptions {
            client_options: self.options.client_options.clone(),
            version: self.options.version.clone(),
        };
        azure_storage_blob::BlobClient::new(url, self.credential.clone(), Some(options))
            .map_err(|e| StorageError::new(ErrorKind::Other, "open", self.target(name), e))
    }

    fn target(&self, name: &str) -> String {
        format!("{}/{}", self.describe, name)
    }
}

/// The URL of blob `name` in the container at `container`: the name is one path
/// segment, every byte outside the unreserved set percent-encoded.
pub fn blob_url(container: &Url, name: &str) -> Url {
    let mut url = container.clone();
    let mut path = format!("{}/", container.path().trim_end_matches('/'));
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    url.set_path(&path);
    url
}

/// How long Azure asked us to wait, from the error's raw response (our retry policy caps it).
fn retry_after(e: &azure_core::Error) -> Option<std::time::Duration> {
    let azure_core::error::ErrorKind::HttpResponse {
        raw_response: Some(raw),
        ..
    } = e.kind()
    else {
        return None;
    };
    super::azure_http::asked_wait(raw.headers())
}

/// Maps an SDK error; `create_only` turns 412 into "already exists" (Azure may answer
/// 412 instead of 409 to If-None-Match: *).
fn map_err(op: &'static str, target: String, e: azure_core::Error, create_only: bool) -> StorageError {
    use azure_core::error::ErrorKind as K;
    let code = match e.kind() {
        K::HttpResponse { error_code, .. } => error_code.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let kind = match (e.http_status(), e.kind()) {
        (Some(StatusCode::NotFound), _) => ErrorKind::NotFound,
        (Some(StatusCode::Conflict), _) if code == "LeaseAlreadyPresent" => ErrorKind::LeaseHeld,
        (Some(StatusCode::Conflict), _) if code.starts_with("Lease") => ErrorKind::PreconditionFailed,
        (Some(StatusCode::Conflict), _) if code == "BlobAlreadyExists" || create_only => ErrorKind::AlreadyExists,
        (Some(StatusCode::PreconditionFailed), _) if create_only && !code.starts_with("Lease") => {
            ErrorKind::AlreadyExists
        }
        (Some(StatusCode::PreconditionFailed), _) => ErrorKind::PreconditionFailed,
        (Some(StatusCode::Forbidden), _) | (Some(StatusCode::Unauthorized), _) => ErrorKind::Auth,
        (Some(StatusCode::BadRequest), _)
            if code == "Md5Mismatch" || code == "InvalidMd5" || e.to_string().contains("contentMD5") =>
        {
            ErrorKind::Integrity
        }
        (Some(StatusCode::TooManyRequests), _) => ErrorKind::Throttled,
        (Some(StatusCode::ServiceUnavailable), _) if code == "ServerBusy" => ErrorKind::Throttled,
        (Some(s), _) if matches!(u16::from(s), 500 | 502 | 503 | 504) => ErrorKind::Unavailable,
        (Some(StatusCode::RequestTimeout), _) => ErrorKind::Unavailable,
        (None, K::Io) => ErrorKind::Unreachable,
        (None, K::Credential) => ErrorKind::Auth,
        (None, _) if is_connect_failure(&e) => ErrorKind::Unreachable,
        _ => ErrorKind::Other,
    };
    let hint = match kind {
        ErrorKind::Unreachable => " (check target.account_url and network access to Azure Storage)",
        ErrorKind::Auth => " (check target.auth and its secret or identity, and the role assignment on the container)",
        _ => "",
    };
    let detail = if code.is_empty() {
        e.to_string()
    } else {
        format!("{code}: {e}")
    };
    StorageError::new(kind, op, target, format!("{detail}{hint}")).with_retry_after(retry_after(&e))
}

fn is_connect_failure(e: &azure_core::Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("connect") || text.contains("dns") || text.contains("timed out") {
            return true;
        }
        src = s.source();
    }
    false
}

/// (If-Match, If-None-Match) for a write condition.
fn etags(condition: &Condition) -> (Option<Etag>, Option<Etag>) {
    match condition {
        Condition::None => (None, None),
        Condition::IfNoneMatch => (None, Some(Etag::from("*"))),
        Condition::IfMatch(e) => (Some(Etag::from(e.clone())), None),
    }
}

fn md5_array(v: Option<Vec<u8>>) -> Option<[u8; 16]> {
    v.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
}

fn etag_string(e: Option<Etag>) -> String {
    e.map(|e| e.to_string()).unwrap_or_default()
}

fn sorted(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn ensure_container(&self) -> StorageResult<()> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(map_err("create container", self.describe.clone(), e, false)),
        }
    }

    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()).filter(|p| !p.is_empty()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            marker: token.map(|t| t.as_str().to_string()),
            maxresults: self.page_size.and_then(|n| i32::try_from(n).ok()),
            ..Default::default()
        };
        let err = |e| map_err("list", self.target(prefix), e, false);
        // The SDK's pager would walk every page in one call; the first page it fetches
        // (from our marker) is the one request this method makes.
        let mut pages = self.container.list_blobs(Some(options)).map_err(err)?.into_pages();
        let Some(response) = pages.try_next().await.map_err(err)? else {
            return Ok(Page::last(Vec::new()));
        };
        let listing = response.into_model().map_err(err)?;
        let items = listing
            .blob_items
            .into_iter()
            .filter_map(|item| {
                let props = item.properties.unwrap_or_default();
                Some(BlobInfo {
                    name: item.name?,
                    size: props.content_length.unwrap_or_default(),
                    content_md5: md5_array(props.content_md5),
                    content_type: props.content_type,
                    etag: etag_string(props.etag),
                    metadata: sorted(item.metadata.and_then(|m| m.values).unwrap_or_default()),
                    leased: false,
                })
            })
            .collect();
        Ok(Page {
            items,
            next: super::list::checked_token(listing.next_marker, MAX_MARKER_LEN, "list", &self.target(prefix))?,
        })
    }

    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>> {
        let page = self
            .folders
            .page(prefix, token.as_ref(), self.page_size)
            .await
            .map_err(|e| map_err("list folders", self.target(prefix), e, false))?;
        let next = page.next.map(|t| t.as_str().to_string());
        Ok(Page {
            items: page.items,
            next: super::list::checked_token(next, MAX_MARKER_LEN, "list folders", &self.target(prefix))?,
        })
    }

    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>> {
        let err = |e| map_err("head", self.target(name), e, false);
        match self.blob(name)?.get_properties(None).await {
            Ok(r) => Ok(Some(BlobInfo {
                name: name.to_string(),
                size: r.content_length().map_err(err)?.unwrap_or_default(),
                content_md5: md5_array(r.content_md5().map_err(err)?),
                content_type: r.content_type().map_err(err)?,
                etag: etag_string(r.etag().map_err(err)?),
                metadata: sorted(r.metadata().map_err(err)?),
                leased: matches!(r.lease_status().map_err(err)?, Some(LeaseStatus::Locked)),
            })),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn get(&self, name: &str) -> StorageResult<BlobBody> {
        let target = self.target(name);
        let r = self
            .blob(name)?
            // Two 4 MiB ranges in flight, not the SDK's default of eight or more: a
            // consumer slower than the network (a disk, an S3 part upload) must not let
            // a large blob pile up in memory.
            .download(Some(azure_storage_blob::models::BlobClientDownloadOptions {
                parallel: NonZero::new(2),
                partition_size: NonZero::new(4 << 20),
                ..Default::default()
            }))
            .await
            .map_err(|e| map_err("get", target.clone(), e, false))?;
        let mut metadata = BTreeMap::new();
        let mut blob_md5 = None;
        for (k, v) in r.headers.iter() {
            let k = k.as_str().to_ascii_lowercase();
            if let Some(meta) = k.strip_prefix("x-ms-meta-") {
                metadata.insert(meta.to_string(), v.as_str().to_string());
            } else if k == "x-ms-blob-content-md5" {
                use base64::Engine;
                blob_md5 = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str())
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok());
            }
        }
        let props = r.properties;
        let info = BlobInfo {
            name: name.to_string(),
            size: props.content_length.unwrap_or_default(),
            content_md5: md5_array(props.content_md5).or(blob_md5),
            content_type: props.content_type,
            etag: etag_string(props.etag),
            metadata,
            leased: false,
        };
        let broken = target.clone();
        let body = r
            .body
            // A body that breaks off is bytes lost on the way: the whole read is worth again.
            .map(move |c| c.map_err(|e| StorageError::new(ErrorKind::Integrity, "read", broken.clone(), e)));
        Ok(BlobBody {
            info,
            body: with_idle_timeout(Box::pin(body), BODY_IDLE_TIMEOUT, target),
        })
    }

    async fn put(&self, name: &str, data: Bytes, opts: PutOptions) -> StorageResult<String> {
        let create_only = opts.condition == Condition::IfNoneMatch;
        let (if_match, if_none_match) = etags(&opts.condition);
        let size = (data.len() as u64).max(1);
        let options = BlobClientUploadOptions {
            blob_content_md5: opts.content_md5.map(|m| m.to_vec()),
            blob_content_type: opts.content_type,
            metadata: Some(opts.metadata.into_iter().collect()),
            if_none_match,
            if_match,
            lease_id: opts.lease_id,
            // One Put Blob, so the service checks the MD5 of what it received.
            partition_size: NonZero::new(size.max(crate::config::BLOCK_SIZE)),
            // One partition needs no parallelism; left unset, the SDK asks the OS for the
            // CPU count (cgroup files opened and read) on every upload.
            parallel: NonZero::new(1),
            ..Default::default()
        };
        let r = self
            .blob(name)?
            .upload(
                <RequestContent<azure_core::Bytes, azure_core::http::NoFormat> as From<Bytes>>::from(data),
                Some(options),
            )
            .await
            .map_err(|e| map_err("put", self.target(name), e, create_only))?;
        Ok(etag_string(r.etag))
    }

    async fn stage_block(&self, name: &str, block_id: &[u8], data: Bytes, md5: [u8; 16]) -> StorageResult<()> {
        let len = data.len() as u64;
        let options = BlockBlobClientStageBlockOptions {
            transactional_content_md5: Some(md5.to_vec()),
            ..Default::default()
        };
        self.blob(name)?
            .block_blob_client()
            .stage_block(
                block_id,
                len,
                <RequestContent<azure_core::Bytes, azure_core::http::NoFormat> as From<Bytes>>::from(data),
                Some(options),
            )
            .await
            .map_err(|e| map_err("stage block", self.target(name), e, false))?;
        Ok(())
    }

    async fn commit_blocks(&self, name: &str, block_ids: Vec<Vec<u8>>, opts: PutOptions) -> StorageResult<String> {
        let create_only = opts.condition == Condition::IfNoneMatch;
        let (if_match, if_none_match) = etags(&opts.condition);
        let list = BlockLookupList {
            committed: None,
            latest: Some(block_ids),
            uncommitted: None,
        };
        let target = self.target(name);
        let content = list
            .try_into()
            .map_err(|e: azure_core::Error| StorageError::new(ErrorKind::Other, "commit blocks", target.clone(), e))?;
        let options = BlockBlobClientCommitBlockListOptions {
            blob_content_md5: opts.content_md5.map(|m| m.to_vec()),
            blob_content_type: opts.content_type,
            metadata: Some(opts.metadata.into_iter().collect()),
            if_none_match,
            if_match,
            lease_id: opts.lease_id,
            ..Default::default()
        };
        let r = self
            .blob(name)?
            .block_blob_client()
            .commit_block_list(content, Some(options))
            .await
            .map_err(|e| map_err("commit blocks", target.clone(), e, create_only))?;
        Ok(etag_string(r.etag().ok().flatten()))
    }

    async fn acquire_lease(&self, name: &str, seconds: u32) -> StorageResult<String> {
        let target = self.target(name);
        let r = self
            .blob(name)?
            .acquire_lease(seconds as i32, None)
            .await
            .map_err(|e| map_err("acquire lease", target.clone(), e, false))?;
        r.lease_id()
            .ok()
            .flatten()
            .ok_or_else(|| StorageError::new(ErrorKind::Other, "acquire lease", target, "no lease id in the response"))
    }

    async fn renew_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        self.blob(name)?
            .renew_lease(lease_id.to_string(), None)
            .await
            .map_err(|e| map_err("renew lease", self.target(name), e, false))?;
        Ok(())
    }

    async fn release_lease(&self, name: &str, lease_id: &str) -> StorageResult<()> {
        self.blob(name)?
            .release_lease(lease_id.to_string(), None)
            .await
            .map_err(|e| map_err("release lease", self.target(name), e, false))?;
        Ok(())
    }
}

#[async_trait]
impl StateBlobStore for AzureBlobStore {
    async fn delete(&self, name: &str) -> StorageResult<()> {
        match self.blob(name)?.delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Err(e) => Err(map_err("delete", self.target(name), e, false)),
        }
    }
}

/// Opens the archive and state stores of a `[target]`.
/// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the SDK's own retries.
pub fn open_target(
    target: &crate::config::TargetConfig,
    max_delay: std::time::Duration,
) -> StorageResult<(super::ArchiveStore, super::StateStore)> {
    let archive = AzureBlobStore::open(&target.account_url, target.container.as_str(), &target.auth, max_delay)?;
    let state = AzureBlobStore::open(
        &target.state_account_url,
        target.state_container.as_str(),
        &target.auth,
        max_delay,
    )?;
    Ok((Arc::new(archive).into(), Arc::new(state).into()))
}

#[cfg(test)]
mod tests {
    use azure_core::http::headers::{HeaderName, Headers};
    use azure_core::http::{RawResponse, StatusCode};

    use super::*;

    fn busy(header: &'static str, value: &str) -> azure_core::Error {
        let mut headers = Headers::new();
        headers.insert(HeaderName::from_static(header), value.to_string());
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::HttpResponse {
                status: StatusCode::ServiceUnavailable,
                error_code: Some("ServerBusy".into()),
                raw_response: Some(Box::new(RawResponse::from_bytes(
                    StatusCode::ServiceUnavailable,
                    headers,
                    Vec::new(),
                ))),
            },
            "busy",
        )
    }

    #[test]
    fn server_busy_is_throttling_and_its_retry_after_is_kept() {
        let e = map_err("put", "b".into(), busy("retry-after", "2"), false);
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(2)));
        let e = map_err("put", "b".into(), busy("x-ms-retry-after-ms", "1500"), false);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_millis(1500)));
    }
}
