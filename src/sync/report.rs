//! The `sync --json` document (contract: run_id, started_at, finished_at, status,
//! sources[name, files_copied, bytes_copied, files_skipped, files_failed, conflicts]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::key_failure::KeyFailure;
use crate::records::{AwsHealth, RunStatus};

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: RunStatus,
    pub dry_run: bool,
    /// Stopped by a shutdown: files not started are left for the next run.
    pub cancelled: bool,
    /// The run's deadline kept some work from starting (`Partial`; the next run goes on).
    pub deadline_reached: bool,
    /// Attempts beyond the first, over every request and file of the run.
    pub retries: u64,
    /// Requests on the wire by `{store}.{operation}` (`s3.get`, `archive.put`, `state.get`, ...): what the
    /// run cost; it grows with new files, not with the archive.
    pub requests: std::collections::BTreeMap<String, u64>,
    pub sources: Vec<SourceReport>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    pub name: String,
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub files_skipped: u64,
    pub files_failed: u64,
    pub conflicts: Vec<String>,
    /// Files left for the next run because this one was stopped before they started.
    pub not_started: u64,
    /// The run was stopped (SIGTERM, deadline) before it finished this source.
    pub stopped: bool,
    /// With `--dry-run`: what a real run would copy (or compare, for changed keys).
    pub files_planned: u64,
    pub bytes_planned: u64,
    /// The deadline passed before this source was finished: files (counted in
    /// `not_started`), streams or the whole source were left for the next run (the
    /// watermark stays before them).
    pub deadline_reached: bool,
    pub streams: u64,
    /// Listing or state problems that kept files from being considered at all.
    pub errors: Vec<String>,
    /// Files that failed, with the reason (at most 100).
    pub failures: Vec<KeyFailure>,
    pub newest_file_time: Option<DateTime<Utc>>,
    pub backup_gap_seconds: Option<i64>,
    /// Every listed file was archived and verified (conflicts allowed: the archived copy is the evidence).
    pub complete: bool,
    /// Per account-region, what the lookback window shows.
    pub accounts: Vec<AccountReport>,
    /// AWS as the probes see it after this run.
    pub aws_health: Option<AwsHealth>,
    /// Listed keys named for a time after the run could trust (more than an hour after its
    /// start): not copied, never moving a watermark; they make the run `Partial`, exit 1.
    pub future_keys: crate::truncated::Truncated<String>,
    /// Streams whose newest archived file is more than `max_gap` behind their siblings'
    /// (same kind): archiving of that account-region stopped while the rest went on.
    pub stale_streams: Vec<String>,
    /// Each stream's watermark after this run, for `stale_streams`.
    #[serde(skip)]
    pub marks: Vec<(String, DateTime<Utc>)>,
    /// Set when this run moved the source into or out of the Outage state.
    pub failover_event: Option<String>,
    /// This run's probe, consumed when the health state is written.
    #[serde(skip)]
    pub aws_probe: Option<crate::records::Probe>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountReport {
    pub account: String,
    pub region: String,
    pub newest_file_time: Option<DateTime<Utc>>,
    pub newest_digest_time: Option<DateTime<Utc>>,
    /// Archived log files no digest can vouch for yet: delivered after the newest digest.
    pub files_not_covered_by_digest: u64,
}

impl SourceReport {
    /// Nothing failed; only the deadline kept the source from completing.
    pub fn stopped_only_by_deadline(&self) -> bool {
        self.deadline_reached
            && self.files_failed == 0
            && self.errors.is_empty()
            && self.conflicts.is_empty()
            && self.future_keys.is_empty()
    }

    pub fn status(&self) -> RunStatus {
        if self.complete && self.conflicts.is_empty() {
            RunStatus::Succeeded
        } else if self.files_copied + self.files_skipped > 0
            || self.complete
            || !self.future_keys.is_empty()
            || self.stopped_only_by_deadline()
            || ((self.stopped || self.not_started > 0) && self.files_failed == 0 && self.errors.is_empty())
        {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        }
    }
}

impl SyncReport {
    pub fn overall(sources: &[SourceReport]) -> RunStatus {
        let statuses: Vec<RunStatus> = sources.iter().map(SourceReport::status).collect();
        if statuses.iter().all(|s| *s == RunStatus::Succeeded) {
            RunStatus::Succeeded
        } else if statuses.iter().all(|s| *s == RunStatus::Failed) {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        }
    }

    /// The one success rule (exit 0, Functions 200): every file archived, or stopped only
    /// by the deadline with nothing failed (progress saved; the next run goes on).
    pub fn is_success(&self) -> bool {
        match self.status {
            RunStatus::Succeeded => true,
            RunStatus::Partial => self.stopped_only_by_deadline(),
            RunStatus::Failed => false,
        }
    }

    /// `Partial` only because the deadline passed: nothing failed and nothing conflicts
    /// (`sync --deadline` exits 0, the Functions handler answers 200).
    pub fn stopped_only_by_deadline(&self) -> bool {
        self.deadline_reached
            && !self.cancelled
            && self
                .sources
                .iter()
                .all(|s| s.stopped_only_by_deadline() || (s.complete && s.conflicts.is_empty()))
    }

    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "sync {} {:?}{}",
            self.run_id,
            self.status,
            if self.dry_run {
                " (dry run: nothing written)"
            } else if self.deadline_reached {
                " (deadline reached: the next run goes on from here)"
            } else {
                ""
            }
        )];
        for s in &self.sources {
            if self.dry_run {
                lines.push(format!(
                    "  {}: {} streams, would copy {} files ({} bytes), {} already archived",
                    s.name, s.streams, s.files_planned, s.bytes_planned, s.files_skipped
                ));
            } else {
                lines.push(format!(
                    "  {}: {} streams, copied {} files ({} bytes), skipped {}, failed {}, conflicts {}{}",
                    s.name,
                    s.streams,
                    s.files_copied,
                    s.bytes_copied,
                    s.files_skipped,
                    s.files_failed,
                    s.conflicts.len(),
                    s.backup_gap_seconds
                        .map(|g| format!(
                            ", backup gap {}",
                            humantime::format_duration(std::time::Duration::from_secs(g.max(0) as u64))
                        ))
                        .unwrap_or_default()
                ));
            }
            if s.deadline_reached {
                lines.push(format!(
                    "    deadline reached: {} files left for the next run",
                    s.not_started
                ));
            }
            for c in &s.conflicts {
                lines.push(format!(
                    "    conflict: {c} changed in S3 after it was archived; the archived copy was kept"
                ));
            }
            for f in &s.failures {
                lines.push(format!("    failed: {}: {}", f.key, f.error));
            }
            for e in &s.errors {
                lines.push(format!("    error: {e}"));
            }
            if !s.future_keys.is_empty() {
                lines.push(format!(
                    "    {} keys named for a time more than an hour after this run started were not archived (clock or a planted file?); first: {}",
                    s.future_keys.count,
                    s.future_keys.keys.first().map(String::as_str).unwrap_or("")
                ));
            }
        }
        lines
    }
}
