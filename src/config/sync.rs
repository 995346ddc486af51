//! `[sync]`: how much is in flight, how far back to look, and how often to retry.

use std::time::Duration;

use super::defaults::{CONCURRENCY, IN_FLIGHT_BYTES, LOOKBACK, MAX_GAP, MAX_REQUESTS, RETRIES, RETRY_MAX_DELAY};
use super::fields::{Fields, Problems};

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub concurrency: usize,
    /// Requests in flight to each service (the S3 bucket, the archive, the state
    /// container), whatever planning and copying fan out; lease calls excepted.
    pub max_requests: usize,
    pub in_flight_bytes: u64,
    pub lookback: Duration,
    pub max_gap: Duration,
}

/// Attempts per file or request (the first included) and the longest wait between two,
/// stacked on the SDKs' own per-request retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub attempts: u32,
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts: RETRIES.default,
            max_delay: RETRY_MAX_DELAY.default,
        }
    }
}

/// `[sync]` (every key has a default, so an absent section is an empty one). `retries`
/// and `retry_max_delay` are one policy for every read and write, not only sync's.
pub(super) fn read(t: Option<&toml::Table>, problems: &Problems) -> (SyncSettings, RetrySettings) {
    let empty = toml::Table::new();
    let mut f = Fields::new("sync", t.unwrap_or(&empty), problems);
    // Counts are at most a few thousand: they fit any usize.
    let sync = SyncSettings {
        concurrency: f.count(&CONCURRENCY) as usize,
        max_requests: f.count(&MAX_REQUESTS) as usize,
        in_flight_bytes: f.size(&IN_FLIGHT_BYTES),
        lookback: f.duration(&LOOKBACK),
        max_gap: f.duration(&MAX_GAP),
    };
    let retry = RetrySettings {
        attempts: f.count(&RETRIES),
        max_delay: f.duration(&RETRY_MAX_DELAY),
    };
    f.finish();
    (sync, retry)
}
