//! Replay protection: an assertion ID is accepted once while it is valid. The CLI keeps
//! the seen IDs in a local JSON file (`--replay-cache`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: BTreeMap<String, DateTime<Utc>>,
    path: Option<PathBuf>,
}

impl ReplayCache {
    pub fn in_memory() -> Self {
        Self::default()
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let seen = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("replay cache {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("replay cache {}: {e}", path.display())),
        };
        Ok(Self {
            seen,
            path: Some(path.to_path_buf()),
        })
    }

    /// False when `id` was seen and is still valid at `at`; otherwise remembers it until `until`.
    pub fn check_and_remember(&mut self, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        self.seen.retain(|_, exp| *exp > at);
        if self.seen.contains_key(id) {
            return false;
        }
        self.seen.insert(id.to_string(), until);
        true
    }

    pub fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let tmp = path.with_extension(format!("tmp-{:08x}", rand::random::<u32>()));
        let body = serde_json::to_vec_pretty(&self.seen).unwrap_or_default();
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("replay cache {}: {e}", path.display()))
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
}
