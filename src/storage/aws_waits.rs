//! Bounded waits for every AWS SDK client (S3, STS, CloudTrail): connect and read
//! timeouts, and the SDK's own retries capped at `[sync] retry_max_delay` a wait.
//!
//! The SDK's standard retry strategy (aws-smithy-runtime 1.16) waits `min(x-amz-retry-after,
//! max_backoff)` under retry behaviour 2.0 but `clamp(x-amz-retry-after, t, t + 5 s)` under
//! 2.1, where `t` is its own backoff (at most `max_backoff`). Setting `max_backoff` to the
//! cap and clamping the header itself to the cap, before the SDK's classifiers read it,
//! bounds both. It reads no `Retry-After`; our own policy reads that one (and caps it).

use std::time::Duration;

// The smithy types, through the S3 crate's re-exports (every AWS SDK crate shares them).
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;

/// How long a TCP (and TLS) connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the SDK waits for a response to start after sending a request; a body is
/// bounded separately by [`super::BODY_IDLE_TIMEOUT`] between chunks.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The header the SDK's retry classifiers read (milliseconds).
const AMZ_RETRY_AFTER: &str = "x-amz-retry-after";

/// Timeouts for every AWS client.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
}

/// The SDK's retry config as loaded (`AWS_MAX_ATTEMPTS`, profile), with no wait beyond `max_delay`.
pub fn retry_config(loaded: Option<&RetryConfig>, max_delay: Duration) -> RetryConfig {
    loaded
        .cloned()
        .unwrap_or_else(RetryConfig::standard)
        .with_max_backoff(max_delay)
}

/// Lowers a server's `x-amz-retry-after` to `max_delay` before the SDK's retry strategy reads it.
#[derive(Debug, Clone)]
pub struct CapRetryAfter {
    pub max_delay: Duration,
}

impl CapRetryAfter {
    /// The header value to keep: at most the cap, in milliseconds; None to drop an unreadable one.
    fn capped(&self, value: &str) -> Option<String> {
        let ms = value.trim().parse::<u64>().ok()?;
        Some(ms.min(self.max_delay.as_millis() as u64).to_string())
    }
}

impl Intercept for CapRetryAfter {
    fn name(&self) -> &'static str {
        "CapRetryAfter"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.response_mut().headers_mut();
        if let Some(value) = headers.remove(AMZ_RETRY_AFTER) {
            if let Some(capped) = self.capped(&value) {
                headers.insert(AMZ_RETRY_AFTER, capped);
            }
        }
        Ok(())
    }
}

/// Refuses an answer larger than `max_bytes` before the SDK reads it whole (its
/// non-streaming operations buffer the body before parsing it): a credentials answer is a
/// few KiB, and a 64 MB one is an attack or a fault, not something to hold in memory.
#[derive(Debug, Clone)]
pub struct CapBody {
    pub max_bytes: usize,
}

impl Intercept for CapBody {
    fn name(&self) -> &'static str {
        "CapBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(format!("the answer is larger than {} bytes", self.max_bytes).into());
        }
        // Without a length (chunked), the body is cut off at the cap as it is read.
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = SdkBody::from_body_1_x(http_body_util::Limited::new(body, self.max_bytes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_ask_is_lowered_to_the_cap_and_garbage_dropped() {
        let cap = CapRetryAfter {
            max_delay: Duration::from_secs(30),
        };
        assert_eq!(cap.capped("999999999999").as_deref(), Some("30000"));
        assert_eq!(cap.capped(" 1500 ").as_deref(), Some("1500"));
        assert_eq!(cap.capped("soon"), None);
    }

    #[test]
    fn the_loaded_retry_config_keeps_its_attempts_and_gets_the_cap() {
        let loaded = RetryConfig::standard().with_max_attempts(7);
        let c = retry_config(Some(&loaded), Duration::from_secs(3));
        assert_eq!(c.max_attempts(), 7);
        assert_eq!(c.max_backoff(), Duration::from_secs(3));
        assert_eq!(
            retry_config(None, Duration::from_secs(3)).max_backoff(),
            Duration::from_secs(3)
        );
    }
}
