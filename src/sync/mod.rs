//! `trailvault sync`: one incremental, verified pass over every source.
//!
//! discover streams -> per account-region: load watermark -> plan each stream (S3
//! listing from watermark - lookback vs. archive listing) -> copy with bounded
//! concurrency and memory -> advance the watermark over what is done -> records.

pub mod copy;
pub mod discover;
mod pipeline;
pub mod plan;
pub mod report;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::archive::CopyOutcome;
use crate::cloudtrail::{AccountId, FileKind, Region, StreamPrefix};
use crate::config::SyncSettings;
use crate::records::{new_run_id, AwsHealth, Probe, Record, RecordType, RunStatus};
use crate::state::conflicts::{record_conflict, ConflictNote};
use crate::state::lock::{LockError, LockHolder, SyncLock};
use crate::state::watermark::{self, Settled};
use crate::state::{write_run_records, SourceHealth};
use crate::storage::decorate::RequestCounter;
use crate::storage::retry::RetryPolicy;
use crate::storage::{ArchiveStore, BlobStore, Source, StateStore, StorageError};
use copy::Copier;
use plan::PlannedFile;
pub use report::{SourceReport, SyncReport};

/// Account-regions worked on at once within a source.
const PARTITION_CONCURRENCY: usize = 4;
/// Copies still running this long after the deadline are abandoned (nothing of them is
/// committed, and the watermark stays before them), leaving time to save progress.
pub const ABANDON_AFTER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
const MAX_LISTED_FAILURES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("the state container is not usable: {0}")]
    State(#[source] StorageError),
    #[error("the archive container is not usable: {0}")]
    Archive(#[source] StorageError),
    #[error("the deadline passed before the sync could start (containers, lock); nothing was copied")]
    DeadlineBeforeLock,
}

/// `work`, or `None` when the deadline passes first: every wait of a run with a deadline
/// ends by it (listings, the lease), so a server that never answers cannot hold the run.
async fn until_deadline<T>(
    deadline: Option<tokio::time::Instant>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, work).await.ok(),
        None => Some(work.await),
    }
}

impl crate::fault::Classify for SyncError {
    fn fault(&self) -> crate::fault::Fault {
        // A held lock, an unusable container: this run did not happen; the next may.
        crate::fault::Fault::Failed
    }
}

/// One configured source with its client.
pub struct SourceHandle {
    pub name: String,
    pub prefix: String,
    pub source: Arc<dyn Source>,
    /// Set when the source's AWS credentials could not be had before the run (the Entra
    /// to STS exchange failed): the health is `CredentialsFailed`, never an outage.
    pub credentials_error: Option<String>,
}

pub struct SyncJob {
    pub sources: Vec<SourceHandle>,
    pub archive: ArchiveStore,
    pub state: StateStore,
    pub settings: SyncSettings,
    pub dry_run: bool,
    /// Files and bytes as they are archived; totals grow as streams are planned.
    pub progress: Arc<dyn crate::progress::Progress>,
    /// AWS health probing (`[health]`).
    pub health: crate::config::HealthConfig,
    /// Attempts per file (`[sync] retries`); shared with the storage decorators, so its
    /// count is every retry the run made.
    pub retry: RetryPolicy,
    /// Cancelled on shutdown: no new file starts, in-flight ones finish, progress is saved.
    pub cancel: CancellationToken,
    /// Requests on the wire, by cloud and operation, for the run document.
    pub requests: RequestCounter,
    /// No new file is started after this instant (`sync --deadline`, the Functions
    /// timeout); the run then saves its progress and reports `Partial` with
    /// `deadline_reached`.
    pub deadline: Option<tokio::time::Instant>,
    /// `[target] create_containers`: create a missing archive or state container
    /// (default false: a missing one is an error naming it).
    pub create_containers: bool,
}

/// Fails, naming the container, when it does not exist (a listing of nothing answers
/// 404 `ContainerNotFound` for a missing container).
async fn require_container(store: &dyn BlobStore, key: &str) -> Result<(), StorageError> {
    match store.list_page("trailvault-container-probe/", None).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind == crate::storage::ErrorKind::NotFound => Err(StorageError::new(
            crate::storage::ErrorKind::NotFound,
            "open container",
            store.describe(),
            format!(
                "target.{key} does not exist; create it (with its retention policy), or set target.create_containers = true"
            ),
        )),
        Err(e) => Err(e),
    }
}

/// How long after the deadline progress may still be saved: copies in flight get
/// [`ABANDON_AFTER_DEADLINE`], the writes of watermarks, health and the run record what is
/// left of the Functions margin (60 s before the host's timeout).
const SAVE_AFTER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(50);

impl SyncJob {
    /// The instant by which saving progress must be done, when the run has a deadline.
    fn save_by(&self) -> Option<tokio::time::Instant> {
        self.deadline.map(|d| d + SAVE_AFTER_DEADLINE)
    }

    pub async fn run(&self) -> Result<SyncReport, SyncError> {
        let started_at = Utc::now();
        let run_id = new_run_id(started_at);
        tracing::info!(
            run_id,
            sources = self.sources.len(),
            dry_run = self.dry_run,
            "sync started"
        );

        let lock = if self.dry_run {
            None
        } else {
            let containers = async {
                if self.create_containers {
                    self.state.ensure_container().await.map_err(SyncError::State)?;
                    self.archive.ensure_container().await.map_err(SyncError::Archive)
                } else {
                    // A misspelt name must not become a new, policy-less container.
                    require_container(self.state.as_ref(), "state_container")
                        .await
                        .map_err(SyncError::State)?;
                    require_container(self.archive.as_ref(), "container")
                        .await
                        .map_err(SyncError::Archive)
                }
            };
            until_deadline(self.deadline, containers)
                .await
                .ok_or(SyncError::DeadlineBeforeLock)??;
            let holder = LockHolder::this_process(&run_id, started_at);
            let acquire = SyncLock::acquire(self.state.clone(), &holder);
            Some(
                until_deadline(self.deadline, acquire)
                    .await
                    .ok_or(SyncError::DeadlineBeforeLock)??,
            )
        };
        let lost = lock.as_ref().map(|l| l.lost()).unwrap_or_default();
        let budget = Semaphore::new(self.settings.in_flight_bytes.min(Semaphore::MAX_PERMITS as u64) as usize);
        let files = Semaphore::new(self.settings.concurrency);

        let mut reports = Vec::new();
        for handle in &self.sources {
            let ctx = SourceRun {
                job: self,
                handle,
                run_id: &run_id,
                budget: &budget,
                files: &files,
                lost: &lost,
                trusted_until: started_at + plan::FUTURE_TOLERANCE,
            };
            let mut report = ctx.run().await;
            if !self.dry_run {
                self.finish_source(&mut report, &run_id, started_at, &lost).await;
            }
            tracing::info!(
                source = report.name,
                copied = report.files_copied,
                bytes = report.bytes_copied,
                skipped = report.files_skipped,
                failed = report.files_failed,
                conflicts = report.conflicts.len(),
                "source done"
            );
            reports.push(report);
        }

        self.progress.finish();
        let finished_at = Utc::now();
        let report = SyncReport {
            status: SyncReport::overall(&reports),
            deadline_reached: reports.iter().any(|r| r.deadline_reached),
            run_id: run_id.clone(),
            started_at,
            finished_at,
            dry_run: self.dry_run,
            cancelled: self.cancel.is_cancelled(),
            retries: self.retry.retries(),
            requests: self.requests.snapshot(),
            sources: reports,
        };
        if !self.dry_run {
            let records = sync_records(&report, self.settings.max_gap);
            match until_deadline(
                self.save_by(),
                write_run_records(self.state.as_ref(), &run_id, &records),
            )
            .await
            {
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::error!(error = %e, "could not write the run record"),
                None => tracing::error!("the run record was not written before the deadline's end"),
            }
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        tracing::info!(run_id, status = ?report.status, "sync finished");
        Ok(report)
    }

    /// Health state: a complete run moves `last_success_started_at`, which the backup gap is measured from.
    async fn finish_source(
        &self,
        report: &mut SourceReport,
        run_id: &str,
        started_at: DateTime<Utc>,
        lost: &CancellationToken,
    ) {
        let mut health = match SourceHealth::load(self.state.as_ref(), &report.name).await {
            Ok(h) => h,
            Err(e) => {
                report.errors.push(format!("reading health state: {e}"));
                report.complete = false;
                SourceHealth {
                    source: report.name.clone(),
                    ..Default::default()
                }
            }
        };
        let now = Utc::now();
        health.last_run_id = Some(run_id.to_string());
        health.last_run_started_at = Some(started_at);
        health.last_run_finished_at = Some(now);
        health.last_run_status = Some(report.status());
        if report.complete {
            health.last_success_run_id = Some(run_id.to_string());
            health.last_success_started_at = Some(started_at);
            health.consecutive_failed_runs = 0;
        } else {
            health.consecutive_failed_runs += 1;
        }
        // A newest time in the future (an earlier version archived a planted key) would pin
        // freshness alerts for ever: only times the run can trust are kept.
        let trusted_until = started_at + plan::FUTURE_TOLERANCE;
        let stored = health.newest_file_time.filter(|t| *t <= trusted_until);
        health.newest_file_time = stored.max(report.newest_file_time);
        if let Some(probe) = report.aws_probe.take() {
            let cfg = &self.health;
            if let Some(before) = health.observe_probe(probe, now, cfg.degraded_after, cfg.outage_after) {
                let after = health.aws_health.map(|h| h.as_str()).unwrap_or("unknown");
                let event = match health.aws_health {
                    Some(AwsHealth::Outage) => format!(
                        "AWS outage declared for source {}: {} consecutive failed probes ({})",
                        report.name,
                        health.consecutive_probe_failures,
                        health.last_probe_error.as_deref().unwrap_or("")
                    ),
                    _ => format!(
                        "AWS reachable again for source {} (was {}, now {after})",
                        report.name,
                        before.map(|b| b.as_str()).unwrap_or("unknown")
                    ),
                };
                tracing::warn!(source = report.name, event, "failover state changed");
                report.failover_event = Some(event);
            }
        }
        report.aws_health = health.aws_health;
        report.newest_file_time = health.newest_file_time;
        report.backup_gap_seconds = health.backup_gap(now).map(|g| g.num_seconds());
        if lost.is_cancelled() {
            report
                .errors
                .push("the sync lock was lost; health state not written".into());
            return;
        }
        match until_deadline(self.save_by(), health.save(self.state.as_ref())).await {
            Some(Ok(())) => {}
            Some(Err(e)) => report.errors.push(format!("writing health state: {e}")),
            None => report
                .errors
                .push("writing health state: no answer before the deadline's end".into()),
        }
    }
}

struct SourceRun<'a> {
    job: &'a SyncJob,
    handle: &'a SourceHandle,
    run_id: &'a str,
    budget: &'a Semaphore,
    files: &'a Semaphore,
    lost: &'a CancellationToken,
    /// Keys named for a later time are not archived and move no watermark.
    trusted_until: DateTime<Utc>,
}

impl SourceRun<'_> {
    fn past_deadline(&self) -> bool {
        self.job.deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
    }

    /// Notes that the deadline kept work from starting: the run is not complete.
    fn stopped(&self, r: &mut SourceReport) {
        r.deadline_reached = true;
        r.complete = false;
    }

    async fn run(&self) -> SourceReport {
        let mut report = SourceReport {
            name: self.handle.name.clone(),
            complete: true,
            ..Default::default()
        };
        if self.job.cancel.is_cancelled() {
            report.stopped = true;
            report.complete = false;
            return report;
        }
        if self.past_deadline() {
            tracing::info!(source = self.handle.name, "deadline reached; source not started");
            self.stopped(&mut report);
            return report;
        }
        // The probe: does this source's S3 answer at all, within the timeout?
        let root = crate::cloudtrail::key::awslogs_root(&self.handle.prefix);
        report.aws_probe = Some(match &self.handle.credentials_error {
            // The identity exchange already failed: probing S3 would only time out on it.
            Some(e) => Probe::CredentialsFailed(e.clone()),
            None => {
                let probe = self.handle.source.list_folders(&root);
                match tokio::time::timeout(self.job.health.probe_timeout, probe).await {
                    Ok(Ok(_)) => Probe::Reachable,
                    Ok(Err(e))
                        if matches!(
                            e.kind,
                            crate::storage::ErrorKind::Auth | crate::storage::ErrorKind::Credentials
                        ) =>
                    {
                        Probe::CredentialsFailed(e.to_string())
                    }
                    Ok(Err(e)) => Probe::Unreachable(e.to_string()),
                    Err(_) => Probe::Unreachable(format!("no answer within {:?}", self.job.health.probe_timeout)),
                }
            }
        });
        let discovered = until_deadline(
            self.job.deadline,
            discover::discover(self.handle.source.as_ref(), &self.handle.prefix),
        )
        .await;
        let streams = match discovered {
            None => {
                tracing::info!(source = self.handle.name, "deadline reached while discovering streams");
                self.stopped(&mut report);
                return report;
            }
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                report.errors.push(format!("discovering accounts and regions: {e}"));
                report.complete = false;
                return report;
            }
        };
        report.streams = streams.len() as u64;
        if streams.is_empty() {
            tracing::warn!(
                source = self.handle.name,
                root = crate::cloudtrail::key::awslogs_root(&self.handle.prefix),
                "no CloudTrail files found under this prefix: check source.prefix and the bucket"
            );
        }
        let mut partitions: BTreeMap<(AccountId, Region), Vec<StreamPrefix>> = BTreeMap::new();
        for s in streams {
            partitions
                .entry((s.account.clone(), s.region.clone()))
                .or_default()
                .push(s);
        }
        let outcomes: Vec<SourceReport> = futures::stream::iter(partitions)
            .map(|((account, region), streams)| async move { self.partition(&account, &region, &streams).await })
            .buffer_unordered(PARTITION_CONCURRENCY)
            .collect()
            .await;
        for o in outcomes {
            merge(&mut report, o);
        }
        let max_gap = chrono::Duration::from_std(self.job.settings.max_gap).unwrap_or(chrono::Duration::MAX);
        report.stale_streams = watermark::stale_streams(report.marks.iter().map(|(s, t)| (s.as_str(), *t)), max_gap);
        if !report.stale_streams.is_empty() {
            tracing::warn!(
                source = self.handle.name,
                streams = ?report.stale_streams,
                "streams whose newest archived file is more than max_gap behind their siblings'"
            );
        }
        report.conflicts.sort();
        report
            .accounts
            .sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
        report
    }

    /// Plans, copies and advances the watermark of one account-region.
    async fn partition(&self, account: &AccountId, region: &Region, streams: &[StreamPrefix]) -> SourceReport {
        let mut out = SourceReport {
            complete: true,
            ..Default::default()
        };
        let r = &mut out;
        if self.past_deadline() {
            self.stopped(r);
            return out;
        }
        let state = self.job.state.as_ref();
        let wm_name = watermark::watermark_name(&self.handle.name, account.as_str(), region.as_str());
        let (mut doc, etag) = match watermark::load(state, &wm_name).await {
            Ok(x) => x,
            Err(e) => {
                r.errors.push(format!("reading watermark {wm_name}: {e}"));
                r.complete = false;
                return out;
            }
        };
        let mut changed = false;
        let mut streams_left = false;
        let mut cover = watermark::CoverageFold::new(doc.coverage.as_ref());
        // Digests first: a log is counted against the newest digest, known by then.
        let mut ordered: Vec<&StreamPrefix> = streams.iter().collect();
        ordered.sort_by_key(|s| s.kind != FileKind::Digest);
        for stream in ordered {
            if self.past_deadline() {
                // Not listed this run: its mark stays where it is.
                self.stopped(r);
                streams_left = true;
                continue;
            }
            let key_prefix = stream.key_prefix();
            changed |= self.repair_future_marks(&mut doc, &key_prefix);
            cover.keep_old(doc.coverage.as_ref());
            let old = doc.streams.get(&key_prefix).cloned();
            let (next, tally) = self.stream(stream, old.as_ref(), cover.tally(stream.kind), r).await;
            if let Some(tally) = tally {
                cover.add(tally);
            }
            if let Some(next) = next {
                if old.as_ref().map(|o| (o.time, &o.key)) != Some((next.time, &next.key)) {
                    doc.streams.insert(key_prefix, next);
                    changed = true;
                }
            }
        }
        let coverage = cover.coverage();
        r.accounts.push(report::AccountReport {
            account: account.to_string(),
            region: region.to_string(),
            newest_file_time: cover.newest_file_time(),
            newest_digest_time: coverage.newest_digest_time,
            files_not_covered_by_digest: coverage.logs_not_covered_by_digest,
        });
        // Coverage needs both the log and digest listings; a stream left out keeps the old.
        if !streams_left && doc.coverage.as_ref() != Some(&coverage) {
            doc.coverage = Some(coverage);
            changed = true;
        }
        r.marks
            .extend(doc.streams.iter().map(|(stream, mark)| (stream.clone(), mark.time)));
        if changed && !self.job.dry_run {
            self.save_watermark(&wm_name, &doc, etag, r).await;
        }
        out
    }

    /// Drops what an earlier version let a planted future-dated key write: a stream mark
    /// (listing from it would never see a real delivery again, so the stream is listed
    /// whole) and a digest coverage (a future digest would vouch for every log for ever).
    /// True when the document changed.
    fn repair_future_marks(&self, doc: &mut watermark::WatermarkDoc, key_prefix: &str) -> bool {
        let mut changed = false;
        if let Some(mark) = doc.streams.get(key_prefix).filter(|m| m.time > self.trusted_until) {
            tracing::warn!(
                source = self.handle.name,
                stream = key_prefix,
                mark = ?mark.time,
                "watermark is dated in the future; repaired by listing the stream from the start"
            );
            doc.streams.remove(key_prefix);
            changed = true;
        }
        if doc
            .coverage
            .as_ref()
            .and_then(|c| c.newest_digest_time)
            .is_some_and(|t| t > self.trusted_until)
        {
            doc.coverage = None;
            changed = true;
        }
        changed
    }

    /// Writes the account-region's watermark document unless the lock was lost; a failed
    /// or late write leaves the run incomplete (the next run starts from the old marks).
    async fn save_watermark(
        &self,
        wm_name: &str,
        doc: &watermark::WatermarkDoc,
        etag: Option<String>,
        r: &mut SourceReport,
    ) {
        if self.lost.is_cancelled() {
            r.errors
                .push(format!("sync lock lost; watermark {wm_name} not advanced"));
            r.complete = false;
            return;
        }
        let state = self.job.state.as_ref();
        match until_deadline(self.job.save_by(), watermark::save(state, wm_name, doc, etag)).await {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                r.errors
                    .push(format!("writing watermark {wm_name} (another writer?): {e}"));
                r.complete = false;
            }
            None => {
                r.errors.push(format!(
                    "writing watermark {wm_name}: no answer before the deadline's end"
                ));
                r.complete = false;
            }
        }
    }

    /// One file's copy; `None` when it was not started (stopping, or past the deadline).
    async fn copy_file(&self, f: &PlannedFile) -> Option<Result<CopyOutcome, StorageError>> {
        // Stopping (SIGTERM, the deadline) is checked before a file starts: a file is either
        // archived whole or left for the next run.
        if self.job.cancel.is_cancelled() || self.past_deadline() {
            return None;
        }
        if self.lost.is_cancelled() {
            return Some(Err(StorageError::new(
                crate::storage::ErrorKind::Other,
                "copy",
                &f.object.key,
                "the sync lock was lost",
            )));
        }
        let copier = Copier {
            src: self.handle.source.as_ref(),
            archive: self.job.archive.as_ref(),
            source_name: &self.handle.name,
            budget: self.budget,
        };
        let copy = self
            .job
            .retry
            .run_whole("copy", || copier.copy(&f.object, f.existing.as_ref()));
        let Some(deadline) = self.job.deadline else {
            return Some(copy.await);
        };
        // In flight at the deadline: it may finish within the grace, else it is dropped
        // before its commit (create-only: nothing half-written stays). Started, so not
        // excused by the deadline: abandoned is a failure.
        match tokio::time::timeout_at(deadline + ABANDON_AFTER_DEADLINE, copy).await {
            Ok(result) => Some(result),
            Err(_) => Some(Err(StorageError::new(
                crate::storage::ErrorKind::Unreachable,
                "copy",
                &f.object.key,
                format!(
                    "still in flight {}s after the deadline; abandoned before its commit",
                    ABANDON_AFTER_DEADLINE.as_secs()
                ),
            ))),
        }
    }

    /// Counts one file's end in the report and says whether its key is settled.
    async fn settle(
        &self,
        f: PlannedFile,
        result: Option<Result<CopyOutcome, StorageError>>,
        r: &mut SourceReport,
    ) -> Settled {
        let Some(result) = result else {
            // Left for the next run: the watermark stays before it.
            r.not_started += 1;
            r.complete = false;
            if self.past_deadline() {
                self.stopped(r);
            }
            return Settled {
                key: f.object.key,
                time: f.time,
                done: false,
            };
        };
        let done = match result {
            Ok(CopyOutcome::Copied { bytes }) => {
                tracing::debug!(key = f.object.key, bytes, "copied");
                r.files_copied += 1;
                r.bytes_copied += bytes;
                true
            }
            Ok(CopyOutcome::AlreadyArchived) => {
                r.files_skipped += 1;
                true
            }
            Ok(CopyOutcome::Conflict {
                archived_sha256,
                source_sha256,
            }) => {
                tracing::warn!(
                    key = f.object.key,
                    "S3 object differs from its archived copy; archived copy kept"
                );
                self.record_conflict(&f.object, &archived_sha256, &source_sha256).await;
                r.conflicts.push(f.object.key.clone());
                true
            }
            Err(e) => {
                tracing::warn!(key = f.object.key, error = %e, "file not archived");
                r.files_failed += 1;
                r.complete = false;
                if r.failures.len() < MAX_LISTED_FAILURES {
                    r.failures
                        .push(crate::key_failure::KeyFailure::new(f.object.key.clone(), &e));
                }
                false
            }
        };
        if done {
            r.newest_file_time = r.newest_file_time.max(f.time);
        }
        Settled {
            key: f.object.key,
            time: f.time,
            done,
        }
    }

    async fn record_conflict(&self, object: &crate::storage::SourceObject, archived: &str, source: &str) {
        let note = ConflictNote {
            source: self.handle.name.clone(),
            key: object.key.clone(),
            blob: crate::archive::ArchiveName::new(&self.handle.name, &object.key)
                .map(String::from)
                .unwrap_or_default(),
            archived_sha256: archived.to_string(),
            source_sha256: source.to_string(),
            source_etag: object.etag.clone(),
            source_last_modified: object.last_modified,
            detected_at: Utc::now(),
            run_id: self.run_id.to_string(),
        };
        if let Err(e) = record_conflict(self.job.state.as_ref(), &note).await {
            tracing::warn!(error = %e, "could not record the conflict in the state container");
        }
    }
}

fn merge(into: &mut SourceReport, part: SourceReport) {
    into.files_copied += part.files_copied;
    into.bytes_copied += part.bytes_copied;
    into.files_skipped += part.files_skipped;
    into.files_failed += part.files_failed;
    into.not_started += part.not_started;
    into.stopped |= part.stopped;
    into.files_planned += part.files_planned;
    into.deadline_reached |= part.deadline_reached;
    into.bytes_planned += part.bytes_planned;
    into.conflicts.extend(part.conflicts);
    into.future_keys.merge(part.future_keys);
    into.marks.extend(part.marks);
    into.errors.extend(part.errors);
    let room = MAX_LISTED_FAILURES.saturating_sub(into.failures.len());
    into.failures.extend(part.failures.into_iter().take(room));
    into.newest_file_time = into.newest_file_time.max(part.newest_file_time);
    into.complete &= part.complete;
    into.accounts.extend(part.accounts);
}

/// One `SyncRun` record per source, each carrying the gap target it was held to.
pub fn sync_records(report: &SyncReport, max_gap: std::time::Duration) -> Vec<Record> {
    let target_seconds = i64::try_from(max_gap.as_secs()).unwrap_or(i64::MAX);
    let duration = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    report
        .sources
        .iter()
        .map(|s| Record {
            time_generated: report.finished_at,
            source: s.name.clone(),
            files_copied: s.files_copied,
            bytes_copied: s.bytes_copied,
            files_skipped: s.files_skipped,
            files_failed: s.files_failed,
            backup_gap_seconds: s.backup_gap_seconds,
            newest_file_time: s.newest_file_time,
            duration_seconds: duration,
            message: match s.status() {
                RunStatus::Succeeded => "all listed files archived and verified".into(),
                _ if s.stopped_only_by_deadline() => format!(
                    "deadline reached: {} files archived, {} left for the next run",
                    s.files_copied, s.not_started
                ),
                _ => s
                    .errors
                    .first()
                    .cloned()
                    .or_else(|| s.failures.first().map(|f| format!("{}: {}", f.key, f.error)))
                    .or_else(|| s.conflicts.first().map(|c| format!("conflict: {c}")))
                    .unwrap_or_default(),
            },
            details: serde_json::json!({
                "conflicts": s.conflicts,
                "streams": s.streams,
                "complete": s.complete,
                "deadline_reached": s.deadline_reached,
                "not_started": s.not_started,
                "future_keys": s.future_keys,
                "stale_streams": s.stale_streams,
                "stopped": report.cancelled.then_some("signal"),
                "errors": s.errors,
                "accounts": s.accounts,
            }),
            aws_health: s.aws_health.map(|h| h.as_str().to_string()),
            target_seconds: Some(target_seconds),
            ..Record::of(RecordType::SyncRun, &report.run_id, &s.name, s.status())
        })
        .chain(report.sources.iter().filter_map(|s| {
            s.failover_event.as_ref().map(|event| Record {
                time_generated: report.finished_at,
                source: s.name.clone(),
                aws_health: s.aws_health.map(|h| h.as_str().to_string()),
                message: event.clone(),
                // `.` is not allowed in source names, so a source named `x-failover` cannot
                // share this id with the failover record of `x` (publish resends by id).
                ..Record::of(
                    RecordType::Failover,
                    &report.run_id,
                    &format!("{}.failover", s.name),
                    s.status(),
                )
            })
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_unique_whatever_the_source_names() {
        let source = |name: &str| SourceReport {
            name: name.into(),
            failover_event: Some("AWS outage declared".into()),
            ..Default::default()
        };
        let report = SyncReport {
            run_id: "20261130T000000Z-abcd".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            status: RunStatus::Partial,
            dry_run: false,
            cancelled: false,
            deadline_reached: false,
            retries: 0,
            requests: Default::default(),
            sources: vec![source("x"), source("x-failover"), source("x-failover-failover")],
        };
        let records = sync_records(&report, std::time::Duration::from_secs(8 * 3600));
        assert_eq!(records.len(), 6);
        let ids: std::collections::BTreeSet<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(ids.len(), records.len(), "{ids:?}");
    }
}
