//! Copies one object: a single streaming GET, SHA-256 and MD5 computed on the way,
//! then a create-only upload whose MD5 the service checks (one Put Blob up to 4 MiB,
//! staged blocks each with a transactional MD5 above). Nothing is committed unless
//! the byte count and, where S3's ETag is an MD5, the MD5 match.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::archive::{blob_metadata, etag_is_md5, CopyOutcome, META_SHA256};
use crate::config::BLOCK_SIZE;
use crate::storage::{BlobInfo, BlobStore, Condition, ErrorKind, PutOptions, Source, SourceObject, StorageError};

pub struct Copier<'a> {
    pub src: &'a dyn Source,
    pub archive: &'a dyn BlobStore,
    pub source_name: &'a str,
    /// Byte budget (`sync.in_flight_bytes`): each file holds at most one block of it.
    pub budget: &'a Semaphore,
}

impl Copier<'_> {
    pub async fn copy(&self, object: &SourceObject, existing: Option<&BlobInfo>) -> Result<CopyOutcome, StorageError> {
        // A key the archive cannot hold verbatim fails, named; it is never renamed.
        let name = crate::archive::ArchiveName::new(self.source_name, &object.key)
            .map_err(|why| StorageError::new(ErrorKind::Other, "copy", &object.key, why))?;
        let permits = object.size.clamp(1, BLOCK_SIZE) as u32;
        let _permit = self
            .budget
            .acquire_many(permits)
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, "copy", &object.key, e))?;
        let integrity = |msg: String| {
            StorageError::new(
                ErrorKind::Integrity,
                "copy",
                format!("s3://{}/{}", self.src.bucket(), object.key),
                msg,
            )
        };

        let got = self.src.get(&object.key).await?;
        let head = got.head;
        let mut body = got.body;
        let large = head.size > BLOCK_SIZE;
        let upload = existing.is_none();
        let nonce = format!("{:08x}", rand::random::<u32>());
        let mut sha = Sha256::new();
        let mut md5 = Md5::new();
        let mut total: u64 = 0;
        let mut buf = BytesMut::with_capacity(head.size.min(BLOCK_SIZE) as usize);
        let mut block_ids: Vec<Vec<u8>> = Vec::new();

        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            sha.update(&chunk);
            md5.update(&chunk);
            total += chunk.len() as u64;
            if total > head.size {
                return Err(integrity(format!(
                    "S3 sent more than the {} bytes it announced",
                    head.size
                )));
            }
            if !upload {
                continue;
            }
            buf.extend_from_slice(&chunk);
            while large && buf.len() as u64 >= BLOCK_SIZE {
                let block = buf.split_to(BLOCK_SIZE as usize).freeze();
                self.stage(&name, &nonce, &mut block_ids, block).await?;
            }
        }
        if total != head.size {
            return Err(integrity(format!("truncated: read {total} of {} bytes", head.size)));
        }
        let md5: [u8; 16] = md5.finalize().into();
        if etag_is_md5(&head.etag, head.kms_or_customer_key) && hex::encode(md5) != head.etag.to_ascii_lowercase() {
            return Err(integrity(format!(
                "MD5 of the bytes read ({}) differs from the S3 ETag ({})",
                hex::encode(md5),
                head.etag
            )));
        }
        let sha_hex = hex::encode(sha.finalize());

        if let Some(blob) = existing {
            return Ok(compare(blob, sha_hex));
        }
        let opts = PutOptions {
            content_type: head.content_type.clone(),
            content_md5: Some(md5),
            metadata: blob_metadata(self.src.bucket(), &object.key, &head, &sha_hex),
            condition: Condition::IfNoneMatch,
            lease_id: None,
        };
        let written = if large {
            if !buf.is_empty() {
                self.stage(&name, &nonce, &mut block_ids, buf.freeze()).await?;
            }
            self.archive.commit_blocks(&name, block_ids, opts).await
        } else {
            self.archive.put(&name, buf.freeze(), opts).await
        };
        match written {
            Ok(_) => Ok(CopyOutcome::Copied { bytes: total }),
            // Someone (a crashed earlier run, mostly) archived it between our listing and now.
            Err(e) if e.kind == ErrorKind::AlreadyExists => match self.archive.head(&name).await? {
                Some(blob) => Ok(compare(&blob, sha_hex)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn stage(&self, name: &str, nonce: &str, ids: &mut Vec<Vec<u8>>, block: Bytes) -> Result<(), StorageError> {
        // Same length for every id of a blob; the nonce keeps a retried copy's blocks apart.
        let id = format!("{nonce}-{:06}", ids.len()).into_bytes();
        let md5: [u8; 16] = Md5::digest(&block).into();
        self.archive.stage_block(name, &id, block, md5).await?;
        ids.push(id);
        Ok(())
    }
}

fn compare(blob: &BlobInfo, source_sha256: String) -> CopyOutcome {
    match blob.metadata.get(META_SHA256) {
        Some(archived) if archived.eq_ignore_ascii_case(&source_sha256) => CopyOutcome::AlreadyArchived,
        archived => CopyOutcome::Conflict {
            archived_sha256: archived.cloned().unwrap_or_else(|| "(no sha256 metadata)".into()),
            source_sha256,
        },
    }
}
