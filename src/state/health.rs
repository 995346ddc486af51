//! `health/{source}.json` in the state container: the facts the backup gap is
//! computed from, so `status`, `/metrics` and the workbook agree on one number.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::records::{AwsHealth, RunStatus};
use crate::storage::{BlobStore, Condition, StorageResult};

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
    /// AWS as the last probes saw it (S3 of this source answering within `health.probe_timeout`).
    #[serde(default)]
    pub aws_health: Option<AwsHealth>,
    #[serde(default)]
    pub consecutive_probe_failures: u32,
    #[serde(default)]
    pub last_probe_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_probe_error: Option<String>,
}

pub fn health_name(source: &str) -> String {
    format!("health/{source}.json")
}

impl SourceHealth {
    pub async fn load(state: &dyn BlobStore, source: &str) -> StorageResult<SourceHealth> {
        Ok(
            match super::get_json::<SourceHealth>(state, &health_name(source)).await? {
                Some(doc) => doc.value.unwrap_or_else(|e| {
                    tracing::warn!(source, error = %e, "health state is unreadable; starting afresh");
                    SourceHealth::default()
                }),
                None => SourceHealth::default(),
            }
            .with_source(source),
        )
    }

    fn with_source(mut self, source: &str) -> Self {
        self.source = source.to_string();
        self
    }

    /// Counts a probe; Degraded after `degraded_after` consecutive failures, Outage after
    /// `outage_after`, Healthy on the first success. Returns the previous state when the
    /// failover state changed (into or out of Outage).
    pub fn observe_probe(
        &mut self,
        result: crate::records::Probe,
        at: DateTime<Utc>,
        degraded_after: u32,
        outage_after: u32,
    ) -> Option<Option<AwsHealth>> {
        let before = self.aws_health;
        self.last_probe_at = Some(at);
        match result {
            crate::records::Probe::Reachable => {
                self.consecutive_probe_failures = 0;
                self.last_probe_error = None;
                self.aws_health = Some(AwsHealth::Healthy);
            }
            crate::records::Probe::CredentialsFailed(e) => {
                // Says nothing about AWS: the outage count neither grows nor resets, and
                // no failover event is raised either way.
                self.last_probe_error = Some(e);
                self.aws_health = Some(AwsHealth::CredentialsFailed);
                return None;
            }
            crate::records::Probe::Unreachable(e) => {
                self.consecutive_probe_failures += 1;
                self.last_probe_error = Some(e);
                let n = self.consecutive_probe_failures;
                self.aws_health = Some(if n >= outage_after {
                    AwsHealth::Outage
                } else if n >= degraded_after {
                    AwsHealth::Degraded
                } else {
                    match before {
                        None | Some(AwsHealth::CredentialsFailed) => AwsHealth::Healthy,
                        Some(h) => h,
                    }
                });
            }
        }
        let was_outage = before == Some(AwsHealth::Outage);
        let is_outage = self.aws_health == Some(AwsHealth::Outage);
        (was_outage != is_outage).then_some(before)
    }

    /// Backup gap at `now`: now minus the start of the last complete run.
    pub fn backup_gap(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.last_success_started_at.map(|t| now - t)
    }

    pub async fn save(&self, state: &dyn BlobStore) -> StorageResult<()> {
        super::put_json(state, &health_name(&self.source), self, Condition::None, None)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_move_between_healthy_degraded_and_outage() {
        let t = Utc::now();
        let mut h = SourceHealth::default();
        assert_eq!(h.observe_probe(crate::records::Probe::Reachable, t, 1, 3), None);
        assert_eq!(h.aws_health, Some(AwsHealth::Healthy));
        assert_eq!(
            h.observe_probe(crate::records::Probe::Unreachable("timeout".into()), t, 1, 3),
            None
        );
        assert_eq!(h.aws_health, Some(AwsHealth::Degraded));
        h.observe_probe(crate::records::Probe::Unreachable("timeout".into()), t, 1, 3);
        assert_eq!(h.aws_health, Some(AwsHealth::Degraded));
        assert_eq!(
            h.observe_probe(crate::records::Probe::Unreachable("timeout".into()), t, 1, 3),
            Some(Some(AwsHealth::Degraded)),
            "entering the outage"
        );
        assert_eq!(h.aws_health, Some(AwsHealth::Outage));
        assert_eq!(
            h.observe_probe(crate::records::Probe::Reachable, t, 1, 3),
            Some(Some(AwsHealth::Outage)),
            "leaving it"
        );
        assert_eq!(
            (h.aws_health, h.consecutive_probe_failures),
            (Some(AwsHealth::Healthy), 0)
        );
    }

    #[test]
    fn refused_credentials_are_not_an_outage() {
        use crate::records::Probe;
        let mut h = SourceHealth::default();
        let t = Utc::now();
        for _ in 0..5 {
            assert_eq!(
                h.observe_probe(Probe::CredentialsFailed("AccessDenied".into()), t, 1, 3),
                None
            );
        }
        assert_eq!(h.aws_health, Some(AwsHealth::CredentialsFailed));
        assert_eq!(h.consecutive_probe_failures, 0);
        // An outage already declared is neither ended nor deepened by a credentials failure.
        for _ in 0..3 {
            h.observe_probe(Probe::Unreachable("timeout".into()), t, 1, 3);
        }
        assert_eq!(h.aws_health, Some(AwsHealth::Outage));
        assert_eq!(
            h.observe_probe(Probe::CredentialsFailed("expired".into()), t, 1, 3),
            None
        );
        assert_eq!(h.consecutive_probe_failures, 3);
    }
}
