//! Replay protection: an assertion ID is accepted once while it is valid. Entries live until
//! the later of the Conditions' and the SubjectConfirmationData's NotOnOrAfter plus the clock
//! skew (the validator computes that instant), so an ID is never forgotten while the validator
//! would still accept it.
//!
//! Beyond one process the IDs live in a [`ReplayStore`]: the CLI's `--replay-cache` file
//! (`federation_io::FileReplayStore`, flock and an atomic rename) or, for the service, the
//! state container ([`remember_in_state`]). A store that cannot be read or written fails
//! closed: the assertion is refused and [`ReplayCache::save`] reports the error.

use chrono::{DateTime, Utc};

pub use crate::federation_io::replay_store::{remember, ReplayFailure, ReplayStore, ReplayStoreError, Seen};

#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Seen,
    store: Option<Box<dyn ReplayStore>>,
    error: Option<ReplayStoreError>,
}

impl ReplayCache {
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A cache kept in `store` (shared with other processes).
    pub fn with_store(store: Box<dyn ReplayStore>) -> Self {
        Self {
            store: Some(store),
            ..Self::default()
        }
    }

    /// False when `id` was seen and is still remembered at `at`; otherwise remembers it until
    /// `until`. A store that cannot be updated answers false (fail closed).
    pub fn check_and_remember(&mut self, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        let Some(store) = self.store.as_mut() else {
            return remember(&mut self.seen, id, until, at);
        };
        match store.check_and_remember(id, until, at) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Reports a failure of the store (every update is already written).
    pub fn save(&self) -> Result<(), &ReplayStoreError> {
        match &self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The service's replay cache: one create-only blob per assertion ID under
/// `saml/seen/` in the state container, so two instances cannot both accept the same
/// assertion. Returns false for a replay (seen and still valid at `at`).
pub async fn remember_in_state(
    state: &dyn crate::storage::BlobStore,
    assertion_id: &str,
    until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool, crate::storage::StorageError> {
    use crate::storage::{read_all, Condition, ErrorKind, PutOptions};
    use sha2::{Digest, Sha256};
    // IDs are attacker-chosen text; their hash makes a safe, fixed-length blob name.
    let name = format!(
        "saml/seen/{}.json",
        hex::encode(Sha256::digest(assertion_id.as_bytes()))
    );
    let body = serde_json::to_vec(&serde_json::json!({ "assertion_id": assertion_id, "not_on_or_after": until }))
        .unwrap_or_default();
    let put = |condition| PutOptions {
        content_type: Some("application/json".into()),
        condition,
        ..Default::default()
    };
    match state.put(&name, body.clone().into(), put(Condition::IfNoneMatch)).await {
        Ok(_) => return Ok(true),
        Err(e) if e.kind != ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    let Some((bytes, info)) = read_all(state, &name).await? else {
        return Ok(false);
    };
    let expired = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v["not_on_or_after"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        })
        .is_some_and(|t| t <= at);
    if !expired {
        return Ok(false);
    }
    // An old entry for a reused ID: take it over, unless another instance just did.
    match state.put(&name, body.into(), put(Condition::IfMatch(info.etag))).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::PreconditionFailed => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_accepted_once_while_valid() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut c = ReplayCache::in_memory();
        assert!(c.check_and_remember("_a", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z")));
        assert!(!c.check_and_remember("_a", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:10:00Z")));
        // Expired entries are forgotten (the assertion itself is expired by then).
        assert!(c.check_and_remember("_a", t("2026-01-01T03:00:00Z"), t("2026-01-01T02:00:00Z")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_service_store_accepts_an_id_once_across_instances() {
        use crate::storage::memory::MemoryBlobStore;
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let store = std::sync::Arc::new(MemoryBlobStore::new());
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    remember_in_state(
                        store.as_ref(),
                        "_a",
                        t("2026-01-01T01:03:00Z"),
                        t("2026-01-01T00:00:00Z"),
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            wins += usize::from(task.await.unwrap());
        }
        assert_eq!(wins, 1);
        // Still remembered up to its end, forgotten (taken over) after it.
        let at_edge = t("2026-01-01T01:02:59Z");
        assert!(
            !remember_in_state(store.as_ref(), "_a", t("2026-01-01T02:00:00Z"), at_edge)
                .await
                .unwrap()
        );
        let after = t("2026-01-01T01:03:00Z");
        assert!(
            remember_in_state(store.as_ref(), "_a", t("2026-01-01T02:00:00Z"), after)
                .await
                .unwrap()
        );
    }
}
