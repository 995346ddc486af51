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
