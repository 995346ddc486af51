//! Run records in the contract's schema (Log Analytics table `TrailVault_CL`, and
//! `runs/{run_id}.json` in the state container), run ids and the AWS health states.
//! Plain data: every domain writes records without depending on another domain.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum RecordType {
    SyncRun,
    Verify,
    Restore,
    Heartbeat,
    SamlAudit,
    Failover,
    /// Files archived from queue events (`drain`, the daemon's event loop).
    Events,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Partial,
    Failed,
}

/// AWS as a source's probes saw it: the failover state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum AwsHealth {
    Healthy,
    Degraded,
    Outage,
    /// Our credentials were refused or could not be had (STS, the Entra identity): a
    /// problem on our side to fix, never evidence of an AWS outage.
    CredentialsFailed,
}

impl AwsHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            AwsHealth::Healthy => "Healthy",
            AwsHealth::Degraded => "Degraded",
            AwsHealth::Outage => "Outage",
            AwsHealth::CredentialsFailed => "CredentialsFailed",
        }
    }
}

/// What one health probe of a source's S3 found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Reachable,
    /// No answer, or an answer that says S3 is failing: counts towards an outage.
    Unreachable(String),
    /// Our credentials were refused or could not be obtained: not AWS's failure.
    CredentialsFailed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub time_generated: DateTime<Utc>,
    pub record_id: String,
    pub record_type: RecordType,
    pub run_id: String,
    pub source: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub region: String,
    pub status: RunStatus,
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub files_skipped: u64,
    pub files_failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_gap_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_file_time: Option<DateTime<Utc>>,
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_health: Option<String>,
    /// The backup-gap target (`sync.max_gap`) the run was held to; `SyncRun` records only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seconds: Option<i64>,
    pub message: String,
    pub details: serde_json::Value,
}

impl Record {
    /// A record with counters at zero; callers set what their run measured.
    /// `RecordId` is `{run_id}-{part}`, unique within the run.
    pub fn of(record_type: RecordType, run_id: &str, part: &str, status: RunStatus) -> Record {
        Record {
            time_generated: Utc::now(),
            record_id: format!("{run_id}-{part}"),
            record_type,
            run_id: run_id.to_string(),
            source: String::new(),
            account: String::new(),
            region: String::new(),
            status,
            files_copied: 0,
            bytes_copied: 0,
            files_skipped: 0,
            files_failed: 0,
            backup_gap_seconds: None,
            newest_file_time: None,
            duration_seconds: 0.0,
            aws_health: None,
            target_seconds: None,
            message: String::new(),
            details: serde_json::Value::Null,
        }
    }
}

/// The most `Details` may hold, serialised: Log Analytics truncates a field at 64 KB,
/// and a truncated JSON is no JSON at all.
pub const MAX_DETAILS_BYTES: usize = 32 * 1024;

impl Record {
    /// `Details` within [`MAX_DETAILS_BYTES`]: the longest lists are cut, and each cut
    /// list's count of what was left out is kept beside it (`{name}_omitted`).
    pub fn bounded(mut self) -> Record {
        self.details = bound_details(self.details);
        self
    }
}

fn serialized_len(v: &serde_json::Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

pub fn bound_details(mut details: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    while serialized_len(&details) > MAX_DETAILS_BYTES {
        let Value::Object(map) = &mut details else {
            return serde_json::json!({ "summary": "details too large to keep", "bytes": serialized_len(&details) });
        };
        // Halve the longest list; a list already empty cannot help, so stop there.
        let longest = map
            .iter()
            .filter_map(|(k, v)| v.as_array().map(|a| (k.clone(), a.len())))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n);
        let Some((key, len)) = longest else {
            let bytes = serialized_len(&details);
            return serde_json::json!({ "summary": "details too large to keep", "bytes": bytes });
        };
        let keep = len / 2;
        if let Some(Value::Array(list)) = map.get_mut(&key) {
            list.truncate(keep);
        }
        let omitted_key = format!("{key}_omitted");
        let before = map.get(&omitted_key).and_then(Value::as_u64).unwrap_or(0);
        map.insert(omitted_key, Value::from(before + (len - keep) as u64));
    }
    details
}

/// `YYYYMMDDTHHMMSSZ-` + 8 random hex: names sort by time.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), rand::random::<u32>())
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Serde helper: a time as RFC 3339 UTC with `Z`, to the second.
pub fn serialize_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_stay_under_32_kb_and_say_what_they_left_out() {
        let findings: Vec<_> = (0..5000)
            .map(|i| format!("finding number {i} with some words"))
            .collect();
        let small = vec!["a", "b"];
        let d = bound_details(serde_json::json!({"findings": findings, "conflicts": small, "complete": true}));
        let len = serde_json::to_vec(&d).unwrap().len();
        assert!(len <= MAX_DETAILS_BYTES, "{len}");
        let kept = d["findings"].as_array().unwrap().len();
        assert!(kept > 100, "cut too much: {kept}");
        assert_eq!(d["findings_omitted"].as_u64().unwrap() as usize + kept, 5000);
        assert_eq!(d["conflicts"].as_array().unwrap().len(), 2);
        assert_eq!(d["complete"], true);
        let huge = "x".repeat(40_000);
        let d = bound_details(serde_json::json!({ "message": huge }));
        assert!(serde_json::to_vec(&d).unwrap().len() <= MAX_DETAILS_BYTES);
        assert_eq!(d["summary"], "details too large to keep");
        let fine = serde_json::json!({"a": [1, 2, 3]});
        assert_eq!(bound_details(fine.clone()), fine);
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id("2026-01-02T03:04:05Z".parse().unwrap());
        let b = new_run_id("2026-01-02T03:04:06Z".parse().unwrap());
        assert!(a.starts_with("20260102T030405Z-") && a.len() == 25, "{a}");
        assert!(a < b);
    }

    #[test]
    fn record_serialises_in_the_contract_schema() {
        let r = Record {
            time_generated: "2026-01-02T03:04:05Z".parse().unwrap(),
            record_id: "r".into(),
            record_type: RecordType::SyncRun,
            run_id: "x".into(),
            source: "s".into(),
            account: String::new(),
            region: String::new(),
            status: RunStatus::Partial,
            files_copied: 1,
            bytes_copied: 2,
            files_skipped: 3,
            files_failed: 4,
            backup_gap_seconds: Some(5),
            newest_file_time: None,
            duration_seconds: 1.5,
            aws_health: None,
            target_seconds: Some(28_800),
            message: String::new(),
            details: serde_json::json!({}),
        };
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "TimeGenerated",
            "RecordId",
            "RecordType",
            "RunId",
            "Source",
            "Status",
            "FilesCopied",
            "BytesCopied",
            "FilesSkipped",
            "FilesFailed",
            "BackupGapSeconds",
            "DurationSeconds",
            "Message",
            "Details",
            "TargetSeconds",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(v["RecordType"], "SyncRun");
        assert_eq!(v["Status"], "Partial");
    }
}
