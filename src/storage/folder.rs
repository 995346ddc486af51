//! A local folder as a restore target: `DIR/{key}`, written to a temporary name and
//! linked into place only when complete, never over an existing file.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::*;

pub struct FolderSink {
    root: PathBuf,
}

/// Suffix of the metadata written next to a restored file (digest signatures).
pub const SIDECAR_SUFFIX: &str = ".metadata.json";
/// Where files are written before they are linked into place; a killed restore can
/// leave files here, and the next one clears it.
pub const PARTIAL_DIR: &str = ".trailvault-partial";

impl FolderSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Removes what a killed restore left half-written. Two restores must not share a folder.
    pub async fn clear_partial(&self) -> StorageResult<()> {
        let dir = self.root.join(PARTIAL_DIR);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("clear", &dir, e)),
        }
    }

    /// `DIR/{key}`, refusing keys that would leave DIR (a hostile blob name).
    fn path_for(&self, key: &str) -> StorageResult<PathBuf> {
        let rel = Path::new(key);
        let safe = !key.is_empty()
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && !key.contains('\\')
            && !key.starts_with(PARTIAL_DIR);
        if !safe {
            return Err(StorageError::new(
                ErrorKind::Other,
                "restore",
                key,
                "key is not a safe relative path",
            ));
        }
        Ok(self.root.join(rel))
    }
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

/// Writes `data` to a temporary file under `partial`, flushed to disk, and links it in.
async fn write_new(partial: &Path, path: &Path, data: &[u8], replace: bool) -> StorageResult<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| io_err("create folder", parent, e))?;
    tokio::fs::create_dir_all(partial)
        .await
        .map_err(|e| io_err("create folder", partial, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = partial.join(format!("{name}.{:016x}", rand::random::<u64>()));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_err("create", &tmp, e))?;
        f.write_all(data).await.map_err(|e| io_err("write", &tmp, e))?;
        f.sync_all().await.map_err(|e| io_err("sync", &tmp, e))?;
        drop(f);
        if replace {
            tokio::fs::rename(&tmp, path)
                .await
                .map_err(|e| io_err("rename", path, e))
        } else {
            // A hard link never replaces an existing file, unlike rename.
            tokio::fs::hard_link(&tmp, path)
                .await
                .map_err(|e| io_err("link", path, e))
        }
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result
}

#[async_trait]
impl Sink for FolderSink {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn existing(&self, key: &str) -> StorageResult<Option<Existing>> {
        let path = self.path_for(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(Existing {
                size: m.len(),
                md5: None,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path, e)),
        }
    }

    async fn existing_sha256(&self, key: &str) -> StorageResult<Option<String>> {
        let path = self.path_for(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let p = path.clone();
        let stream = tokio_util::io::ReaderStream::new(file);
        use futures::StreamExt;
        let body = stream.map(move |r| r.map_err(|e| io_err("read", &p, e)));
        sha256_of(Box::pin(body)).await.map(Some)
    }

    async fn put_new(&self, key: &str, data: Bytes, meta: &RestoreMeta) -> StorageResult<()> {
        let path = self.path_for(key)?;
        let partial = self.root.join(PARTIAL_DIR);
        write_new(&partial, &path, &data, false).await?;
        if let Some(sidecar) = &meta.sidecar {
            let side = PathBuf::from(format!("{}{SIDECAR_SUFFIX}", path.display()));
            let text = serde_json::to_vec_pretty(sidecar).unwrap_or_default();
            write_new(&partial, &side, &text, true).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_once_and_refuses_to_replace_or_escape() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FolderSink::new(dir.path());
        let meta = RestoreMeta {
            sidecar: Some(serde_json::json!({"signature": "00"})),
            ..Default::default()
        };
        sink.put_new("a/b/c.json.gz", Bytes::from_static(b"one"), &meta)
            .await
            .unwrap();
        let err = sink
            .put_new("a/b/c.json.gz", Bytes::from_static(b"two"), &meta)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(dir.path().join("a/b/c.json.gz")).unwrap(), b"one");
        assert!(dir.path().join("a/b/c.json.gz.metadata.json").exists());
        assert_eq!(sink.existing("a/b/c.json.gz").await.unwrap().unwrap().size, 3);
        assert_eq!(
            sink.existing_sha256("a/b/c.json.gz").await.unwrap().unwrap(),
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        for bad in ["../x", "/etc/passwd", "a/../../x", "", ".trailvault-partial/x"] {
            assert!(sink.put_new(bad, Bytes::new(), &meta).await.is_err(), "{bad}");
        }
        let leftovers = std::fs::read_dir(dir.path().join(PARTIAL_DIR)).unwrap().count();
        assert_eq!(leftovers, 0);
        std::fs::write(dir.path().join(PARTIAL_DIR).join("stale"), b"x").unwrap();
        sink.clear_partial().await.unwrap();
        assert!(!dir.path().join(PARTIAL_DIR).exists());
    }
}
