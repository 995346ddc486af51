//! `/metrics` of events, recorded as they happen (the daemon drains for ever; a summary
//! at the end would never come). Without an installed recorder these do nothing.

use crate::telemetry::metric;

pub(super) fn received(source: &str, n: u64) {
    metrics::counter!(metric::EVENTS_RECEIVED, "source" => source.to_string()).increment(n);
}

pub(super) fn file(source: &str, outcome: &'static str) {
    metrics::counter!(metric::EVENT_FILES, "source" => source.to_string(), "outcome" => outcome).increment(1);
}

pub(super) fn lag(seconds: f64) {
    metrics::histogram!(metric::EVENT_LAG).record(seconds);
}
