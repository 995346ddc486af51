//! `trailvault restore`: bring archived files back, byte-identical under their
//! original keys, to a folder or an S3 bucket. Plan first (per account, region and
//! day), then copy with bounded concurrency; every file is verified against its
//! archived SHA-256 before it is written, and nothing is ever overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::archive::ArchiveName;
use crate::archive::{META_SHA256, META_SOURCE_BUCKET, META_SOURCE_CONTENT_ENCODING, SIGNATURE_METADATA};
use crate::cloudtrail::{AccountId, CtKey, FileKind, Region};
use crate::key_failure::KeyFailure;
use crate::progress::Progress;
use crate::records::{new_run_id, Record, RecordType, RunStatus};
pub use crate::state::select::Selection;
use crate::state::select::{ct_key, select, Selected};
use crate::state::write_run_records;
use crate::storage::retry::RetryPolicy;
use crate::storage::verified::{read_verified, Expect, ReadVerified, Receiver};
use crate::storage::{
    ArchiveStore, BlobInfo, BlobStoreExt, ErrorKind, RestoreMeta, SidecarOutcome, Sink, StateStore, StorageError,
    StorageResult, Upload,
};

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
    pub account: AccountId,
    pub region: Region,
    pub day: NaiveDate,
    pub files: u64,
    pub bytes: u64,
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
    pub failures: Vec<KeyFailure>,
    /// The measured recovery time.
    pub seconds: f64,
    pub planned_files: u64,
    pub planned_bytes: u64,
    /// Planned files that are not CloudTrail-shaped (restored all the same) and their
    /// keys (at most 100).
    pub unrecognized: u64,
    pub unrecognized_keys: Vec<String>,
    pub plan: Vec<PlanRow>,
    /// Attempts beyond the first, over every request and file of the run.
    pub retries: u64,
    /// Archived streams sync wrote no watermark for: found from the archive's folders
    /// and restored all the same.
    pub streams_without_watermark: Vec<String>,
    /// Stopped by a signal: `not_started` planned files were left for another run.
    pub stopped: bool,
    pub not_started: u64,
}

impl RestoreReport {
    pub fn status(&self) -> RunStatus {
        if self.corrupted.is_empty() && self.conflicts.is_empty() && self.failed == 0 && !self.stopped {
            RunStatus::Succeeded
        } else if self.files + self.skipped > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        }
    }
}

pub struct RestoreJob {
    pub archive: ArchiveStore,
    /// For stream discovery (watermarks) and the run record; restore works without it.
    pub state: Option<StateStore>,
    pub sink: Arc<dyn Sink>,
    pub selection: Selection,
    pub concurrency: usize,
    pub in_flight_bytes: u64,
    pub dry_run: bool,
    pub progress: Arc<dyn Progress>,
    /// Attempts per file; a hash that does not match is read again before the blob is
    /// called corrupted (a flip on the way is not tampering in the archive).
    pub retry: RetryPolicy,
    /// Cancelled on SIGTERM/SIGINT: no new file starts; those in flight finish.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Why a blob without its archived hash is corrupted.
const NO_SHA256: &str = "the blob has no sha256 metadata, so its bytes cannot be verified";

/// How one file's restore ended.
enum FileEnd {
    Written(u64),
    Skipped,
    Conflict,
    Corrupted(String),
}

/// What happened to a digest's sidecar (folders only).
enum Side {
    Fine,
    Conflict,
    Failed(String),
}

type FileResult = Result<(FileEnd, Side), StorageError>;

/// One archived file to bring back: CloudTrail-shaped (`ct`) or not (still restorable).
struct Item {
    source: String,
    key: String,
    blob: BlobInfo,
    ct: Option<CtKey>,
}

impl From<Selected> for Item {
    fn from(s: Selected) -> Self {
        Item {
            source: s.source,
            key: s.key,
            blob: s.blob,
            ct: Some(s.ct),
        }
    }
}

impl RestoreJob {
    /// What to restore. With no time range every blob under each source is listed once:
    /// files that are not CloudTrail-shaped come back too (they were archived), unless an
    /// account or region filter asks for what they cannot be placed in. With a range, the
    /// state-narrowed listing of the selected days; files there that are not
    /// CloudTrail-shaped have no time to place in the range: they are reported (the second
    /// list), not restored.
    async fn plan(&self) -> Result<(Vec<Item>, Vec<String>, Vec<String>), StorageError> {
        let unbounded = self.selection.range.since.is_none() && self.selection.range.until.is_none();
        if !unbounded {
            let picked = select(self.archive.as_ref(), self.state.as_deref(), &self.selection).await?;
            return Ok((
                picked.files.into_iter().map(Item::from).collect(),
                picked.unrecognized,
                picked.without_watermark,
            ));
        }
        let filtered = !self.selection.accounts.is_empty() || !self.selection.regions.is_empty();
        let mut out = Vec::new();
        let mut not_planned = Vec::new();
        for source in &self.selection.sources {
            let source_prefix = format!("{source}/");
            let mut blobs = self.archive.list(&source_prefix);
            while let Some(blob) = blobs.try_next().await? {
                let Some(key) = ArchiveName::of_blob(source, &blob.name).map(|n| n.key().to_string()) else {
                    continue;
                };
                match ct_key(&key) {
                    Ok(ct) if self.selection.wants(&ct) => out.push(Item {
                        source: source.clone(),
                        key,
                        blob,
                        ct: Some(ct),
                    }),
                    Ok(_) => {}
                    Err(_) if !filtered => out.push(Item {
                        source: source.clone(),
                        key,
                        blob,
                        ct: None,
                    }),
                    // Neither account nor region to match a filter with: reported, not restored.
                    Err(_) => not_planned.push(key),
                }
            }
        }
        out.sort_by(|a, b| (&a.source, &a.key).cmp(&(&b.source, &b.key)));
        Ok((out, not_planned, Vec::new()))
    }

    pub async fn run(&self) -> Result<RestoreReport, RestoreError> {
        let started_at = Utc::now();
        let clock = std::time::Instant::now();
        let run_id = new_run_id(started_at);
        let (planned, not_planned, streams_without_watermark) = self.plan().await.map_err(RestoreError::Archive)?;
        let shadowed = shadowed_names(&planned);
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
            streams_without_watermark,
            stopped: false,
            not_started: 0,
            planned_files: 0,
            planned_bytes: 0,
            unrecognized: 0,
            unrecognized_keys: Vec::new(),
            plan: Vec::new(),
        };
        describe_plan(&mut report, &planned, not_planned);
        tracing::info!(
            run_id,
            files = report.planned_files,
            bytes = report.planned_bytes,
            target = report.target,
            "restore planned"
        );
        if !self.dry_run {
            let results = self.restore_all(planned, &shadowed, &report).await;
            report.not_started = report.planned_files.saturating_sub(results.len() as u64);
            report.stopped = self.cancel.is_cancelled() && report.not_started > 0;
            for (p, r) in results {
                tally(&mut report, p, r);
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

    /// The copy: every planned file with bounded concurrency and a budget of bytes in
    /// flight; a stop (SIGTERM) starts no new file, and those in flight finish.
    async fn restore_all(
        &self,
        planned: Vec<Item>,
        shadowed: &BTreeSet<String>,
        report: &RestoreReport,
    ) -> Vec<(Item, FileResult)> {
        self.progress.begin(report.planned_files, report.planned_bytes);
        let budget = Semaphore::new(self.in_flight_bytes.min(Semaphore::MAX_PERMITS as u64) as usize);
        let budget = &budget;
        let results = futures::stream::iter(planned)
            .take_until(self.cancel.clone().cancelled_owned())
            .map(|p| async move {
                let r = if shadowed.contains(&p.blob.name) {
                    tracing::error!(
                        blob = p.blob.name,
                        "a non-canonical blob name lands on the path of a canonical one; not restored"
                    );
                    Ok((FileEnd::Conflict, Side::Fine))
                } else {
                    self.restore_one(&p, budget).await
                };
                self.progress.advance(1, p.blob.size);
                (p, r)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        self.progress.finish();
        results
    }

    async fn restore_one(&self, p: &Item, budget: &Semaphore) -> Result<(FileEnd, Side), StorageError> {
        // Without its archived hash a blob cannot be verified: corrupted, never written
        // (a Content-MD5 is recomputed by Azure for whatever bytes replaced it).
        let Some(want_sha) = p.blob.metadata.get(META_SHA256).map(|s| s.to_ascii_lowercase()) else {
            return Ok((FileEnd::Corrupted(NO_SHA256.into()), Side::Fine));
        };
        if let Some(why) = self.sink.cannot_hold(&p.key) {
            return Err(StorageError::new(ErrorKind::Other, "restore", &p.key, why));
        }
        // Resume: what is already there and identical is skipped without downloading.
        if let Some(existing) = self.sink.existing(&p.key).await? {
            let same_md5 = existing.md5.is_some() && existing.md5 == p.blob.content_md5 && existing.size == p.blob.size;
            let same = same_md5 || self.sink.existing_sha256(&p.key).await?.as_deref() == Some(want_sha.as_str());
            if !same {
                return Ok((FileEnd::Conflict, Side::Fine));
            }
            return Ok((FileEnd::Skipped, self.sidecar(p, &want_sha).await));
        }
        let permits = p.blob.size.clamp(1, self.in_flight_bytes.clamp(1, 8 << 20)) as u32;
        let _permit = budget
            .acquire_many(permits)
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, "restore", &p.key, e))?;
        let meta = restore_meta(p, &want_sha, None);
        // Each attempt streams into a new upload, committed only when the bytes match the
        // archived hash; a mismatch is read again, and corruption once attempts run out.
        let open = || async {
            Ok(Restoring {
                upload: Some(self.sink.begin(&p.key, p.blob.size, &meta).await?),
                md5: Md5::new(),
                item: p,
                sink: self.sink.as_ref(),
                landed: None,
            })
        };
        let read = read_verified(
            self.archive.as_ref(),
            &p.blob.name,
            Expect::Known(&want_sha),
            &self.retry,
            "restore",
            open,
        )
        .await?;
        let outcome = match read {
            ReadVerified::Verified { received, len, .. } => received.landed.unwrap_or(FileEnd::Written(len)),
            ReadVerified::Mismatch {
                received,
                expected,
                actual,
                attempts,
                ..
            } => {
                received.discard().await;
                let after = if attempts > 1 {
                    format!(" (after {attempts} attempts)")
                } else {
                    String::new()
                };
                let detail = format!("SHA-256 {actual}, archived metadata says {expected}{after}");
                return Ok((FileEnd::Corrupted(detail), Side::Fine));
            }
            // The hash was known before the read, so the read always has one to check.
            ReadVerified::Unrecorded { received, .. } => {
                received.discard().await;
                return Ok((FileEnd::Corrupted(NO_SHA256.into()), Side::Fine));
            }
        };
        let side = match outcome {
            FileEnd::Written(_) | FileEnd::Skipped => self.sidecar(p, &want_sha).await,
            _ => Side::Fine,
        };
        Ok((outcome, side))
    }

    /// A digest's sidecar beside it (folders): written if missing, same is fine,
    /// different is a conflict.
    async fn sidecar(&self, p: &Item, sha: &str) -> Side {
        let Some(sidecar) = restore_meta(p, sha, None).sidecar else {
            return Side::Fine;
        };
        match self.sink.put_sidecar(&p.key, &sidecar).await {
            Ok(SidecarOutcome::Written | SidecarOutcome::Same) => Side::Fine,
            Ok(SidecarOutcome::Different) => Side::Conflict,
            Err(e) => Side::Failed(e.to_string()),
        }
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
                "unrecognized": report.unrecognized,
                "stopped": report.stopped.then_some("signal"),
                "not_started": report.not_started,
                "streams_without_watermark": report.streams_without_watermark,
            }),
            ..Record::of(RecordType::Restore, &report.run_id, "restore", report.status())
        };
        if let Err(e) = write_run_records(state.as_ref(), &report.run_id, &[record]).await {
            tracing::warn!(error = %e, "could not write the restore record");
        }
    }
}

/// Blob names map to keys one to one: a non-canonical key (`//`, `/./`, leading `/`)
/// that lands where a canonical one does is reported, never chosen. The blob names of
/// those that do.
fn shadowed_names(planned: &[Item]) -> BTreeSet<String> {
    let canonical: BTreeSet<&str> = planned
        .iter()
        .filter(|p| crate::archive::is_canonical_key(&p.key))
        .map(|p| p.key.as_str())
        .collect();
    planned
        .iter()
        .filter(|p| {
            !crate::archive::is_canonical_key(&p.key)
                && canonical.contains(crate::archive::collapsed_key(&p.key).as_str())
        })
        .map(|p| p.blob.name.clone())
        .collect()
}

/// The plan in the report: totals, rows per source, account, region and day, and the
/// files that are not CloudTrail-shaped (`not_planned`: those a filter left out).
fn describe_plan(report: &mut RestoreReport, planned: &[Item], not_planned: Vec<String>) {
    let mut rows: BTreeMap<(String, AccountId, Region, NaiveDate), (u64, u64)> = BTreeMap::new();
    for p in planned {
        let Some(ct) = &p.ct else { continue };
        let e = rows
            .entry((
                p.source.clone(),
                ct.stream.account.clone(),
                ct.stream.region.clone(),
                ct.day,
            ))
            .or_default();
        e.0 += 1;
        e.1 += p.blob.size;
    }
    let unrecognized: Vec<String> = planned
        .iter()
        .filter(|p| p.ct.is_none())
        .map(|p| p.key.clone())
        .chain(not_planned)
        .collect();
    report.planned_files = planned.len() as u64;
    report.planned_bytes = planned.iter().map(|p| p.blob.size).sum();
    report.unrecognized = unrecognized.len() as u64;
    report.unrecognized_keys = unrecognized.into_iter().take(100).collect();
    report.plan = rows
        .into_iter()
        .map(|((source, account, region, day), (files, bytes))| PlanRow {
            source,
            account,
            region,
            day,
            files,
            bytes,
        })
        .collect();
}

/// One file's fate (and its sidecar's) counted into the report.
fn tally(report: &mut RestoreReport, p: Item, r: FileResult) {
    let side_key = format!("{}{}", p.key, crate::storage::folder::SIDECAR_SUFFIX);
    let (outcome, side) = match r {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(key = p.key, error = %e, "file not restored");
            report.failed += 1;
            report.failures.push(KeyFailure {
                key: p.key,
                error: e.to_string(),
            });
            return;
        }
    };
    match outcome {
        FileEnd::Written(bytes) => {
            report.files += 1;
            report.bytes += bytes;
        }
        FileEnd::Skipped => report.skipped += 1,
        FileEnd::Conflict => report.conflicts.push(p.key.clone()),
        FileEnd::Corrupted(detail) => {
            tracing::error!(key = p.key, detail, "archived blob is corrupted; not restored");
            report.corrupted.push(p.key.clone());
        }
    }
    match side {
        Side::Fine => {}
        Side::Conflict => {
            tracing::warn!(key = side_key, "a different sidecar is at the target; left alone");
            report.conflicts.push(side_key);
        }
        Side::Failed(error) => {
            tracing::warn!(key = side_key, error, "sidecar not written");
            report.failed += 1;
            report.failures.push(KeyFailure { key: side_key, error });
        }
    }
}

/// Content type and encoding as S3 had them; digest signatures back under CloudTrail's names.
fn restore_meta(p: &Item, sha: &str, md5: Option<[u8; 16]>) -> RestoreMeta {
    let m = &p.blob.metadata;
    let user_metadata: BTreeMap<String, String> = SIGNATURE_METADATA
        .iter()
        .filter_map(|(s3, archive)| m.get(*archive).map(|v| (s3.to_string(), v.clone())))
        .collect();
    let digest = p.ct.as_ref().is_some_and(|ct| ct.stream.kind == FileKind::Digest);
    let sidecar = digest.then(|| {
        serde_json::json!({
            "source_bucket": m.get(META_SOURCE_BUCKET),
            "source_key": crate::archive::source_key_of(m).unwrap_or_else(|| p.key.clone()),
            "sha256": sha,
            "metadata": user_metadata,
        })
    });
    RestoreMeta {
        content_type: p.blob.content_type.clone(),
        content_encoding: m.get(META_SOURCE_CONTENT_ENCODING).cloned(),
        content_md5: md5,
        user_metadata,
        sidecar,
    }
}

/// Restore's receiver of a verified read: the upload at the target, hashed for its
/// Content-MD5 on the way, committed once the bytes match the archived hash.
struct Restoring<'a> {
    upload: Option<Box<dyn Upload + 'a>>,
    md5: Md5,
    item: &'a Item,
    sink: &'a dyn Sink,
    /// Not written by us: someone else's file landed at the key since our check.
    landed: Option<FileEnd>,
}

#[async_trait::async_trait]
impl Receiver for Restoring<'_> {
    async fn write(&mut self, chunk: Bytes) -> StorageResult<()> {
        self.md5.update(&chunk);
        match self.upload.as_mut() {
            Some(upload) => upload.write(chunk).await,
            None => Err(StorageError::new(
                ErrorKind::Other,
                "write",
                &self.item.key,
                "upload closed",
            )),
        }
    }

    async fn accept(&mut self, sha256: &str) -> StorageResult<()> {
        let Some(upload) = self.upload.take() else {
            return Err(StorageError::new(
                ErrorKind::Other,
                "commit",
                &self.item.key,
                "upload closed",
            ));
        };
        let md5: [u8; 16] = self.md5.clone().finalize().into();
        match upload.commit(&restore_meta(self.item, sha256, Some(md5))).await {
            Ok(()) => Ok(()),
            // Written by someone else since our check: the same rule as for a file found
            // there before applies.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let have = self.sink.existing_sha256(&self.item.key).await?;
                self.landed = Some(if have.as_deref() == Some(sha256) {
                    FileEnd::Skipped
                } else {
                    FileEnd::Conflict
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn discard(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort().await;
        }
    }
}
