//! One read of an archived blob checked against the SHA-256 the archive recorded for it,
//! shared by `restore` (which streams the bytes into an upload) and `verify` (which keeps
//! them to check a digest). The outcome is typed: a caller branches on `Mismatch`, not on
//! an error's text.
//!
//! A mismatch is read again before it is reported: a flip on the way is not tampering
//! in the archive. Bytes cut short or failing a checksum on the way (`Integrity`) are read
//! again too, from the same attempt budget; every other failure was already retried
//! request by request by the store's decorators and ends the read.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::retry::RetryPolicy;
use super::{BlobInfo, BlobStore, ErrorKind, StorageResult};
use crate::archive::META_SHA256;

/// Where one attempt's bytes go as they arrive.
#[async_trait]
pub trait Receiver: Send {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()>;
    /// The bytes matched their recorded hash (`sha256`, lowercase hex): make them final
    /// (restore commits its upload). An `Integrity` error here reads the blob again.
    async fn accept(&mut self, sha256: &str) -> StorageResult<()>;
    /// This attempt's bytes are not kept: the read failed, or it is read again.
    async fn discard(self);
}

/// The SHA-256 a read is checked against.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// Known before the read (restore has it from the listing).
    Known(&'a str),
    /// The `sha256` metadata the read itself returns (a blob read by name).
    Recorded,
}

/// What a verified read found. Every variant hands back the receiver of the last attempt.
#[derive(Debug)]
pub enum ReadVerified<R> {
    /// The bytes match the recorded SHA-256, and the receiver accepted them.
    Verified { received: R, info: BlobInfo, len: u64 },
    /// The bytes differed from the recorded SHA-256 on every attempt: the receiver holds
    /// the last attempt's bytes, not accepted (discard them or judge them).
    Mismatch {
        received: R,
        info: BlobInfo,
        /// As recorded (case as stored).
        expected: String,
        /// Lowercase hex.
        actual: String,
        len: u64,
        attempts: u32,
    },
    /// The blob carries no `sha256` metadata: read once, nothing to check it against,
    /// not accepted.
    Unrecorded { received: R, info: BlobInfo, len: u64 },
}

impl<R> ReadVerified<R> {
    /// The receiver and the blob's properties, whatever the outcome.
    pub fn into_parts(self) -> (R, BlobInfo) {
        match self {
            ReadVerified::Verified { received, info, .. }
            | ReadVerified::Mismatch { received, info, .. }
            | ReadVerified::Unrecorded { received, info, .. } => (received, info),
        }
    }
}

/// A receiver that keeps the bytes in memory (verify's blobs are read whole).
#[derive(Debug, Default)]
pub struct Buffer(Vec<Bytes>);

impl Buffer {
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.0.concat())
    }
}

#[async_trait]
impl Receiver for Buffer {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()> {
        self.0.push(chunk);
        Ok(())
    }

    async fn accept(&mut self, _sha256: &str) -> StorageResult<()> {
        Ok(())
    }

    async fn discard(self) {}
}

/// One attempt: the bytes read into the receiver and their hash.
struct Attempt<R> {
    received: R,
    info: BlobInfo,
    sha256: String,
    len: u64,
}

/// Reads `name` from `archive` into a fresh receiver per attempt (`open`, called once the
/// blob answered) and checks its SHA-256 against `expect`. `operation` names the work in
/// logs and in the retry metric. `NotFound` and other lasting failures are errors.
pub async fn read_verified<R, F, Fut>(
    archive: &dyn BlobStore,
    name: &str,
    expect: Expect<'_>,
    retry: &RetryPolicy,
    operation: &'static str,
    mut open: F,
) -> StorageResult<ReadVerified<R>>
where
    R: Receiver,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StorageResult<R>>,
{
    let mut n = 1;
    loop {
        let failed = match read_once(archive, name, &mut open).await {
            Err(e) => e,
            Ok(mut got) => {
                let expected = match expect {
                    Expect::Known(want) => want.to_string(),
                    Expect::Recorded => match got.info.metadata.get(META_SHA256) {
                        Some(want) => want.clone(),
                        None => {
                            return Ok(ReadVerified::Unrecorded {
                                received: got.received,
                                info: got.info,
                                len: got.len,
                            })
                        }
                    },
                };
                if expected.eq_ignore_ascii_case(&got.sha256) {
                    match got.received.accept(&got.sha256).await {
                        Ok(()) => {
                            return Ok(ReadVerified::Verified {
                                received: got.received,
                                info: got.info,
                                len: got.len,
                            })
                        }
                        Err(e) => {
                            got.received.discard().await;
                            e
                        }
                    }
                } else if retry.may_retry(n) && retry.backoff(operation, n, None).await {
                    tracing::debug!(operation, name, attempt = n, "SHA-256 mismatch; reading again");
                    got.received.discard().await;
                    n += 1;
                    continue;
                } else {
                    return Ok(ReadVerified::Mismatch {
                        received: got.received,
                        info: got.info,
                        expected,
                        actual: got.sha256,
                        len: got.len,
                        attempts: n,
                    });
                }
            }
        };
        // Bytes lost on the way are worth another read; anything else was already
        // retried request by request.
        if failed.kind == ErrorKind::Integrity && retry.may_retry(n) {
            tracing::debug!(operation, name, attempt = n, error = %failed, "reading again");
            if !retry.backoff(operation, n, failed.retry_after).await {
                return Err(failed);
            }
            n += 1;
            continue;
        }
        return Err(RetryPolicy::gave_up(failed, n));
    }
}

async fn read_once<R, F, Fut>(archive: &dyn BlobStore, name: &str, open: &mut F) -> StorageResult<Attempt<R>>
where
    R: Receiver,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StorageResult<R>>,
{
    let got = archive.get(name).await?;
    let mut received = open().await?;
    let mut body = got.body;
    let (mut sha, mut len) = (Sha256::new(), 0u64);
    while let Some(chunk) = body.next().await {
        let written = match chunk {
            Ok(chunk) => {
                sha.update(&chunk);
                len += chunk.len() as u64;
                received.write(chunk).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            received.discard().await;
            return Err(e);
        }
    }
    Ok(Attempt {
        received,
        info: got.info,
        sha256: hex::encode(sha.finalize()),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetrySettings;
    use crate::storage::memory::MemoryBlobStore;
    use crate::storage::PutOptions;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy::new(RetrySettings {
            attempts,
            max_delay: Duration::from_millis(5),
        })
    }

    async fn store_with(data: &'static [u8], sha256: Option<&str>) -> MemoryBlobStore {
        let store = MemoryBlobStore::new();
        let metadata: BTreeMap<String, String> = sha256
            .map(|s| (META_SHA256.to_string(), s.to_string()))
            .into_iter()
            .collect();
        let opts = PutOptions {
            metadata,
            ..PutOptions::default()
        };
        store.put("b", Bytes::from_static(data), opts).await.unwrap();
        store
    }

    fn sha_of(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    async fn read(store: &MemoryBlobStore, expect: Expect<'_>, retry: &RetryPolicy) -> ReadVerified<Buffer> {
        read_verified(store, "b", expect, retry, "test", || async { Ok(Buffer::default()) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn bytes_that_match_their_recorded_hash_are_verified_once() {
        let want = sha_of(b"hello").to_ascii_uppercase();
        let store = store_with(b"hello", Some(&want)).await;
        let retry = policy(3);
        match read(&store, Expect::Recorded, &retry).await {
            ReadVerified::Verified { received, len, .. } => {
                assert_eq!(received.into_bytes(), Bytes::from_static(b"hello"));
                assert_eq!(len, 5);
            }
            other => panic!("not verified: {other:?}"),
        }
        assert_eq!(retry.retries(), 0);
    }

    /// A blob whose bytes no longer match its recorded hash: read again until the
    /// attempts are spent, then a typed mismatch with both hashes and the bytes read.
    #[tokio::test]
    async fn bytes_that_differ_from_their_recorded_hash_are_a_mismatch_after_every_attempt() {
        let recorded = sha_of(b"original");
        let store = store_with(b"tampered", Some(&recorded)).await;
        let retry = policy(3);
        match read(&store, Expect::Recorded, &retry).await {
            ReadVerified::Mismatch {
                received,
                expected,
                actual,
                attempts,
                ..
            } => {
                assert_eq!(expected, recorded);
                assert_eq!(actual, sha_of(b"tampered"));
                assert_eq!(attempts, 3);
                assert_eq!(received.into_bytes(), Bytes::from_static(b"tampered"));
            }
            other => panic!("not a mismatch: {other:?}"),
        }
        assert_eq!(retry.retries(), 2);
        // A hash known before the read is checked the same way.
        let known = sha_of(b"original");
        let once = policy(1);
        assert!(matches!(
            read(&store, Expect::Known(&known), &once).await,
            ReadVerified::Mismatch { attempts: 1, .. }
        ));
    }

    #[tokio::test]
    async fn a_blob_without_recorded_hash_is_read_once_and_unrecorded() {
        let store = store_with(b"x", None).await;
        let retry = policy(3);
        assert!(matches!(
            read(&store, Expect::Recorded, &retry).await,
            ReadVerified::Unrecorded { len: 1, .. }
        ));
        assert_eq!(retry.retries(), 0);
    }

    #[tokio::test]
    async fn a_missing_blob_is_not_found() {
        let store = MemoryBlobStore::new();
        let err = read_verified(&store, "gone", Expect::Recorded, &policy(3), "test", || async {
            Ok(Buffer::default())
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
}
