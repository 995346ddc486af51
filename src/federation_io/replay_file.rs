//! The CLI's `--replay-cache`: a local JSON file that concurrent processes share safely.
//! Every check-and-remember is one read-modify-write under an exclusive OS lock (`flock` on
//! `FILE.lock`), and the file itself is replaced atomically (write, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::replay_store::{remember, ReplayFailure, ReplayStore, ReplayStoreError, Seen};

#[derive(Debug)]
pub struct FileReplayStore {
    path: PathBuf,
}

impl FileReplayStore {
    /// The cache in `path`. The file is checked here (an unreadable or corrupt cache is an
    /// error before any work) and read again, under the lock, at every check.
    pub fn open(path: &Path) -> Result<Self, ReplayStoreError> {
        read_seen(path)?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl ReplayStore for FileReplayStore {
    fn check_and_remember(
        &mut self,
        id: &str,
        until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, ReplayStoreError> {
        locked_check_and_remember(&self.path, id, until, at)
    }
}

fn failure(path: &Path, source: impl Into<ReplayFailure>) -> ReplayStoreError {
    ReplayStoreError {
        location: path.display().to_string(),
        source: source.into(),
    }
}

fn read_seen(path: &Path) -> Result<Seen, ReplayStoreError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Seen::new()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| failure(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::new()),
        Err(e) => Err(failure(path, e)),
    }
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

fn locked_check_and_remember(
    path: &Path,
    id: &str,
    until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool, ReplayStoreError> {
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(lock_name))
        .map_err(|e| failure(path, e))?;
    flock_exclusive(&lock).map_err(|e| failure(path, e))?;
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
            return Err(failure(path, e));
        }
    }
    drop(lock); // releases the flock
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store alone, as the domain's cache would use it (fail closed on an error).
    struct Cache(FileReplayStore, Option<ReplayStoreError>);

    impl Cache {
        fn check_and_remember(&mut self, id: &str, until: DateTime<Utc>, at: DateTime<Utc>) -> bool {
            self.0.check_and_remember(id, until, at).unwrap_or_else(|e| {
                self.1 = Some(e);
                false
            })
        }
        fn save(&self) -> Result<(), &ReplayStoreError> {
            self.1.as_ref().map_or(Ok(()), Err)
        }
    }

    fn cache(path: &Path) -> Cache {
        Cache(FileReplayStore::open(path).unwrap(), None)
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
                        let mut c = cache(&path);
                        let won = c.check_and_remember("_a", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z"));
                        c.save().unwrap();
                        usize::from(won)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
        let mut c = cache(&path);
        assert!(c.check_and_remember("_b", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z")));
        std::fs::write(&path, "not json").unwrap();
        assert!(FileReplayStore::open(&path).is_err());
        assert!(!c.check_and_remember("_c", t("2026-01-01T01:00:00Z"), t("2026-01-01T00:00:00Z")));
        assert!(c.save().is_err());
    }
}
