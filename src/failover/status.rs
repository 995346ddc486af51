//! `trailvault status --from state`: the backup gap and coverage per source, read from
//! the state container (health, watermarks, the sync lock), so it is measured from what
//! the runs recorded, never assumed — and it shows a gap growing when runs fail or stop.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::state::{lock, spool, watermark, SourceHealth};
use crate::storage::{BlobStore, StorageError};

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    pub max_gap_seconds: i64,
    pub sources: Vec<SourceStatus>,
    /// Records waiting for Log Analytics (`spool/`).
    pub spool_backlog: u64,
    /// Runs Log Analytics refused for good (`spool-dead/`): they need a person.
    pub spool_dead: u64,
    /// Every source within target.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub last_success_started_at: Option<DateTime<Utc>>,
    /// Now minus the start of the last complete run; null when none completed yet.
    pub backup_gap_seconds: Option<i64>,
    pub within_target: bool,
    pub run_in_progress: bool,
    /// `Healthy`, `Degraded` or `Outage` as the syncs' probes saw it; null before any probe.
    pub aws_health: Option<String>,
    pub last_run_status: Option<crate::records::RunStatus>,
    pub consecutive_failed_runs: u32,
    /// Newest CloudTrail file-name time among the source's archived log files (sync's
    /// watermarks and what events archived); null before any.
    pub newest_archived_file_time: Option<DateTime<Utc>>,
    /// Now minus `newest_archived_file_time`.
    pub archive_age_seconds: Option<i64>,
    pub accounts: Vec<AccountStatus>,
    /// Streams whose newest archived file is more than `max_gap` behind their siblings'
    /// (same kind): one account-region stopped while the source's gap looks fine.
    pub stale_streams: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    pub account: String,
    pub region: String,
    pub newest_file_time: Option<DateTime<Utc>>,
    pub files_not_covered_by_digest: u64,
}

/// The contract's rule: within target while the gap is at most `max_gap`, or while the
/// run that started within `max_gap` of the last complete run's start is still going.
pub fn within_target(
    last_success: Option<DateTime<Utc>>,
    running_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_gap: Duration,
) -> bool {
    let Some(last) = last_success else { return false };
    now - last <= max_gap || running_since.is_some_and(|r| r >= last && r - last <= max_gap)
}

pub async fn status(
    state: &dyn BlobStore,
    sources: &[String],
    max_gap: Duration,
    now: DateTime<Utc>,
) -> Result<StatusReport, StorageError> {
    let running_since = lock::running_since(state, now).await?;
    let mut out = Vec::new();
    for name in sources {
        let health = SourceHealth::load(state, name).await?;
        let mut accounts = Vec::new();
        let mut newest = crate::state::newest::load(state, name).await?;
        let mut marks = Vec::new();
        for entry in watermark::source_docs(state, name).await? {
            let wm = match entry.doc {
                Ok(wm) => wm,
                Err(e) => {
                    tracing::warn!(source = name, error = %e, "a watermark is unreadable; its account-region is left out");
                    continue;
                }
            };
            let newest_log = wm
                .streams
                .iter()
                .filter(|(k, _)| {
                    crate::cloudtrail::StreamPrefix::parse(k)
                        .is_some_and(|p| p.kind == crate::cloudtrail::FileKind::Log)
                })
                .map(|(_, m)| m.time)
                .max();
            newest = newest.max(newest_log);
            marks.extend(wm.streams.iter().map(|(s, m)| (s.clone(), m.time)));
            accounts.push(AccountStatus {
                account: entry.account,
                region: entry.region,
                newest_file_time: wm.streams.values().map(|m| m.time).max(),
                files_not_covered_by_digest: wm.coverage.map(|c| c.logs_not_covered_by_digest).unwrap_or(0),
            });
        }
        let last = health.last_success_started_at;
        out.push(SourceStatus {
            name: name.clone(),
            last_success_started_at: last,
            backup_gap_seconds: last.map(|l| (now - l).num_seconds()),
            within_target: within_target(last, running_since, now, max_gap),
            run_in_progress: running_since.is_some(),
            aws_health: health.aws_health.map(|h| h.as_str().to_string()),
            last_run_status: health.last_run_status,
            consecutive_failed_runs: health.consecutive_failed_runs,
            newest_archived_file_time: newest,
            archive_age_seconds: newest.map(|t| (now - t).num_seconds()),
            accounts,
            stale_streams: watermark::stale_streams(marks.iter().map(|(s, t)| (s.as_str(), *t)), max_gap),
        });
    }
    let spool_backlog = spool::backlog(state).await?;
    let spool_dead = spool::dead_letters(state).await?;
    Ok(StatusReport {
        generated_at: now,
        max_gap_seconds: max_gap.num_seconds(),
        ok: out.iter().all(|s| s.within_target),
        sources: out,
        spool_backlog,
        spool_dead,
    })
}

/// The same rule from Log Analytics' copy of the SyncRun records: usable when the state
/// container is not (no lock view there, so `run_in_progress` is false).
pub const STATUS_KQL: &str = r#"TrailVault_CL
| where RecordType == "SyncRun"
| summarize arg_max(TimeGenerated, *) by RecordId
| extend Complete = tobool(Details.complete), Started = TimeGenerated - DurationSeconds * 1s
| summarize LastSuccessStart = maxif(Started, Complete == true), arg_max(TimeGenerated, Status) by Source"#;

pub async fn status_from_log_analytics(
    query: &crate::monitor::LogsQuery,
    sources: &[String],
    max_gap: Duration,
    now: DateTime<Utc>,
) -> Result<StatusReport, crate::monitor::MonitorError> {
    let rows = query.query(STATUS_KQL, "P31D").await?;
    let time = |v: &serde_json::Value| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
    };
    let out: Vec<SourceStatus> = sources
        .iter()
        .map(|name| {
            let row = rows
                .iter()
                .find(|r| r.get("Source").and_then(|v| v.as_str()) == Some(name.as_str()));
            let last = row.and_then(|r| r.get("LastSuccessStart")).and_then(time);
            let status = row
                .and_then(|r| r.get("Status"))
                .and_then(|v| serde_json::from_value::<crate::records::RunStatus>(v.clone()).ok());
            SourceStatus {
                name: name.clone(),
                last_success_started_at: last,
                backup_gap_seconds: last.map(|l| (now - l).num_seconds()),
                within_target: within_target(last, None, now, max_gap),
                run_in_progress: false,
                aws_health: None,
                last_run_status: status,
                consecutive_failed_runs: 0,
                // Records carry no per-file time of events; the state container has it.
                newest_archived_file_time: None,
                archive_age_seconds: None,
                accounts: Vec::new(),
                stale_streams: Vec::new(),
            }
        })
        .collect();
    Ok(StatusReport {
        generated_at: now,
        max_gap_seconds: max_gap.num_seconds(),
        ok: out.iter().all(|s| s.within_target),
        sources: out,
        spool_backlog: 0,
        spool_dead: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_gap_rule_of_the_contract() {
        let gap = Duration::hours(8);
        let last = Some(t("2026-11-25T00:00:00Z"));
        assert!(within_target(last, None, t("2026-11-25T08:00:00Z"), gap));
        assert!(!within_target(last, None, t("2026-11-25T08:00:01Z"), gap));
        // The scheduled run started at 08:00 and is still copying at 08:30: within target.
        assert!(within_target(
            last,
            Some(t("2026-11-25T08:00:00Z")),
            t("2026-11-25T08:30:00Z"),
            gap
        ));
        // A run that started too late does not excuse the gap.
        assert!(!within_target(
            last,
            Some(t("2026-11-25T09:00:00Z")),
            t("2026-11-25T09:30:00Z"),
            gap
        ));
        assert!(!within_target(None, None, t("2026-11-25T00:00:00Z"), gap));
    }
}
