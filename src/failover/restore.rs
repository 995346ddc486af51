//! `trailvault restore`: bring archived files back, byte-identical under their
//! original keys, to a folder or an S3 bucket. Plan first (per account, region and
//! day), then copy with bounded concurrency; every file is verified against its
//! archived SHA-256 before it is written, and nothing is ever overwritten.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::archive::{
    META_SHA256, META_SOURCE_BUCKET, META_SOURCE_CONTENT_ENCODING, META_SOURCE_KEY, SIGNATURE_METADATA,
};
use crate::cloudtrail::FileKind;
use crate::progress::Progress;
use crate::records::{new_run_id, Record, RecordType, RunStatus};
pub use crate::state::select::Selection;
use crate::state::select::{select, Selected};
use crate::state::write_run_records;
use crate::storage::retry::RetryPolicy;
use crate::storage::{BlobStore, ErrorKind, RestoreMeta, Sink, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot list the archive: {0}")]
    Archive(#[source] StorageError),
}

impl crate::fault::Classify for RestoreError {
    fn fault(&self) -> crate::fault::Fault {
        crate::fault::Fault::Failed
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlanRow {
    pub source: String,
    pub account: String,
    pub region: String,
    pub day: NaiveDate,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileProblem {
    pub key: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub run_id: String,
    pub target: String,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Files written by this run.
    pub files: u64,
    pub bytes: u64,
    /// Already at the target with identical content.
    pub skipped: u64,
    pub failed: u64,
    /// Archived blobs whose bytes no longer match their `sha256`: never written.
    pub corrupted: Vec<String>,
    /// Present at the target with different content: reported, not overwritten.
    pub conflicts: Vec<String>,
    pub failures: Vec<FileProblem>,
    /// The measured recovery time.
    pub seconds: f64,
    pub planned_files: u64,
    pub planned_bytes: u64,
    pub plan: Vec<PlanRow>,
    /// Attempts beyond the first, over every request and file of the run.
    pub retries: u64,
}

impl RestoreReport {
    pub fn status(&self) -> RunStatus {
        if self.corrupted.is_empty() && self.conflicts.is_empty() && self.failed == 0 {
            RunStatus::Succeeded
        } else if self.files + self.skipped > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        }
    }
}

pub struct RestoreJob {
    pub archive: Arc<dyn BlobStore>,
    /// For stream discovery (watermarks) and the run record; restore works without it.
    pub state: Option<Arc<dyn BlobStore>>,
    pub sink: Arc<dyn Sink>,
    pub selection: Selection,
    pub concurrency: usize,
    pub in_flight_bytes: u64,
    pub dry_run: bool,
    pub progress: Arc<dyn Progress>,
    /// Attempts per file; a hash that does not match is read again before the blob is
    /// called corrupted (a flip on the way is not tampering in the archive).
    pub retry: RetryPolicy,
}

/// The `op` of a read whose bytes did not match the archived hash.
const MISMATCH: &str = "verify archived bytes";

enum Outcome {
    Written(u64),
    Skipped,
    Conflict,
    Corrupted(String),
}

impl RestoreJob {
    pub async fn run(&self) -> Result<RestoreReport, RestoreError> {
        let started_at = Utc::now();
        let clock = std::time::Instant::now();
        let run_id = new_run_id(started_at);
        let planned = select(self.archive.as_ref(), self.state.as_deref(), &self.selection)
            .await
            .map_err(RestoreError::Archive)?;
        let mut rows: BTreeMap<(String, String, String, NaiveDate), (u64, u64)> = BTreeMap::new();
        for p in &planned {
            let e = rows
                .entry((
                    p.source.clone(),
                    p.ct.stream.account.clone(),
                    p.ct.stream.region.clone(),
                    p.ct.day,
                ))
                .or_default();
            e.0 += 1;
            e.1 += p.blob.size;
        }
        let mut report = RestoreReport {
            run_id: run_id.clone(),
            target: self.sink.describe(),
            dry_run: self.dry_run,
            started_at,
            finished_at: started_at,
            files: 0,
            bytes: 0,
            skipped: 0,
            failed: 0,
            corrupted: Vec::new(),
            conflicts: Vec::new(),
            failures: Vec::new(),
            seconds: 0.0,
            retries: 0,
            planned_files: planned.len() as u64,
            planned_bytes: planned.iter().map(|p| p.blob.size).sum(),
            plan: rows
                .into_iter()
                .map(|((source, account, region, day), (files, bytes))| PlanRow {
                    source,
                    account,
                    region,
                    day,
                    files,
                    bytes,
                })
                .collect(),
        };
        tracing::info!(
            run_id,
            files = report.planned_files,
            bytes = report.planned_bytes,
            target = report.target,
            "restore planned"
        );
        if !self.dry_run {
            self.progress.begin(report.planned_files, report.planned_bytes);
            let budget = Semaphore::new(self.in_flight_bytes.min(Semaphore::MAX_PERMITS as u64) as usize);
            let budget = &budget;
            let results: Vec<(Selected, Result<Outcome, StorageError>)> = futures::stream::iter(planned)
                .map(|p| async move {
                    let r = self.restore_one(&p, budget).await;
                    self.progress.advance(1, p.blob.size);
                    (p, r)
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
            self.progress.finish();
            for (p, r) in results {
                match r {
                    Ok(Outcome::Written(bytes)) => {
                        report.files += 1;
                        report.bytes += bytes;
                    }
                    Ok(Outcome::Skipped) => report.skipped += 1,
                    Ok(Outcome::Conflict) => report.conflicts.push(p.key),
                    Ok(Outcome::Corrupted(detail)) => {
                        tracing::error!(key = p.key, detail, "archived blob is corrupted; not restored");
                        report.corrupted.push(p.key);
                    }
                    Err(e) => {
                        tracing::warn!(key = p.key, error = %e, "file not restored");
                        report.failed += 1;
                        report.failures.push(FileProblem {
                            key: p.key,
                            error: e.to_string(),
                        });
                    }
                }
            }
            report.corrupted.sort();
            report.conflicts.sort();
        }
        report.finished_at = Utc::now();
        report.seconds = clock.elapsed().as_secs_f64();
        report.retries = self.retry.retries();
        if !self.dry_run {
            self.write_record(&report).await;
        }
        Ok(report)
    }

    async fn restore_one(&self, p: &Selected, budget: &Semaphore) -> Result<Outcome, StorageError> {
        let want_sha = p.blob.metadata.get(META_SHA256).map(|s| s.to_ascii_lowercase());
        // Resume: what is already there and identical is skipped without downloading.
        if let Some(existing) = self.sink.existing(&p.key).await? {
            let same_md5 = existing.md5.is_some() && existing.md5 == p.blob.content_md5 && existing.size == p.blob.size;
            if same_md5 {
                return Ok(Outcome::Skipped);
            }
            let have = self.sink.existing_sha256(&p.key).await?;
            return Ok(if have.is_some() && have == want_sha {
                Outcome::Skipped
            } else {
                Outcome::Conflict
            });
        }
        let permits = p.blob.size.clamp(1, self.in_flight_bytes.max(1)) as u32;
        let _permit = budget
            .acquire_many(permits)
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, "restore", &p.key, e))?;
        let read = self
            .retry
            .run_whole("restore", || self.read_verified(p, want_sha.as_deref()))
            .await;
        let (buf, sha, md5) = match read {
            Ok(v) => v,
            Err(e) if e.kind == ErrorKind::Integrity && e.op == MISMATCH => return Ok(Outcome::Corrupted(e.message)),
            Err(e) => return Err(e),
        };
        let data: Bytes = buf.freeze();
        let len = data.len() as u64;
        match self.sink.put_new(&p.key, data, &restore_meta(p, &sha, md5)).await {
            Ok(()) => Ok(Outcome::Written(len)),
            // Written by someone else since our check: the same rule as above applies.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let have = self.sink.existing_sha256(&p.key).await?;
                Ok(if have.as_deref() == Some(sha.as_str()) {
                    Outcome::Skipped
                } else {
                    Outcome::Conflict
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads a blob whole and checks it against its archived hash. A mismatch is an
    /// `Integrity` error (so it is read again); after the last attempt it is corruption.
    async fn read_verified(
        &self,
        p: &Selected,
        want_sha: Option<&str>,
    ) -> Result<(BytesMut, String, [u8; 16]), StorageError> {
        let got = self.archive.get(&p.blob.name).await?;
        let mut body = got.body;
        let mut buf = BytesMut::with_capacity(p.blob.size as usize);
        let (mut sha, mut md5) = (Sha256::new(), Md5::new());
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            sha.update(&chunk);
            md5.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let sha = hex::encode(sha.finalize());
        let md5: [u8; 16] = md5.finalize().into();
        let mismatch = |detail: String| Err(StorageError::new(ErrorKind::Integrity, MISMATCH, &p.blob.name, detail));
        match (want_sha, p.blob.content_md5) {
            (Some(want), _) if want != sha => return mismatch(format!("SHA-256 {sha}, archived metadata says {want}")),
            (None, Some(want)) if want != md5 => return mismatch("Content-MD5 does not match".into()),
            (None, None) => {
                return Err(StorageError::new(
                    ErrorKind::Other,
                    "restore",
                    &p.blob.name,
                    "the blob has neither sha256 metadata nor Content-MD5, so it cannot be verified",
                ))
            }
            _ => {}
        }
        Ok((buf, sha, md5))
    }

    async fn write_record(&self, report: &RestoreReport) {
        let Some(state) = &self.state else { return };
        let record = Record {
            time_generated: report.finished_at,
            source: self.selection.sources.join(","),
            account: self.selection.accounts.iter().cloned().collect::<Vec<_>>().join(","),
            region: self.selection.regions.iter().cloned().collect::<Vec<_>>().join(","),
            files_copied: report.files,
            bytes_copied: report.bytes,
            files_skipped: report.skipped,
            files_failed: report.failed + report.corrupted.len() as u64 + report.conflicts.len() as u64,
            duration_seconds: report.seconds,
            message: format!("restore to {}", report.target),
            details: serde_json::json!({
                "corrupted": report.corrupted,
                "conflicts": report.conflicts,
                "since": self.selection.range.since,
                "until": self.selection.range.until,
                "digests": self.selection.digests,
            }),
            ..Record::of(RecordType::Restore, &report.run_id, "restore", report.status())
        };
        if let Err(e) = write_run_records(state.as_ref(), &report.run_id, &[record]).await {
            tracing::warn!(error = %e, "could not write the restore record");
        }
    }
}

/// Content type and encoding as S3 had them; digest signatures back under CloudTrail's names.
fn restore_meta(p: &Selected, sha: &str, md5: [u8; 16]) -> RestoreMeta {
    let m = &p.blob.metadata;
    let user_metadata: BTreeMap<String, String> = SIGNATURE_METADATA
        .iter()
        .filter_map(|(s3, archive)| m.get(*archive).map(|v| (s3.to_string(), v.clone())))
        .collect();
    let sidecar = (p.ct.stream.kind == FileKind::Digest).then(|| {
        serde_json::json!({
            "source_bucket": m.get(META_SOURCE_BUCKET),
            "source_key": m.get(META_SOURCE_KEY).cloned().unwrap_or_else(|| p.key.clone()),
            "sha256": sha,
            "metadata": user_metadata,
        })
    });
    RestoreMeta {
        content_type: p.blob.content_type.clone(),
        content_encoding: m.get(META_SOURCE_CONTENT_ENCODING).cloned(),
        content_md5: Some(md5),
        user_metadata,
        sidecar,
    }
}
