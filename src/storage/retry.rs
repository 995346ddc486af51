//! One retry policy for every read and write, and the decorators that apply it to
//! each request of any [`Source`], [`BlobStore`] or [`Sink`] (object_store's
//! `LimitStore` pattern). Whole-file work (a copy, a restored file, a verified blob)
//! uses the same policy through [`RetryPolicy::run`], so a body cut short or a checksum
//! that fails on the way is fetched again instead of failing the run.
//!
//! Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
//! And Jitter"), at least as long as a `Retry-After` the service sent, never longer
//! than `retry_max_delay`. These attempts stack on the SDKs' own per-request retries.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::StateBlobStore;
use super::{
    BlobBody, BlobInfo, BlobStore, ErrorKind, Existing, Page, PageToken, PutOptions, RestoreMeta, SidecarOutcome, Sink,
    Source, SourceBody, SourceObject, StorageError, StorageResult, Upload,
};
use crate::config::RetrySettings;

/// The first wait's ceiling; each further attempt doubles it up to `max_delay`.
const BASE_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    attempts: u32,
    max_delay: Duration,
    base: Duration,
    retried: Arc<AtomicU64>,
    /// A stopping run does not sleep out its backoffs: the wait ends and the last error stands.
    cancel: tokio_util::sync::CancellationToken,
}

impl RetryPolicy {
    pub fn new(settings: RetrySettings) -> Self {
        Self {
            attempts: settings.attempts.max(1),
            max_delay: settings.max_delay,
            base: BASE_DELAY.min(settings.max_delay),
            retried: Arc::new(AtomicU64::new(0)),
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The same policy, whose waits end when `cancel` is cancelled.
    pub fn with_cancel(mut self, cancel: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Sleeps `wait` unless the run is stopping; false when it is.
    async fn wait(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// One attempt only: for tests and for callers that retry by themselves.
    pub fn none() -> Self {
        Self::new(RetrySettings {
            attempts: 1,
            max_delay: Duration::from_millis(10),
        })
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Attempts beyond the first, over everything this policy (and its clones) ran.
    pub fn retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// The wait before attempt `attempt + 1` (1-based `attempt` just failed).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16))
            .min(self.max_delay);
        let jitter = Duration::from_millis(rand::random::<u64>() % (ceiling.as_millis() as u64 + 1));
        retry_after
            .map_or(jitter, |asked| jitter.max(asked))
            .min(self.max_delay)
    }

    /// Counts and waits out one failed attempt of a caller's own loop (for work whose
    /// last failure is a result, not an error: a hash that keeps not matching).
    /// Returns false when the run is stopping (then give up).
    pub async fn backoff(&self, operation: &'static str, attempt: u32, retry_after: Option<Duration>) -> bool {
        let wait = self.delay(attempt, retry_after);
        self.retried.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::metric::RETRIES, "operation" => operation).increment(1);
        self.wait(wait).await
    }

    /// Runs one request until it succeeds, fails for good, or the attempts are spent:
    /// every transient fault is retried. `operation` names it in logs and in
    /// `trailvault_retries_total`.
    pub async fn run<T, F, Fut>(&self, operation: &'static str, attempt: F) -> StorageResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StorageResult<T>>,
    {
        self.run_while(operation, StorageError::is_transient, attempt).await
    }

    /// Runs whole-file work (a copy, a restored or verified file) made of requests that
    /// are already retried each: only what a request-level retry cannot see is retried
    /// here — a body cut short, bytes that fail their checksum on the way. Retrying every
    /// transient fault at both levels would multiply the attempts and the waits.
    pub async fn run_whole<T, F, Fut>(&self, operation: &'static str, attempt: F) -> StorageResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StorageResult<T>>,
    {
        self.run_while(operation, |e| e.kind == ErrorKind::Integrity, attempt)
            .await
    }

    async fn run_while<T, F, Fut>(
        &self,
        operation: &'static str,
        retryable: impl Fn(&StorageError) -> bool,
        mut attempt: F,
    ) -> StorageResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StorageResult<T>>,
    {
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if retryable(&e) && self.may_retry(n) => {
                    tracing::debug!(operation, attempt = n, error = %e, "retrying");
                    if !self.backoff(operation, n, e.retry_after).await {
                        return Err(e);
                    }
                    n += 1;
                }
                Err(e) => return Err(Self::gave_up(e, n)),
            }
        }
    }

    /// Whether attempt `n`, which just failed, may be followed by another: attempts are
    /// left and the run is not stopping. Then [`RetryPolicy::backoff`] waits it out.
    pub fn may_retry(&self, n: u32) -> bool {
        n < self.attempts && !self.cancel.is_cancelled()
    }

    /// The error that ends the work at attempt `n`, saying how many attempts it took.
    pub fn gave_up(e: StorageError, n: u32) -> StorageError {
        if n > 1 {
            StorageError {
                message: format!("{} (after {n} attempts)", e.message),
                ..e
            }
        } else {
            e
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

/// A [`Source`] whose every request is retried by the policy.
pub struct RetryingSource {
    inner: Arc<dyn Source>,
    policy: RetryPolicy,
}

impl RetryingSource {
    pub fn new(inner: Arc<dyn Source>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Source for RetryingSource {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<PageToken>,
    ) -> StorageResult<Page<SourceObject>> {
        self.policy
            .run("list", || self.inner.list_page(prefix, start_after, token.clone()))
            .await
    }

    async fn list_folders(&self, prefix: &str) -> StorageResult<Vec<String>> {
        self.policy.run("list", || self.inner.list_folders(prefix)).await
    }

    /// Retries getting the response; a body that fails later is the caller's to fetch again.
    async fn get(&self, key: &str) -> StorageResult<SourceBody> {
        self.policy.run("get", || self.inner.get(key)).await
    }
}

/// A [`BlobStore`] whose every request is retried by the policy. Create-only writes stay
/// safe: a retried write that had in fact landed answers "already exists", which the
/// callers already compare by hash.
pub struct RetryingStore<S: ?Sized = dyn BlobStore> {
    inner: Arc<S>,
    policy: RetryPolicy,
}

impl<S: BlobStore + ?Sized> RetryingStore<S> {
    pub fn new(inner: Arc<S>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: BlobStore + ?Sized> BlobStore for RetryingStore<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn ensure_container(&self) -> StorageResult<()> {
        self.policy
            .run("ensure container", || self.inner.ensure_container())
            .await
    }

    async fn list_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<BlobInfo>> {
        self.policy
            .run("list", || self.inner.list_page(prefix, token.clone()))
            .await
    }

    async fn list_folders_page(&self, prefix: &str, token: Option<PageToken>) -> StorageResult<Page<String>> {
        self.policy
            .run("list", || self.inner.list_folders_page(prefix, token.clone()))
            .await
    }

    async fn head(&self, name: &str) -> StorageResult<Option<BlobInfo>> {
        self.policy.run("head", || self.inner.head(name)).await
    }

    async fn get(&self, name: &str) -> StorageResult<BlobBody> {
        self.policy.run("get", || self.inner.get(name)).await
    }

    async fn put(&self, name: &str, data: Bytes, opts: PutOptions) -> StorageResult<String> {
        self.policy
            .run("put", || self.inner.put(name, data.clone(), opts.clone()))
            .await
    }

    async fn stage_block(&self, name: &str, block_id: &[u8], data: Bytes, md5: [u8; 16]) -> StorageResult<()> {
        self.policy
            .run("put", || self.inner.stage_block(name, block_id, data.clone(), md5))
            .await
    }

    async fn commit_blocks(&self, name: &str, block_ids: Vec<Vec<u8>>, opts: PutOptions) -> StorageResult<String> {
        self.policy
            .run("put", || {
                self.inner.commit_blocks(name, block_ids.clone(), opts.clone())
            })
            .await
    }

    /// Lease calls are not retried here: the lock keeps its own clock (a renewal that
    /// waited out backoffs could outlive the lease), and an acquire repeated after a lost
    /// answer would find our own lease and call it someone else's.
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
impl<S: StateBlobStore + ?Sized> StateBlobStore for RetryingStore<S> {
    async fn delete(&self, name: &str) -> StorageResult<()> {
        self.policy.run("delete", || self.inner.delete(name)).await
    }
}

/// A restore [`Sink`] whose requests are retried by the policy.
pub struct RetryingSink {
    inner: Arc<dyn Sink>,
    policy: RetryPolicy,
}

impl RetryingSink {
    pub fn new(inner: Arc<dyn Sink>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Sink for RetryingSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>> {
        self.policy.run("head", || self.inner.existing(key)).await
    }

    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        self.policy.run("get", || self.inner.existing_sha256(key)).await
    }

    fn cannot_hold(&self, key: &str) -> Option<String> {
        self.inner.cannot_hold(key)
    }

    /// Not retried here: a file's whole write is retried by restore, from a fresh read
    /// (and a multipart upload retries its own parts, which only it holds).
    async fn begin(&self, key: &str, size: u64, meta: &RestoreMeta) -> StorageResult<Box<dyn Upload + '_>> {
        self.inner.begin(key, size, meta).await
    }

    async fn put_sidecar(&self, key: &str, sidecar: &serde_json::Value) -> StorageResult<SidecarOutcome> {
        self.policy.run("put", || self.inner.put_sidecar(key, sidecar)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy::new(RetrySettings {
            attempts,
            max_delay: Duration::from_millis(20),
        })
    }

    fn fail(kind: ErrorKind) -> StorageError {
        StorageError::new(kind, "get", "k", "boom")
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_the_attempts_are_spent() {
        let p = policy(4);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: StorageResult<()> = p
            .run("get", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fail(ErrorKind::Throttled))
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(p.retries(), 3);
        assert!(e.message.contains("after 4 attempts"), "{e}");
    }

    #[tokio::test]
    async fn a_later_success_wins_and_permanent_failures_are_not_retried() {
        let p = policy(6);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r = p
            .run("get", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(fail(ErrorKind::Integrity)),
                    1 => Err(fail(ErrorKind::Unreachable)),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(p.retries(), 2);
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Auth,
            ErrorKind::AlreadyExists,
            ErrorKind::PreconditionFailed,
        ] {
            let calls = std::sync::atomic::AtomicU32::new(0);
            let r: StorageResult<()> = p
                .run("get", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(fail(kind))
                })
                .await;
            assert_eq!(r.unwrap_err().kind, kind);
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{kind:?} was retried");
        }
    }

    #[tokio::test]
    async fn whole_file_work_retries_only_what_requests_cannot_see_and_stops_when_cancelled() {
        let p = policy(6);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: StorageResult<()> = p
            .run_whole("copy", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fail(ErrorKind::Throttled))
            })
            .await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::Throttled);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a throttle was retried twice over");
        let r: StorageResult<()> = p
            .run_whole("copy", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(fail(ErrorKind::Integrity))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 7);

        let cancel = tokio_util::sync::CancellationToken::new();
        let slow = RetryPolicy::new(RetrySettings {
            attempts: 10,
            max_delay: Duration::from_secs(60),
        })
        .with_cancel(cancel.clone());
        cancel.cancel();
        let started = std::time::Instant::now();
        let r: StorageResult<()> = slow
            .run("get", || async {
                Err(fail(ErrorKind::Throttled).with_retry_after(Some(Duration::from_secs(30))))
            })
            .await;
        assert!(r.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a stopping run slept out its backoff"
        );
    }

    #[test]
    fn delays_grow_with_full_jitter_honour_retry_after_and_stay_capped() {
        let p = RetryPolicy::new(RetrySettings {
            attempts: 6,
            max_delay: Duration::from_secs(2),
        });
        for attempt in 1..10 {
            let ceiling = (BASE_DELAY * (1 << (attempt - 1))).min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(p.delay(attempt, None) <= ceiling);
            }
        }
        assert!(p.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert_eq!(p.delay(1, Some(Duration::from_secs(60))), Duration::from_secs(2));
        let spread: std::collections::BTreeSet<_> = (0..50).map(|_| p.delay(5, None)).collect();
        assert!(spread.len() > 5, "no jitter: {spread:?}");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(25), "{d:?}");
    }
}
