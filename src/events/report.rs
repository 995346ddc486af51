//! What a drain did, per source: the `drain --json` document and the `Events` records.

use serde::Serialize;

use crate::records::{Record, RecordType, RunStatus};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Lag {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Lag {
    /// Nearest-rank percentiles of `seconds`.
    pub fn of(seconds: &[f64]) -> Lag {
        let mut s: Vec<f64> = seconds.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return Lag::default();
        }
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Lag {
            p50: Some(at(0.50)),
            p99: Some(at(0.99)),
            max: s.last().copied(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceEvents {
    pub name: String,
    /// Messages received (test events included).
    pub messages: u64,
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub files_already_archived: u64,
    pub files_conflicting: u64,
    /// Keys (not messages) that are not this source's to archive.
    pub events_ignored: u64,
    pub events_unreadable: u64,
    pub files_missing: u64,
    pub files_failed: u64,
    /// Receive or delete calls the queue refused or failed.
    pub queue_errors: u64,
    pub lag_seconds: Lag,
    #[serde(skip)]
    pub lags: Vec<f64>,
    /// Newest CloudTrail log-file time now archived (copied or found archived).
    #[serde(skip)]
    pub newest_log_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl SourceEvents {
    pub fn failed(&self) -> bool {
        self.files_failed > 0 || self.queue_errors > 0
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EventsReport {
    pub run_id: String,
    pub sources: Vec<SourceEvents>,
    /// `"signal"` when a signal stopped the drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<&'static str>,
    #[serde(skip)]
    pub duration_seconds: f64,
}

impl EventsReport {
    pub fn failed(&self) -> bool {
        self.sources.iter().any(SourceEvents::failed)
    }

    pub fn status(&self) -> RunStatus {
        if self.failed() {
            RunStatus::Failed
        } else if self.stopped.is_some() {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        }
    }
}

/// One `Events` record per source.
pub fn events_records(report: &EventsReport) -> Vec<Record> {
    report
        .sources
        .iter()
        .map(|s| {
            let status = if s.failed() {
                RunStatus::Failed
            } else if report.stopped.is_some() {
                RunStatus::Partial
            } else {
                RunStatus::Succeeded
            };
            let mut r = Record::of(
                RecordType::Events,
                &report.run_id,
                &format!("events-{}", s.name),
                status,
            );
            r.source = s.name.clone();
            r.files_copied = s.files_copied;
            r.bytes_copied = s.bytes_copied;
            r.files_skipped = s.files_already_archived;
            r.files_failed = s.files_failed;
            r.duration_seconds = report.duration_seconds;
            // The workbook's archive age: the newest log file this drain archived.
            r.newest_file_time = s.newest_log_time;
            r.message = format!(
                "{} messages, {} files copied, {} already archived, {} failed",
                s.messages, s.files_copied, s.files_already_archived, s.files_failed
            );
            r.details = serde_json::json!({
                "messages": s.messages,
                "files_already_archived": s.files_already_archived,
                "files_conflicting": s.files_conflicting,
                "events_ignored": s.events_ignored,
                "events_unreadable": s.events_unreadable,
                "files_missing": s.files_missing,
                "queue_errors": s.queue_errors,
                "lag_seconds": s.lag_seconds,
                "stopped": report.stopped,
            });
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_are_nearest_rank() {
        let l = Lag::of(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!((l.p50, l.p99, l.max), (Some(50.0), Some(99.0), Some(100.0)));
        assert!(Lag::of(&[]).p50.is_none());
        assert_eq!(Lag::of(&[3.0]).p99, Some(3.0));
    }

    #[test]
    fn a_failed_file_fails_the_record() {
        let report = EventsReport {
            run_id: "r".into(),
            sources: vec![SourceEvents {
                name: "s".into(),
                files_copied: 2,
                files_failed: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let r = events_records(&report);
        assert_eq!(r[0].record_type, RecordType::Events);
        assert_eq!(r[0].status, RunStatus::Failed);
        assert_eq!(r[0].files_copied, 2);
        assert!(r[0].details.get("lag_seconds").is_some());
    }
}
