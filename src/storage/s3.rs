//! [`Source`] over aws-sdk-s3: the SDK's default credential chain or a given provider
//! (`azure-federated`), optional S3-compatible endpoint (path-style), checksum mode on GET.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{ChecksumMode, ServerSideEncryption};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};

use super::aws_credentials::AwsCredentials;
use super::list::{checked_token, ListGuard};
use super::*;
use crate::config::SourceConfig;

pub struct S3Source {
    client: aws_sdk_s3::Client,
    /// GetObject without the SDK's orchestrator (see `s3_get`); None: the SDK sends them.
    direct: Option<super::s3_get::DirectGet>,
    bucket: String,
    /// Keys a listing request asks for; S3's own page (1,000) when unset.
    page_size: Option<i32>,
}

impl S3Source {
    /// Builds a client for one source. Loads credentials lazily: nothing is sent here.
    /// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the SDK's own retries.
    pub async fn connect(source: &SourceConfig, credentials: AwsCredentials, max_delay: Duration) -> Self {
        let endpoint = source.endpoint.as_ref().map(|u| u.as_str());
        Self::build(
            source.bucket.as_ref(),
            source.region.as_str(),
            endpoint,
            credentials,
            max_delay,
        )
        .await
    }

    async fn build(
        bucket: &str,
        region: &str,
        endpoint: Option<&str>,
        credentials: AwsCredentials,
        max_delay: Duration,
    ) -> Self {
        let (client, shared) = s3_client_and_config(Some(region), endpoint, credentials, max_delay).await;
        let direct = direct_get(bucket, endpoint, &shared).await;
        tracing::debug!(bucket, direct = direct.is_some(), "S3 GetObject path");
        Self {
            direct,
            client,
            bucket: bucket.to_string(),
            page_size: None,
        }
    }

    /// GetObject bypasses the SDK (its endpoint was resolved for the direct path).
    pub fn uses_direct_get(&self) -> bool {
        self.direct.is_some()
    }

    /// Sends every GetObject through the SDK (tests compare the two paths).
    pub fn without_direct_get(mut self) -> Self {
        self.direct = None;
        self
    }

    /// With the SDK's default credential chain.
    pub async fn connect_to(bucket: &str, region: &str, endpoint: Option<&str>) -> Self {
        Self::connect_with(bucket, region, endpoint, AwsCredentials::SdkChain).await
    }

    pub async fn connect_with(bucket: &str, region: &str, endpoint: Option<&str>, credentials: AwsCredentials) -> Self {
        Self::build(bucket, region, endpoint, credentials, DEFAULT_MAX_DELAY).await
    }

    /// Listings of at most `page_size` keys a request (tests walk real continuations
    /// with a few keys instead of thousands).
    pub fn with_page_size(mut self, page_size: u16) -> Self {
        self.page_size = Some(i32::from(page_size.max(1)));
        self
    }

    fn target(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

/// The SDK's wait ceiling for clients built without a configuration (`[sync]
/// retry_max_delay`'s default).
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

/// An S3 client with `credentials` (None: the SDK's default chain); `region` None takes
/// the chain's region (AWS_REGION, profile) or us-east-1; an endpoint is addressed
/// path-style. Connect and read timeouts, and no SDK retry waits longer than `max_delay`.
async fn s3_client(
    region: Option<&str>,
    endpoint: Option<&str>,
    credentials: AwsCredentials,
    max_delay: Duration,
) -> aws_sdk_s3::Client {
    s3_client_and_config(region, endpoint, credentials, max_delay).await.0
}

/// The GET path that bypasses the SDK, when the client's endpoint can be resolved the way
/// the SDK resolves it: an explicit `endpoint`, or none configured anywhere. An endpoint
/// from the environment or a profile (`AWS_ENDPOINT_URL[_S3]`, `endpoint_url`) leaves the
/// GETs to the SDK, which reads those sources by its own rules.
async fn direct_get(
    bucket: &str,
    endpoint: Option<&str>,
    shared: &aws_types::SdkConfig,
) -> Option<super::s3_get::DirectGet> {
    if endpoint.is_none() {
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id("S3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()?;
        let from_service = shared.service_config().and_then(|c| c.load_config(key));
        if from_service.is_some() || shared.endpoint_url().is_some() {
            return None;
        }
    }
    let region = shared.region().map_or("us-east-1", |r| r.as_ref());
    let inputs = super::s3_get::EndpointInputs {
        bucket,
        region,
        endpoint_url: endpoint,
        force_path_style: endpoint.is_some(),
        use_fips: shared.use_fips().unwrap_or(false),
        use_dual_stack: shared.use_dual_stack().unwrap_or(false),
    };
    super::s3_get::DirectGet::resolve(inputs, shared.credentials_provider()).await
}

/// The client, and the shared configuration it was built from.
async fn s3_client_and_config(
    region: Option<&str>,
    endpoint: Option<&str>,
    credentials: AwsCredentials,
    max_delay: Duration,
) -> (aws_sdk_s3::Client, aws_types::SdkConfig) {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(super::aws_waits::timeouts());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(c) = credentials.provider().cloned() {
        loader = loader.credentials_provider(c).identity_cache(
            aws_config::identity::IdentityCache::lazy()
                .load_timeout(super::aws_credentials::LOAD_TIMEOUT)
                .build(),
        );
    }
    let shared = loader.load().await;
    let mut conf = aws_sdk_s3::config::Builder::from(&shared)
        .retry_config(super::aws_waits::retry_config(shared.retry_config(), max_delay))
        .interceptor(super::aws_waits::CapRetryAfter { max_delay });
    if shared.region().is_none() {
        conf = conf.region(aws_config::Region::new("us-east-1"));
    }
    if let Some(ep) = endpoint {
        conf = conf.endpoint_url(ep).force_path_style(true);
    }
    (aws_sdk_s3::Client::from_conf(conf.build()), shared)
}

fn map_err<E>(
    op: &'static str,
    target: String,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match &err {
        // Before the dispatch arms: the SDK's identity cache reports a provider that failed
        // (or was slow) as a dispatch failure, which is not S3 being unreachable.
        _ if super::aws_credentials::is_credentials_failure(&err) => ErrorKind::Credentials,
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => ErrorKind::Unreachable,
        SdkError::TimeoutError(_) => ErrorKind::Unreachable,
        SdkError::ServiceError(s) => kind_of(s.err().code(), s.raw().status().as_u16()),
        // A response that could not be read whole (cut short, garbled): the way, not the ask.
        SdkError::ResponseError(_) => ErrorKind::Integrity,
        SdkError::DispatchFailure(d) if d.is_user() => ErrorKind::Auth,
        // Credential providers fail inside dispatch; say so rather than "other".
        SdkError::DispatchFailure(_) if DisplayErrorContext(&err).to_string().contains("credential") => ErrorKind::Auth,
        SdkError::DispatchFailure(_) => ErrorKind::Unreachable,
        _ => ErrorKind::Other,
    };
    let retry_after = match &err {
        SdkError::ServiceError(s) => s
            .raw()
            .headers()
            .get("retry-after")
            .and_then(super::retry::parse_retry_after),
        _ => None,
    };
    let hint = hint_for(kind);
    StorageError::new(kind, op, target, format!("{}{hint}", DisplayErrorContext(&err))).with_retry_after(retry_after)
}

pub(super) const UNREACHABLE_HINT: &str = " (check the source endpoint/region and network access to S3)";
pub(super) const CREDENTIALS_HINT: &str = " (check the AWS credentials: env, profile/SSO, web identity, instance role, or with [aws] azure-federated the Azure identity, the role's trust policy and STS)";

/// What an S3 error answer means for us, from its code and HTTP status (both GET paths).
pub(super) fn kind_of(code: Option<&str>, status: u16) -> ErrorKind {
    match (code, status) {
        (Some("NoSuchKey") | Some("NotFound"), _) => ErrorKind::NotFound,
        (
            Some("InvalidAccessKeyId")
            | Some("SignatureDoesNotMatch")
            | Some("ExpiredToken")
            | Some("TokenRefreshRequired")
            | Some("InvalidToken"),
            _,
        ) => ErrorKind::Credentials,
        (Some("AccessDenied"), _) => ErrorKind::Auth,
        (Some("NoSuchBucket"), _) => ErrorKind::NotFound,
        (Some("SlowDown") | Some("Throttling") | Some("ThrottlingException") | Some("RequestLimitExceeded"), _)
        | (_, 429) => ErrorKind::Throttled,
        (Some("InternalError") | Some("ServiceUnavailable") | Some("RequestTimeout"), _)
        | (_, 500 | 502 | 503 | 504) => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// What to check, said after an error of `kind`.
pub(super) fn hint_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unreachable => UNREACHABLE_HINT,
        ErrorKind::Auth | ErrorKind::Credentials => CREDENTIALS_HINT,
        _ => "",
    }
}

/// The longest continuation token S3 documents (ListBuckets' `ContinuationToken`, "Maximum
/// length of 1024"; ListObjectsV2 documents none and sends short opaque tokens).
pub const MAX_TOKEN_LEN: usize = 1024;

fn to_utc(t: &aws_sdk_s3::primitives::DateTime) -> DateTime<Utc> {
    Utc.timestamp_opt(t.secs(), t.subsec_nanos())
        .single()
        .unwrap_or_default()
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

#[async_trait]
impl Source for S3Source {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_string))
            .set_continuation_token(token.map(|t| t.as_str().to_string()))
            .set_max_keys(self.page_size)
            .send()
            .await
            .map_err(|e| map_err("list", self.target(prefix), e))?;
        let items = page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(SourceObject {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: o.e_tag().map(unquote).unwrap_or_default(),
                    last_modified: o.last_modified().map(to_utc).unwrap_or_default(),
                })
            })
            .collect();
        // S3 sets IsTruncated with the token. A token without it would list the same keys
        // again; the flag without a token would end the listing early, and a sync would
        // move its watermark past keys it never saw: that is an error, not a last page.
        let next = if page.is_truncated() == Some(true) {
            let next = checked_token(
                page.next_continuation_token().map(str::to_string),
                MAX_TOKEN_LEN,
                "list",
                &self.target(prefix),
            )?;
            if next.is_none() {
                return Err(StorageError::new(
                    ErrorKind::Other,
                    "list",
                    self.target(prefix),
                    "the listing is truncated but the service gave no continuation token",
                ));
            }
            next
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Page by page through the same [`ListGuard`] as every listing (the SDK's paginator
    /// would follow tokens A, B, A for ever and keep no budget).
    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        let target = self.target(prefix);
        let mut guard = ListGuard::new("list", target.clone());
        let mut out = Vec::new();
        let mut token: Option<PageToken> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token.map(|t| t.as_str().to_string()))
                .send()
                .await
                .map_err(|e| map_err("list", target.clone(), e))?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
            let next = match page.is_truncated() {
                Some(true) => {
                    let next = checked_token(
                        page.next_continuation_token().map(str::to_string),
                        MAX_TOKEN_LEN,
                        "list",
                        &target,
                    )?;
                    // As for object listings: ending here would hide the folders not yet seen.
                    if next.is_none() {
                        return Err(StorageError::new(
                            ErrorKind::Other,
                            "list",
                            target,
                            "the listing is truncated but the service gave no continuation token",
                        ));
                    }
                    next
                }
                _ => None,
            };
            match guard.next(next)? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        if let Some(direct) = &self.direct {
            if let Some(url) = direct.url_for(key) {
                return direct.get(url, self.target(key)).await;
            }
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| map_err("get", self.target(key), e))?;
        let head = SourceHead {
            size: out.content_length().unwrap_or_default().max(0) as u64,
            etag: out.e_tag().map(unquote).unwrap_or_default(),
            last_modified: out.last_modified().map(to_utc),
            content_type: out.content_type().map(str::to_string),
            content_encoding: out.content_encoding().map(str::to_string),
            metadata: out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
                .unwrap_or_default(),
            kms_or_customer_key: out.sse_customer_algorithm().is_some()
                || matches!(
                    out.server_side_encryption(),
                    Some(ServerSideEncryption::AwsKms) | Some(ServerSideEncryption::AwsKmsDsse)
                ),
        };
        let target = self.target(key);
        let stalled = target.clone();
        let body = futures::stream::unfold(Some((out.body, target)), |state| async move {
            let (mut body, target) = state?;
            match body.next().await {
                None => None,
                Some(Ok(chunk)) => Some((Ok::<Bytes, StorageError>(chunk), Some((body, target)))),
                Some(Err(e)) => {
                    let err = StorageError::new(ErrorKind::Integrity, "read", target, DisplayErrorContext(&e));
                    Some((Err(err), None))
                }
            }
        });
        Ok(SourceBody {
            head,
            body: with_idle_timeout(Box::pin(body), BODY_IDLE_TIMEOUT, stalled),
        })
    }
}

/// An S3 bucket (and key prefix) as a restore target: create-only puts
/// (`If-None-Match: *`) with Content-MD5, so S3 checks the bytes it receives.
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// The run's shared policy, for the requests of an upload only (create, PutObject,
    /// part, complete). They are retried here, inside the upload, because only the upload
    /// holds a part's bytes: `RetryingSink` wraps this sink like any other for its other
    /// requests, but a retry from outside could only restart the whole file from a fresh
    /// read of the archive. Nothing else in this sink retries.
    retry: super::retry::RetryPolicy,
}

impl S3Sink {
    /// `endpoint`: an S3-compatible server, addressed path-style. Region from the
    /// SDK's chain (AWS_REGION, profile), else us-east-1.
    /// `max_delay` (`[sync] retry_max_delay`) bounds every wait of the SDK's own retries.
    pub async fn connect(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        credentials: AwsCredentials,
        max_delay: Duration,
    ) -> Self {
        Self {
            client: s3_client(None, endpoint, credentials, max_delay).await,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            retry: super::retry::RetryPolicy::none(),
        }
    }

    /// Retries each upload request with `policy` (the run's, so its count is the run's).
    pub fn with_retry(mut self, policy: super::retry::RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn target(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }
}

#[async_trait]
impl Sink for S3Sink {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(h) => {
                let etag = h.e_tag().map(unquote).unwrap_or_default();
                let kms = matches!(
                    h.server_side_encryption(),
                    Some(ServerSideEncryption::AwsKms) | Some(ServerSideEncryption::AwsKmsDsse)
                ) || h.sse_customer_algorithm().is_some();
                let md5 = crate::archive::etag_is_md5(&etag, kms)
                    .then(|| {
                        hex::decode(&etag)
                            .ok()
                            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                    })
                    .flatten();
                Ok(Some(Existing {
                    size: h.content_length().unwrap_or_default().max(0) as u64,
                    md5,
                }))
            }
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(map_err("head", self.target(key), e)),
        }
    }

    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        // Restore reads a few objects back: the SDK's path is fine here.
        let source = S3Source {
            client: self.client.clone(),
            direct: None,
            bucket: self.bucket.clone(),
            page_size: None,
        };
        match source.get(&self.key(key)).await {
            Ok(got) => sha256_of(got.body).await.map(Some),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn begin(&self, key: &str, size: u64, meta: &RestoreMeta) -> StorageResult<Box<dyn Upload + '_>> {
        Ok(Box::new(S3Upload {
            sink: self,
            key: self.key(key),
            target: self.target(key),
            multipart: size > PART_SIZE as u64,
            meta: meta.clone(),
            buf: bytes::BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
        }))
    }
}

/// Parts of a multipart restore upload: files above this stream in parts of this size,
/// each with its Content-MD5; smaller ones go up as one PutObject.
const PART_SIZE: usize = 8 << 20;

fn md5_b64(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

fn already_exists(target: &str) -> StorageError {
    StorageError::new(
        ErrorKind::AlreadyExists,
        "put",
        target,
        "an object already exists at this key",
    )
}

/// One object on its way to S3: buffered up to one part, so memory stays at a part
/// whatever the size. Nothing is visible at the key before `commit` (PutObject or
/// CompleteMultipartUpload, both `If-None-Match: *`); `abort` aborts the upload.
struct S3Upload<'a> {
    sink: &'a S3Sink,
    key: String,
    target: String,
    multipart: bool,
    meta: RestoreMeta,
    buf: bytes::BytesMut,
    upload_id: Option<String>,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
}

impl S3Upload<'_> {
    async fn upload_id(&mut self) -> StorageResult<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let (sink, key, meta, target) = (self.sink, &self.key, &self.meta, &self.target);
        let out = sink
            .retry
            .run("create upload", || async {
                let mut req = sink
                    .client
                    .create_multipart_upload()
                    .bucket(&sink.bucket)
                    .key(key)
                    .set_content_type(meta.content_type.clone())
                    .set_content_encoding(meta.content_encoding.clone());
                for (k, v) in &meta.user_metadata {
                    req = req.metadata(k, v);
                }
                req.send()
                    .await
                    .map_err(|e| map_err("create upload", target.clone(), e))
            })
            .await?;
        let id = out
            .upload_id()
            .ok_or_else(|| StorageError::new(ErrorKind::Other, "create upload", &self.target, "no upload id"))?
            .to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn send_part(&mut self, data: Bytes) -> StorageResult<()> {
        let id = self.upload_id().await?;
        let n = self.parts.len() as i32 + 1;
        let md5 = md5_b64(&data);
        let (sink, key, target) = (self.sink, &self.key, &self.target);
        let out = sink
            .retry
            .run("upload part", || async {
                sink.client
                    .upload_part()
                    .bucket(&sink.bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .content_md5(&md5)
                    .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
                    .send()
                    .await
                    .map_err(|e| map_err("upload part", target.clone(), e))
            })
            .await?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl Upload for S3Upload<'_> {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()> {
        self.buf.extend_from_slice(&chunk);
        while self.multipart && self.buf.len() >= PART_SIZE {
            let part = self.buf.split_to(PART_SIZE).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, meta: &RestoreMeta) -> StorageResult<()> {
        use base64::Engine;
        if !self.multipart {
            let data = std::mem::take(&mut self.buf).freeze();
            let (sink, key, target) = (self.sink, &self.key, &self.target);
            return sink
                .retry
                .run("put", || async {
                    let mut req = sink
                        .client
                        .put_object()
                        .bucket(&sink.bucket)
                        .key(key)
                        .if_none_match("*")
                        .set_content_type(meta.content_type.clone())
                        .set_content_encoding(meta.content_encoding.clone())
                        .set_content_md5(
                            meta.content_md5
                                .map(|m| base64::engine::general_purpose::STANDARD.encode(m)),
                        )
                        .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()));
                    for (k, v) in &meta.user_metadata {
                        req = req.metadata(k, v);
                    }
                    match req.send().await {
                        Ok(_) => Ok(()),
                        Err(SdkError::ServiceError(e)) if matches!(e.raw().status().as_u16(), 409 | 412) => {
                            Err(already_exists(target))
                        }
                        Err(e) => Err(map_err("put", target.clone(), e)),
                    }
                })
                .await;
        }
        let result = async {
            if !self.buf.is_empty() || self.parts.is_empty() {
                let last = std::mem::take(&mut self.buf).freeze();
                self.send_part(last).await?;
            }
            let id = self.upload_id().await?;
            let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(self.parts.clone()))
                .build();
            let (sink, key, target) = (self.sink, &self.key, &self.target);
            sink.retry
                .run("complete upload", || async {
                    match sink
                        .client
                        .complete_multipart_upload()
                        .bucket(&sink.bucket)
                        .key(key)
                        .upload_id(&id)
                        .if_none_match("*")
                        .multipart_upload(done.clone())
                        .send()
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(SdkError::ServiceError(e)) if matches!(e.raw().status().as_u16(), 409 | 412) => {
                            Err(already_exists(target))
                        }
                        Err(e) => Err(map_err("complete upload", target.clone(), e)),
                    }
                })
                .await
        }
        .await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn abort(self: Box<Self>) {
        if let Some(id) = &self.upload_id {
            let _ = self
                .sink
                .client
                .abort_multipart_upload()
                .bucket(&self.sink.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SourceExt;
    use futures::TryStreamExt;
    use wiremock::matchers::{method, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn listing(truncated: bool, token: Option<&str>) -> String {
        let token = token.map(|t| format!("<NextContinuationToken>{t}</NextContinuationToken>"));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>b</Name><Prefix>p/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>\
             <IsTruncated>{truncated}</IsTruncated>{}\
             <Contents><Key>p/a</Key><Size>1</Size><ETag>\"00\"</ETag>\
             <LastModified>2026-11-30T00:00:00.000Z</LastModified></Contents>\
             </ListBucketResult>",
            token.unwrap_or_default()
        )
    }

    async fn source(server: &MockServer) -> S3Source {
        let static_keys = aws_sdk_s3::config::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let credentials = AwsCredentials::Provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            static_keys,
        ));
        S3Source::connect_with("b", "us-east-1", Some(&server.uri()), credentials).await
    }

    /// A truncated page without a token would end the listing early and let a sync move
    /// its watermark past keys it never saw.
    #[tokio::test]
    async fn a_truncated_page_without_a_token_is_an_error_not_the_end() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(listing(true, None)))
            .mount(&server)
            .await;
        let src = source(&server).await;
        let listed: StorageResult<Vec<SourceObject>> = src.list("p/", None).try_collect().await;
        let err = listed.unwrap_err();
        assert!(err.message.contains("no continuation token"), "{err}");
    }

    fn folders(truncated: bool, token: Option<&str>) -> String {
        let token = token.map(|t| format!("<NextContinuationToken>{t}</NextContinuationToken>"));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Name>b</Name><Prefix>p/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>\
             <IsTruncated>{truncated}</IsTruncated>{}\
             <CommonPrefixes><Prefix>p/x/</Prefix></CommonPrefixes></ListBucketResult>",
            token.unwrap_or_default()
        )
    }

    /// The folder listing goes through the same guard as object listings (it used the
    /// SDK's paginator, which followed A, B, A for ever).
    #[tokio::test]
    async fn folder_listings_refuse_cycling_oversized_and_missing_tokens() {
        use wiremock::matchers::query_param_is_missing;
        for (first, then, expect) in [
            (folders(true, Some("A")), folders(true, Some("A")), "gave before"),
            (
                folders(true, Some(&"T".repeat(MAX_TOKEN_LEN + 1))),
                folders(false, None),
                "longer than its limit",
            ),
            (folders(true, None), folders(false, None), "no continuation token"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(query_param_is_missing("continuation-token"))
                .respond_with(ResponseTemplate::new(200).set_body_string(first))
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_string(then))
                .mount(&server)
                .await;
            let err = source(&server).await.list_folders("p/").await.unwrap_err();
            assert!(err.message.contains(expect), "{err}");
        }
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("continuation-token", "A"))
            .respond_with(ResponseTemplate::new(200).set_body_string(folders(false, None)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(folders(true, Some("A"))))
            .mount(&server)
            .await;
        let listed = source(&server).await.list_folders("p/").await.unwrap();
        assert_eq!(listed, ["p/x/", "p/x/"], "both pages, then the end");
    }

    #[tokio::test]
    async fn a_token_continues_the_listing_and_an_untruncated_page_ends_it() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(query_param("continuation-token", "t1"))
            .respond_with(ResponseTemplate::new(200).set_body_string(listing(false, None)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string(listing(true, Some("t1"))))
            .mount(&server)
            .await;
        let src = source(&server).await;
        let listed: Vec<SourceObject> = src.list("p/", None).try_collect().await.unwrap();
        assert_eq!(listed.len(), 2);
    }
}
