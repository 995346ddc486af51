//! Bounded waits for every azure_core pipeline (Blob, Logs Ingestion, the Entra
//! credentials): a retry policy that never sleeps longer than `[sync] retry_max_delay`,
//! whatever `Retry-After`, `retry-after-ms` or `x-ms-retry-after-ms` a server sends, and a
//! transport with a connect timeout and an idle-read timeout on every request.
//!
//! azure_core 1.x's own exponential policy waits `max(server's ask, backoff)` with no
//! ceiling (`RetryPolicy::wait` in typespec_client_core), and its `max_total_elapsed` is
//! only checked between attempts: one 503 with `Retry-After: 999999999` would sleep for
//! years. Its reqwest transport has fixed timeouts nobody can set
//! (azure-sdk-for-rust#4217), so the transport is built here.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::headers::{HeaderName, RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::{RetryHeaders, RetryPolicy};
use azure_core::http::{ClientOptions, RetryOptions, StatusCode, Transport};

/// Environment: SDK retries for transient Azure failures (default 4; 0 turns them off).
pub const ENV_MAX_RETRIES: &str = "TRAILVAULT_AZURE_MAX_RETRIES";
/// How long a TCP (and TLS) connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response (head or body) may go without a byte.
pub const READ_IDLE_TIMEOUT: Duration = super::BODY_IDLE_TIMEOUT;
/// The SDK's attempts, their waits included, stop after this long in all.
const MAX_ELAPSED: Duration = Duration::from_secs(30);
const INITIAL_DELAY: Duration = Duration::from_millis(500);

/// azure_core's retry, with every wait capped at `max_delay`.
#[derive(Debug, Clone)]
pub struct CappedRetry {
    max_retries: u32,
    max_delay: Duration,
    max_elapsed: Duration,
    headers: RetryHeaders,
}

impl CappedRetry {
    pub fn new(max_retries: u32, max_delay: Duration) -> Self {
        Self {
            max_retries,
            max_delay,
            max_elapsed: MAX_ELAPSED,
            headers: RetryHeaders {
                // Azure's own millisecond headers first, then the standard one (seconds or a date).
                retry_headers: vec![X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
            },
        }
    }

    /// Attempts stop once this long has passed since the first (checked between attempts).
    pub fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = max_elapsed;
        self
    }

    /// The wait before retry `retry_count` (1-based): exponential from 0.5 s, at least what
    /// the server asked, never more than `max_delay`.
    pub fn delay(&self, retry_count: u32, asked: Option<Duration>) -> Duration {
        let backoff = INITIAL_DELAY.saturating_mul(1u32 << retry_count.saturating_sub(1).min(16));
        asked.map_or(backoff, |a| a.max(backoff)).min(self.max_delay)
    }
}

fn to_azure(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::try_from(d).unwrap_or(azure_core::time::Duration::MAX)
}

fn from_azure(d: azure_core::time::Duration) -> Duration {
    // A negative wait (a date in the past) is no wait.
    Duration::try_from(d).unwrap_or_default()
}

#[async_trait::async_trait]
impl RetryPolicy for CappedRetry {
    fn is_expired(&self, since_start: azure_core::time::Duration, retry_count: u32) -> bool {
        retry_count >= self.max_retries || from_azure(since_start) >= self.max_elapsed
    }

    fn retry_headers(&self) -> Option<&RetryHeaders> {
        Some(&self.headers)
    }

    fn retry_status_codes(&self) -> &[StatusCode] {
        // Empty: azure_core's defaults (408, 429, 500, 502, 503, 504).
        &[]
    }

    fn sleep_duration(&self, retry_count: u32) -> azure_core::time::Duration {
        to_azure(self.delay(retry_count, None))
    }

    async fn wait(&self, retry_count: u32, retry_after: Option<azure_core::time::Duration>) {
        let wait = self.delay(retry_count, retry_after.map(from_azure));
        tokio::time::sleep(wait).await;
    }
}

fn max_retries() -> u32 {
    std::env::var(ENV_MAX_RETRIES)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(4)
}

/// The retry options of every Azure client: SDK retries capped at `max_delay` a wait.
pub fn retry_options(max_delay: Duration) -> RetryOptions {
    match max_retries() {
        0 => RetryOptions::none(),
        n => RetryOptions::custom(Arc::new(CappedRetry::new(n, max_delay))),
    }
}

/// The HTTP client under every Azure pipeline: connect and idle-read timeouts, no
/// redirects (Azure REST guidelines, and azure_core's own choice), and no automatic
/// decompression (archived bytes must be exactly what S3 held).
pub fn transport() -> Option<Transport> {
    // Only a broken TLS set-up fails the build; azure_core's default client (20 s connect,
    // 60 s read) is the fallback then, not a panic.
    shared_client().map(|c| Transport::new(Arc::new(c)))
}

/// One HTTP client for the whole process (Blob, Logs Ingestion, the S3 GETs): its
/// connection pools are shared, and the platform's root certificates are read once
/// rather than once per client. None when the TLS set-up is broken.
///
/// A pooled connection is driven by a task on the runtime that opened it: the binary runs
/// one runtime for its whole life (`main`), and a runtime that has been dropped closes its
/// connections, so the pool discards them. A second runtime kept alive but idle beside the
/// first, talking to the same host, is the case this would not suit.
pub fn shared_client() -> Option<reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest_client).clone()
}

/// Client options for an Azure pipeline whose waits are all bounded by `max_delay`.
pub fn client_options(max_delay: Duration) -> ClientOptions {
    ClientOptions {
        retry: retry_options(max_delay),
        transport: transport(),
        ..Default::default()
    }
}

/// An HTTP client whose answers may not exceed `max_bytes` (for the identity endpoints,
/// whose answers the credentials read whole).
#[derive(Debug)]
struct CappedBodies {
    inner: reqwest::Client,
    max_bytes: usize,
}

#[async_trait::async_trait]
impl azure_core::http::HttpClient for CappedBodies {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        use futures::StreamExt;
        let too_large = |max: usize| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                format!("the identity endpoint's answer is larger than {max} bytes"),
            )
        };
        let response = self.inner.execute_request(request).await?;
        let (status, headers, body) = response.deconstruct();
        let declared = headers
            .get_optional_str(&HeaderName::from_static("content-length"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        let max = self.max_bytes;
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(max));
        }
        let mut seen = 0usize;
        let limited = body.map(move |chunk| {
            let chunk = chunk?;
            seen = seen.saturating_add(chunk.len());
            if seen > max {
                return Err(too_large(max));
            }
            Ok(chunk)
        });
        Ok(azure_core::http::AsyncRawResponse::new(
            status,
            headers,
            Box::pin(limited),
        ))
    }
}

fn reqwest_client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_IDLE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .gzip(false)
        .deflate(false)
        .build()
        .map_err(|e| tracing::warn!(error = %e, "cannot build the Azure HTTP client; using azure_core's default"))
        .ok()
}

/// Client options for an Entra credential's token requests: few, short retries, so that a
/// failing identity endpoint (500, 429) is reported as itself well within the caller's
/// own bound on a token request, not as "no answer".
pub fn credential_options(max_delay: Duration) -> ClientOptions {
    let retry = match max_retries() {
        0 => RetryOptions::none(),
        _ => RetryOptions::custom(Arc::new(
            CappedRetry::new(2, max_delay.min(CREDENTIAL_MAX_DELAY)).with_max_elapsed(CREDENTIAL_MAX_ELAPSED),
        )),
    };
    let transport = reqwest_client().map(|inner| {
        Transport::new(Arc::new(CappedBodies {
            inner,
            max_bytes: super::aws_credentials::MAX_ANSWER_BYTES,
        }))
    });
    ClientOptions {
        retry,
        transport,
        ..Default::default()
    }
}

/// Bounds on an Entra credential's own retries (see [`credential_options`]).
const CREDENTIAL_MAX_DELAY: Duration = Duration::from_secs(2);
const CREDENTIAL_MAX_ELAPSED: Duration = Duration::from_secs(5);

/// How long a server asked us to wait, from Azure's headers, in the order the retry policy
/// reads them: `x-ms-retry-after-ms`, `retry-after-ms` (milliseconds), `Retry-After`
/// (seconds or an HTTP date).
pub fn asked_wait(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    for name in [X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS] {
        if let Some(ms) = headers
            .get_optional_str(&name)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    headers
        .get_optional_str(&HeaderName::from_static("retry-after"))
        .and_then(super::retry::parse_retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_server_ask_is_capped() {
        let p = CappedRetry::new(4, Duration::from_secs(30));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(999_999_999))),
            Duration::from_secs(30)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.delay(1, None), Duration::from_millis(500));
        assert_eq!(p.delay(30, None), Duration::from_secs(30));
        let short = CappedRetry::new(4, Duration::from_millis(100));
        assert_eq!(short.delay(1, Some(Duration::MAX)), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn the_policy_wait_never_exceeds_the_cap() {
        let p = CappedRetry::new(4, Duration::from_millis(50));
        let start = std::time::Instant::now();
        p.wait(1, Some(azure_core::time::Duration::seconds(999_999_999))).await;
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn every_header_form_is_read() {
        use azure_core::http::headers::Headers;
        let mut h = Headers::new();
        h.insert(RETRY_AFTER, "7");
        assert_eq!(asked_wait(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER_MS, "1500");
        assert_eq!(asked_wait(&h), Some(Duration::from_millis(1500)));
        h.insert(X_MS_RETRY_AFTER_MS, "20");
        assert_eq!(asked_wait(&h), Some(Duration::from_millis(20)));
        let mut date = Headers::new();
        let later = (chrono::Utc::now() + chrono::Duration::hours(5)).to_rfc2822();
        date.insert(RETRY_AFTER, later);
        assert!(asked_wait(&date).is_some_and(|d| d > Duration::from_secs(3600)));
    }
}
