//! Replay protection: an assertion ID is accepted once while it is valid. Entries live until
//! the later of the Conditions' and the SubjectConfirmationData's NotOnOrAfter plus the clock
//! skew (the validator computes that instant), so an ID is never forgotten while the validator
//! would still accept it.
//!
//! The CLI keeps the seen IDs in a local JSON file (`--replay-cache`) that concurrent processes
//! share safely: every check-and-remember is one read-modify-write under an exclusive OS lock
//! (`flock` on `FILE.lock`), and the file itself is replaced atomically (write, fsync, rename).
//! When the file cannot be read or written the cache fails closed: the assertion is refused
//! and [`ReplayCache::save`] reports the error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

type Seen = BTreeMap<String, DateTime<Utc>>;

#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Seen,
    path: Option<PathBuf>,
    error: Option<String>,
}

fn read_seen(path: &Path) -> Result<Seen, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Seen::new()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("replay cache {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::new()),
        Err(e) => Err(format!("replay cache {}: {e}", path.display())),
    }
}

impl ReplayCache {
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A cache in `path`, shared with other processes. The file is checked here (an unreadable
    /// or corrupt cache is a configuration error) and read again, under the lock, at every check.
    pub fn load(path: &Path) -> Result<Self, String> {
        read_seen(path)?;
        Ok(Self {
            seen: Seen::new(),
            path: Some(path.to_path_buf()),
            error: None,
        })
    }

    /// False when `id` was seen and is still remembered at `at`; otherwise remembers it until
    /// `until`. A file cache that cannot be updated answers false (fail closed).
    pub fn check_and_remember(&mut self, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        let Some(path) = self.path.clone() else {
            return remember(&mut self.seen, id, until, at);
        };
        match locked_check_and_remember(&path, id, until, at) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Reports a failure of the file cache (every update is already written under the lock).
    pub fn save(&self) -> Result<(), String> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

fn remember(seen: &mut Seen, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    seen.retain(|_, exp| *exp > at);
    if seen.contains_key(id) {
        return false;
    }
    seen.insert(id.to_string(), until);
    true
}

extern "C" {
    fn flock(fd: std::ffi::c_int, operation: std::ffi::c_int) -> std::ffi::c_int;
}

/// An exclusive `flock(2)` on the file, held until it is closed (std's `File::lock` is newer
/// than the crate's MSRV).
fn flock_exclusive(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const LOCK_EX: std::ffi::c_int = 2;
    loop {
        // SAFETY: flock on a descriptor this function borrows; no memory is passed.
        if unsafe { flock(file.as_raw_fd(), LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn locked_check_and_remember(path: &Path, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> Result<bool, String> {
    let err = |e: std::io::Error| format!("replay cache {}: {e}", path.display());
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(lock_name))
        .map_err(err)?;
    flock_exclusive(&lock).map_err(err)?;
    let mut seen = read_seen(path)?;
    let fresh = remember(&mut seen, id, until, at);
    if fresh {
        let tmp = path.with_extension(format!("tmp-{:08x}", rand::random::<u32>()));
        let body = serde_json::to_vec_pretty(&seen).unwrap_or_default();
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&body).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
    }
    drop(lock); // releases the flock
    Ok(fresh)
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

    #[test]
    fn the_file_cache_is_shared_and_exactly_one_thread_wins() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..10)
                .map(|_| {
                    let path = path.clone();
                    s.spawn(move || {
                        let mut c = ReplayCache::load(&path).unwrap();
                        let won = c.check_and_remember("_a", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z"));
                        c.save().unwrap();
                        usize::from(won)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
        let mut c = ReplayCache::load(&path).unwrap();
        assert!(c.check_and_remember("_b", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z")));
        std::fs::write(&path, "not json").unwrap();
        assert!(ReplayCache::load(&path).is_err());
        assert!(!c.check_and_remember("_c", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z")));
        assert!(c.save().is_err());
    }
}
