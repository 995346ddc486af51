//! `health/{source}.json` in the state container: the facts the backup gap is
//! computed from, so `status`, `/metrics` and the workbook agree on one number.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::failover::RunStatus;
use crate::storage::{read_all, BlobStore, Condition, PutOptions, StorageResult};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceHealth {
    pub source: String,
    pub last_run_id: Option<String>,
    pub last_run_started_at: Option<DateTime<Utc>>,
    pub last_run_finished_at: Option<DateTime<Utc>>,
    pub last_run_status: Option<RunStatus>,
    /// Start of the last run that archived and verified every listed file.
    pub last_success_run_id: Option<String>,
    pub last_success_started_at: Option<DateTime<Utc>>,
    pub newest_file_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub consecutive_failed_runs: u32,
}

pub fn health_name(source: &str) -> String {
    format!("health/{source}.json")
}

impl SourceHealth {
    pub async fn load(state: &dyn BlobStore, source: &str) -> StorageResult<SourceHealth> {
        Ok(match read_all(state, &health_name(source)).await? {
            Some((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(source, error = %e, "health state is unreadable; starting afresh");
                SourceHealth::default()
            }),
            None => SourceHealth::default(),
        }
        .with_source(source))
    }

    fn with_source(mut self, source: &str) -> Self {
        self.source = source.to_string();
        self
    }

    /// Backup gap at `now`: now minus the start of the last complete run.
    pub fn backup_gap(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.last_success_started_at.map(|t| now - t)
    }

    pub async fn save(&self, state: &dyn BlobStore) -> StorageResult<()> {
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        state
            .put(
                &health_name(&self.source),
                body.into(),
                PutOptions {
                    content_type: Some("application/json".into()),
                    condition: Condition::None,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
    }
}
