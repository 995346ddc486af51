//! What a replay cache beyond one process is: a store whose check-and-remember is one atomic
//! step. The federation domain's `ReplayCache` uses it; `replay_file` implements it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// Assertion IDs and until when each is remembered.
pub type Seen = BTreeMap<String, DateTime<Utc>>;

/// Where seen IDs are kept beyond one process: each check-and-remember is one atomic step.
pub trait ReplayStore: Send + std::fmt::Debug {
    /// False when `id` was seen and is still remembered at `at`; otherwise remembers it
    /// until `until` and answers true.
    fn check_and_remember(
        &mut self,
        id: &str,
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, ReplayStoreError>;
}

/// A store that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("replay cache {location}: {source}")]
pub struct ReplayStoreError {
    pub location: String,
    #[source]
    pub source: ReplayFailure,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayFailure {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a replay cache: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// The in-memory step every store shares: forget what expired, then check and remember.
pub fn remember(seen: &mut Seen, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    seen.retain(|_, exp| *exp > at);
    if seen.contains_key(id) {
        return false;
    }
    seen.insert(id.to_string(), until);
    true
}
