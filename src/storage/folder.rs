//! A local folder as a restore target: `DIR/{key}`. Each file is streamed to a temporary
//! file in this run's own `DIR/.trailvault-partial/{run}/`, flushed and synced with
//! every error checked, and hard-linked to its final name only after the caller has
//! verified the bytes; a link never replaces an existing file. Symlinks inside DIR are
//! never followed, and the partial folder's other contents are never touched.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::*;
pub use crate::archive::PARTIAL_DIR;

/// Suffix of the metadata written next to a restored file (digest signatures).
pub const SIDECAR_SUFFIX: &str = ".metadata.json";
/// Who runs in a run folder: `{pid} {process start time}` (from `/proc`), so a later
/// run can tell a live restore from a killed one without touching the live one's files.
const OWNER_FILE: &str = ".owner";
/// Suffix of this tool's temporary files: only these are ever removed.
const TMP_SUFFIX: &str = ".tv-partial";

pub struct FolderSink {
    root: PathBuf,
    run: String,
    /// Set once this run's folder exists (with its owner file).
    lock: Mutex<bool>,
}

impl FolderSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            run: crate::records::new_run_id(chrono::Utc::now()),
            lock: Mutex::new(false),
        }
    }

    fn partial_root(&self) -> PathBuf {
        self.root.join(PARTIAL_DIR)
    }

    fn run_dir(&self) -> PathBuf {
        self.partial_root().join(&self.run)
    }

    /// Removes what killed restores left in their own run folders: only this tool's
    /// temporary files and lock, only in run folders no live restore holds, and the
    /// folders once empty. Anything else in `.trailvault-partial` is left alone.
    pub async fn clear_partial(&self) -> StorageResult<()> {
        let root = self.partial_root();
        match std::fs::symlink_metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                tracing::warn!(path = %root.display(), "not a folder (a symlink?); left alone");
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
        let entries = std::fs::read_dir(&root).map_err(|e| io_err("list", &root, e))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            let is_run = entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
                && looks_like_run_id(&entry.file_name().to_string_lossy());
            if !is_run || dir == self.run_dir() {
                continue;
            }
            let owner_path = dir.join(OWNER_FILE);
            let Ok(owner) = std::fs::read_to_string(&owner_path) else {
                continue; // not ours, or a run still setting up
            };
            if owner_alive(&owner) {
                continue; // a live restore
            }
            if let Ok(files) = std::fs::read_dir(&dir) {
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if name.ends_with(TMP_SUFFIX) && f.file_type().map(|t| t.is_file()).unwrap_or(false) {
                        let _ = std::fs::remove_file(f.path());
                    }
                }
            }
            let _ = std::fs::remove_file(&owner_path);
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(())
    }

    /// `DIR/{key}`, for keys a filesystem holds verbatim only.
    fn path_for(&self, key: &str) -> StorageResult<PathBuf> {
        let segments = crate::archive::local_segments(key).map_err(|why| {
            StorageError::new(
                ErrorKind::Other,
                "restore",
                key,
                format!("cannot be held verbatim in a folder: {why}"),
            )
        })?;
        Ok(segments.iter().fold(self.root.clone(), |p, s| p.join(s)))
    }

    /// Checks (and with `create`, makes) every folder between DIR and `path`, refusing
    /// to pass through a symlink or a file.
    fn parents(&self, path: &Path, create: bool) -> StorageResult<bool> {
        let Some(parent) = path.parent() else { return Ok(true) };
        let rel = parent.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut at = self.root.clone();
        for c in rel.components() {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StorageError::new(
                        ErrorKind::Other,
                        "restore",
                        at.display().to_string(),
                        "is a symlink inside the target; it is not followed",
                    ))
                }
                Ok(_) => {
                    return Err(StorageError::new(
                        ErrorKind::Other,
                        "restore",
                        at.display().to_string(),
                        "is a file where the key needs a folder",
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(false);
                    }
                    match std::fs::create_dir(&at) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            let m = std::fs::symlink_metadata(&at).map_err(|e| io_err("stat", &at, e))?;
                            if !m.is_dir() {
                                return Err(StorageError::new(
                                    ErrorKind::Other,
                                    "restore",
                                    at.display().to_string(),
                                    "appeared as something other than a folder",
                                ));
                            }
                        }
                        Err(e) => return Err(io_err("create folder", &at, e)),
                    }
                }
                Err(e) => return Err(io_err("stat", &at, e)),
            }
        }
        Ok(true)
    }

    /// This run's partial folder, created and locked on first use.
    fn ensure_run_dir(&self) -> StorageResult<PathBuf> {
        let mut lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.run_dir();
        if *lock {
            return Ok(dir);
        }
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root).map_err(|e| io_err("create folder", &self.root, e))?;
        }
        let partial = self.partial_root();
        match std::fs::symlink_metadata(&partial) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StorageError::new(
                    ErrorKind::Other,
                    "restore",
                    partial.display().to_string(),
                    "is not a folder (a symlink is never followed)",
                ))
            }
            Err(_) => match std::fs::create_dir(&partial) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create folder", &partial, e)),
            },
        }
        std::fs::create_dir(&dir).map_err(|e| io_err("create folder", &dir, e))?;
        let owner_path = dir.join(OWNER_FILE);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&owner_path)
            .map_err(|e| io_err("create", &owner_path, e))?;
        use std::io::Write;
        f.write_all(this_owner().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err("write", &owner_path, e))?;
        *lock = true;
        Ok(dir)
    }

    /// A new temporary file of this run.
    async fn temp_file(&self) -> StorageResult<(PathBuf, tokio::fs::File)> {
        let dir = self.ensure_run_dir()?;
        let tmp = dir.join(format!("{:016x}{TMP_SUFFIX}", rand::random::<u64>()));
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| io_err("create", &tmp, e))?;
        Ok((tmp, f))
    }

    /// Links a complete temporary file to `path`, never over anything.
    fn link_into_place(&self, tmp: &Path, path: &Path) -> StorageResult<()> {
        // A hard link never replaces an existing file (or symlink), unlike rename.
        let r = self
            .parents(path, true)
            .and_then(|_| std::fs::hard_link(tmp, path).map_err(|e| io_err("link", path, e)));
        let _ = std::fs::remove_file(tmp);
        r
    }

    /// Stat of `path` without following a final symlink; parents checked the same way.
    fn lstat(&self, key: &str) -> StorageResult<Option<(PathBuf, std::fs::Metadata)>> {
        let path = self.path_for(key)?;
        if !self.parents(&path, false)? {
            return Ok(None);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => Err(StorageError::new(
                ErrorKind::Other,
                "restore",
                path.display().to_string(),
                "is a symlink inside the target; it is not followed",
            )),
            Ok(m) => Ok(Some((path, m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path, e)),
        }
    }
}

impl Drop for FolderSink {
    fn drop(&mut self) {
        let held = self.lock.get_mut().map(|l| *l).unwrap_or(true);
        if held {
            let dir = self.run_dir();
            let _ = std::fs::remove_file(dir.join(OWNER_FILE));
            // Only empty: a temporary file still there is left for the next run.
            let _ = std::fs::remove_dir(&dir);
            let _ = std::fs::remove_dir(self.partial_root());
        }
    }
}

/// The start time of process `pid` (field 22 of `/proc/{pid}/stat`), if it runs.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

fn this_owner() -> String {
    let pid = std::process::id();
    format!("{pid} {}", process_start(pid).unwrap_or_default())
}

/// Whether the restore that wrote `owner` still runs. Without `/proc` nothing can be
/// told, and every run is taken as live (its files are then never removed).
fn owner_alive(owner: &str) -> bool {
    if process_start(std::process::id()).is_none() {
        return true;
    }
    let mut parts = owner.split_whitespace();
    let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) else {
        return true; // unreadable: leave it alone
    };
    process_start(pid).as_deref() == Some(start)
}

/// `YYYYMMDDTHHMMSSZ-` + 8 hex, as [`crate::records::new_run_id`] makes them.
fn looks_like_run_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..].iter().all(u8::is_ascii_hexdigit)
}

fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> StorageError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        std::io::ErrorKind::PermissionDenied => ErrorKind::Auth,
        _ => ErrorKind::Other,
    };
    StorageError::new(kind, op, path.display().to_string(), e)
}

/// One file on its way into a folder.
struct FolderUpload<'a> {
    sink: &'a FolderSink,
    path: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
}

#[async_trait]
impl Upload for FolderUpload<'_> {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| StorageError::new(ErrorKind::Other, "write", self.tmp.display().to_string(), "closed"))?;
        f.write_all(&chunk).await.map_err(|e| io_err("write", &self.tmp, e))
    }

    async fn commit(mut self: Box<Self>, _meta: &RestoreMeta) -> StorageResult<()> {
        let mut f = self
            .file
            .take()
            .ok_or_else(|| StorageError::new(ErrorKind::Other, "write", self.tmp.display().to_string(), "closed"))?;
        let done = async {
            f.flush().await.map_err(|e| io_err("write", &self.tmp, e))?;
            f.sync_all().await.map_err(|e| io_err("sync", &self.tmp, e))?;
            Ok::<_, StorageError>(())
        }
        .await;
        drop(f);
        if let Err(e) = done {
            let _ = tokio::fs::remove_file(&self.tmp).await;
            return Err(e);
        }
        self.sink.link_into_place(&self.tmp, &self.path)
    }

    async fn abort(mut self: Box<Self>) {
        self.file.take();
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

#[async_trait]
impl Sink for FolderSink {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn cannot_hold(&self, key: &str) -> Option<String> {
        crate::archive::local_segments(key)
            .err()
            .map(|why| format!("a folder cannot hold this key verbatim: {why}"))
    }

    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>> {
        Ok(self.lstat(key)?.map(|(_, m)| Existing {
            size: m.len(),
            md5: None,
        }))
    }

    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        let Some((path, before)) = self.lstat(key)? else {
            return Ok(None);
        };
        if !before.is_file() {
            return Ok(Some(String::new())); // a folder or device: different from any file
        }
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        // The file opened is the one examined, not something swapped in since.
        let opened = file.metadata().await.map_err(|e| io_err("stat", &path, e))?;
        {
            use std::os::unix::fs::MetadataExt;
            if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) {
                return Err(StorageError::new(
                    ErrorKind::Other,
                    "restore",
                    path.display().to_string(),
                    "changed while it was examined",
                ));
            }
        }
        let p = path.clone();
        let stream = tokio_util::io::ReaderStream::new(file);
        use futures::StreamExt;
        let body = stream.map(move |r| r.map_err(|e| io_err("read", &p, e)));
        sha256_of(Box::pin(body)).await.map(Some)
    }

    async fn begin(&self, key: &str, _size: u64, _meta: &RestoreMeta) -> StorageResult<Box<dyn Upload + '_>> {
        let path = self.path_for(key)?;
        let (tmp, file) = self.temp_file().await?;
        Ok(Box::new(FolderUpload {
            sink: self,
            path,
            tmp,
            file: Some(file),
        }))
    }

    async fn put_sidecar(&self, key: &str, sidecar: &serde_json::Value) -> StorageResult<SidecarOutcome> {
        let side_key = format!("{key}{SIDECAR_SUFFIX}");
        let text = serde_json::to_vec_pretty(sidecar)
            .map_err(|e| StorageError::new(ErrorKind::Other, "sidecar", &side_key, e))?;
        let same = |have: Option<String>| {
            use sha2::Digest;
            have.as_deref() == Some(hex::encode(sha2::Sha256::digest(&text)).as_str())
        };
        if self.lstat(&side_key)?.is_some() {
            return Ok(if same(self.existing_sha256(&side_key).await?) {
                SidecarOutcome::Same
            } else {
                SidecarOutcome::Different
            });
        }
        let mut up = self
            .begin(&side_key, text.len() as u64, &RestoreMeta::default())
            .await?;
        if let Err(e) = up.write(Bytes::from(text.clone())).await {
            up.abort().await;
            return Err(e);
        }
        match up.commit(&RestoreMeta::default()).await {
            Ok(()) => Ok(SidecarOutcome::Written),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(if same(self.existing_sha256(&side_key).await?) {
                SidecarOutcome::Same
            } else {
                SidecarOutcome::Different
            }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_once_and_refuses_to_replace_escape_or_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FolderSink::new(dir.path());
        let meta = RestoreMeta::default();
        crate::storage::put_new(&sink, "a/b/c.json.gz", Bytes::from_static(b"one"), &meta)
            .await
            .unwrap();
        let err = crate::storage::put_new(&sink, "a/b/c.json.gz", Bytes::from_static(b"two"), &meta)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(dir.path().join("a/b/c.json.gz")).unwrap(), b"one");
        let side = serde_json::json!({"signature": "00"});
        assert_eq!(
            sink.put_sidecar("a/b/c.json.gz", &side).await.unwrap(),
            SidecarOutcome::Written
        );
        assert_eq!(
            sink.put_sidecar("a/b/c.json.gz", &side).await.unwrap(),
            SidecarOutcome::Same
        );
        let other = serde_json::json!({"signature": "01"});
        assert_eq!(
            sink.put_sidecar("a/b/c.json.gz", &other).await.unwrap(),
            SidecarOutcome::Different
        );
        assert_eq!(sink.existing("a/b/c.json.gz").await.unwrap().unwrap().size, 3);
        assert_eq!(
            sink.existing_sha256("a/b/c.json.gz").await.unwrap().unwrap(),
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        for bad in ["../x", "/etc/passwd", "a/../../x", "", ".trailvault-partial/x", "a//b"] {
            assert!(
                crate::storage::put_new(&sink, bad, Bytes::new(), &meta).await.is_err(),
                "{bad}"
            );
        }
        // A symlink inside the target is never followed, as a folder or as a file.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert!(
            crate::storage::put_new(&sink, "link/x", Bytes::from_static(b"x"), &meta)
                .await
                .is_err()
        );
        assert!(sink.existing("link/x").await.is_err());
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("f")).unwrap();
        assert!(crate::storage::put_new(&sink, "f", Bytes::from_static(b"x"), &meta)
            .await
            .is_err());
        assert!(sink.existing("f").await.is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Only this run's temporary files were there, and none is left.
        let run_dir = dir.path().join(PARTIAL_DIR).join(&sink.run);
        let left: Vec<_> = std::fs::read_dir(&run_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(OWNER_FILE)]);
        drop(sink);
        assert!(!dir.path().join(PARTIAL_DIR).exists());
    }

    #[tokio::test]
    async fn clearing_leftovers_spares_live_runs_and_files_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(PARTIAL_DIR);
        let live = FolderSink::new(dir.path());
        let mut up = live.begin("k", 1, &RestoreMeta::default()).await.unwrap();
        up.write(Bytes::from_static(b"x")).await.unwrap();
        // A dead run's folder: its temporary file, its owner (a process long gone), and a
        // user's file.
        let dead = partial.join("20260101T000000Z-0123abcd");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join(format!("00{TMP_SUFFIX}")), b"half").unwrap();
        std::fs::write(dead.join(OWNER_FILE), format!("{} 1", std::process::id())).unwrap();
        std::fs::write(dead.join("mine.txt"), b"user").unwrap();
        std::fs::write(partial.join("notes.txt"), b"user").unwrap();
        let other = FolderSink::new(dir.path());
        other.clear_partial().await.unwrap();
        assert_eq!(std::fs::read(dead.join("mine.txt")).unwrap(), b"user");
        assert!(!dead.join(format!("00{TMP_SUFFIX}")).exists());
        assert_eq!(std::fs::read(partial.join("notes.txt")).unwrap(), b"user");
        // The live run's file is untouched and still commits.
        up.commit(&RestoreMeta::default()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("k")).unwrap(), b"x");
    }
}
